/*
 * events.c - the events service: Socket.IO v5 over Engine.IO v4 (HTTP
 * long-polling and WebSocket), with rooms fanned out across workers
 * (worker; its config also in the master).  This file is the service's
 * vtable and the HTTP side: it routes requests, checks and accepts
 * upgrades, steers requests to the worker that owns their session, and
 * starts, stops and destroys the per-worker state.
 *
 * GET/POST {route}/?EIO=4&transport=polling[&sid=X] is polling.c's.
 * GET {route}/?EIO=4&transport=websocket is a WebSocket session from the
 * start (socket.io-client with transports: ["websocket"]); with &sid=X it
 * is the upgrade probe of polling session X.  Both take the connection
 * from the HTTP layer by callback (cd_http_upgrade, once the HTTP layer
 * has unwound, so nothing is freed under it); engineio.c then serves it
 * over http/websocket.c.  Refusals are engine.io's JSON errors (a
 * transport not in `transports`: code 0, "Transport unknown"); a browser
 * from an allowed Origin gets Access-Control-Allow-Origin (echoed, with
 * credentials) and its preflight answered here.  POST {route}/publish,
 * /join, /leave and /disconnect are the backend's (backend.c).
 *
 * Sticky sessions: a session lives in one worker, whose id its sid
 * carries (engineio.c).  The vtable's steer hook reads the sid of a
 * request before its body is read and names that worker when it is not
 * this one; the HTTP layer moves the connection there.  With adapter =
 * redis, init starts the Redis adapter (redis_adapter.c) and the service
 * reports itself degraded in /healthz/ready until it is subscribed.  A request that
 * arrives here for a sid not here gets 400 "Session ID unknown".  The
 * other files are listed in events.h.
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
#include "services/events/hooks.h"
#include "services/events/redis.h"

/* An accepted upgrade waiting for its connection (cd_http_upgrade calls
 * upgrade_cb once, after handle() has unwound).  On the state's pending
 * list until then, so destroy can detach it (st = NULL). */
typedef struct cd_events_upgrade {
    cd_events_state *st;
    char accept[29];
    char sid[CD_EVENTS_SID_LEN + 1]; /* the polling session it probes, or "" */
    char *headers;                   /* forward_headers kept for a new session (sio_api.c) */
    size_t headers_len;
    struct cd_events_upgrade *prev, *next;
} cd_events_upgrade;

/* Checks the upgrade request; answers it and returns -1 when refused. */
static int check_upgrade(cd_events_state *st, cd_request *req, char accept[29], int probe)
{
    const char *why = cd_ws_check_handshake(req, accept);
    if (why) {
        cd_request_respond_error(req, 400, why);
        return -1;
    }
    if (st->stopping) {
        cd_request_respond_error(req, 503, "shutting down");
        return -1;
    }
    if (!probe && st->nclients >= (size_t)st->conf->max_clients) {
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

/* The connection, handed over: starts the WebSocket session on it, or
 * attaches it to its polling session as the upgrade probe.  fd is -1 when
 * the client went away first.  An upgrade that arrives once the service
 * is stopping (or gone), or whose polling session has ended, is closed:
 * its request was already answered (101), so there is no error to write
 * any more; socket.io-client reconnects. */
static void upgrade_cb(void *arg, int fd, const char *head, size_t headlen)
{
    cd_events_upgrade *u = arg;
    cd_events_state *st = u->st;
    if (st)
        upgrade_unlink(st, u);
    if (fd < 0) {
        /* nothing to do */
    } else if (!st || st->stopping) {
        close(fd);
    } else if (u->sid[0]) {
        cd_events_client *c = cd_events__poll_find(st, u->sid);
        if (!c && cd_events__client_find(st, u->sid))
            cd_events__stray_fd(st, fd, u->accept); /* upgraded already */
        else if (!c)
            close(fd);
        else if (cd_events__probe_fd(c, fd, u->accept, head, headlen) < 0)
            cd_debug("events: client %s: upgrade probe refused", u->sid);
    } else {
        char *h = u->headers;
        u->headers = NULL;
        if (cd_events__adopt_fd_headers(st->svc, fd, u->accept, head, headlen, h, u->headers_len) < 0)
            /* The HTTP side is gone: no one to write a 503 to. */
            cd_info("events: out of memory starting a WebSocket session");
    }
    free(u->headers);
    free(u);
}

/* Accepts the upgrade (sid: of the polling session it probes, or NULL)
 * and takes the connection from HTTP: the session starts in upgrade_cb,
 * once HTTP has unwound (cd_http_upgrade). */
static void handle_upgrade(cd_events_state *st, cd_request *req, const char *sid)
{
    char accept[29];
    if (check_upgrade(st, req, accept, sid != NULL) < 0)
        return;
    cd_events_upgrade *u = calloc(1, sizeof *u);
    if (!u) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    u->st = st;
    memcpy(u->accept, accept, sizeof u->accept);
    if (sid)
        snprintf(u->sid, sizeof u->sid, "%s", sid);
    else
        u->headers = cd_events__headers_copy(st->conf, req, &u->headers_len);
    u->next = st->pending;
    if (st->pending)
        st->pending->prev = u;
    st->pending = u;
    cd_http_upgrade(req, upgrade_cb, u);
}

/* A browser from an allowed origin may read the answers (credentials
 * included, so the origin is echoed, never "*"); its preflight (OPTIONS)
 * is answered here.  Returns 1 when req was answered. */
static int cors(cd_request *req, const char *origin)
{
    if (!origin)
        return 0;
    cd_response_header(req, "Access-Control-Allow-Origin", origin);
    cd_response_header(req, "Access-Control-Allow-Credentials", "true");
    cd_response_header(req, "Vary", "Origin");
    if (cd_request_method(req) != CD_M_OPTIONS)
        return 0;
    cd_response_header(req, "Access-Control-Allow-Methods", "GET, POST");
    const char *h = cd_request_header(req, "Access-Control-Request-Headers");
    if (h && cd_response_header(req, "Access-Control-Allow-Headers", h) < 0)
        cd_debug("events: preflight asks for headers we cannot echo");
    cd_response_header(req, "Access-Control-Max-Age", "86400");
    cd_request_respond(req, 204, NULL, "", 0);
    return 1;
}

/* GET/POST {route}/?EIO=4&transport=...: Engine.IO's requests. */
static void handle_engineio(cd_events_state *st, cd_request *req)
{
    const char *origin = cd_request_header(req, "Origin");
    if (!cd_events__origin_allowed(st->conf, origin)) {
        cd_events__eio_error(req, 403, 4);
        return;
    }
    if (cors(req, origin))
        return;
    char v[32];
    if (cd_request_query_param(req, "EIO", v, sizeof v) < 0 || strcmp(v, "4") != 0) {
        cd_events__eio_error(req, 400, 5);
        return;
    }
    int t = 0;
    if (cd_request_query_param(req, "transport", v, sizeof v) >= 0)
        t = strcmp(v, "polling") == 0 ? CD_EVENTS_T_POLLING : strcmp(v, "websocket") == 0 ? CD_EVENTS_T_WEBSOCKET : 0;
    if (!(t & st->conf->transports)) {
        cd_events__eio_error(req, 400, 0);
        return;
    }
    if (t == CD_EVENTS_T_POLLING) {
        cd_events__poll_request(st, req);
        return;
    }
    char sid[CD_EVENTS_SID_LEN + 8];
    int n = cd_request_query_param(req, "sid", sid, sizeof sid);
    if (n == -1) {
        handle_upgrade(st, req, NULL);
    } else if (n < 0 || (!cd_events__poll_find(st, sid) && !cd_events__client_find(st, sid))) {
        cd_events__eio_error(req, 400, 1);
    } else {
        handle_upgrade(st, req, sid);
    }
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
    handle_engineio(st, req);
}

/* The worker that owns the session a request names (its sid), when it is
 * not this one; 0 to serve it here.  Asked before the body is read. */
static uint32_t events_steer(cd_service *svc, const cd_request *req)
{
    cd_events_state *st = svc->state;
    char sid[CD_EVENTS_SID_LEN + 1];
    if (!st || cd_request_query_param(req, "sid", sid, sizeof sid) != CD_EVENTS_SID_LEN)
        return 0;
    uint32_t w = cd_events__sid_worker(sid, CD_EVENTS_SID_LEN);
    return w == st->worker_id ? 0 : w;
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
    st->worker_id = cd_service_worker_id(svc);
    /* The JWT key, loaded as conf_check did (socketio.c checks CONNECTs). */
    cd_events_auth *auth = NULL;
    if (st->conf->auth == CD_EVENTS_AUTH_JWT && cd_events__auth_new(st->conf, &auth, err, errlen) < 0) {
        cd_events__rooms_free(st);
        free(st);
        return -1;
    }
    st->auth = auth;
    if (cd_events__stats_start(st) < 0) { /* the figures in /metrics (stats.c) */
        snprintf(err, errlen, "out of memory");
        if (auth)
            cd_events__auth_free(auth);
        cd_events__rooms_free(st);
        free(st);
        return -1;
    }
    svc->state = st;
    /* The handler API, the handler module's setup (sio_api.c), then the
     * handlers of the namespaces with HTTP hooks (hooks.c). */
    if (cd_events__sio_init(st, err, errlen) < 0 || cd_events__hooks_init(st, err, errlen) < 0) {
        cd_events__sio_destroy(st); /* none when its init failed */
        cd_events__stats_stop(st);
        if (auth)
            cd_events__auth_free(auth);
        cd_events__rooms_free(st);
        free(st);
        svc->state = NULL;
        return -1;
    }
    cd_service_subscribe(svc, cd_events__on_bus);
    /* adapter = redis: the other hosts, through Redis (redis_adapter.c);
     * it connects in the background. */
    if (cd_events__redis_start(st, err, errlen) < 0) {
        cd_events__hooks_free(st);
        cd_events__sio_destroy(st);
        cd_events__stats_stop(st);
        if (auth)
            cd_events__auth_free(auth);
        cd_events__rooms_free(st);
        free(st);
        svc->state = NULL;
        return -1;
    }
    return 0;
}

/* Readiness: the Redis adapter, when configured, must be subscribed. */
static const char *events_degraded(cd_service *svc)
{
    cd_events_state *st = svc->state;
    return st ? cd_events__redis_degraded(st) : NULL;
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

/* Graceful stop: every WebSocket client gets 1001 "going away" (best
 * effort: one non-blocking write), then its fd is closed, and every held
 * polling GET the close packet, so the draining worker is not held up by
 * clients that would stay forever.  socket.io-client reconnects by itself,
 * to another worker. */
static void events_stop(cd_service *svc)
{
    cd_events_state *st = svc->state;
    st->stopping = 1;
    cd_events__redis_stop(st); /* nothing more from other hosts */
    while (st->clients) {
        cd_events_client *c = st->clients;
        if (c->phase != CD_EV_CLOSING && c->ws)
            cd_ws_close(c->ws, CD_WS_GOING_AWAY, "server shutting down");
        if (!c->close_reason)
            c->close_reason = "server shutting down";
        cd_events__client_free(c);
    }
}

static void events_destroy(cd_service *svc)
{
    cd_events_state *st = svc->state;
    if (!st)
        return;
    detach_pending(st);
    while (st->clients) { /* the loop has stopped: held GETs are dropped */
        if (!st->clients->close_reason)
            st->clients->close_reason = "server shutting down";
        cd_events__client_drop(st->clients);
    }
    cd_events__redis_stop(st);
    cd_events__sio_destroy(st); /* on_disconnects, the module's teardown */
    cd_events__hooks_free(st);  /* hook calls in flight cancelled */
    cd_events__rooms_free(st); /* rooms went with their last members */
    cd_events__poll_index_free(st);
    if (st->auth)
        cd_events__auth_free(st->auth);
    cd_events__stats_stop(st);
    free(st);
    svc->state = NULL;
}

const cd_service_type cd_service_events = {
    .abi = CLUSTERD_ABI_VERSION,
    .name = "events",
    /* Every method reaches the service, so a handshake that is not a GET
     * gets engine.io's 400 "Bad handshake method" (not the HTTP layer's 405). */
    .methods = CD_M_GET | CD_M_POST | CD_M_OPTIONS | CD_M_PUT | CD_M_DELETE | CD_M_PATCH,
    .conf_new = cd_events__conf_new,
    .keys = cd_events__keys,
    .conf_check = cd_events__conf_check,
    .conf_free = cd_events__conf_free,
    .init = events_init,
    .handle = events_handle,
    .stop = events_stop,
    .destroy = events_destroy,
    .uses_bus = 1,
    .steer = events_steer,
    .degraded = events_degraded,
};
