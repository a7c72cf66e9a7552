/*
 * engineio.c - a client's Engine.IO v4 session over its WebSocket
 * (worker, loop thread): the open packet, the heartbeat, Engine.IO's
 * packet types, and the client's lifetime.
 *
 * A client (socket.io-client 4.x with transports: ["websocket"]) gets the
 * open packet (its pingInterval, pingTimeout, maxPayload) right after the
 * 101.  The server pings ("2") every ping_interval and closes a client
 * whose pong ("3") is not back within ping_timeout (1008 "ping timeout");
 * one that has not sent Socket.IO CONNECT after CONNECT_TIMEOUT is closed
 * too, since answering pings alone would hold a slot forever.  Messages
 * "4..." are Socket.IO's (socketio.c).
 *
 * The WebSocket itself (framing, back-pressure, the close handshake and
 * linger) is http/websocket.c's.  Over max_send_queue a client is closed
 * (1008 "send queue full"): it is not keeping up, and the others must not
 * wait; one slow or hostile reader costs at most max_send_queue plus one
 * message, for at most CLOSE_GRACE, and never delays the others.
 *
 * Lifetime.  A client is freed only from its connection's on_close (or
 * stop/destroy): code that wants it gone calls cd_events__fail, which
 * closes the connection; it leaves its rooms at once and receives nothing
 * more, and goes when the close is over.
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

#define CLOSE_GRACE 2.0      /* seconds a closing client gets to read our close frame */
#define CONNECT_TIMEOUT 45.0 /* seconds to send Socket.IO CONNECT (Socket.IO's connectTimeout) */

static void hb_arm(cd_events_client *c, long long ms)
{
    struct ev_loop *loop = c->st->svc->loop;
    ev_timer_stop(loop, &c->hb);
    ev_timer_set(&c->hb, (double)ms / 1000.0, 0.);
    ev_timer_start(loop, &c->hb);
}

/* The client is closing: it leaves its rooms (a closing client receives
 * nothing more) and its heartbeat stops; the connection's own deadline
 * bounds the rest. */
static void closing(cd_events_client *c)
{
    c->phase = CD_EV_CLOSING;
    cd_events__sockets_close(c);
    ev_timer_stop(c->st->svc->loop, &c->hb);
}

void cd_events__fail(cd_events_client *c, uint16_t code, const char *reason)
{
    if (c->phase == CD_EV_CLOSING)
        return;
    cd_debug("events: client %s: closing (%u %s)", c->sid, code, reason);
    cd_ws_close(c->ws, code, reason);
    closing(c);
}

static void log_queue_full(cd_events_client *c)
{
    c->st->slow_dropped++;
    cd_info("events: client %s: send queue full (%zu bytes queued); disconnecting it", c->sid,
            cd_ws_queued(c->ws));
}

void cd_events__send(cd_events_client *c, const char *msg, size_t len)
{
    if (c->phase == CD_EV_CLOSING)
        return;
    if (len && msg[0] == '4')
        c->st->msgs_out++;
    if (cd_ws_send(c->ws, 0, msg, len) == -ENOBUFS) {
        log_queue_full(c);
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "send queue full");
    }
}

void cd_events__send_binary(cd_events_client *c, const void *data, size_t len)
{
    if (c->phase == CD_EV_CLOSING)
        return;
    if (cd_ws_send(c->ws, 1, data, len) == -ENOBUFS) {
        log_queue_full(c);
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "send queue full");
    }
}

void cd_events__send_packet(cd_events_client *c, const cd_events_packet *p)
{
    cd_events__send(c, p->text, p->text_len);
    for (size_t i = 0; i < p->nattach; i++)
        cd_events__send_binary(c, p->attach[i], p->attach_len[i]);
}

void cd_events__client_free(cd_events_client *c)
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
    if (c->ws)
        cd_ws_free(c->ws);
    free(c);
}

/* ---- the connection's callbacks ---- */

static void on_text(cd_events_client *c, const char *msg, size_t len)
{
    if (len == 0) {
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "empty Engine.IO packet");
        return;
    }
    switch (msg[0]) {
    case '1': /* close */
        cd_events__fail(c, CD_WS_NORMAL, "");
        break;
    case '2': { /* a ping from the client (probes): answer with its payload */
        char buf[64];
        if (len > sizeof buf) {
            cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "ping payload too long");
            break;
        }
        buf[0] = '3';
        memcpy(buf + 1, msg + 1, len - 1);
        cd_events__send(c, buf, len);
        break;
    }
    case '3': /* pong: the client is alive; next ping in ping_interval */
        if (c->awaiting_pong) {
            c->awaiting_pong = 0;
            hb_arm(c, c->st->conf->ping_interval_ms);
        }
        break;
    case '4':
        c->st->msgs_in++;
        cd_events__on_socketio(c, msg + 1, len - 1);
        break;
    case '5': /* upgrade and noop only matter when coming from polling */
    case '6':
        break;
    default:
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "invalid Engine.IO packet");
        break;
    }
}

static void on_message(void *arg, int binary, const char *msg, size_t len)
{
    cd_events_client *c = arg;
    if (c->phase == CD_EV_CLOSING)
        return;
    if (binary)
        cd_events__on_binary(c, msg, len);
    else
        on_text(c, msg, len);
}

static void on_closing(void *arg, int err)
{
    cd_events_client *c = arg;
    if (err == -ENOBUFS) {
        log_queue_full(c);
        cd_debug("events: client %s: closing (1008 send queue full)", c->sid);
    } else if (err == -EILSEQ)
        cd_debug("events: client %s: close frame with a reason that is not UTF-8; dropping it", c->sid);
    else
        cd_debug("events: client %s: closing (1002 invalid frame)", c->sid);
    closing(c);
}

static void on_close(void *arg)
{
    cd_events__client_free(arg);
}

/* ---- the heartbeat ---- */

static void hb_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_events_client *c = t->data;
    const cd_events_conf *conf = c->st->conf;
    if (c->awaiting_pong) {
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "ping timeout");
    } else if (c->nsockets == 0 && ev_now(loop) - c->opened >= CONNECT_TIMEOUT) {
        /* Checked at ping time, which is precise enough for a 45 s limit. */
        cd_events__fail(c, CD_WS_POLICY_VIOLATION, "no Socket.IO CONNECT");
    } else {
        cd_events__send(c, "2", 1);
        c->awaiting_pong = 1;
        if (c->phase != CD_EV_CLOSING)
            hb_arm(c, conf->ping_timeout_ms);
    }
}

/* ---- a new client ---- */

void cd_events__random_id(char out[CD_EVENTS_SID_LEN + 1])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[CD_EVENTS_SID_LEN];
    /* getrandom on 20 bytes does not block once the pool is up, and does not
     * fail short; if it did, the sid would be less random, not wrong. */
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)rand();
    for (size_t i = 0; i < CD_EVENTS_SID_LEN; i++)
        out[i] = b64url[raw[i] & 63];
    out[CD_EVENTS_SID_LEN] = '\0';
}

/* The Engine.IO open packet.  Its sid (c->sid) names the session; each
 * Socket.IO socket's own sid comes with its CONNECT answer. */
static void send_open(cd_events_client *c)
{
    const cd_events_conf *conf = c->st->conf;
    char open[256];
    int n = snprintf(open, sizeof open,
                     "0{\"sid\":\"%s\",\"upgrades\":[],\"pingInterval\":%lld,\"pingTimeout\":%lld,"
                     "\"maxPayload\":%lld}",
                     c->sid, conf->ping_interval_ms, conf->ping_timeout_ms, conf->max_message_size);
    cd_events__send(c, open, (size_t)n);
}

int cd_events__adopt_fd(cd_service *svc, int fd, const char *accept, const char *pre, size_t pre_len)
{
    static const cd_ws_callbacks cbs = {
        .on_message = on_message,
        .on_closing = on_closing,
        .on_close = on_close,
    };
    cd_events_state *st = svc->state;
    const cd_events_conf *conf = st->conf;
    const cd_ws_limits limits = {
        .max_message = (size_t)conf->max_message_size,
        .max_send_queue = (size_t)conf->max_send_queue,
        .close_grace = CLOSE_GRACE,
    };
    cd_events_client *c = calloc(1, sizeof *c);
    if (!c || !(c->ws = cd_ws_new(svc->loop, fd, accept, pre, pre_len, &limits, &cbs, c))) {
        if (!c)
            close(fd);
        free(c);
        return -ENOMEM;
    }
    c->st = st;
    c->transport = CD_EIO_WEBSOCKET;
    st->nclients_by[c->transport]++;
    c->phase = CD_EV_OPEN;
    c->opened = ev_now(svc->loop);
    cd_events__random_id(c->sid);
    c->next = st->clients;
    if (st->clients)
        st->clients->prev = c;
    st->clients = c;
    st->nclients++;
    ev_init(&c->hb, hb_cb);
    c->hb.data = c;
    hb_arm(c, conf->ping_interval_ms);
    send_open(c);
    return 0;
}
