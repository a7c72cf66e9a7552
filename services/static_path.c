/*
 * static_path.c - the pure half of the static service (worker process,
 * loop thread): turning a request path into an open file that is surely
 * under the root, and the small parsers an answer needs (Content-Type by
 * extension, Range, the validators of a conditional GET).  No state, no
 * logging: the service (static.c) decides and logs.
 *
 * Safety is in two layers that do not trust each other.  First the path
 * text: it is percent-decoded exactly once, and refused when it holds a
 * NUL, a backslash, an encoded slash or backslash, a ".." segment (however
 * it was spelt) or, unless dotfiles = allow, a segment starting with '.'.
 * Then the kernel: the file is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS) relative to the root's directory fd, so whatever
 * the text let through (a symlink in the root pointing out of it, a race
 * that swaps a directory for a link) cannot leave the root: the kernel
 * refuses with EXDEV.  Linux has openat2 since 5.6 (Debian 12 runs 6.1);
 * where it answers ENOSYS we walk the path one component at a time with
 * O_NOFOLLOW, so no symlink is followed at all and, ".." being refused
 * before, every step stays inside the directory the previous step opened:
 * no realpath check is needed because nothing can be resolved elsewhere.
 *
 * Files are opened O_NONBLOCK so that a FIFO someone left in the root does
 * not hang the worker at open; only regular files are served.
 */
#include "services/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Ends the segment out[seg..*n): drops it when empty or ".", refuses "..",
 * and dotfiles unless allowed; a kept segment gets its '/'. */
static int end_segment(char *out, size_t outlen, size_t *n, size_t *seg, int allow_dot)
{
    size_t len = *n - *seg;
    const char *s = out + *seg;
    if (len == 0 || (len == 1 && s[0] == '.')) {
        *n = *seg;
        return 0;
    }
    if (len == 2 && s[0] == '.' && s[1] == '.')
        return -EPERM;
    if (s[0] == '.' && !allow_dot)
        return -EPERM;
    if (*n >= outlen) /* room for the '/' (or, for the last, the NUL) */
        return -ENAMETOOLONG;
    out[(*n)++] = '/';
    *seg = *n;
    return 0;
}

int cd_static_decode(const char *path, char *out, size_t outlen, int allow_dot)
{
    size_t n = 0, seg = 0;
    if (outlen == 0)
        return -ENAMETOOLONG;
    for (const char *p = path;; p++) {
        int ch = (unsigned char)*p;
        if (ch == '\0' || ch == '/') {
            int rc = end_segment(out, outlen, &n, &seg, allow_dot);
            if (rc < 0)
                return rc;
            if (ch == '\0')
                break;
            continue;
        }
        if (ch == '\\')
            return -EPERM;
        if (ch == '%') {
            int hi = hexval((unsigned char)p[1]), lo = hi < 0 ? -1 : hexval((unsigned char)p[2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            ch = hi * 16 + lo;
            p += 2;
            if (ch == 0 || ch == '/' || ch == '\\')
                return -EPERM;
        }
        if (n + 1 >= outlen)
            return -ENAMETOOLONG;
        out[n++] = (char)ch;
    }
    if (n > 0)
        n--; /* the last kept segment's '/' */
    out[n] = '\0';
    return (int)n;
}

int cd_static_walk(int rootfd, const char *rel)
{
    char buf[PATH_MAX];
    if (strlen(rel) >= sizeof buf)
        return -ENAMETOOLONG;
    strcpy(buf, rel);
    int dir = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -errno;
    char *save = NULL;
    for (char *comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
        if (strcmp(comp, "..") == 0) {
            close(dir);
            return -EPERM;
        }
        int last = save == NULL || *save == '\0';
        int fd = openat(dir, comp, last ? OPEN_FLAGS | O_NOFOLLOW : O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(dir);
        if (fd < 0)
            return -e;
        dir = fd;
    }
    return dir; /* the root itself when rel is "" */
}

int cd_static_open(int rootfd, const char *rel)
{
    struct open_how how = {
        .flags = OPEN_FLAGS,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof how);
    if (fd >= 0)
        return (int)fd;
    if (errno == ENOSYS)
        return cd_static_walk(rootfd, rel);
    return -errno;
}

/* fd's stat, if it is a regular file (fd closed otherwise). */
static int regular(int fd, struct stat *st)
{
    if (fstat(fd, st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return -ENOENT;
    }
    return fd;
}

int cd_static_resolve(int rootfd, const char *path, const char *index, int allow_dot, struct stat *st,
                      const char **type)
{
    char rel[PATH_MAX];
    int n = cd_static_decode(path, rel, sizeof rel, allow_dot);
    if (n < 0)
        return n;
    int fd = cd_static_open(rootfd, rel);
    if (fd < 0)
        return fd;
    if (fstat(fd, st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (S_ISDIR(st->st_mode)) {
        int dir = fd;
        fd = index && index[0] ? cd_static_open(dir, index) : -ENOENT;
        close(dir);
        if (fd < 0)
            return fd;
        *type = cd_static_mime(index);
    } else {
        *type = cd_static_mime(rel);
    }
    return regular(fd, st);
}

static const struct {
    const char *ext, *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"woff2", "font/woff2"},
    {"pdf", "application/pdf"},
};

const char *cd_static_mime(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
            if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
                return mime_types[i].type;
    return "application/octet-stream";
}

/* Reads decimal digits at *p (saturating at LLONG_MAX); how many were read. */
static int digits(const char **p, long long *v)
{
    int count = 0;
    *v = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++, count++) {
        int d = **p - '0';
        *v = *v > (LLONG_MAX - d) / 10 ? LLONG_MAX : *v * 10 + d;
    }
    return count;
}

int cd_static_range(const char *h, off_t size, off_t *first, off_t *last)
{
    if (!h)
        return 0;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0; /* another unit, or several ranges: the whole file */
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    long long a = -1, b = -1;
    if (*h == '-') {
        h++;
        if (!digits(&h, &b))
            return 0;
    } else {
        if (!digits(&h, &a) || *h++ != '-')
            return 0;
        if (*h >= '0' && *h <= '9')
            digits(&h, &b);
    }
    while (*h == ' ' || *h == '\t')
        h++;
    if (*h != '\0' || (a >= 0 && b >= 0 && b < a))
        return 0; /* malformed: ignored, as RFC 9110 says */
    if (a < 0) { /* the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *first = b < size ? size - b : 0;
        *last = size - 1;
        return 1;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= 0 && b < size - 1 ? b : size - 1;
    return 1;
}

void cd_static_etag(const struct stat *st, char *out, size_t outlen)
{
    unsigned long long m = (unsigned long long)st->st_mtim.tv_sec * 1000000000ull + (unsigned long long)st->st_mtim.tv_nsec;
    snprintf(out, outlen, "\"%llx-%llx-%llx\"", (unsigned long long)st->st_ino, (unsigned long long)st->st_size,
             m);
}

void cd_static_http_date(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Whether the If-None-Match list holds etag ("*" holds every one); weak
 * comparison: a W/ prefix on either side is ignored. */
static int etag_listed(const char *list, const char *etag)
{
    if (etag[0] == 'W' && etag[1] == '/')
        etag += 2;
    size_t elen = strlen(etag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 1 && p[0] == '*')
            return 1;
        if (len > 2 && p[0] == 'W' && p[1] == '/') {
            p += 2;
            len -= 2;
        }
        if (len == elen && memcmp(p, etag, len) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int cd_static_not_modified(const char *if_none_match, const char *if_modified_since, const char *etag,
                           time_t mtime)
{
    if (if_none_match)
        return etag_listed(if_none_match, etag);
    if (!if_modified_since)
        return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(if_modified_since, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0')
        return 0;
    time_t since = timegm(&tm);
    return since != (time_t)-1 && mtime <= since;
}
