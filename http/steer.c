/*
 * steer.c - sticky sessions inside one host: a request that belongs to
 * another worker moves there, connection and all, before its body is read
 * (worker process, loop thread).
 *
 * SO_REUSEPORT hands each connection to any worker, but a session (an
 * Engine.IO polling session, say) lives in one.  Once a request's headers
 * are in, parse.c asks the context's on_steer hook (its owner asks the
 * route's service) which worker must serve it.  Another one: llhttp pauses
 * right after the head, and the connection leaves with what was read of
 * it: the head written back from what was parsed (the raw bytes may have
 * come in several reads and are gone), then the unparsed rest of the input
 * buffer, which is where the body begins.  The owner's on_move sends the
 * fd and those bytes on (through the master, with SCM_RIGHTS); the worker
 * that gets them adopts the connection (cd_http_conn_adopt) and parses the
 * request afresh, so the body crosses user space once, in the worker that
 * reads it, and the 100 Continue comes from there too.
 *
 * The head is written back only when it reads back the same: HTTP/1.x, no
 * CR, LF or NUL inside the URL, a name or a value, and head plus rest fit
 * the adopting worker's input buffer.  Otherwise, or when on_move says no
 * (the channel is full), the request is served here: steering is an
 * optimisation of where, never a reason to fail.  The first request of a
 * moved connection is never steered again (c->moved), so a session whose
 * worker is gone cannot loop.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "http/conn.h"

static int clean(const char *s, size_t n) { return !memchr(s, '\r', n) && !memchr(s, '\n', n) && !memchr(s, '\0', n); }

/* Appends n bytes of s at *len in out (cap): 0 or -EMSGSIZE. */
static int put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (cap - *len < n)
        return -EMSGSIZE;
    memcpy(out + *len, s, n);
    *len += n;
    return 0;
}

long cd_http__head_write(const cd_request *r, int http_major, char *out, size_t cap)
{
    if (http_major != 1 || r->http_minor > 1 || !r->arena || !r->url_len || !clean(r->arena, r->url_len))
        return -EINVAL;
    const char *method = llhttp_method_name((llhttp_method_t)r->llmethod);
    size_t len = 0;
    int rc = put(out, cap, &len, method, strlen(method));
    rc = rc ? rc : put(out, cap, &len, " ", 1);
    rc = rc ? rc : put(out, cap, &len, r->arena, r->url_len);
    rc = rc ? rc : put(out, cap, &len, r->http_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
    for (int i = 0; i < r->nhdrs && rc == 0; i++) {
        const cd_http_hdr *h = &r->hdrs[i];
        const char *name = r->arena + h->name, *value = r->arena + h->value;
        if (!h->name_len || !clean(name, h->name_len) || !clean(value, h->value_len))
            return -EINVAL;
        rc = put(out, cap, &len, name, h->name_len);
        rc = rc ? rc : put(out, cap, &len, ": ", 2);
        rc = rc ? rc : put(out, cap, &len, value, h->value_len);
        rc = rc ? rc : put(out, cap, &len, "\r\n", 2);
    }
    rc = rc ? rc : put(out, cap, &len, "\r\n", 2);
    return rc ? rc : (long)len;
}

uint32_t cd_http__steer(cd_conn *c)
{
    cd_http_ctx *ctx = c->ctx;
    if (c->moved) { /* it was moved here for this request: serve it */
        c->moved = 0;
        return 0;
    }
    if (!ctx->on_steer)
        return 0;
    const cd_route *route = c->req->found;
    return route ? ctx->on_steer(ctx->owner, route, c->req) : 0;
}

int cd_http__move(cd_conn *c, uint32_t to)
{
    cd_http_ctx *ctx = c->ctx;
    char buf[CD_HTTP_IN_BUF];
    size_t rest = c->in_len - c->in_off;
    long n = cd_http__head_write(c->req, c->parser.http_major, buf, sizeof buf - rest);
    if (n < 0) {
        cd_debug("fd %d: request for worker %u served here: %s", c->fd, (unsigned)to,
                 n == -EMSGSIZE ? "head and body read so far too large to move" : "head cannot be moved");
        return 0;
    }
    memcpy(buf + n, c->in + c->in_off, rest);
    int rc = ctx->on_move(ctx->owner, to, c->fd, buf, (size_t)n + rest);
    if (rc < 0) {
        cd_debug("fd %d: request for worker %u served here: %s", c->fd, (unsigned)to, strerror(-rc));
        return 0;
    }
    cd_debug("fd %d: moved to worker %u with %ld + %zu bytes", c->fd, (unsigned)to, n, rest);
    ctx->moved++;
    c->in_off = c->in_len = 0;
    cd_http__close(c); /* our copy of the fd; the request goes unlogged: its owner logs it */
    return 1;
}
