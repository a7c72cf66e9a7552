/*
 * gzip.c - gzip content coding of answers for the routes that enable it
 * (worker process, loop thread; gzip and gzip_min_size, routeconf.h).
 *
 * Only whole answers (cd_request_respond) are compressed, in one deflate
 * call into a buffer sized by deflateBound, and only when the client's
 * Accept-Encoding admits gzip (RFC 9110 §12.5.3: "gzip" or "x-gzip", or
 * "*", with a q-value above 0, and not refused by name).  Level 5: most of
 * level 9's ratio on text at a fraction of its time, on the loop thread.
 * response.c decides when (size, status, no Content-Encoding of the
 * service's own) and adds Vary: Accept-Encoding to every answer of such a
 * route, compressed or not, so caches keep the two apart.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "http/conn.h"

/* The q-value of one Accept-Encoding element (p..end: "gzip;q=0.5"). */
static double qvalue(const char *p, const char *end)
{
    const char *semi = memchr(p, ';', (size_t)(end - p));
    while (semi) {
        const char *s = semi + 1;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        if (end - s >= 2 && (s[0] == 'q' || s[0] == 'Q') && s[1] == '=')
            return strtod(s + 2, NULL) > 0 ? 1 : 0;
        semi = memchr(s, ';', (size_t)(end - s));
    }
    return 1;
}

int cd_http__accepts_gzip(const char *ae)
{
    if (!ae)
        return 0;
    int gzip = -1, star = -1; /* -1: not named */
    for (const char *p = ae; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p + strcspn(p, ",");
        size_t name = strcspn(p, " \t;,");
        int q = qvalue(p, end) > 0;
        if ((name == 4 && strncasecmp(p, "gzip", 4) == 0) || (name == 6 && strncasecmp(p, "x-gzip", 6) == 0))
            gzip = q;
        else if (name == 1 && *p == '*')
            star = q;
        p = end;
    }
    return gzip >= 0 ? gzip : star == 1;
}

int cd_http__gzip(const char *body, size_t len, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 5, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    uLong cap = deflateBound(&z, (uLong)len);
    char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)body;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    *outlen = n;
    return 0;
}
