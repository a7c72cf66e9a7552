/*
 * fuzz_static_path.c - the static service's path resolver through the real
 * code (services/static_path.c): cd_static_resolve, which the service's
 * handle() calls with the request's subpath, and the O_NOFOLLOW walk that
 * stands in for openat2 on kernels without it.
 *
 * The first call builds a root in a temporary directory: files, a
 * subdirectory with an index, a dotfile, a link inside the root, and ways
 * out of it: a link to a file next to the root, a link to /etc, a link to
 * "..", and that file itself.  The directory is removed at exit.
 *
 * Input: byte 0 chooses dotfiles (bit 0: allow) and the index (bit 1: none);
 * the rest, up to the first NUL (NULs never reach a service through HTTP),
 * is the request path as sent.
 *
 * Invariants: whatever opens is a regular file whose real path (read back
 * from /proc/self/fd) lies under the root, and with dotfiles denied it
 * has no component starting with '.'; the decoded path never holds a ".."
 * or "." segment, an empty one, a backslash or a leading '/'; every
 * refusal is a negative errno.  Any violation aborts.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "services/static.h"

static char base[64], root[PATH_MAX];
static int rootfd = -1;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void cleanup(void)
{
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void mk(const char *rel, const char *content)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FILE *f = fopen(p, "w");
    if (!f)
        abort();
    fputs(content, f);
    fclose(f);
}

static void link_at(const char *target, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    if (symlink(target, p) < 0)
        abort();
}

static void setup(void)
{
    snprintf(base, sizeof base, "/tmp/cd-fuzz-static-XXXXXX");
    if (!mkdtemp(base))
        abort();
    atexit(cleanup);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/root", base);
    if (mkdir(p, 0755) < 0)
        abort();
    snprintf(p, sizeof p, "%s/root/sub", base);
    if (mkdir(p, 0755) < 0)
        abort();
    mk("outside", "outside");
    mk("root/index.html", "index");
    mk("root/a.txt", "a");
    mk("root/sub/index.html", "sub");
    mk("root/sub/b.css", "b");
    mk("root/.secret", "dot");
    link_at("a.txt", "root/in");
    link_at("../outside", "root/out");
    link_at("/etc", "root/etc");
    link_at("..", "root/up");
    link_at("../../outside", "root/sub/out2");
    snprintf(p, sizeof p, "%s/root", base);
    if (!realpath(p, root))
        abort();
    rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        abort();
}

/* fd is a regular file under the root (and no dotfile unless allowed). */
static void check_fd(int fd, int allow_dot)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        abort();
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    if (n < 0)
        abort();
    real[n] = '\0';
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0')) {
        fprintf(stderr, "opened %s, outside %s\n", real, root);
        abort();
    }
    if (!allow_dot && strstr(real + rl, "/.")) {
        fprintf(stderr, "opened the dotfile %s\n", real);
        abort();
    }
    close(fd);
}

static void check_decoded(const char *rel)
{
    if (rel[0] == '/' || strchr(rel, '\\'))
        abort();
    char copy[PATH_MAX + 2];
    size_t n = strlen(rel);
    copy[0] = '/';
    memcpy(copy + 1, rel, n);
    memcpy(copy + 1 + n, "/", 2);
    if (strstr(copy, "/../") || strstr(copy, "/./") || (rel[0] && strstr(copy, "//")))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (rootfd < 0)
        setup();
    if (size < 1)
        return 0;
    int allow_dot = data[0] & 1;
    const char *index = data[0] & 2 ? NULL : "index.html";
    char path[PATH_MAX];
    size_t len = size - 1 < sizeof path - 1 ? size - 1 : sizeof path - 1;
    memcpy(path, data + 1, len);
    path[len] = '\0';

    struct stat st;
    const char *type = NULL;
    int fd = cd_static_resolve(rootfd, path, index, allow_dot, &st, &type);
    if (fd >= 0) {
        if (!S_ISREG(st.st_mode) || !type)
            abort();
        check_fd(fd, allow_dot);
    } else if (fd < -4095) {
        abort();
    }

    char rel[PATH_MAX];
    if (cd_static_decode(path, rel, sizeof rel, allow_dot) >= 0) {
        check_decoded(rel);
        fd = cd_static_walk(rootfd, rel);
        if (fd >= 0) {
            if (fstat(fd, &st) < 0)
                abort();
            if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
                check_fd(fd, allow_dot);
            else
                close(fd);
        }
    }
    return 0;
}
