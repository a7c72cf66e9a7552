/*
 * events.c - the events service: Socket.IO v5 over the Engine.IO v4
 * WebSocket transport, with rooms fanned out across workers (worker; its
 * config also in the master).  This file is the service's vtable and the
 * HTTP side: it routes requests, checks and accepts upgrades, and starts,
 * stops and destroys the per-worker state.
 *
 * A client (socket.io-client 4.x with transports: ["websocket"]) connects
 * to GET {route}/?EIO=4&transport=websocket.  handle() checks the upgrade
 * (Engine.IO version, transport, WebSocket headers, the Origin allowlist,
 * max_clients) and takes the connection from the HTTP layer by callback
 * (cd_http_upgrade, once the HTTP layer has unwound, so nothing is freed
 * under it); engineio.c then serves it over http/websocket.c.  POST {route}/publish lets a
 * backend emit into a room (broadcast.c).  The other files are listed in
 * events.h.
 *
 * Not supported: HTTP long-polling (400), and upgrading a polling session.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/events.h"

/* An accepted upgrade waiting for its connection (cd_http_upgrade calls
 * upgrade_cb once, after handle() has unwound).  On the state's pending
 * list until then, so destroy can detach it (st = NULL). */
typedef struct cd_events_upgrade {
    cd_events_state *st;
    char accept[29];
    struct cd_events_upgrade *prev, *next;
} cd_events_upgrade;

/* Checks the Engine.IO side of an upgrade request.  Returns the reason to
 * refuse it with (400), or NULL. */
static const char *check_engineio(cd_request *req)
{
    char v[32];
    int n = cd_request_query_param(req, "EIO", v, sizeof v);
    if (n < 0 || strcmp(v, "4") != 0)
        return "unsupported Engine.IO protocol version: EIO=4 expected";
    n = cd_request_query_param(req, "transport", v, sizeof v);
    if (n >= 0 && strcmp(v, "polling") == 0)
        return "HTTP long-polling is not supported: connect with transports: [\"websocket\"]";
    if (n < 0 || strcmp(v, "websocket") != 0)
        return "unknown transport: transport=websocket expected";
    if (cd_request_query_param(req, "sid", v, sizeof v) != -1)
        return "upgrading a polling session is not supported";
    return NULL;
}

/* Checks the upgrade request; answers it and returns -1 when refused. */
static int check_upgrade(cd_events_state *st, cd_request *req, char accept[29])
{
    const char *why = check_engineio(req);
    if (!why)
        why = cd_ws_check_handshake(req, accept);
    if (why) {
        cd_request_respond_error(req, 400, why);
        return -1;
    }
    if (!cd_events__origin_allowed(st->conf, cd_request_header(req, "Origin"))) {
        cd_request_respond_error(req, 403, "origin not allowed");
        return -1;
    }
    if (st->stopping) {
        cd_request_respond_error(req, 503, "shutting down");
        return -1;
    }
    if (st->nclients >= (size_t)st->conf->max_clients) {
        cd_request_respond_error(req, 503, "too many clients on this worker (max_clients)");
        return -1;
    }
    return 0;
}

static void upgrade_unlink(cd_events_state *st, cd_events_upgrade *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        st->pending = u->next;
    if (u->next)
        u->next->prev = u->prev;
}

/* The connection, handed over: starts the WebSocket session on it.  fd is
 * -1 when the client went away first.  An upgrade that arrives once the
 * service is stopping (or gone) is closed: its request was already
 * answered (101), so there is no 503 to write any more; socket.io-client
 * reconnects, to another worker. */
static void upgrade_cb(void *arg, int fd, const char *head, size_t headlen)
{
    cd_events_upgrade *u = arg;
    cd_events_state *st = u->st;
    if (st)
        upgrade_unlink(st, u);
    if (fd >= 0 && (!st || st->stopping)) {
        close(fd);
    } else if (fd >= 0 && cd_events__adopt_fd(st->svc, fd, u->accept, head, headlen) < 0) {
        /* The HTTP side is gone: no one to write a 503 to. */
        cd_info("events: out of memory starting a WebSocket session");
    }
    free(u);
}

/* Accepts the upgrade and takes the connection from HTTP: the session
 * starts in upgrade_cb, once HTTP has unwound (cd_http_upgrade). */
static void handle_upgrade(cd_events_state *st, cd_request *req)
{
    char accept[29];
    if (check_upgrade(st, req, accept) < 0)
        return;
    cd_events_upgrade *u = calloc(1, sizeof *u);
    if (!u) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    u->st = st;
    memcpy(u->accept, accept, sizeof u->accept);
    u->next = st->pending;
    if (st->pending)
        st->pending->prev = u;
    st->pending = u;
    cd_http_upgrade(req, upgrade_cb, u);
}

static void events_handle(cd_service *svc, cd_request *req)
{
    cd_events_state *st = svc->state;
    const char *sub = cd_request_subpath(req);
    static const char *const backend[] = {"publish", "join", "leave", "disconnect"};
    for (size_t i = 0; i < sizeof backend / sizeof backend[0]; i++) {
        if (sub[0] == '/' && strcmp(sub + 1, backend[i]) == 0) {
            if (cd_request_method(req) != CD_M_POST)
                cd_request_respond_error(req, 405, "backend endpoints take POST");
            else
                cd_events__backend(st, req, backend[i]);
            return;
        }
    }
    if (sub[0] != '\0' && strcmp(sub, "/") != 0) {
        cd_request_respond_error(req, 404, "no such resource");
        return;
    }
    handle_upgrade(st, req);
}

/* ---- lifetime ---- */

static int events_init(cd_service *svc, char *err, size_t errlen)
{
    cd_events_state *st = calloc(1, sizeof *st);
    if (!st || cd_events__rooms_init(st) < 0) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* getrandom() blocks only until the kernel's pool is first seeded,
     * which has happened long before a worker starts. */
    if (getrandom(st->hash_key, sizeof st->hash_key, 0) != (ssize_t)sizeof st->hash_key) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        cd_events__rooms_free(st);
        free(st);
        return -1;
    }
    st->svc = svc;
    st->conf = svc->conf;
    /* The JWT key, loaded as conf_check did (socketio.c checks CONNECTs). */
    cd_events_auth *auth = NULL;
    if (st->conf->auth == CD_EVENTS_AUTH_JWT && cd_events__auth_new(st->conf, &auth, err, errlen) < 0) {
        cd_events__rooms_free(st);
        free(st);
        return -1;
    }
    st->auth = auth;
    svc->state = st;
    cd_service_subscribe(svc, cd_events__on_bus);
    return 0;
}

/* Upgrades whose connection has not arrived yet are detached: upgrade_cb
 * then closes it. */
static void detach_pending(cd_events_state *st)
{
    while (st->pending) {
        cd_events_upgrade *u = st->pending;
        upgrade_unlink(st, u);
        u->st = NULL;
    }
}

/* Graceful stop: every client gets 1001 "going away" (best effort: one
 * non-blocking write), then its fd is closed, so the draining worker is not
 * held up by clients that would stay forever.  socket.io-client reconnects
 * by itself, to another worker. */
static void events_stop(cd_service *svc)
{
    cd_events_state *st = svc->state;
    st->stopping = 1;
    while (st->clients) {
        cd_events_client *c = st->clients;
        if (c->phase != CD_EV_CLOSING && c->ws)
            cd_ws_close(c->ws, CD_WS_GOING_AWAY, "server shutting down");
        cd_events__client_free(c);
    }
}

static void events_destroy(cd_service *svc)
{
    cd_events_state *st = svc->state;
    if (!st)
        return;
    detach_pending(st);
    while (st->clients)
        cd_events__client_free(st->clients);
    cd_events__rooms_free(st); /* rooms went with their last members */
    if (st->auth)
        cd_events__auth_free(st->auth);
    free(st);
    svc->state = NULL;
}

const cd_service_type cd_service_events = {
    .abi = CLUSTERD_ABI_VERSION,
    .name = "events",
    .methods = CD_M_GET | CD_M_POST,
    .conf_new = cd_events__conf_new,
    .keys = cd_events__keys,
    .conf_check = cd_events__conf_check,
    .conf_free = cd_events__conf_free,
    .init = events_init,
    .handle = events_handle,
    .stop = events_stop,
    .destroy = events_destroy,
    .uses_bus = 1,
};
