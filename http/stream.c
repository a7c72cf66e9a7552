/*
 * stream.c - streamed answers: cd_response_begin, _write and _end of
 * request.h (worker process, loop thread).
 *
 * A service that produces its answer piece by piece (rows of a database
 * cursor, a long computation) begins it, writes pieces and ends it.  The
 * status line and headers leave at begin (with the request id and the
 * service's own headers, as for any answer), each piece is queued on the
 * connection as it comes and the connection writes as fast as the client
 * reads (server.c), so nothing blocks and nothing is built whole.  The
 * framing follows the client: HTTP/1.1 gets chunked transfer coding
 * (RFC 9112 §7.1, ended by the zero-length chunk), HTTP/1.0 gets a body
 * that ends when the connection closes, and HEAD gets the headers only.
 *
 * The connection stays "in service" until end: pipelined requests wait,
 * and a client that stops reading for keepalive_timeout is closed, after
 * which a write returns -EPIPE so the service can stop producing.  Queued
 * pieces are not bounded here: a service writing much faster than its
 * clients read should pace itself on what it produces.
 */
#include <errno.h>
#include <stdio.h>

#include "http/conn.h"

int cd_response_begin(cd_request *r, int status, const char *content_type)
{
    if (r->streaming)
        return -EINVAL;
    r->streaming = 1;
    r->stream_status = status;
    cd_conn *c = r->conn;
    if (!c)
        return 0; /* the client is gone: writes say so */
    if (r->ctx->draining || c->upgrade || c->peer_closed)
        c->keepalive = 0;
    r->chunked = !r->head && r->http_minor >= 1;
    size_t at = c->out_len - c->out_off; /* what was queued before (the buffer may move) */
    if (cd_http__queue_head(c, r, r->reqid, status, content_type, (size_t)-1, NULL) < 0) {
        c->out_len = c->out_off + at; /* no half header: the connection closes at end */
        r->stream_failed = 1;
        return -ENOMEM;
    }
    if (!c->processing)
        cd_http__process(c);
    return 0;
}

int cd_response_write(cd_request *r, const void *data, size_t len)
{
    if (!r->streaming)
        return -EINVAL;
    cd_conn *c = r->conn;
    if (!c || r->stream_failed)
        return -EPIPE;
    r->streamed += len;
    if (r->head || len == 0)
        return 0;
    if (r->chunked) {
        char sz[24];
        int n = snprintf(sz, sizeof sz, "%zx\r\n", len);
        if (cd_http__out_put(c, sz, (size_t)n) < 0 || cd_http__out_put(c, data, len) < 0 ||
            cd_http__out_put(c, "\r\n", 2) < 0) {
            r->stream_failed = 1; /* the framing is broken: only closing ends it */
            return -ENOMEM;
        }
    } else if (cd_http__out_put(c, data, len) < 0) {
        r->stream_failed = 1;
        return -ENOMEM;
    }
    if (!c->processing)
        cd_http__process(c);
    return r->conn ? 0 : -EPIPE;
}

void cd_response_end(cd_request *r)
{
    if (!r->streaming) { /* never begun: an empty answer */
        cd_http__respond(r, 204, NULL, "", 0, NULL);
        return;
    }
    cd_conn *c = cd_http__answer_start(r, r->stream_status, r->head ? 0 : r->streamed);
    if (c) {
        if (r->stream_failed)
            c->keepalive = 0;
        if (r->chunked && !r->stream_failed && cd_http__out_put(c, "0\r\n\r\n", 5) < 0)
            c->keepalive = 0;
    }
    cd_http__answer_done(r, c);
}
