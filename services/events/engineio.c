/*
 * engineio.c - a client's Engine.IO v4 session, whatever its transport
 * (worker, loop thread): the open packet, the heartbeat, Engine.IO's
 * packet types, the upgrade from polling to WebSocket, sids that name the
 * owning worker, and the client's life.
 *
 * A client starts on a WebSocket (socket.io-client with transports:
 * ["websocket"]: cd_events__adopt_fd) or on HTTP long-polling (polling.c
 * opens it with cd_events__client_new).  Sending, failing and freeing
 * dispatch on c->transport: a WebSocket message through
 * http/websocket.c, or a packet appended to the polling queue, which
 * answers the held GET.  The server pings ("2") every ping_interval and
 * closes a client whose pong ("3") is not back within ping_timeout; one
 * that has not sent Socket.IO CONNECT after CONNECT_TIMEOUT is closed too,
 * since answering pings alone would hold a slot forever.  Messages "4..."
 * are Socket.IO's (socketio.c), binary ones its attachments.
 *
 * The upgrade (engine.io's "probe"): a polling client opens a WebSocket
 * with its sid; events.c hands the connection to cd_events__probe_fd,
 * which attaches it to the client while polling goes on.  "2probe" on it
 * is answered "3probe" there and "6" (noop) to the held GET, so the client
 * can pause polling; "5" moves the session onto the WebSocket: what was
 * queued for polling is sent there first, in order, and the polling state
 * goes.  A probe that fails or closes is dropped and polling continues.
 *
 * Over max_send_queue a client is closed ("send queue full", counted in
 * slow_dropped): it is not keeping up, and the others must not wait.
 *
 * Sids.  An Engine.IO sid is the owning worker's id (cd_service_worker_id)
 * in its first SID_WORKER_CHARS characters, then 120 random bits, all
 * base64url: any worker can tell from a request's sid which worker holds
 * the session, and steer the request there (events.c).
 *
 * Lifetime.  A client is freed only here: from its WebSocket's on_close,
 * from the heartbeat timer once a polling session has closed (its last
 * GET answered, or CLOSE_GRACE later), or by stop/destroy.  Code that
 * wants it gone calls cd_events__fail: it leaves its rooms at once and
 * receives nothing more.
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

#define CLOSE_GRACE 2.0      /* seconds a closing client gets to read our close */
#define CONNECT_TIMEOUT 45.0 /* seconds to send Socket.IO CONNECT (Socket.IO's connectTimeout) */
#define SID_WORKER_CHARS 6   /* 36 bits: a uint32_t worker id */

static void hb_arm(cd_events_client *c, double sec)
{
    struct ev_loop *loop = c->st->svc->loop;
    ev_timer_stop(loop, &c->hb);
    ev_timer_set(&c->hb, sec, 0.);
    ev_timer_start(loop, &c->hb);
}

static double ms(long long v)
{
    return (double)v / 1000.0;
}

/* The client is closing: it leaves its rooms (a closing client receives
 * nothing more) and its heartbeat stops; the transport's own deadline
 * bounds the rest. */
static void closing(cd_events_client *c)
{
    c->phase = CD_EV_CLOSING;
    cd_events__sockets_close(c);
    ev_timer_stop(c->st->svc->loop, &c->hb);
}

/* Why a session ends, as socket.io tells on_disconnect (unless the code
 * closing it said first, in c->close_reason). */
static const char *sio_reason(uint16_t code, const char *reason)
{
    if (strcmp(reason, "ping timeout") == 0)
        return "ping timeout";
    if (code == CD_WS_NORMAL)
        return "transport close";
    if (code == CD_WS_GOING_AWAY)
        return "server shutting down";
    if (code == CD_WS_PROTOCOL_ERROR)
        return "parse error";
    return "transport error";
}

void cd_events__fail(cd_events_client *c, uint16_t code, const char *reason)
{
    if (c->phase == CD_EV_CLOSING)
        return;
    cd_debug("events: client %s: closing (%u %s)", c->sid, code, reason);
    if (!c->close_reason)
        c->close_reason = sio_reason(code, reason);
    if (c->ws)
        cd_ws_close(c->ws, code, reason); /* the session's WebSocket, or a probe */
    closing(c);
    if (c->transport == CD_EIO_POLLING && c->forget && code != CD_WS_NORMAL) {
        /* A ping timeout: as engine.io, a held GET gets the close packet and
         * the sid is forgotten at once (the next request for it: 400
         * "Session ID unknown"). */
        cd_events__poll_closing(c);
        hb_arm(c, 0.);
    } else if (c->transport == CD_EIO_POLLING && c->forget) {
        /* The client's own close packet: its GET gets a noop, the one held
         * now or (on -w N the GET may be moved here after the POST) the
         * next within CLOSE_GRACE; the sid goes with it. */
        if (cd_events__poll_noop(c))
            hb_arm(c, 0.);
        else
            hb_arm(c, CLOSE_GRACE);
    } else if (c->transport == CD_EIO_POLLING) {
        /* A close of the server's own (a disconnect, a stop): freed from the
         * heartbeat timer at once when the held GET took the close packet,
         * else once the next GET has (or CLOSE_GRACE), as engine.io keeps
         * the session for its closeTimeout, so a DISCONNECT queued just
         * before still arrives. */
        hb_arm(c, cd_events__poll_closing(c) ? 0. : CLOSE_GRACE);
    }
}

static void queue_full(cd_events_client *c, size_t queued)
{
    c->st->slow_dropped++;
    cd_info("events: client %s: send queue full (%zu bytes queued); disconnecting it", c->sid, queued);
}

/* Queues one message on the client's transport.  0, or -ENOBUFS (over
 * max_send_queue: nothing queued, the caller fails the client).  slot:
 * the message's WebSocket frame shared with other recipients (made here
 * when empty), or NULL for a frame of its own. */
static int transport_send(cd_events_client *c, int binary, const char *msg, size_t len, cd_ws_frame **slot,
                          size_t *queued)
{
    if (c->transport == CD_EIO_WEBSOCKET) {
        cd_ws_frame *f = slot && *slot ? *slot : cd_ws_frame_new(binary, msg, len);
        int rc = f ? cd_ws_send_frame(c->ws, f) : -ENOMEM;
        if (slot && !*slot)
            *slot = f; /* the packet's owner unrefs it */
        else if (!slot)
            cd_ws_frame_unref(f);
        *queued = rc == -ENOBUFS ? cd_ws_queued(c->ws) : 0;
        return rc == -ENOBUFS ? rc : 0;
    }
    return cd_events__poll_put(c, binary, msg, len, queued);
}

static void send_msg(cd_events_client *c, int binary, const char *msg, size_t len, cd_ws_frame **slot, int flush)
{
    size_t queued;
    if (c->phase == CD_EV_CLOSING)
        return;
    if (!binary && len && msg[0] == '4')
        c->st->msgs_out++;
    if (transport_send(c, binary, msg, len, slot, &queued) == -ENOBUFS) {
        queue_full(c, queued);
        if (c->transport == CD_EIO_POLLING)
            cd_events__poll_drop_queue(c);
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "send queue full");
    } else if (flush && c->transport == CD_EIO_POLLING) {
        cd_events__poll_flush(c);
    }
}

void cd_events__send(cd_events_client *c, const char *msg, size_t len)
{
    send_msg(c, 0, msg, len, NULL, 1);
}

void cd_events__send_binary(cd_events_client *c, const void *data, size_t len)
{
    send_msg(c, 1, data, len, NULL, 1);
}

/* A packet and its attachments go out together: one answer to a
 * long-poll; on a WebSocket, frames shared with the packet's other
 * recipients when it has p->frames. */
void cd_events__send_packet(cd_events_client *c, const cd_events_packet *p)
{
    send_msg(c, 0, p->text, p->text_len, p->frames ? &p->frames[0] : NULL, p->nattach == 0);
    for (size_t i = 0; i < p->nattach; i++)
        send_msg(c, 1, p->attach[i], p->attach_len[i], p->frames ? &p->frames[1 + i] : NULL, i + 1 == p->nattach);
}

static void client_release(cd_events_client *c, int answer)
{
    cd_events_state *st = c->st;
    ev_timer_stop(st->svc->loop, &c->hb);
    cd_events__sockets_close(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        st->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    st->nclients--;
    st->nclients_by[c->transport]--;
    if (c->poll)
        cd_events__poll_free(c, answer);
    if (c->ws)
        cd_ws_free(c->ws);
    free(c->headers);
    free(c);
}

void cd_events__client_free(cd_events_client *c)
{
    client_release(c, 1);
}

void cd_events__client_drop(cd_events_client *c)
{
    client_release(c, 0);
}

/* ---- packets from the client ---- */

static void on_ping(cd_events_client *c, const char *msg, size_t len)
{
    char buf[64]; /* a ping from the client: answered with its payload */
    if (len > sizeof buf) {
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "ping payload too long");
        return;
    }
    buf[0] = '3';
    memcpy(buf + 1, msg + 1, len - 1);
    cd_events__send(c, buf, len);
}

void cd_events__on_packet(cd_events_client *c, int binary, const char *msg, size_t len)
{
    if (c->phase == CD_EV_CLOSING)
        return;
    if (binary) {
        cd_events__on_binary(c, msg, len);
        return;
    }
    if (len == 0) {
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "empty Engine.IO packet");
        return;
    }
    switch (msg[0]) {
    case '1': /* close */
        c->forget = 1;
        cd_events__fail(c, CD_WS_NORMAL, "");
        break;
    case '2':
        on_ping(c, msg, len);
        break;
    case '3': /* pong: the client is alive; next ping in ping_interval */
        if (c->awaiting_pong) {
            c->awaiting_pong = 0;
            hb_arm(c, ms(c->st->conf->ping_interval_ms));
        }
        break;
    case '4':
        c->st->msgs_in++;
        cd_events__on_socketio(c, msg + 1, len - 1);
        break;
    case '5': /* upgrade: only on a probe (on_probe_message) */
    case '6': /* noop */
        break;
    default:
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "invalid Engine.IO packet");
        break;
    }
}

/* ---- the WebSocket's callbacks ---- */

static void on_message(void *arg, int binary, const char *msg, size_t len)
{
    cd_events__on_packet(arg, binary, msg, len);
}

static void on_closing(void *arg, int err)
{
    cd_events_client *c = arg;
    if (c->transport == CD_EIO_POLLING) { /* a probe: on_close drops it */
        cd_debug("events: client %s: upgrade probe failed (%d)", c->sid, err);
        return;
    }
    if (err == -ENOBUFS) {
        queue_full(c, cd_ws_queued(c->ws));
        cd_debug("events: client %s: closing (1008 send queue full)", c->sid);
    } else if (err == -EILSEQ)
        cd_debug("events: client %s: close frame with a reason that is not UTF-8; dropping it", c->sid);
    else
        cd_debug("events: client %s: closing (1002 invalid frame)", c->sid);
    if (c->transport == CD_EIO_WEBSOCKET) {
        if (!c->close_reason)
            c->close_reason = err == -ENOBUFS ? "transport error" : "parse error";
        closing(c);
    }
}

static void on_close(void *arg)
{
    cd_events_client *c = arg;
    if (c->transport == CD_EIO_WEBSOCKET) {
        cd_events__client_free(c);
    } else { /* a probe that did not become the transport: polling goes on */
        cd_debug("events: client %s: upgrade probe closed", c->sid);
        cd_ws_free(c->ws);
        c->ws = NULL;
    }
}

/* "5" on the probe: the session moves onto it, what polling had queued
 * first.  The held GET (if any) gets "6"; the polling state goes. */
static void upgrade(cd_events_client *c)
{
    cd_eio_buf q = {0};
    cd_events__poll_upgrade(c, &q);
    cd_events_state *st = c->st;
    st->nclients_by[CD_EIO_POLLING]--;
    st->nclients_by[CD_EIO_WEBSOCKET]++;
    c->transport = CD_EIO_WEBSOCKET;
    cd_debug("events: client %s: upgraded to websocket", c->sid);
    cd_eio_payload pl; /* counted in msgs_out when queued: sent as they are */
    if (q.len && cd_events__payload_decode(q.p, q.len, q.len, &pl) == 0) {
        for (size_t i = 0; i < pl.n && c->phase == CD_EV_OPEN; i++) {
            size_t queued;
            if (transport_send(c, pl.pkts[i].binary, pl.pkts[i].data, pl.pkts[i].len, NULL, &queued) == -ENOBUFS) {
                queue_full(c, queued);
                cd_events__fail(c, CD_WS_POLICY_VIOLATION, "send queue full");
            }
        }
        cd_events__payload_free(&pl);
    }
    cd_events__payload_reset(&q);
}

static void on_probe_message(void *arg, int binary, const char *msg, size_t len)
{
    cd_events_client *c = arg;
    if (c->transport == CD_EIO_WEBSOCKET) {
        on_message(c, binary, msg, len);
        return;
    }
    if (c->phase == CD_EV_CLOSING)
        return;
    if (!binary && len == 6 && memcmp(msg, "2probe", 6) == 0) {
        if (cd_ws_send(c->ws, 0, "3probe", 6) == 0)
            cd_events__poll_probed(c);
    } else if (!binary && len == 1 && msg[0] == '5' && cd_events__poll_was_probed(c)) {
        upgrade(c);
    } else {
        cd_debug("events: client %s: unexpected message on the upgrade probe", c->sid);
        cd_ws_close(c->ws, CD_WS_PROTOCOL_ERROR, "invalid upgrade");
    }
}

/* ---- the heartbeat ---- */

static void hb_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_events_client *c = t->data;
    const cd_events_conf *conf = c->st->conf;
    if (c->phase == CD_EV_CLOSING) { /* a polling session, closed */
        cd_events__client_free(c);
    } else if (c->awaiting_pong) {
        c->forget = 1;
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "ping timeout");
    } else if (c->nsockets == 0 && ev_now(loop) - c->opened >= CONNECT_TIMEOUT) {
        /* Checked at ping time, which is precise enough for a 45 s limit. */
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "no Socket.IO CONNECT");
    } else {
        cd_events__send(c, "2", 1);
        c->awaiting_pong = 1;
        if (c->phase != CD_EV_CLOSING)
            hb_arm(c, ms(conf->ping_timeout_ms));
    }
}

/* ---- ids ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void random_chars(char *out, size_t n)
{
    unsigned char raw[CD_EVENTS_SID_LEN];
    /* getrandom on a few bytes does not block once the pool is up, and does
     * not fail short; if it did, the id would be less random, not wrong. */
    if (getrandom(raw, n, 0) != (ssize_t)n)
        for (size_t i = 0; i < n; i++)
            raw[i] = (unsigned char)rand();
    for (size_t i = 0; i < n; i++)
        out[i] = b64url[raw[i] & 63];
}

void cd_events__random_id(char out[CD_EVENTS_SID_LEN + 1])
{
    random_chars(out, CD_EVENTS_SID_LEN);
    out[CD_EVENTS_SID_LEN] = '\0';
}

void cd_events__session_id(uint32_t worker, char out[CD_EVENTS_SID_LEN + 1])
{
    for (int i = 0; i < SID_WORKER_CHARS; i++)
        out[i] = b64url[(worker >> (6 * (SID_WORKER_CHARS - 1 - i))) & 63];
    random_chars(out + SID_WORKER_CHARS, CD_EVENTS_SID_LEN - SID_WORKER_CHARS);
    out[CD_EVENTS_SID_LEN] = '\0';
}

uint32_t cd_events__sid_worker(const char *sid, size_t len)
{
    if (len != CD_EVENTS_SID_LEN)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = memchr(b64url, sid[i], 64);
        if (!sid[i] || !p)
            return 0;
        if (i < SID_WORKER_CHARS)
            v = v << 6 | (uint64_t)(p - b64url);
    }
    return v > UINT32_MAX ? 0 : (uint32_t)v;
}

/* ---- a new client ---- */

/* The Engine.IO open packet.  Its sid (c->sid) names the session; each
 * Socket.IO socket's own sid comes with its CONNECT answer.  A polling
 * session is offered the upgrade when WebSockets are allowed. */
static void send_open(cd_events_client *c)
{
    const cd_events_conf *conf = c->st->conf;
    int up = c->transport == CD_EIO_POLLING && (conf->transports & CD_EVENTS_T_WEBSOCKET);
    char open[256];
    int n = snprintf(open, sizeof open,
                     "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%lld,\"pingTimeout\":%lld,"
                     "\"maxPayload\":%lld}",
                     c->sid, up ? "\"websocket\"" : "", conf->ping_interval_ms, conf->ping_timeout_ms,
                     conf->max_message_size);
    cd_events__send(c, open, (size_t)n);
}

cd_events_client *cd_events__client_new(cd_events_state *st, enum cd_events_transport t)
{
    cd_events_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->st = st;
    c->transport = t;
    c->phase = CD_EV_OPEN;
    c->opened = ev_now(st->svc->loop);
    cd_events__session_id(st->worker_id, c->sid);
    ev_init(&c->hb, hb_cb);
    c->hb.data = c;
    return c;
}

void cd_events__client_start(cd_events_client *c)
{
    cd_events_state *st = c->st;
    st->nclients_by[c->transport]++;
    c->next = st->clients;
    if (st->clients)
        st->clients->prev = c;
    st->clients = c;
    st->nclients++;
    hb_arm(c, ms(st->conf->ping_interval_ms));
    send_open(c);
}

static cd_ws_limits ws_limits(const cd_events_conf *conf)
{
    cd_ws_limits l = {
        .max_message = (size_t)conf->max_message_size,
        .max_send_queue = (size_t)conf->max_send_queue,
        .close_grace = CLOSE_GRACE,
    };
    return l;
}

int cd_events__adopt_fd_headers(cd_service *svc, int fd, const char *accept, const char *pre, size_t pre_len,
                                char *headers, size_t headers_len)
{
    static const cd_ws_callbacks cbs = {
        .on_message = on_message,
        .on_closing = on_closing,
        .on_close = on_close,
    };
    cd_events_state *st = svc->state;
    const cd_ws_limits limits = ws_limits(st->conf);
    cd_events_client *c = cd_events__client_new(st, CD_EIO_WEBSOCKET);
    if (!c || !(c->ws = cd_ws_new(svc->loop, fd, accept, pre, pre_len, &limits, &cbs, c))) {
        if (!c)
            close(fd);
        free(c);
        free(headers);
        return -ENOMEM;
    }
    c->headers = headers;
    c->headers_len = headers_len;
    cd_events__client_start(c);
    return 0;
}

int cd_events__adopt_fd(cd_service *svc, int fd, const char *accept, const char *pre, size_t pre_len)
{
    return cd_events__adopt_fd_headers(svc, fd, accept, pre, pre_len, NULL, 0);
}

/* A WebSocket for a session that is no longer polling (it upgraded
 * already): engine.io completes the handshake and closes it at once, and
 * so do we; the session itself is left alone. */
typedef struct stray_ws {
    cd_ws_conn *ws;
} stray_ws;

static void stray_message(void *arg, int binary, const char *msg, size_t len)
{
    (void)arg, (void)binary, (void)msg, (void)len;
}

static void stray_closing(void *arg, int err)
{
    (void)arg, (void)err;
}

static void stray_close(void *arg)
{
    stray_ws *s = arg;
    cd_ws_free(s->ws);
    free(s);
}

int cd_events__stray_fd(cd_events_state *st, int fd, const char *accept)
{
    static const cd_ws_callbacks cbs = {
        .on_message = stray_message,
        .on_closing = stray_closing,
        .on_close = stray_close,
    };
    stray_ws *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    const cd_ws_limits limits = ws_limits(st->conf);
    if (!(s->ws = cd_ws_new(st->svc->loop, fd, accept, NULL, 0, &limits, &cbs, s))) {
        free(s);
        return -ENOMEM;
    }
    cd_ws_close(s->ws, CD_WS_NORMAL, "");
    return 0;
}

cd_events_client *cd_events__client_find(cd_events_state *st, const char *sid)
{
    for (cd_events_client *c = st->clients; c; c = c->next)
        if (strcmp(c->sid, sid) == 0)
            return c;
    return NULL;
}

int cd_events__probe_fd(cd_events_client *c, int fd, const char *accept, const char *pre, size_t pre_len)
{
    static const cd_ws_callbacks cbs = {
        .on_message = on_probe_message,
        .on_closing = on_closing,
        .on_close = on_close,
    };
    if (c->phase != CD_EV_OPEN || c->transport != CD_EIO_POLLING || c->ws) {
        close(fd); /* closed or upgraded meanwhile, or a second probe */
        return -EBUSY;
    }
    const cd_ws_limits limits = ws_limits(c->st->conf);
    c->ws = cd_ws_new(c->st->svc->loop, fd, accept, pre, pre_len, &limits, &cbs, c);
    return c->ws ? 0 : -ENOMEM;
}
