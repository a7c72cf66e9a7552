/*
 * util.c - see util.h.
 */
#include "core/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Parses the leading unsigned decimal of s; *end is left after it. */
static int parse_number(const char *s, long long *out, const char **end)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || v > (unsigned long long)LLONG_MAX)
        return -1;
    *out = (long long)v;
    *end = e;
    return 0;
}

static int scale(long long v, long long mult, long long *out)
{
    if (v > LLONG_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

int cd_parse_duration_ms(const char *s, long long *out)
{
    long long v;
    const char *u;
    if (parse_number(s, &v, &u) < 0)
        return -1;
    if (*u == '\0' || strcmp(u, "s") == 0)
        return scale(v, 1000, out);
    if (strcmp(u, "ms") == 0)
        return scale(v, 1, out);
    if (strcmp(u, "m") == 0 || strcmp(u, "min") == 0)
        return scale(v, 60000, out);
    if (strcmp(u, "h") == 0)
        return scale(v, 3600000, out);
    return -1;
}

int cd_parse_size(const char *s, long long *out)
{
    long long v;
    const char *u;
    if (parse_number(s, &v, &u) < 0)
        return -1;
    long long mult;
    switch (tolower((unsigned char)*u)) {
    case '\0': return scale(v, 1, out);
    case 'b': mult = 1; break;
    case 'k': mult = 1024; break;
    case 'm': mult = 1024 * 1024; break;
    case 'g': mult = 1024LL * 1024 * 1024; break;
    default: return -1;
    }
    u++;
    if (mult != 1 && (*u == 'b' || *u == 'B'))
        u++;
    if (*u != '\0')
        return -1;
    return scale(v, mult, out);
}

int cd_parse_int(const char *s, long long min, long long max, long long *out)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    long long v;
    const char *e;
    if (parse_number(p, &v, &e) < 0 || *e != '\0')
        return -1;
    if (neg)
        v = -v;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cd_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *port;
    memset(ss, 0, sizeof *ss);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
            return -1;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            strcpy(host, "0.0.0.0");
            port = s;
        } else {
            if ((size_t)(colon - s) >= sizeof host)
                return -1;
            memcpy(host, s, (size_t)(colon - s));
            host[colon - s] = '\0';
            if (host[0] == '\0' || strcmp(host, "*") == 0)
                strcpy(host, "0.0.0.0");
            port = colon + 1;
        }
    }
    long long p;
    if (cd_parse_int(port, 1, 65535, &p) < 0)
        return -1;
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((unsigned short)p);
        *len = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)p);
        *len = sizeof *in6;
        return 0;
    }
    if (strcmp(host, "localhost") == 0) {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in4->sin_port = htons((unsigned short)p);
        *len = sizeof *in4;
        return 0;
    }
    return -1;
}

int cd_set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int cd_set_cloexec(int fd, int on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return -errno;
    fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
    return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}

int cd_listen_reuseport(const struct sockaddr *addr, socklen_t len, int backlog)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* TCP_NODELAY on the listener is inherited by every accepted socket: no
     * per-connection syscall, and no small write (an ack, a WebSocket frame
     * after it) waiting for the peer's delayed ACK. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 || bind(fd, addr, len) < 0 ||
        listen(fd, backlog) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int cd_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

long cd_percent_decode(const char *s, size_t n, char *out, size_t outlen, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '+' && plus_space) {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int hi = cd_hexval((unsigned char)s[i + 1]), lo = cd_hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -ENAMETOOLONG;
        out[o++] = (char)ch;
    }
    if (outlen == 0)
        return -ENAMETOOLONG;
    out[o] = '\0';
    return (long)o;
}

void cd_now_string(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

char *cd_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int cd_query_param(const char *query, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    const char *q = query;

    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t nlen = eq ? (size_t)(eq - q) : len;
        if (nlen == klen && memcmp(q, key, klen) == 0) {
            if (outlen == 0)
                return -2;
            if (!eq) {
                out[0] = '\0';
                return 0;
            }
            long n = cd_percent_decode(eq + 1, len - nlen - 1, out, outlen, 1);
            return n < 0 || n > INT_MAX ? -2 : (int)n;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return -1;
}

size_t cd_utf8_seq(const char *p, size_t avail)
{
    const unsigned char *s = (const unsigned char *)p;
    if (avail == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    /* RFC 3629 table 4: the second byte's range depends on the first;
     * that excludes overlong forms, surrogates and anything past U+10FFFF. */
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

int cd_utf8_valid(const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        size_t n = cd_utf8_seq(p, (size_t)(end - p));
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}
