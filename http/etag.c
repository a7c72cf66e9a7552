/*
 * etag.c - conditional GET for the routes that enable it (worker process,
 * loop thread; etag = on, routeconf.h).
 *
 * The ETag of an answer is computed from its body, so a service need not
 * know anything about it: a strong validator (RFC 9110 §8.8.3) made of the
 * body's length and its 64-bit FNV-1a hash, with "-gz" for the gzip
 * encoding of the same body (a strong tag names one sequence of bytes).
 * A GET or HEAD whose If-None-Match lists it (or is "*") gets 304 with the
 * tag and no body; the service still built its answer (this saves the
 * bytes on the wire and the compression, not the service's work).
 * If-None-Match compares weakly (§13.1.2): a W/ prefix is ignored.
 */
#include <stdio.h>
#include <string.h>

#include "http/conn.h"

void cd_http__etag(const char *body, size_t len, int gz, char out[CD_ETAG_MAX])
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)body[i];
        h *= 0x100000001b3ull;
    }
    snprintf(out, CD_ETAG_MAX, "\"%zx-%016llx%s\"", len, (unsigned long long)h, gz ? "-gz" : "");
}

int cd_http__etag_match(const char *inm, const char *tag)
{
    size_t tlen = strlen(tag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return 0; /* not a list of entity tags: no match */
        const char *close = strchr(p + 1, '"');
        if (!close)
            return 0;
        if ((size_t)(close + 1 - p) == tlen && memcmp(p, tag, tlen) == 0)
            return 1;
        p = close + 1;
    }
    return 0;
}
