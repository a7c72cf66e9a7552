/*
 * events.c - the events service: Socket.IO v5 over the Engine.IO v4
 * WebSocket transport, with rooms fanned out across workers (worker).
 *
 * A client (socket.io-client 4.x with transports: ["websocket"]) connects to
 * GET {route}/?EIO=4&transport=websocket.  handle() checks the upgrade
 * (Engine.IO version, transport, WebSocket headers, the Origin allowlist),
 * takes the fd from the HTTP layer with cd_request_upgrade() and writes the
 * 101 itself.  From then on the connection belongs to this file: wslay does
 * the RFC 6455 framing (masking rules, fragmentation, ping/pong, close
 * handshake, maximum message size) over the non-blocking fd, driven by two
 * ev_io watchers that follow wslay_event_want_read/want_write.
 *
 * Rooms.  A client joins and leaves rooms with the events `join` and
 * `leave` (argument: the room name, at most CD_EVENTS_ROOM_MAX bytes;
 * acknowledged, or refused with an error ack, when the client asks for an
 * ack).  The room table hashes names with SipHash under a per-worker
 * random key (events_hash.c), so clients cannot make names collide.  Any other event a client emits goes to every other member of
 * every room it is in, each member once, on whichever worker it is: the
 * natural reading of `socket.rooms.forEach(r => socket.to(r).emit(...))`,
 * without server code.  POST {route}/publish with {"room", "event", "args"}
 * lets a backend emit into a room; the body must be valid UTF-8 JSON
 * (cd_events__publish_parse), since it goes to clients in text frames.  `whoami` (with an ack) answers
 * {"sid", "worker", "rooms"}: which worker slot serves the client.  Acks of
 * the service's events carry one object with "ok" (and "error" when false).
 * Both kinds of broadcast travel as one bus message
 * (cd_service_publish) that reaches this service on every worker, the
 * sender's included; each worker then delivers to its local members.  So
 * delivery order is the bus order, the same on every worker, and a worker
 * needs no knowledge of where other clients live.  Delivery is best effort,
 * as with Socket.IO's adapters: a worker that falls a whole bus buffer
 * behind loses broadcasts (see ipc/bus.h).
 *
 * Backpressure.  Everything sent to a client is queued in its wslay context:
 * our messages, and the pongs and close frames wslay queues by itself while
 * reading.  All of it counts against max_send_queue, with a per-message
 * allowance for wslay's bookkeeping (conn_queued), so a client that pings
 * and never reads is bounded like one that reads slowly.  Past the limit
 * the client is closed (1008 "send queue full"), stops being read, and is
 * dropped after a short deadline whether or not it reads the close frame:
 * one slow or hostile reader costs at most max_send_queue plus one
 * message, for at most CLOSE_GRACE, and never delays the others.  (The
 * close frame rather than a bare drop: a client that does read learns
 * why; one that does not costs nothing more.)
 *
 * Lifetime.  A connection is freed only from its own watchers' callbacks
 * (or stop/destroy), never from inside a wslay callback or while a
 * broadcast iterates the rooms: code that wants it gone marks it and lets
 * conn_update() finish the job.  After the close handshake the server shuts
 * down its write side and drains the socket until EOF (bounded by
 * CLOSE_GRACE) so the peer reads the close frame instead of a reset.
 *
 * Not supported: binary attachments (Socket.IO packets 5 and 6, and binary
 * WebSocket frames: closed with 1003), HTTP long-polling (400), namespaces
 * other than "/" (CONNECT_ERROR "Invalid namespace").
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "core/util.h"
#include "services/events/events.h"
#include "services/service.h"

#define CLOSE_GRACE 2.0            /* seconds a closing client gets to read our close frame */
#define READ_BUDGET (256 * 1024)   /* bytes read from one client per loop iteration */
#define UPGRADE_BUF 16384          /* bytes the client may have sent after its upgrade request */
#define SID_LEN 20
#define CONNECT_TIMEOUT 45.0       /* seconds to send Socket.IO CONNECT (Socket.IO's connectTimeout) */
#define BUS_MSG_MAX (1 << 20)      /* ipc/bus.c's largest message */
#define QUEUED_MSG_COST 128        /* bytes of bookkeeping per message wslay queues (see conn_queued) */

typedef struct events_state events_state;
typedef struct ws_conn ws_conn;
typedef struct room room;

/* One client's membership of one room: on the room's list, and in the
 * client's array, so both "who is in r" and "leave all" are cheap. */
typedef struct member {
    ws_conn *conn;
    room *room;
    struct member *prev, *next;
} member;

struct room {
    room *hnext; /* hash chain */
    member *members;
    size_t len;
    char name[]; /* NUL-terminated, len bytes */
};

enum conn_phase {
    PH_OPEN,    /* Engine.IO open; Socket.IO "/" not (or no longer) connected */
    PH_SOCKET,  /* Socket.IO "/" connected */
    PH_CLOSING, /* our close frame is queued; waiting for it to go out */
    PH_LINGER,  /* write side shut; draining until EOF or the deadline */
};

struct ws_conn {
    ev_io rio, wio;
    ev_timer hb; /* heartbeat; once closing, the close deadline */
    events_state *st;
    ws_conn *prev, *next;
    int fd;
    enum conn_phase phase;
    int dead;          /* free at the next conn_update */
    int peer_gone;     /* recv saw EOF or an error: nothing more to say */
    int awaiting_pong; /* "2" sent, "3" not back yet */
    size_t read_round; /* bytes read in this loop iteration (fairness) */
    ev_tstamp opened;  /* when the WebSocket session began */
    wslay_event_context_ptr ws;
    char hs[192];        /* the 101 response, written before any frame */
    size_t hs_len, hs_off;
    char *pre;           /* bytes the HTTP layer read past the request */
    size_t pre_len, pre_off;
    uint64_t mark;       /* last broadcast delivered: one copy per broadcast */
    member **rooms;      /* max_rooms slots */
    size_t nrooms;
    char sid[SID_LEN + 1];
};

/* An accepted upgrade waiting for its turn (see handle_upgrade). */
typedef struct pending_upgrade {
    ev_timer t;
    events_state *st;
    cd_request *req;
    char accept[29];
    struct pending_upgrade *prev, *next;
} pending_upgrade;

struct events_state {
    cd_service *svc;
    const cd_events_conf *conf;
    pending_upgrade *pending;
    ws_conn *conns;
    size_t nconns;
    room **buckets;
    size_t nbuckets, nrooms;
    uint64_t mark;
    int stopping;
    unsigned char hash_key[16]; /* the room table's SipHash key, random per worker */
};

static void conn_update(ws_conn *c);
static void conn_fail(ws_conn *c, uint16_t code, const char *reason);

/* ---- config ---- */

static void *events_conf_new(void)
{
    cd_events_conf *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    /* Socket.IO's own defaults, so clients behave as they do with Node. */
    c->ping_interval_ms = 25000;
    c->ping_timeout_ms = 20000;
    c->max_message_size = 1000000;
    c->max_send_queue = 4 << 20;
    c->max_clients = 10000;
    c->max_rooms = 64;
    return c;
}

static void free_origins(cd_events_conf *c)
{
    for (size_t i = 0; i < c->norigins; i++)
        free(c->origins[i]);
    free(c->origins);
    c->origins = NULL;
    c->norigins = 0;
}

/* Origins: "https://a.example, http://localhost:3000"; "*" or empty: any. */
static int set_origins(cd_events_conf *c, const char *value)
{
    char *copy = strdup(value), *save = NULL;
    int rc = -1;
    if (!copy)
        return -1;
    free_origins(c);
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        if (strcmp(t, "*") == 0) {
            free_origins(c);
            break;
        }
        char **n = realloc(c->origins, (c->norigins + 1) * sizeof *n);
        if (!n)
            goto out;
        c->origins = n;
        if (!(c->origins[c->norigins] = strdup(t)))
            goto out;
        c->norigins++;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

static int set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

static int events_conf_set(void *conf, const char *key, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    long long v;
    if (strcmp(key, "ping_interval") == 0 || strcmp(key, "ping_timeout") == 0) {
        if (cd_parse_duration_ms(value, &v) < 0 || v < 100 || v > 3600000)
            return set_err(err, errlen, "expected a duration between 100ms and 1h, e.g. 25s");
        *(key[5] == 'i' ? &c->ping_interval_ms : &c->ping_timeout_ms) = v;
        return 0;
    }
    if (strcmp(key, "max_message_size") == 0) {
        if (cd_parse_size(value, &v) < 0 || v < 1024 || v > 1000000)
            return set_err(err, errlen, "expected a size between 1k and 1000000");
        c->max_message_size = v;
        return 0;
    }
    if (strcmp(key, "max_send_queue") == 0) {
        if (cd_parse_size(value, &v) < 0 || v < 1024 || v > (1LL << 30))
            return set_err(err, errlen, "expected a size between 1k and 1g");
        c->max_send_queue = v;
        return 0;
    }
    if (strcmp(key, "max_clients") == 0) {
        if (cd_parse_int(value, 1, 1000000, &v) < 0)
            return set_err(err, errlen, "expected an integer between 1 and 1000000");
        c->max_clients = v;
        return 0;
    }
    if (strcmp(key, "max_rooms") == 0) {
        if (cd_parse_int(value, 1, 1024, &v) < 0)
            return set_err(err, errlen, "expected an integer between 1 and 1024");
        c->max_rooms = v;
        return 0;
    }
    if (strcmp(key, "origins") == 0) {
        if (set_origins(c, value) < 0)
            return set_err(err, errlen, "out of memory");
        return 0;
    }
    return -2;
}

static int events_conf_check(void *conf, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    if (c->max_send_queue < c->max_message_size)
        return set_err(err, errlen, "max_send_queue must be at least max_message_size");
    /* A broadcast must fit in one bus message (1m) with its room list. */
    if (c->max_message_size + c->max_rooms * (2 + CD_EVENTS_ROOM_MAX) + 64 > BUS_MSG_MAX)
        return set_err(err, errlen, "max_message_size plus max_rooms room names must fit in a 1m bus "
                                    "message: lower one of them");
    return 0;
}

static void events_conf_free(void *conf)
{
    cd_events_conf *c = conf;
    free_origins(c);
    free(c);
}

/* ---- rooms ---- */

/* Keyed (SipHash, events_hash.c), so clients cannot pick names that
 * collide: the key is this worker's secret, drawn at init. */
static uint64_t hash_name(const events_state *st, const char *s, size_t len)
{
    return cd_events__siphash(st->hash_key, s, len);
}

static room *room_find(events_state *st, const char *name, size_t len)
{
    for (room *r = st->buckets[hash_name(st, name, len) & (st->nbuckets - 1)]; r; r = r->hnext)
        if (r->len == len && memcmp(r->name, name, len) == 0)
            return r;
    return NULL;
}

/* Doubles the table when rooms outnumber buckets; on ENOMEM it keeps the
 * old one, which still works, only with longer chains. */
static void rooms_grow(events_state *st)
{
    size_t n = st->nbuckets * 2;
    room **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < st->nbuckets; i++) {
        room *r = st->buckets[i];
        while (r) {
            room *next = r->hnext;
            size_t k = hash_name(st, r->name, r->len) & (n - 1);
            r->hnext = b[k];
            b[k] = r;
            r = next;
        }
    }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = n;
}

/* Returns 1 (joined), 0 (already a member), -ENOSPC (max_rooms), -ENOMEM. */
static int room_join(ws_conn *c, const char *name, size_t len)
{
    events_state *st = c->st;
    for (size_t i = 0; i < c->nrooms; i++)
        if (c->rooms[i]->room->len == len && memcmp(c->rooms[i]->room->name, name, len) == 0)
            return 0;
    if (c->nrooms >= (size_t)st->conf->max_rooms)
        return -ENOSPC;
    room *r = room_find(st, name, len);
    member *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    if (!r) {
        if (!(r = calloc(1, sizeof *r + len + 1))) {
            free(m);
            return -ENOMEM;
        }
        memcpy(r->name, name, len);
        r->len = len;
        size_t k = hash_name(st, name, len) & (st->nbuckets - 1);
        r->hnext = st->buckets[k];
        st->buckets[k] = r;
        if (++st->nrooms > st->nbuckets)
            rooms_grow(st);
    }
    m->conn = c;
    m->room = r;
    m->next = r->members;
    if (r->members)
        r->members->prev = m;
    r->members = m;
    c->rooms[c->nrooms++] = m;
    return 1;
}

static void member_drop(events_state *st, member *m)
{
    room *r = m->room;
    if (m->prev)
        m->prev->next = m->next;
    else
        r->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    free(m);
    if (r->members)
        return;
    room **pp = &st->buckets[hash_name(st, r->name, r->len) & (st->nbuckets - 1)];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    st->nrooms--;
    free(r);
}

/* Returns 1 (left) or 0 (was not a member). */
static int room_leave(ws_conn *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->nrooms; i++) {
        if (c->rooms[i]->room->len == len && memcmp(c->rooms[i]->room->name, name, len) == 0) {
            member_drop(c->st, c->rooms[i]);
            c->rooms[i] = c->rooms[--c->nrooms];
            return 1;
        }
    }
    return 0;
}

static void room_leave_all(ws_conn *c)
{
    while (c->nrooms)
        member_drop(c->st, c->rooms[--c->nrooms]);
}

/* ---- connections: I/O ---- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    ws_conn *c = user;
    if (c->pre_off < c->pre_len) {
        size_t n = c->pre_len - c->pre_off < len ? c->pre_len - c->pre_off : len;
        memcpy(buf, c->pre + c->pre_off, n);
        c->pre_off += n;
        return (ssize_t)n;
    }
    /* Yield to the other clients now and then: the fd stays readable and
     * the (level-triggered) watcher brings us back next iteration. */
    if (c->read_round >= READ_BUDGET) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0) {
        c->read_round += (size_t)n;
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    } else {
        c->peer_gone = 1; /* EOF or reset */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

/* Writes what is left of the 101 response.  Returns 1 when done, 0 when
 * the socket is full, -1 on error. */
static int write_handshake(ws_conn *c)
{
    while (c->hs_off < c->hs_len) {
        ssize_t n = send(c->fd, c->hs + c->hs_off, c->hs_len - c->hs_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        c->hs_off += (size_t)n;
    }
    return 1;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user)
{
    ws_conn *c = user;
    int hs = write_handshake(c);
    if (hs <= 0) {
        wslay_event_set_error(ctx, hs == 0 ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | (flags & WSLAY_MSG_MORE ? MSG_MORE : 0));
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* What one client's output costs us: every message wslay holds for
 * sending (ours, and the pongs and close frames it queues by itself while
 * reading), payload plus bookkeeping (its message struct, the payload's
 * allocation, its queue entry: about QUEUED_MSG_COST bytes with malloc's
 * headers).  Counting the bookkeeping matters for control frames: an
 * empty ping costs its sender 6 bytes and us a whole queued pong. */
static size_t conn_queued(const ws_conn *c)
{
    return wslay_event_get_queued_msg_length(c->ws) + wslay_event_get_queued_msg_count(c->ws) * QUEUED_MSG_COST;
}

/* Whether adding `more` bytes (one more message) would take the client
 * past max_send_queue; if so, closes it (1008) and says so once. */
static int conn_over_queue(ws_conn *c, size_t more)
{
    size_t q = conn_queued(c);
    if (q + more <= (size_t)c->st->conf->max_send_queue)
        return 0;
    cd_info("events: client %s: send queue full (%zu bytes queued); disconnecting it", c->sid, q);
    conn_fail(c, WSLAY_CODE_POLICY_VIOLATION, "send queue full");
    return 1;
}

/* Queues one Engine.IO text message.  Over max_send_queue the client is
 * closed instead: it is not keeping up, and the others must not wait. */
static void conn_send(ws_conn *c, const char *msg, size_t len)
{
    if (c->dead || c->phase >= PH_CLOSING)
        return;
    if (conn_over_queue(c, len + QUEUED_MSG_COST))
        return;
    struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)msg, .msg_length = len};
    /* It fails once wslay has queued a close of its own (a protocol error it
     * found): the message is moot then, and the close path goes on. */
    if (wslay_event_queue_msg(c->ws, &m) != 0)
        return;
    ev_io_start(c->st->svc->loop, &c->wio);
}

static void conn_free(ws_conn *c)
{
    events_state *st = c->st;
    ev_io_stop(st->svc->loop, &c->rio);
    ev_io_stop(st->svc->loop, &c->wio);
    ev_timer_stop(st->svc->loop, &c->hb);
    room_leave_all(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        st->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    st->nconns--;
    close(c->fd);
    if (c->ws)
        wslay_event_context_free(c->ws);
    free(c->pre);
    free(c->rooms);
    free(c);
}

/* Starts the close handshake with code and reason (under 123 bytes), stops
 * reading the client's input, and arms the deadline after which the fd is
 * closed whatever the client does. */
static void conn_fail(ws_conn *c, uint16_t code, const char *reason)
{
    events_state *st = c->st;
    if (c->phase >= PH_CLOSING)
        return;
    cd_debug("events: client %s: closing (%u %s)", c->sid, code, reason);
    if (wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, strlen(reason)) != 0)
        c->dead = 1;
    wslay_event_shutdown_read(c->ws);
    c->phase = PH_CLOSING;
    room_leave_all(c); /* a closing client receives nothing more */
    ev_timer_stop(st->svc->loop, &c->hb);
    ev_timer_set(&c->hb, CLOSE_GRACE, 0.);
    ev_timer_start(st->svc->loop, &c->hb);
    ev_io_start(st->svc->loop, &c->wio);
}

/* Frees a connection marked dead or finished, else points the watchers at
 * what wslay wants next.  The only place (with stop/destroy) that frees. */
static void conn_update(ws_conn *c)
{
    struct ev_loop *loop = c->st->svc->loop;
    if (c->dead) {
        conn_free(c);
        return;
    }
    if (c->phase == PH_LINGER)
        return;
    int want_r = wslay_event_want_read(c->ws);
    int want_w = wslay_event_want_write(c->ws) || c->hs_off < c->hs_len;
    if (!want_r && !want_w) {
        /* The close handshake is over (or we gave up reading).  If the peer
         * has not closed yet, let it read our close frame before the fd
         * goes: half-close, and discard its input until EOF. */
        if (wslay_event_get_close_received(c->ws) || shutdown(c->fd, SHUT_WR) < 0) {
            conn_free(c);
            return;
        }
        c->phase = PH_LINGER;
        ev_io_stop(loop, &c->wio);
        ev_io_start(loop, &c->rio);
        ev_timer_stop(loop, &c->hb);
        ev_timer_set(&c->hb, CLOSE_GRACE, 0.);
        ev_timer_start(loop, &c->hb);
        return;
    }
    if (want_r)
        ev_io_start(loop, &c->rio);
    else
        ev_io_stop(loop, &c->rio);
    if (want_w)
        ev_io_start(loop, &c->wio);
    else
        ev_io_stop(loop, &c->wio);
}

static void conn_flush(ws_conn *c)
{
    if (!c->dead && wslay_event_want_write(c->ws) && wslay_event_send(c->ws) < 0)
        c->dead = 1;
    if (!c->dead && c->hs_off < c->hs_len && write_handshake(c) < 0)
        c->dead = 1;
}

static void linger_read(ws_conn *c)
{
    char buf[4096];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        c->dead = 1; /* EOF: the peer has read everything it will */
        return;
    }
}

/* wslay_event_recv() failed although the peer is still there: its frame
 * parser met a frame it cannot even frame (a fragmented or oversized
 * control frame, a non-minimal length).  wslay then queues a close frame
 * without a status code; RFC 6455 wants 1002, and a client deserves to
 * know.  When nothing was queued or half-sent before this read, the
 * output is at a frame boundary, so we can drop wslay's close and write a
 * 1002 close frame ourselves (4 header bytes and a short reason, on a
 * socket with nothing pending: a single send).  Otherwise wslay's own
 * close goes out after what is queued. */
static void conn_frame_error(ws_conn *c, int was_idle)
{
    static const char frame[] = "\x88\x0f\x03\xea" "invalid frame";
    if (was_idle) {
        wslay_event_shutdown_write(c->ws);
        if (send(c->fd, frame, sizeof frame - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            cd_debug("events: client %s: close frame not sent: %s", c->sid, strerror(errno));
    }
    cd_debug("events: client %s: closing (1002 invalid frame)", c->sid);
    c->phase = PH_CLOSING;
    room_leave_all(c);
    ev_timer_stop(c->st->svc->loop, &c->hb);
    ev_timer_set(&c->hb, CLOSE_GRACE, 0.);
    ev_timer_start(c->st->svc->loop, &c->hb);
}

/* Feeds the client's input to wslay (which calls ws_msg_cb per message). */
static void conn_read(ws_conn *c)
{
    c->read_round = 0;
    int was_idle = !wslay_event_want_write(c->ws) && c->hs_off == c->hs_len;
    int r = wslay_event_recv(c->ws);
    if (r < 0 && (c->peer_gone || r == WSLAY_ERR_NOMEM || c->phase >= PH_CLOSING))
        c->dead = 1;
    else if (r < 0)
        conn_frame_error(c, was_idle);
    /* Answer what this input produced (pongs, acks) right away. */
    conn_flush(c);
}

static void rio_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    ws_conn *c = io->data;
    if (c->phase == PH_LINGER) {
        linger_read(c);
        if (c->dead)
            conn_free(c);
        return;
    }
    conn_read(c);
    conn_update(c);
}

static void wio_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    ws_conn *c = io->data;
    conn_flush(c);
    conn_update(c);
}

/* ---- Engine.IO / Socket.IO ---- */

/* Queues the ack "43<id>[<json_args>]".  Sized to what it carries, so no
 * ack is ever dropped for its length (conn_send still applies
 * max_send_queue). */
static void send_ack(ws_conn *c, long long id, const char *json_args, size_t len)
{
    char stackbuf[256];
    size_t cap = 2 + 20 + 1 + len + 1 + 1;
    char *buf = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (!buf) {
        conn_fail(c, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    int n = snprintf(buf, cap, "43%lld[%.*s]", id, (int)len, json_args);
    if (n > 0 && (size_t)n < cap)
        conn_send(c, buf, (size_t)n);
    if (buf != stackbuf)
        free(buf);
}

/* send_ack for a NUL-terminated json_args. */
static void send_ack_str(ws_conn *c, long long id, const char *json_args)
{
    send_ack(c, id, json_args, strlen(json_args));
}

/* Publishes the Engine.IO text `packet` to the members of rooms (on every
 * worker), except the client with sid `except`.  Returns 0 or -errno. */
static int broadcast(events_state *st, const char *except, const char *const *rooms, const size_t *lens,
                     size_t nrooms, const char *packet, size_t len)
{
    size_t cap = 1 + 1 + SID_LEN + 2 + len;
    for (size_t i = 0; i < nrooms; i++)
        cap += 2 + lens[i];
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    long n = cd_events__bcast_encode(buf, cap, except, except ? strlen(except) : 0, rooms, lens, nrooms,
                                     packet, len);
    int rc = n < 0 ? (int)n : cd_service_publish(st->svc, buf, (size_t)n);
    free(buf);
    return rc;
}

/* join / leave: the first argument is the room name.  With an ack id the
 * client always gets an answer: {"ok":true,"room":<its own token>} or
 * {"ok":false,"error":...}. */
static void on_room_event(ws_conn *c, int join, const cd_sio_packet *p)
{
    char name[CD_EVENTS_ROOM_MAX + 1];
    const char *end = p->args + p->args_len;
    const char *a = cd_events__json_ws(p->args, end);
    const char *tok_end = NULL;
    int len = cd_events__json_string(a, end, name, sizeof name, &tok_end);
    const char *err = NULL;
    if (len == -E2BIG) {
        err = "the room name is longer than 128 bytes";
    } else if (len <= 0) {
        err = "the room must be a non-empty string without NUL or lone surrogates";
    } else if (join) {
        int rc = room_join(c, name, (size_t)len);
        if (rc == -ENOSPC)
            err = "too many rooms (max_rooms)";
        else if (rc < 0)
            err = "out of memory";
    } else {
        room_leave(c, name, (size_t)len);
    }
    if (p->ack_id < 0)
        return;
    if (err) {
        char ack[160];
        snprintf(ack, sizeof ack, "{\"ok\":false,\"error\":\"%s\"}", err);
        send_ack_str(c, p->ack_id, ack);
        return;
    }
    /* Echo the client's own JSON token: no need to re-escape it.  At most
     * 6 bytes per decoded byte plus the quotes; sized exactly here. */
    static const char head[] = "{\"ok\":true,\"room\":";
    size_t tl = (size_t)(tok_end - a), al = sizeof head - 1 + tl + 1;
    char *ack = malloc(al);
    if (!ack) {
        conn_fail(c, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    memcpy(ack, head, sizeof head - 1);
    memcpy(ack + sizeof head - 1, a, tl);
    ack[al - 1] = '}';
    send_ack(c, p->ack_id, ack, al);
    free(ack);
}

static void on_event(ws_conn *c, const cd_sio_packet *p)
{
    events_state *st = c->st;
    char name[16];
    /* Names longer than the buffer are not ours: they fail to decode. */
    int nl = cd_events__json_string(p->name, p->name + p->name_len, name, sizeof name, NULL);
    if (nl >= 0 && (strcmp(name, "join") == 0 || strcmp(name, "leave") == 0)) {
        on_room_event(c, name[0] == 'j', p);
        return;
    }
    if (nl >= 0 && strcmp(name, "whoami") == 0) {
        char ack[128];
        snprintf(ack, sizeof ack, "{\"sid\":\"%s\",\"worker\":%d,\"rooms\":%zu}", c->sid, st->svc->slot,
                 c->nrooms);
        if (p->ack_id >= 0)
            send_ack_str(c, p->ack_id, ack);
        return;
    }
    /* Anything else goes to the client's rooms: "42[" name [, args] "]",
     * the client's own bytes minus its ack id. */
    int rc = 0;
    if (nl >= 0 && cd_events__reserved_event(name)) {
        rc = -EPERM;
    } else if (c->nrooms) {
        size_t len = 3 + p->name_len + 1 + p->args_len + 1;
        char *pkt = malloc(len);
        const char *rooms[1024];
        size_t lens[1024];
        if (!pkt) {
            rc = -ENOMEM;
        } else {
            size_t o = 0;
            memcpy(pkt + o, "42[", 3), o += 3;
            memcpy(pkt + o, p->name, p->name_len), o += p->name_len;
            if (p->args_len) {
                pkt[o++] = ',';
                memcpy(pkt + o, p->args, p->args_len), o += p->args_len;
            }
            pkt[o++] = ']';
            for (size_t i = 0; i < c->nrooms; i++) {
                rooms[i] = c->rooms[i]->room->name;
                lens[i] = c->rooms[i]->room->len;
            }
            rc = broadcast(st, c->sid, rooms, lens, c->nrooms, pkt, o);
            free(pkt);
        }
        if (rc < 0)
            cd_info("events: client %s: broadcast dropped: %s", c->sid, strerror(-rc));
    }
    if (rc == -EPERM) {
        cd_debug("events: client %s: reserved event name %s not relayed", c->sid, name);
    }
    if (p->ack_id >= 0) {
        char ack[128];
        if (rc < 0)
            snprintf(ack, sizeof ack, "{\"ok\":false,\"error\":\"%s\"}",
                     rc == -EPERM    ? "reserved event name"
                     : rc == -EAGAIN ? "busy, try again"
                                     : "broadcast failed");
        else
            snprintf(ack, sizeof ack, "{\"ok\":true,\"rooms\":%zu}", c->nrooms);
        send_ack_str(c, p->ack_id, ack);
    }
}

static void on_socketio(ws_conn *c, const char *msg, size_t len)
{
    cd_sio_packet p;
    int rc = cd_events__sio_parse(msg, len, &p);
    if (rc == -ENOTSUP) {
        conn_fail(c, WSLAY_CODE_UNSUPPORTED_DATA, "binary attachments are not supported");
        return;
    }
    if (rc < 0) {
        conn_fail(c, WSLAY_CODE_PROTOCOL_ERROR, "invalid Socket.IO packet");
        return;
    }
    if (p.nsp_len != 1) {
        /* Only the main namespace exists; as Socket.IO does, refuse others
         * and ignore packets sent to them. */
        if (p.type == CD_SIO_CONNECT) {
            /* The namespace is echoed whole: cutting it could split a
             * UTF-8 sequence, and the client must recognise its own. */
            static const char tail[] = ",{\"message\":\"Invalid namespace\"}";
            size_t n = 2 + p.nsp_len + sizeof tail - 1;
            char *buf = malloc(n);
            if (!buf) {
                conn_fail(c, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
                return;
            }
            memcpy(buf, "44", 2);
            memcpy(buf + 2, p.nsp, p.nsp_len);
            memcpy(buf + 2 + p.nsp_len, tail, sizeof tail - 1);
            conn_send(c, buf, n);
            free(buf);
        }
        return;
    }
    switch (p.type) {
    case CD_SIO_CONNECT: {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "40{\"sid\":\"%s\"}", c->sid);
        c->phase = PH_SOCKET;
        conn_send(c, buf, (size_t)n);
        break;
    }
    case CD_SIO_DISCONNECT:
        /* The transport stays open (socket.io-client closes it itself when
         * its last socket goes); the socket's rooms go now. */
        room_leave_all(c);
        c->phase = PH_OPEN;
        break;
    case CD_SIO_EVENT:
        if (c->phase == PH_SOCKET)
            on_event(c, &p);
        break;
    default: /* ACK: we never ask clients for acks, so there is nothing to match */
        break;
    }
}

static void on_text(ws_conn *c, const char *msg, size_t len)
{
    events_state *st = c->st;
    if (len == 0) {
        conn_fail(c, WSLAY_CODE_PROTOCOL_ERROR, "empty Engine.IO packet");
        return;
    }
    switch (msg[0]) {
    case '1': /* close */
        conn_fail(c, WSLAY_CODE_NORMAL_CLOSURE, "");
        break;
    case '2': { /* a ping from the client (probes): answer with its payload */
        char buf[64];
        if (len > sizeof buf) {
            conn_fail(c, WSLAY_CODE_PROTOCOL_ERROR, "ping payload too long");
            break;
        }
        buf[0] = '3';
        memcpy(buf + 1, msg + 1, len - 1);
        conn_send(c, buf, len);
        break;
    }
    case '3': /* pong: the client is alive; next ping in ping_interval */
        if (c->awaiting_pong) {
            c->awaiting_pong = 0;
            ev_timer_stop(st->svc->loop, &c->hb);
            ev_timer_set(&c->hb, (double)st->conf->ping_interval_ms / 1000.0, 0.);
            ev_timer_start(st->svc->loop, &c->hb);
        }
        break;
    case '4':
        on_socketio(c, msg + 1, len - 1);
        break;
    case '5': /* upgrade and noop only matter when coming from polling */
    case '6':
        break;
    default:
        conn_fail(c, WSLAY_CODE_PROTOCOL_ERROR, "invalid Engine.IO packet");
        break;
    }
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    ws_conn *c = user;
    if (c->phase >= PH_CLOSING)
        return;
    /* wslay answers a close frame by echoing its code and reason, without
     * checking that the reason is UTF-8 (RFC 6455 5.5.1, 8.1).  A client
     * that sends an invalid one has its connection failed instead (7.1.7:
     * the close frame is optional): nothing more is written, and the fd
     * goes.  Found by fuzz_events_ws. */
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->msg_length > 2 &&
        !cd_utf8_valid((const char *)arg->msg + 2, arg->msg_length - 2)) {
        cd_debug("events: client %s: close frame with a reason that is not UTF-8; dropping it", c->sid);
        wslay_event_shutdown_write(c->ws);
        c->phase = PH_CLOSING;
        room_leave_all(c);
        c->dead = 1;
        return;
    }
    /* wslay has just queued a pong for a ping (or a close for a close):
     * that output counts like ours.  A client that pings and never reads
     * is cut off here, one message past the limit, since this callback
     * runs for every message and closing stops the reading. */
    if (conn_over_queue(c, 0))
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME)
        on_text(c, (const char *)arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_BINARY_FRAME)
        conn_fail(c, WSLAY_CODE_UNSUPPORTED_DATA, "binary frames are not supported");
    /* close, ping and pong frames are answered by wslay itself */
}

static void hb_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    ws_conn *c = t->data;
    events_state *st = c->st;
    if (c->phase >= PH_CLOSING) {
        conn_free(c); /* the close deadline: it had its chance to read the close frame */
        return;
    }
    if (c->awaiting_pong) {
        conn_fail(c, WSLAY_CODE_POLICY_VIOLATION, "ping timeout");
    } else if (c->phase == PH_OPEN && ev_now(loop) - c->opened >= CONNECT_TIMEOUT) {
        /* Answering pings alone would hold a slot forever: checked at ping
         * time, which is precise enough for a 45 s limit. */
        conn_fail(c, WSLAY_CODE_POLICY_VIOLATION, "no Socket.IO CONNECT");
    } else {
        conn_send(c, "2", 1);
        c->awaiting_pong = 1;
        ev_timer_set(t, (double)st->conf->ping_timeout_ms / 1000.0, 0.);
        ev_timer_start(loop, t);
    }
    conn_update(c);
}

/* ---- the bus ---- */

static void on_bus(cd_service *svc, const void *msg, size_t len)
{
    events_state *st = svc->state;
    cd_events_bcast b;
    if (!st || cd_events__bcast_decode(msg, len, &b) < 0)
        return;
    uint64_t mark = ++st->mark;
    const unsigned char *cur = b.rooms;
    for (size_t i = 0; i < b.nrooms; i++) {
        const char *name;
        size_t nl;
        cd_events__bcast_room(&cur, &name, &nl);
        room *r = room_find(st, name, nl);
        /* conn_send never frees and a closing client has already left its
         * rooms (conn_fail), so the member list holds still meanwhile... */
        member *m = r ? r->members : NULL;
        while (m) {
            member *next = m->next; /* ...except for the member that fails now */
            ws_conn *c = m->conn;
            if (c->mark != mark) {
                c->mark = mark;
                if (!(b.except_len == strlen(c->sid) && memcmp(b.except, c->sid, b.except_len) == 0))
                    conn_send(c, b.packet, b.packet_len);
            }
            m = next;
        }
    }
}

/* ---- HTTP: publish, and the upgrade ---- */

static void handle_publish(events_state *st, cd_request *req)
{
    size_t blen = 0;
    const char *body = cd_request_body(req, &blen);
    if (!body) /* no body at all: still "not an object", without NULL + 0 */
        body = "", blen = 0;
    cd_events_publish pub;
    const char *why = NULL;
    int rc = cd_events__publish_parse(body, blen, (size_t)st->conf->max_message_size, &pub, &why);
    if (rc < 0) {
        cd_request_respond_error(req, rc == -EMSGSIZE ? 413 : rc == -ENOMEM ? 503 : 400, why);
        return;
    }
    const char *rooms[1] = {pub.room};
    size_t lens[1] = {pub.room_len};
    rc = broadcast(st, NULL, rooms, lens, 1, pub.packet, pub.packet_len);
    free(pub.packet);
    if (rc == -EAGAIN) {
        cd_request_respond_error(req, 503, "the bus is backed up; try again");
        return;
    }
    if (rc < 0) {
        cd_info("events: publish to room of %zu bytes failed: %s", pub.room_len, strerror(-rc));
        cd_request_respond_error(req, 500, "publish failed");
        return;
    }
    static const char ok[] = "{\"ok\":true}";
    cd_request_respond(req, 202, "application/json", ok, sizeof ok - 1);
}

static int origin_allowed(const cd_events_conf *conf, const char *origin)
{
    if (!conf->norigins || !origin) /* non-browser clients send none */
        return 1;
    for (size_t i = 0; i < conf->norigins; i++)
        if (strcasecmp(conf->origins[i], origin) == 0)
            return 1;
    return 0;
}

static void make_sid(char out[SID_LEN + 1])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[SID_LEN];
    /* getrandom on 20 bytes does not block once the pool is up, and does not
     * fail short; if it did, the sid would be less random, not wrong. */
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)rand();
    for (size_t i = 0; i < SID_LEN; i++)
        out[i] = b64url[raw[i] & 63];
    out[SID_LEN] = '\0';
}

/* Checks the upgrade request; answers it and returns -1 when refused. */
static int check_upgrade(events_state *st, cd_request *req, char accept[29])
{
    const cd_events_conf *conf = st->conf;
    char v[32];
    int n = cd_request_query_param(req, "EIO", v, sizeof v);
    if (n < 0 || strcmp(v, "4") != 0) {
        cd_request_respond_error(req, 400, "unsupported Engine.IO protocol version: EIO=4 expected");
        return -1;
    }
    n = cd_request_query_param(req, "transport", v, sizeof v);
    if (n >= 0 && strcmp(v, "polling") == 0) {
        cd_request_respond_error(req, 400, "HTTP long-polling is not supported: connect with "
                                           "transports: [\"websocket\"]");
        return -1;
    }
    if (n < 0 || strcmp(v, "websocket") != 0) {
        cd_request_respond_error(req, 400, "unknown transport: transport=websocket expected");
        return -1;
    }
    if (cd_request_query_param(req, "sid", v, sizeof v) != -1) {
        cd_request_respond_error(req, 400, "upgrading a polling session is not supported");
        return -1;
    }
    if (cd_request_method(req) != CD_M_GET) {
        cd_request_respond_error(req, 400, "a WebSocket upgrade is a GET request");
        return -1;
    }
    const char *up = cd_request_header(req, "Upgrade"), *conn = cd_request_header(req, "Connection");
    if (!up || !conn || !cd_events__header_has_token(up, "websocket") ||
        !cd_events__header_has_token(conn, "upgrade")) {
        cd_request_respond_error(req, 400, "expected a WebSocket upgrade (Upgrade: websocket)");
        return -1;
    }
    const char *ver = cd_request_header(req, "Sec-WebSocket-Version");
    if (!ver || strcmp(ver, "13") != 0) {
        cd_request_respond_error(req, 400, "unsupported Sec-WebSocket-Version: 13 expected");
        return -1;
    }
    if (cd_events__ws_accept(cd_request_header(req, "Sec-WebSocket-Key"), accept) < 0) {
        cd_request_respond_error(req, 400, "missing or malformed Sec-WebSocket-Key");
        return -1;
    }
    if (!origin_allowed(conf, cd_request_header(req, "Origin"))) {
        cd_request_respond_error(req, 403, "origin not allowed");
        return -1;
    }
    if (st->stopping) {
        cd_request_respond_error(req, 503, "shutting down");
        return -1;
    }
    if (st->nconns >= (size_t)conf->max_clients) {
        cd_request_respond_error(req, 503, "too many clients on this worker (max_clients)");
        return -1;
    }
    return 0;
}

/* Starts the WebSocket session on fd, which the caller hands over (closed
 * here on failure): queues the 101 (accept is its Sec-WebSocket-Accept)
 * and the Engine.IO open packet, then serves what the client already sent
 * (pre, pre_len: malloc'd or NULL, owned from here on).  start_session()
 * calls it after cd_request_upgrade(); the fuzz target
 * (tests/fuzz/fuzz_events_ws.c) calls it with one end of a socketpair,
 * which is why it takes the service rather than the state.  Returns 0 or
 * -ENOMEM. */
int cd_events__adopt_fd(cd_service *svc, int fd, const char *accept, char *pre, size_t pre_len)
{
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = ws_recv_cb,
        .send_callback = ws_send_cb,
        .on_msg_recv_callback = ws_msg_cb,
    };
    events_state *st = svc->state;
    const cd_events_conf *conf = st->conf;
    struct ev_loop *loop = st->svc->loop;
    ws_conn *c = calloc(1, sizeof *c);
    member **rooms = calloc((size_t)conf->max_rooms, sizeof *rooms);
    if (!c || !rooms || wslay_event_context_server_init(&c->ws, &cbs, c) != 0) {
        close(fd);
        free(c);
        free(pre);
        free(rooms);
        return -ENOMEM;
    }
    /* Keep the early bytes only when there are some: most clients wait. */
    if (pre_len == 0) {
        free(pre);
        pre = NULL;
    }
    c->pre = pre;
    c->pre_len = pre_len;
    c->rooms = rooms;
    c->st = st;
    c->fd = fd;
    c->phase = PH_OPEN;
    c->opened = ev_now(loop);
    make_sid(c->sid);
    wslay_event_config_set_max_recv_msg_length(c->ws, (uint64_t)conf->max_message_size);
    c->hs_len = (size_t)snprintf(c->hs, sizeof c->hs,
                                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                                 accept);
    c->next = st->conns;
    if (st->conns)
        st->conns->prev = c;
    st->conns = c;
    st->nconns++;
    ev_io_init(&c->rio, rio_cb, fd, EV_READ);
    ev_io_init(&c->wio, wio_cb, fd, EV_WRITE);
    ev_init(&c->hb, hb_cb);
    c->rio.data = c->wio.data = c->hb.data = c;
    ev_timer_set(&c->hb, (double)conf->ping_interval_ms / 1000.0, 0.);
    ev_timer_start(loop, &c->hb);

    /* The Engine.IO open packet.  Its sid names the transport session;
     * Socket.IO's own sid (c->sid) comes with the CONNECT answer. */
    char eio_sid[SID_LEN + 1], open[256];
    make_sid(eio_sid);
    int n = snprintf(open, sizeof open,
                     "0{\"sid\":\"%s\",\"upgrades\":[],\"pingInterval\":%lld,\"pingTimeout\":%lld,"
                     "\"maxPayload\":%lld}",
                     eio_sid, conf->ping_interval_ms, conf->ping_timeout_ms, conf->max_message_size);
    conn_send(c, open, (size_t)n);
    conn_flush(c);
    if (c->pre && !c->dead)
        conn_read(c);
    conn_update(c);
    return 0;
}

/* Takes the connection from HTTP and starts the WebSocket session. */
static void start_session(events_state *st, cd_request *req, const char *accept)
{
    char *pre = malloc(UPGRADE_BUF);
    if (!pre) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    size_t pre_len = 0;
    int fd = cd_request_upgrade(req, pre, UPGRADE_BUF, &pre_len);
    if (fd < 0) {
        free(pre);
        return;
    }
    /* Out of memory from here on costs the client its connection: the
     * HTTP side is gone, there is no one to write a 503. */
    if (cd_events__adopt_fd(st->svc, fd, accept, pre, pre_len) < 0)
        cd_info("events: out of memory starting a WebSocket session");
}

static void upgrade_unlink(events_state *st, pending_upgrade *u)
{
    ev_timer_stop(st->svc->loop, &u->t);
    if (u->prev)
        u->prev->next = u->next;
    else
        st->pending = u->next;
    if (u->next)
        u->next->prev = u->prev;
}

static void upgrade_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    pending_upgrade *u = t->data;
    events_state *st = u->st;
    upgrade_unlink(st, u);
    start_session(st, u->req, u->accept);
    free(u);
}

/* The upgrade itself runs from a zero timer, on the next loop iteration,
 * not inside handle(): cd_request_upgrade() frees the HTTP connection, and
 * the HTTP layer is still using that connection while handle() runs (it
 * dispatched us from its processing loop). */
static void handle_upgrade(events_state *st, cd_request *req)
{
    char accept[29];
    if (check_upgrade(st, req, accept) < 0)
        return;
    pending_upgrade *u = calloc(1, sizeof *u);
    if (!u) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    u->st = st;
    u->req = req;
    memcpy(u->accept, accept, sizeof u->accept);
    ev_timer_init(&u->t, upgrade_cb, 0., 0.);
    u->t.data = u;
    u->next = st->pending;
    if (st->pending)
        st->pending->prev = u;
    st->pending = u;
    ev_timer_start(st->svc->loop, &u->t);
}

static void events_handle(cd_service *svc, cd_request *req)
{
    events_state *st = svc->state;
    const char *sub = cd_request_subpath(req);
    if (strcmp(sub, "/publish") == 0) {
        if (cd_request_method(req) != CD_M_POST)
            cd_request_respond_error(req, 405, "publish takes POST");
        else
            handle_publish(st, req);
        return;
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
    events_state *st = calloc(1, sizeof *st);
    if (!st || !(st->buckets = calloc(64, sizeof *st->buckets))) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* getrandom() blocks only until the kernel's pool is first seeded,
     * which has happened long before a worker starts. */
    if (getrandom(st->hash_key, sizeof st->hash_key, 0) != (ssize_t)sizeof st->hash_key) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        free(st->buckets);
        free(st);
        return -1;
    }
    st->nbuckets = 64;
    st->svc = svc;
    st->conf = svc->conf;
    svc->state = st;
    cd_service_subscribe(svc, on_bus);
    return 0;
}

/* Upgrades not started yet are refused: every request is answered once. */
static void drop_pending(events_state *st)
{
    while (st->pending) {
        pending_upgrade *u = st->pending;
        upgrade_unlink(st, u);
        cd_request_respond_error(u->req, 503, "shutting down");
        free(u);
    }
}

/* Graceful stop: every client gets 1001 "going away" (best effort: one
 * non-blocking write), then its fd is closed, so the draining worker is not
 * held up by clients that would stay forever.  socket.io-client reconnects
 * by itself, to another worker. */
static void events_stop(cd_service *svc)
{
    events_state *st = svc->state;
    static const char reason[] = "server shutting down";
    st->stopping = 1;
    drop_pending(st);
    while (st->conns) {
        ws_conn *c = st->conns;
        if (!c->dead && c->phase < PH_CLOSING) {
            wslay_event_queue_close(c->ws, WSLAY_CODE_GOING_AWAY, (const uint8_t *)reason, sizeof reason - 1);
            conn_flush(c);
        }
        conn_free(c);
    }
}

static void events_destroy(cd_service *svc)
{
    events_state *st = svc->state;
    if (!st)
        return;
    drop_pending(st);
    while (st->conns)
        conn_free(st->conns);
    free(st->buckets); /* rooms went with their last members */
    free(st);
    svc->state = NULL;
}

const cd_service_type cd_service_events = {
    .name = "events",
    .methods = CD_M_GET | CD_M_POST,
    .conf_new = events_conf_new,
    .conf_set = events_conf_set,
    .conf_check = events_conf_check,
    .conf_free = events_conf_free,
    .init = events_init,
    .handle = events_handle,
    .stop = events_stop,
    .destroy = events_destroy,
    .uses_bus = 1,
};
