/*
 * upgrade.c - handing a connection over to a handler that speaks another
 * protocol on it, a WebSocket (worker process, loop thread).
 *
 * The model is h2o's h2o_http1_upgrade: the handler calls
 * cd_http_upgrade(r, cb, arg) and returns; the request ends there (counted
 * as a 101, no HTTP response written: the callee writes its own), the
 * connection stops reading and, once what it had queued for earlier
 * pipelined requests is written, the connection's timer (armed at zero)
 * hands the socket and the bytes the client sent after the request to cb,
 * after freeing the connection.  So cb never runs inside the handler or
 * inside any HTTP code that still uses the connection, and may do anything.
 *
 * cb runs exactly once.  When the client went away first (the request was
 * detached: r->conn is NULL), or the connection is closed before the
 * hand-over (an immediate stop, or earlier answers not written within
 * keepalive_timeout), cb gets fd -1, from a zero timer of its own or from
 * the close, never from cd_http_upgrade itself.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/conn.h"

/* The client went away before its connection could be handed over. */
typedef struct upgrade_gone {
    ev_timer t; /* first member */
    cd_upgrade_cb cb;
    void *arg;
} upgrade_gone;

static void upgrade_gone_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    upgrade_gone *g = (upgrade_gone *)t;
    cd_upgrade_cb cb = g->cb;
    void *arg = g->arg;
    free(g);
    cb(arg, -1, NULL, 0);
}

void cd_http_upgrade(cd_request *r, cd_upgrade_cb cb, void *arg)
{
    cd_http_ctx *ctx = r->ctx;
    cd_conn *c = r->conn;
    cd_http__finish(r, 101);
    cd_http__request_free(r);
    if (!c) {
        upgrade_gone *g = calloc(1, sizeof *g);
        if (!g) {
            cd_err("out of memory handing over an upgraded connection");
            return;
        }
        g->cb = cb;
        g->arg = arg;
        ev_timer_init(&g->t, upgrade_gone_cb, 0., 0.);
        ev_timer_start(ctx->loop, &g->t);
        return;
    }
    c->req = NULL;
    c->up_cb = cb;
    c->up_arg = arg;
    c->state = CS_UPGRADE;
    ev_io_stop(ctx->loop, &c->io);
    /* server.c's timer callback does the hand-over (or first writes what
     * is queued); cd_http__process re-arms it when it runs after this. */
    cd_http__timer(c, 0.);
}

void cd_http__handover(cd_conn *c)
{
    char head[CD_HTTP_IN_BUF];
    size_t n = c->in_len - c->in_off;
    if (n) /* c->in is NULL when nothing waits */
        memcpy(head, c->in + c->in_off, n);
    int fd = c->fd;
    cd_upgrade_cb cb = c->up_cb;
    void *arg = c->up_arg;
    c->fd = -1; /* now the callee's */
    c->up_cb = NULL;
    cd_http__close(c);
    cb(arg, fd, head, n);
}
