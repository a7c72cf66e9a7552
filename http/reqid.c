/*
 * reqid.c - the request id (worker process, loop thread).
 *
 * Every request gets one at dispatch, so a line in the access log, the
 * response the client got and whatever a service logs can be tied
 * together: the client's (or its proxy's) X-Request-Id when it is 1..64 of
 * [A-Za-z0-9._-] (anything else could carry log or header injection and is
 * replaced), else a new one.  A new id is the worker's pid, the loop's
 * time in seconds and a per-context counter, in hex: unique per worker
 * (pid) across restarts (time) and within a second (counter), with no
 * randomness to draw; the "<pid>-<seconds>-" prefix is remade once a
 * second at most.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http/conn.h"

int cd_http__reqid_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (n == CD_REQID_MAX ||
            !((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return n > 0;
}

void cd_http__reqid_new(cd_http_ctx *ctx, char out[CD_REQID_MAX + 1])
{
    /* "<pid>-<seconds>-" changes once a second at most: kept, like Date. */
    unsigned long long sec = (unsigned long long)ev_now(ctx->loop);
    if (!ctx->reqid_prefix[0] || sec != ctx->reqid_sec) {
        snprintf(ctx->reqid_prefix, sizeof ctx->reqid_prefix, "%x-%llx-", (unsigned)getpid(), sec);
        ctx->reqid_sec = sec;
    }
    size_t n = strlen(ctx->reqid_prefix);
    memcpy(out, ctx->reqid_prefix, n);
    char hex[16];
    int k = 0;
    for (uint64_t v = ++ctx->reqid_seq; v; v >>= 4)
        hex[k++] = "0123456789abcdef"[v & 15];
    while (k)
        out[n++] = hex[--k];
    out[n] = '\0';
}

void cd_http__reqid(cd_http_ctx *ctx, cd_request *r)
{
    const char *h = r->path ? cd_request_header(r, "X-Request-Id") : NULL;
    if (h && cd_http__reqid_valid(h))
        memcpy(r->reqid, h, strlen(h) + 1);
    else
        cd_http__reqid_new(ctx, r->reqid);
}
