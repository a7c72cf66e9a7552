/*
 * server.h - the HTTP/1.1 server: a context and the connections it serves
 * (worker process, loop thread).
 *
 * The HTTP layer knows nothing of workers.  Its owner (worker/worker.c)
 * fills a cd_http_ctx: the loop, the limits (cd_http_init copies them from
 * the [cluster] config), the routes (http/router.h), and hooks through which
 * it hears of what happened: a request finished (to count it), a line for
 * the access log, a connection closed below max_connections (to accept
 * again).  The owner accepts sockets itself and hands each one over with
 * cd_http_conn_new; from then on the connection is the context's until it
 * closes, or until a handler takes it with cd_http_upgrade (request.h).
 *
 * The files of the layer: server.c the connection state machine, timeouts
 * and drain; parse.c the llhttp callbacks building a request; request.c the
 * request API of request.h; response.c the answers (status line, headers,
 * bodies, errors) and the finishing of a request (hooks); upgrade.c the
 * hand-over of a connection; router.c the routes; accesslog.c the access
 * log's line format and its writer thread; headers.c the headers a service
 * adds; stream.c streamed (chunked) answers; reqid.c the request id;
 * routeconf.c the per-route options (CORS, gzip, ETag) and cors.c,
 * gzip.c, etag.c which apply them; steer.c moves a connection to the
 * worker its request belongs to (sticky sessions).
 */
#ifndef CD_HTTP_SERVER_H
#define CD_HTTP_SERVER_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "http/accesslog.h"
#include "http/request.h"
#include "http/router.h"

typedef struct cd_conn cd_conn;

typedef struct cd_http_ctx {
    struct ev_loop *loop;

    /* Limits (cd_http_init sets them from the config). */
    size_t max_header_size, max_body_size;
    long long header_timeout_ms, body_timeout_ms, body_deadline_ms, keepalive_timeout_ms;
    int max_connections;

    /* The routes, longest first (cd_router_build); the owner's memory. */
    const cd_route *const *routes;
    size_t nroutes;

    /* Hooks (each may be NULL), called with owner. */
    void *owner;
    /* A request was answered (or refused, or upgraded: 101).  route is NULL
     * when none took it (no route, a wrong method, a malformed request);
     * seconds < 0 when it was refused before being dispatched. */
    void (*on_done)(void *owner, const cd_route *route, int status, double seconds);
    /* The same request, for the access log (set only when there is one). */
    void (*on_log)(void *owner, const cd_access_entry *e);
    /* A connection closed while fewer than max_connections are open. */
    void (*on_capacity)(void *owner);
    /* Sticky sessions (steer.c); set both or neither.  on_steer: a
     * request's headers are in, its body is not read (route: the route its
     * path matches); returns the id of the worker that must serve it, or 0
     * for here.  Never asked for the first request of a connection moved
     * here.  on_move: sends fd, and the bytes read from it (the head written
     * back, then what was not parsed yet), to worker `to`; returns 0 when
     * they went (the context then closes its copy of fd and forgets the
     * connection), or -errno to have the request served here. */
    uint32_t (*on_steer)(void *owner, const cd_route *route, const cd_request *r);
    int (*on_move)(void *owner, uint32_t to, int fd, const char *bytes, size_t len);

    /* State: the owner reads it, cd_http_begin_drain sets draining. */
    int draining;
    ev_tstamp drain_started;
    cd_conn *conns; /* all open connections (doubly linked) */
    int nconns;
    uint64_t in_flight; /* requests dispatched and not yet answered */
    uint64_t accepted;  /* connections taken by cd_http_conn_new and cd_http_conn_adopt */
    uint64_t moved;     /* connections moved to the worker their request belongs to */

    char date[40]; /* cached "Date: ..." value, refreshed once a second */
    ev_tstamp date_at;
    char reqid_prefix[40]; /* new request ids (reqid.c): "<pid>-<seconds>-" */
    unsigned long long reqid_sec;
    uint64_t reqid_seq; /* and a counter */
} cd_http_ctx;

/* Zeroes ctx and sets its loop and limits from conf's [cluster] keys. */
void cd_http_init(cd_http_ctx *ctx, struct ev_loop *loop, const cd_conf *conf);
/* Takes over an accepted, non-blocking socket (peer: its address or NULL). */
void cd_http_conn_new(cd_http_ctx *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen);
/* Takes over a connection moved here from another worker (on_move there)
 * with the len bytes already read from it, parsed before anything read
 * here; moved: its first request is served here whatever on_steer says.
 * Returns 0, or -EMSGSIZE when len is over the input buffer (16 KiB) or
 * -ENOMEM, fd closed then. */
int cd_http_conn_adopt(cd_http_ctx *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen, const char *bytes,
                       size_t len, int moved);
/* Graceful stop begins: every answer from now on says Connection: close. */
void cd_http_begin_drain(cd_http_ctx *ctx);
/* While draining (call it often): closes the connections idle for
 * idle_grace since the drain began or since their last answer; busy ones
 * answer their current request with Connection: close. */
void cd_http_drain(cd_http_ctx *ctx, ev_tstamp idle_grace);
/* Closes every connection at once (immediate stop). */
void cd_http_close_all(cd_http_ctx *ctx);

#endif
