/*
 * test_static.c - unit tests of the static service's pure half
 * (services/static_path.c): the path decoder and resolver against every
 * way out of the root we know of, both with openat2 and with the O_NOFOLLOW
 * walk; the Content-Type table; Range parsing; ETag and conditional-request
 * checks.  Each test builds its own temporary root (criterion runs each in
 * its own process) and removes it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "services/static.h"

static char tmp[128], outside[160];
static int rootfd = -1;

static void put(const char *rel, const char *content)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s", p);
    fputs(content, f);
    fclose(f);
}

/* root/: index.html, a.txt, sub/b.css, sub/index.html, .secret, empty/,
 * in -> a.txt (a link inside), out -> the file outside, outdir -> /etc,
 * fifo; and a file next to the root, outside it. */
static void setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/cd-static-XXXXXX");
    cr_assert(mkdtemp(tmp));
    snprintf(outside, sizeof outside, "%s-outside", tmp);
    FILE *f = fopen(outside, "w");
    cr_assert(f);
    fputs("secret outside", f);
    fclose(f);
    char p[512];
    snprintf(p, sizeof p, "%s/sub", tmp);
    cr_assert(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/empty", tmp);
    cr_assert(mkdir(p, 0755) == 0);
    put("index.html", "<h1>root</h1>");
    put("a.txt", "hello");
    put("sub/b.css", "b{}");
    put("sub/index.html", "sub");
    put(".secret", "dot");
    put("%2e%2e", "literally named");
    snprintf(p, sizeof p, "%s/in", tmp);
    cr_assert(symlink("a.txt", p) == 0);
    snprintf(p, sizeof p, "%s/out", tmp);
    cr_assert(symlink(outside, p) == 0);
    snprintf(p, sizeof p, "%s/outdir", tmp);
    cr_assert(symlink("/etc", p) == 0);
    snprintf(p, sizeof p, "%s/up", tmp);
    cr_assert(symlink("../", p) == 0);
    snprintf(p, sizeof p, "%s/fifo", tmp);
    cr_assert(mkfifo(p, 0644) == 0);
    rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert(rootfd >= 0);
}

static void teardown(void)
{
    close(rootfd);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tmp, outside);
    cr_expect(system(cmd) == 0);
}

TestSuite(static_path, .init = setup, .fini = teardown);

/* Resolves path; returns the fd's content (first 63 bytes) or "" and the rc. */
static int get(const char *path, char *buf, size_t len)
{
    struct stat st;
    const char *type = NULL;
    buf[0] = '\0';
    int fd = cd_static_resolve(rootfd, path, "index.html", 0, &st, &type);
    if (fd < 0)
        return fd;
    ssize_t n = read(fd, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    cr_expect(type != NULL);
    return 0;
}

static void refused(const char *path, int rc)
{
    char buf[64];
    int got = get(path, buf, sizeof buf);
    cr_expect_eq(got, rc, "%s: got %d (%s), want %d", path, got, buf, rc);
    cr_expect(strstr(buf, "secret") == NULL, "%s served %s", path, buf);
}

static void served(const char *path, const char *content)
{
    char buf[64];
    int got = get(path, buf, sizeof buf);
    cr_expect_eq(got, 0, "%s: %d", path, got);
    cr_expect_str_eq(buf, content, "%s", path);
}

Test(static_path, serves_files_and_indexes)
{
    served("/a.txt", "hello");
    served("", "<h1>root</h1>");
    served("/", "<h1>root</h1>");
    served("/sub", "sub");
    served("/sub/", "sub");
    served("/sub/b.css", "b{}");
    served("//sub///b.css", "b{}");
    served("/./sub/./b.css", "b{}");
    served("/%61.txt", "hello");
    served("/in", "hello"); /* a link inside the root (openat2) */
    /* decoded once: %252e%252e is the file named "%2e%2e", never ".." */
    served("/%252e%252e", "literally named");
}

Test(static_path, refuses_every_escape)
{
    refused("/..", -EPERM);
    refused("/../etc/passwd", -EPERM);
    refused("/sub/../../etc/passwd", -EPERM);
    refused("/sub/..", -EPERM);
    refused("/%2e%2e/etc/passwd", -EPERM);
    refused("/%2E%2E", -EPERM);
    refused("/.%2e/x", -EPERM);
    refused("/sub%2F..%2F..%2Fetc%2Fpasswd", -EPERM);
    refused("/sub%2fb.css", -EPERM);
    refused("/sub%5Cb.css", -EPERM);
    refused("/sub\\b.css", -EPERM);
    refused("/..\\..\\etc\\passwd", -EPERM);
    refused("/a.txt%00.html", -EPERM);
    refused("/%00", -EPERM);
    refused("/out", -EXDEV);           /* a symlink out of the root */
    refused("/outdir/passwd", -EXDEV); /* through a symlinked directory */
    refused("/up/etc/passwd", -EXDEV);
    refused("/.secret", -EPERM); /* dotfiles = deny */
    refused("/sub/.%73ecret", -EPERM);
    refused("/%", -EINVAL);
    refused("/%2", -EINVAL);
    refused("/%zz", -EINVAL);
    refused("/nope", -ENOENT);
    refused("/empty", -ENOENT); /* a directory without an index: no listing */
    refused("/fifo", -ENOENT);  /* not a regular file, and open did not hang */
    /* absolute paths are taken under the root */
    refused("/etc/passwd", -ENOENT);
    refused(outside, -ENOENT);
}

Test(static_path, walk_fallback_follows_no_link)
{
    int fd = cd_static_walk(rootfd, "sub/b.css");
    cr_assert(fd >= 0);
    close(fd);
    cr_expect_eq(cd_static_walk(rootfd, "out"), -ELOOP);
    int rc = cd_static_walk(rootfd, "outdir/passwd");
    cr_expect(rc == -ELOOP || rc == -ENOTDIR, "%d", rc);
    cr_expect_eq(cd_static_walk(rootfd, "in"), -ELOOP); /* stricter: links inside too */
    cr_expect_eq(cd_static_walk(rootfd, "../etc/passwd"), -EPERM);
    cr_expect_eq(cd_static_walk(rootfd, "sub/../../x"), -EPERM);
    fd = cd_static_walk(rootfd, "");
    cr_assert(fd >= 0); /* the root itself */
    close(fd);
}

Test(static_path, dotfiles_allow)
{
    struct stat st;
    const char *type;
    int fd = cd_static_resolve(rootfd, "/.secret", "index.html", 1, &st, &type);
    cr_assert(fd >= 0);
    close(fd);
    cr_expect_eq(cd_static_resolve(rootfd, "/..", "index.html", 1, &st, &type), -EPERM);
    cr_expect_eq(cd_static_resolve(rootfd, "/sub", NULL, 1, &st, &type), -ENOENT);
}

Test(static_decode, normalizes_and_bounds)
{
    char out[16];
    cr_expect_eq(cd_static_decode("/a//b/./c/", out, sizeof out, 0), 5);
    cr_expect_str_eq(out, "a/b/c");
    cr_expect_eq(cd_static_decode("", out, sizeof out, 0), 0);
    cr_expect_str_eq(out, "");
    cr_expect_eq(cd_static_decode("/%41%62", out, sizeof out, 0), 2);
    cr_expect_str_eq(out, "Ab");
    cr_expect_eq(cd_static_decode("/a%25b", out, sizeof out, 0), 3);
    cr_expect_str_eq(out, "a%b");
    cr_expect_eq(cd_static_decode("/...", out, sizeof out, 1), 3); /* a name, not ".." */
    cr_expect_eq(cd_static_decode("/0123456789abcdef", out, sizeof out, 0), -ENAMETOOLONG);
    cr_expect_eq(cd_static_decode("/0123456789abcde", out, sizeof out, 0), 15);
    cr_expect_eq(cd_static_decode("/a", out, 0, 0), -ENAMETOOLONG);
}

Test(static_mime, by_extension)
{
    cr_expect_str_eq(cd_static_mime("index.html"), "text/html; charset=utf-8");
    cr_expect_str_eq(cd_static_mime("a/B.CSS"), "text/css; charset=utf-8");
    cr_expect_str_eq(cd_static_mime("app.js"), "text/javascript; charset=utf-8");
    cr_expect_str_eq(cd_static_mime("x.json"), "application/json");
    cr_expect_str_eq(cd_static_mime("x.txt"), "text/plain; charset=utf-8");
    cr_expect_str_eq(cd_static_mime("x.svg"), "image/svg+xml");
    cr_expect_str_eq(cd_static_mime("x.png"), "image/png");
    cr_expect_str_eq(cd_static_mime("x.jpg"), "image/jpeg");
    cr_expect_str_eq(cd_static_mime("x.gif"), "image/gif");
    cr_expect_str_eq(cd_static_mime("x.webp"), "image/webp");
    cr_expect_str_eq(cd_static_mime("favicon.ico"), "image/x-icon");
    cr_expect_str_eq(cd_static_mime("x.wasm"), "application/wasm");
    cr_expect_str_eq(cd_static_mime("x.woff2"), "font/woff2");
    cr_expect_str_eq(cd_static_mime("x.pdf"), "application/pdf");
    cr_expect_str_eq(cd_static_mime("x.tar.gz"), "application/octet-stream");
    cr_expect_str_eq(cd_static_mime("README"), "application/octet-stream");
    cr_expect_str_eq(cd_static_mime("dir.html/file"), "application/octet-stream");
    cr_expect_str_eq(cd_static_mime("x."), "application/octet-stream");
}

static void range(const char *h, off_t size, int rc, off_t first, off_t last)
{
    off_t f = -7, l = -7;
    int got = cd_static_range(h, size, &f, &l);
    cr_expect_eq(got, rc, "%s (size %lld): %d, want %d", h ? h : "(null)", (long long)size, got, rc);
    if (rc == 1 && got == 1) {
        cr_expect_eq(f, first, "%s: first %lld", h, (long long)f);
        cr_expect_eq(l, last, "%s: last %lld", h, (long long)l);
    }
}

Test(static_range, single_suffix_open_and_refusals)
{
    range(NULL, 100, 0, 0, 0);
    range("bytes=0-9", 100, 1, 0, 9);
    range("bytes=10-", 100, 1, 10, 99);
    range("bytes=-10", 100, 1, 90, 99);
    range("bytes=-1000", 100, 1, 0, 99);
    range("bytes=90-1000", 100, 1, 90, 99);
    range(" Bytes=5-5 ", 100, 1, 5, 5);
    range("bytes = 5-5", 100, 0, 0, 0); /* no spaces around "=" in the grammar */
    range("bytes=99-99", 100, 1, 99, 99);
    range("bytes=100-", 100, -1, 0, 0);
    range("bytes=100-200", 100, -1, 0, 0);
    range("bytes=-0", 100, -1, 0, 0);
    range("bytes=0-", 0, -1, 0, 0);
    range("bytes=-5", 0, -1, 0, 0);
    range("bytes=99999999999999999999999-", 100, -1, 0, 0); /* saturates, never wraps */
    range("bytes=0-99999999999999999999999", 100, 1, 0, 99);
    /* the whole file: several ranges, another unit, malformed */
    range("bytes=0-1,5-6", 100, 0, 0, 0);
    range("items=0-1", 100, 0, 0, 0);
    range("bytes=5-4", 100, 0, 0, 0);
    range("bytes=a-b", 100, 0, 0, 0);
    range("bytes=-", 100, 0, 0, 0);
    range("bytes=1-2x", 100, 0, 0, 0);
    range("bytes=", 100, 0, 0, 0);
}

Test(static_validators, etag_dates_and_conditions)
{
    struct stat st = {0};
    st.st_ino = 0x1234;
    st.st_size = 100;
    st.st_mtim.tv_sec = 1700000000;
    char etag[64], date[40];
    cd_static_etag(&st, etag, sizeof etag);
    cr_expect(etag[0] == '"' && etag[strlen(etag) - 1] == '"', "%s", etag);
    struct stat st2 = st;
    st2.st_size = 101;
    char etag2[64];
    cd_static_etag(&st2, etag2, sizeof etag2);
    cr_expect_str_neq(etag, etag2);
    cd_static_http_date(1700000000, date, sizeof date);
    cr_expect_str_eq(date, "Tue, 14 Nov 2023 22:13:20 GMT");

    char list[200];
    cr_expect(cd_static_not_modified(etag, NULL, etag, 1700000000));
    snprintf(list, sizeof list, "\"x\", W/%s", etag);
    cr_expect(cd_static_not_modified(list, NULL, etag, 1700000000));
    cr_expect(cd_static_not_modified("*", NULL, etag, 1700000000));
    cr_expect(!cd_static_not_modified("\"other\"", NULL, etag, 1700000000));
    /* If-None-Match wins over If-Modified-Since */
    cr_expect(!cd_static_not_modified("\"other\"", date, etag, 1700000000));
    cr_expect(cd_static_not_modified(NULL, date, etag, 1700000000));
    cr_expect(cd_static_not_modified(NULL, "Wed, 15 Nov 2023 00:00:00 GMT", etag, 1700000000));
    cr_expect(!cd_static_not_modified(NULL, "Tue, 14 Nov 2023 22:13:19 GMT", etag, 1700000000));
    cr_expect(!cd_static_not_modified(NULL, "yesterday", etag, 1700000000));
    cr_expect(!cd_static_not_modified(NULL, NULL, etag, 1700000000));
}
