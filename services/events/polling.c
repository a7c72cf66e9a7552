/*
 * polling.c - the Engine.IO v4 HTTP long-polling transport (worker, loop
 * thread): opening a session, the long-poll GET, the POST of packets, the
 * session index, and engine.io's JSON errors.
 *
 * GET {route}/?EIO=4&transport=polling opens a session: engineio.c makes
 * the client, and this GET takes its open packet.  Then the client keeps
 * one GET outstanding, "held" here until something is queued for it (a
 * ping counts, so a GET waits at most ping_interval), and POSTs what it
 * sends.  Both bodies are payloads (eio_payload.c).  The queue is kept
 * encoded, so answering a GET is one cd_request_respond of the buffer;
 * it is bounded by max_send_queue like a WebSocket's (over it the client
 * is closed, "send queue full").
 *
 * As engine.io does: a second GET while one is held gets 400 and the
 * session closes; a body over max_message_size gets 413 and the session
 * closes; a body that does not decode gets 400 and the session closes; a
 * request for an unknown sid gets 400 {"code":1,"message":"Session ID
 * unknown"}.  POSTs are answered "ok" (text/html, as engine.io).
 *
 * Closing, as engine.io.  When the server ends the session (a server-side
 * disconnect, stop) a held GET gets what is queued and the close packet
 * "1"; without one, the close waits for the next GET, up to engineio.c's
 * grace (engine.io's closeTimeout), so a DISCONNECT queued just before
 * still reaches the client.  On a ping timeout a held GET gets "1" and the
 * sid is forgotten at once (the next request: 400).  On the client's own
 * close packet its GET gets "6" (noop), held or next, and the sid goes.  A held GET whose client goes away (cd_request_on_gone) ends the
 * session at once, as engine.io does ("poll connection closed
 * prematurely"): a browser tab closed frees its session now, not a ping
 * timeout later.
 *
 * The index maps sids to this worker's polling sessions (SipHash under
 * the worker's random key, chained, doubling).  A session leaves it when
 * it upgrades to WebSocket or is freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/events.h"

struct cd_events_poll {
    cd_events_client *c;
    cd_eio_buf q;       /* the queue, encoded as a payload */
    cd_request *held;   /* the outstanding GET, or NULL */
    int probed;         /* "2probe" seen on the upgrade probe */
    struct cd_events_poll *hnext;
};

typedef struct poll_index {
    struct cd_events_poll **b;
    size_t nb, n;
} poll_index;

/* ---- engine.io's errors ---- */

void cd_events__eio_error(cd_request *req, int status, int code)
{
    static const char *const msgs[] = {"Transport unknown", "Session ID unknown", "Bad handshake method",
                                       "Bad request", "Forbidden", "Unsupported protocol version"};
    char body[96];
    int n = snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}", code,
                     code >= 0 && code <= 5 ? msgs[code] : "Bad request");
    cd_request_respond(req, status, "application/json", body, (size_t)n);
}

/* ---- the index ---- */

static size_t idx_slot(const cd_events_state *st, const poll_index *ix, const char *sid)
{
    return (size_t)(cd_events__siphash(st->hash_key, sid, strlen(sid)) & (ix->nb - 1));
}

static int idx_grow(cd_events_state *st, poll_index *ix)
{
    size_t nb = ix->nb ? ix->nb * 2 : 64;
    struct cd_events_poll **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    poll_index nix = {b, nb, ix->n};
    for (size_t i = 0; i < ix->nb; i++)
        for (struct cd_events_poll *p = ix->b[i], *next; p; p = next) {
            next = p->hnext;
            size_t s = idx_slot(st, &nix, p->c->sid);
            p->hnext = b[s];
            b[s] = p;
        }
    free(ix->b);
    *ix = nix;
    return 0;
}

static int idx_add(cd_events_state *st, struct cd_events_poll *p)
{
    poll_index *ix = st->poll_index;
    if (!ix && !(ix = st->poll_index = calloc(1, sizeof *ix)))
        return -ENOMEM;
    if (ix->n >= ix->nb && idx_grow(st, ix) < 0 && ix->nb == 0)
        return -ENOMEM; /* a full table that cannot grow still takes it */
    size_t s = idx_slot(st, ix, p->c->sid);
    p->hnext = ix->b[s];
    ix->b[s] = p;
    ix->n++;
    return 0;
}

static void idx_remove(cd_events_state *st, struct cd_events_poll *p)
{
    poll_index *ix = st->poll_index;
    if (!ix || !ix->nb)
        return;
    for (struct cd_events_poll **pp = &ix->b[idx_slot(st, ix, p->c->sid)]; *pp; pp = &(*pp)->hnext)
        if (*pp == p) {
            *pp = p->hnext;
            ix->n--;
            return;
        }
}

cd_events_client *cd_events__poll_find(cd_events_state *st, const char *sid)
{
    poll_index *ix = st->poll_index;
    if (!ix || !ix->nb)
        return NULL;
    for (struct cd_events_poll *p = ix->b[idx_slot(st, ix, sid)]; p; p = p->hnext)
        if (strcmp(p->c->sid, sid) == 0)
            return p->c;
    return NULL;
}

void cd_events__poll_index_free(cd_events_state *st)
{
    poll_index *ix = st->poll_index;
    if (ix)
        free(ix->b);
    free(ix);
    st->poll_index = NULL;
}

/* ---- the queue and the held GET ---- */

/* Answers req with the queue, which empties. */
static void answer(struct cd_events_poll *p, cd_request *req)
{
    cd_request_respond(req, 200, "text/plain; charset=UTF-8", p->q.p, p->q.len);
    p->q.len = 0;
    if (p->q.cap > 65536) /* do not keep a big buffer on an idle session */
        cd_events__payload_reset(&p->q);
}

/* Answers the held GET (if any) with the queue and then `last` (a packet
 * that goes whatever max_send_queue says: "1", "6"). */
static int answer_held(struct cd_events_poll *p, const char *last)
{
    cd_request *req = p->held;
    if (!req)
        return 0;
    p->held = NULL;
    if (last && cd_events__payload_put(&p->q, 0, last, strlen(last)) < 0) {
        cd_events__payload_reset(&p->q);
        cd_request_respond(req, 200, "text/plain; charset=UTF-8", last, strlen(last));
        return 1;
    }
    answer(p, req);
    return 1;
}

int cd_events__poll_put(cd_events_client *c, int binary, const char *msg, size_t len, size_t *queued)
{
    struct cd_events_poll *p = c->poll;
    *queued = p->q.len;
    if (p->q.len + cd_events__payload_size(binary, len) > (size_t)c->st->conf->max_send_queue ||
        cd_events__payload_put(&p->q, binary, msg, len) < 0)
        return -ENOBUFS;
    return 0;
}

void cd_events__poll_flush(cd_events_client *c)
{
    struct cd_events_poll *p = c->poll;
    if (p->held && p->q.len)
        answer_held(p, NULL);
}

void cd_events__poll_drop_queue(cd_events_client *c)
{
    cd_events__payload_reset(&c->poll->q);
}

int cd_events__poll_closing(cd_events_client *c)
{
    return answer_held(c->poll, "1");
}

int cd_events__poll_noop(cd_events_client *c)
{
    return answer_held(c->poll, "6");
}

void cd_events__poll_probed(cd_events_client *c)
{
    c->poll->probed = 1;
    answer_held(c->poll, "6");
}

int cd_events__poll_was_probed(const cd_events_client *c)
{
    return c->poll && c->poll->probed;
}

void cd_events__poll_upgrade(cd_events_client *c, cd_eio_buf *q)
{
    struct cd_events_poll *p = c->poll;
    *q = p->q;
    memset(&p->q, 0, sizeof p->q);
    answer_held(p, "6");
    cd_events__poll_free(c, 1);
}

void cd_events__poll_free(cd_events_client *c, int answer_it)
{
    struct cd_events_poll *p = c->poll;
    if (!p)
        return;
    if (p->held && answer_it) {
        answer_held(p, "1");
    } else if (p->held) {
        cd_request_drop(p->held);
        p->held = NULL;
    }
    idx_remove(c->st, p);
    cd_events__payload_reset(&p->q);
    free(p);
    c->poll = NULL;
}

/* ---- requests ---- */

/* GET without a sid: a new session, answered with its open packet. */
static void poll_open(cd_events_state *st, cd_request *req)
{
    if (cd_request_method(req) != CD_M_GET) {
        cd_events__eio_error(req, 400, 2);
        return;
    }
    if (st->stopping) {
        cd_request_respond_error(req, 503, "shutting down");
        return;
    }
    if (st->nclients >= (size_t)st->conf->max_clients) {
        cd_request_respond_error(req, 503, "too many clients on this worker (max_clients)");
        return;
    }
    cd_events_client *c = cd_events__client_new(st, CD_EIO_POLLING);
    struct cd_events_poll *p = c ? calloc(1, sizeof *p) : NULL;
    if (!p || (p->c = c, idx_add(st, p)) < 0) {
        free(p);
        free(c);
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    c->poll = p;
    c->headers = cd_events__headers_copy(st->conf, req, &c->headers_len);
    cd_events__client_start(c); /* queues the open packet */
    answer(p, req);
}

/* Frees a closed session soon (from engineio.c's heartbeat timer, which
 * frees closing clients), now that its last GET has the close packet. */
static void free_soon(cd_events_client *c)
{
    struct ev_loop *loop = c->st->svc->loop;
    ev_timer_stop(loop, &c->hb);
    ev_timer_set(&c->hb, 0., 0.);
    ev_timer_start(loop, &c->hb);
}

/* The held GET's client went away: the session ends (engine.io does the
 * same), the GET answered into the void. */
static void poll_gone(void *arg)
{
    cd_events_client *c = arg;
    struct cd_events_poll *p = c->poll;
    if (!p || !p->held)
        return;
    cd_debug("events: client %s: poll connection closed prematurely", c->sid);
    if (c->phase == CD_EV_CLOSING) {
        answer_held(p, "1");
        free_soon(c);
    } else {
        cd_events__fail(c, CD_WS_GOING_AWAY, "poll connection closed");
    }
}

static void poll_get(cd_events_client *c, cd_request *req)
{
    struct cd_events_poll *p = c->poll;
    if (p->held) {
        cd_debug("events: client %s: a second GET while one is held; closing the session", c->sid);
        cd_events__eio_error(req, 400, 3);
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "overlapping polls");
        return;
    }
    p->held = req;
    cd_request_on_gone(req, poll_gone, c);
    if (c->phase == CD_EV_CLOSING) {
        /* The client's own close came before this GET: a noop, as if the
         * GET had been held when the close came; else the close packet. */
        answer_held(p, c->forget ? "6" : "1");
        free_soon(c);
    } else if (p->q.len) {
        answer_held(p, NULL);
    } else if (p->probed) {
        answer_held(p, "6"); /* the client is pausing polling for the upgrade */
    }
}

static void poll_post(cd_events_client *c, cd_request *req)
{
    size_t len;
    const char *body = cd_request_body(req, &len);
    if (c->phase == CD_EV_CLOSING) {
        cd_request_respond(req, 200, "text/html", "ok", 2);
        return;
    }
    cd_eio_payload pl;
    int rc = cd_events__payload_decode(body, len, (size_t)c->st->conf->max_message_size, &pl);
    if (rc == -EMSGSIZE) {
        cd_info("events: client %s: POST of %zu bytes over max_message_size; closing the session", c->sid, len);
        cd_events__eio_error(req, 413, 3);
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "payload too large");
        return;
    }
    if (rc < 0) {
        cd_debug("events: client %s: POST body is not an Engine.IO payload; closing the session", c->sid);
        if (rc == -ENOMEM)
            cd_request_respond_error(req, 503, "out of memory");
        else
            cd_events__eio_error(req, 400, 3);
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "parse error");
        return;
    }
    for (size_t i = 0; i < pl.n && c->phase == CD_EV_OPEN; i++)
        cd_events__on_packet(c, pl.pkts[i].binary, pl.pkts[i].data, pl.pkts[i].len);
    cd_events__payload_free(&pl);
    cd_request_respond(req, 200, "text/html", "ok", 2);
}

void cd_events__poll_request(cd_events_state *st, cd_request *req)
{
    char sid[CD_EVENTS_SID_LEN + 8];
    int n = cd_request_query_param(req, "sid", sid, sizeof sid);
    if (n == -1) {
        poll_open(st, req);
        return;
    }
    cd_events_client *c = n > 0 ? cd_events__poll_find(st, sid) : NULL;
    if (!c || !c->poll) {
        cd_debug("events: polling request for an unknown session");
        cd_events__eio_error(req, 400, 1);
        return;
    }
    unsigned m = cd_request_method(req);
    if (m == CD_M_GET)
        poll_get(c, req);
    else if (m == CD_M_POST)
        poll_post(c, req);
    else
        cd_events__eio_error(req, 400, 3);
}
