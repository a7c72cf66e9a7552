/*
 * memfd.c - the config text in a sealed memfd (master writes, workers and
 * an upgraded master read).
 *
 * The master hands each exec'd worker (and the binary that replaces it in
 * an upgrade) the exact bytes it validated, not the path: the file may have
 * changed since.  A memfd sealed against writing, growing and shrinking is
 * a copy nobody can alter afterwards, and its fd survives exec.  Both ends
 * live here so the format (the bare text, nothing else) is defined once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"

int cd_conf_memfd(const char *text, size_t len)
{
    int fd = memfd_create("clusterd-conf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            close(fd);
            return -err;
        }
        off += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int cd_conf_load_fd(int fd, const char *path, cd_conf **out, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return cd_conf_fail(err, errlen, path, 0, "fstat(config memfd) failed: %s", strerror(errno));
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return cd_conf_fail(err, errlen, path, 0, "out of memory");
    size_t off = 0;
    while (off < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + off, (size_t)st.st_size - off, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            cd_conf_fail(err, errlen, path, 0, "pread(config memfd) failed: %s", n < 0 ? strerror(errno) : "short");
            free(buf);
            return -1;
        }
        off += (size_t)n;
    }
    int rc = cd_conf_load_text(path, buf, off, out, err, errlen);
    free(buf);
    return rc;
}
