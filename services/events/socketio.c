/*
 * socketio.c - Socket.IO v5 on top of a client's Engine.IO session
 * (worker, loop thread): CONNECT and DISCONNECT of namespaces (one
 * cd_events_socket each), events and binary events (to a handler, or to
 * the service's own, sio_relay.c), and clients' acks.
 *
 * Namespaces.  A client connects to any namespace of the config (CONNECT
 * to another gets CONNECT_ERROR "Invalid namespace"); with auth = jwt its
 * CONNECT payload carries the token (auth.c), refused with CONNECT_ERROR
 * and the reason.  A socket is in rooms of its own (rooms.c): "" (the
 * whole namespace), its sid and, authenticated, "user:<sub>".  A client's
 * DISCONNECT of one namespace leaves its others connected.
 *
 * Events.  Without handlers, `join`, `leave`, `whoami` and the relay of
 * any other event to the sender's rooms are sio_relay.c's.
 *
 * Binary events.  A BINARY_EVENT's attachments follow it as binary
 * messages; it waits in c->partial until they are all in (at most
 * CD_EVENTS_ATTACH_MAX, text and attachments together at most
 * max_message_size: over, the client is closed with 1009), then goes out
 * like a text event, its placeholders and attachments byte for byte.  A
 * client's ACK or BINARY_ACK answers an emitWithAck of a handler
 * (sio_api.c), or is consumed and ignored.  Text while attachments are
 * due, or a binary message when none is, closes the client, as
 * socket.io-parser does.
 *
 * Handlers.  A namespace whose handler module (or hooks) registered
 * handlers (sio_api.c) gets its CONNECTs, after JWT auth, to on_connect,
 * which resolves them later (the socket is made then, by
 * cd_events__socket_open), and all its events to on_event, join, leave
 * and whoami included; without them it behaves as above.  Every way a
 * socket goes ends in socket_free, which tells sio_api.c with socket.io's
 * reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/json.h"
#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/events.h"

#define WS_MESSAGE_TOO_BIG 1009 /* RFC 6455's close code */

/* A binary packet whose attachments are not all in yet. */
struct cd_events_partial {
    char *text;         /* the client's Socket.IO packet (re-parsed when complete) */
    size_t text_len;
    int discard;        /* a BINARY_ACK, or no socket for it: consumed, not relayed */
    size_t want, have, total;
    char *attach[CD_EVENTS_ATTACH_MAX];
    size_t attach_len[CD_EVENTS_ATTACH_MAX];
};

static void partial_free(cd_events_client *c)
{
    struct cd_events_partial *pp = c->partial;
    if (!pp)
        return;
    for (size_t i = 0; i < pp->have; i++)
        free(pp->attach[i]);
    free(pp->text);
    free(pp);
    c->partial = NULL;
}

const char *cd_events__nsp_name(const cd_events_conf *conf, int nsp)
{
    return conf->nnamespaces ? conf->namespaces[nsp] : "/";
}

/* The namespace prefix of a socket's packets: "" for "/", else "/chat,". */
static const char *nsp_name(const cd_events_socket *s)
{
    return cd_events__nsp_name(s->client->st->conf, s->nsp);
}

void cd_events__send_nsp(cd_events_client *c, const char *nsp, size_t nsp_len, char type, const char *rest,
                     size_t len)
{
    size_t nl = nsp_len == 1 && nsp[0] == '/' ? 0 : nsp_len;
    char stackbuf[256];
    size_t cap = 2 + nl + 1 + len;
    char *buf = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (!buf) {
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    size_t o = 0;
    buf[o++] = '4';
    buf[o++] = type;
    if (nl) {
        memcpy(buf + o, nsp, nl), o += nl;
        buf[o++] = ',';
    }
    memcpy(buf + o, rest, len), o += len;
    cd_events__send(c, buf, o);
    if (buf != stackbuf)
        free(buf);
}

static void send_sio(cd_events_socket *s, char type, const char *rest, size_t len)
{
    const char *nsp = nsp_name(s);
    cd_events__send_nsp(s->client, nsp, strlen(nsp), type, rest, len);
}

/* An EVENT, or a BINARY_EVENT with its attachments (att): its
 * namespace's handler, or the service's own events (sio_relay.c). */
static void on_event(cd_events_socket *s, const cd_sio_packet *p, const cd_events_packet *att)
{
    if (s->api && cd_events__sio_event(s, p, att))
        return; /* its namespace's handler has it (and s may be gone) */
    cd_events__relay(s, p, att);
}

/* CONNECT_ERROR "44<nsp,>{"message":<why>}", the namespace echoed whole
 * (cutting it could split a UTF-8 sequence, and the client must recognise
 * its own). */
static void refuse_connect(cd_events_client *c, const cd_sio_packet *p, const char *why)
{
    char msg[128];
    int n = snprintf(msg, sizeof msg, "{\"message\":\"%s\"}", why);
    cd_events__send_nsp(c, p->nsp, p->nsp_len, '4', msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : strlen(msg));
}

void cd_events__connect_error(cd_events_client *c, int nsp, const char *message)
{
    size_t ml = strlen(message), cap = 16 + 6 * ml;
    char *msg = malloc(cap);
    if (!msg) {
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    size_t o = (size_t)snprintf(msg, cap, "{\"message\":\"");
    o += cd_json_escape(msg + o, cap - o, message, ml);
    o += (size_t)snprintf(msg + o, cap - o, "\"}");
    const char *name = cd_events__nsp_name(c->st->conf, nsp);
    cd_events__send_nsp(c, name, strlen(name), '4', msg, o);
    free(msg);
}

static int nsp_index(const cd_events_conf *conf, const cd_sio_packet *p)
{
    if (!conf->nnamespaces)
        return p->nsp_len == 1 && p->nsp[0] == '/' ? 0 : -1;
    return cd_events__nsp_index(conf, p->nsp, p->nsp_len);
}

static cd_events_socket *find_socket(cd_events_client *c, int nsp)
{
    for (cd_events_socket *s = c->sockets; s; s = s->next)
        if (s->nsp == nsp)
            return s;
    return NULL;
}

static void socket_unlink(cd_events_socket *s)
{
    cd_events_client *c = s->client;
    for (cd_events_socket **pp = &c->sockets; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    c->nsockets--;
}

static void socket_free(cd_events_socket *s, const char *reason)
{
    if (s->api)
        cd_events__sio_gone(s, reason); /* its handler hears of it from the loop */
    cd_events__room_leave_all(s);
    if (s->identity) {
        cd_events__identity_free(s->identity);
        free(s->identity);
    }
    free(s->rooms);
    free(s);
}

/* Takes s out of service: it leaves its rooms and is freed. */
static void socket_drop(cd_events_socket *s, const char *reason)
{
    s->client->st->nsp_sockets[s->nsp]--;
    socket_unlink(s);
    socket_free(s, reason);
}

/* The socket's own rooms: "", its sid, user:<sub>.  0 or -ENOMEM. */
static int join_own(cd_events_socket *s)
{
    const cd_events_identity *id = s->identity;
    if (cd_events__room_join_own(s, "", 0) < 0 || cd_events__room_join_own(s, s->sid, strlen(s->sid)) < 0)
        return -ENOMEM;
    if (!id || !id->user)
        return 0;
    size_t ul = strlen(id->user);
    char *room = malloc(5 + ul + 1);
    int rc = room ? cd_events__room_join_own(s, room, (size_t)sprintf(room, "user:%s", id->user)) : -ENOMEM;
    free(room);
    return rc < 0 ? -ENOMEM : 0;
}

/* With auth: the CONNECT payload's token, checked; the identity in *out.
 * 0, or -1 when refused (answered). */
static int authenticate(cd_events_client *c, const cd_sio_packet *p, cd_events_identity **out)
{
    *out = NULL;
    if (c->st->conf->auth != CD_EVENTS_AUTH_JWT)
        return 0;
    const char *why = "invalid token";
    cd_events_identity *id = calloc(1, sizeof *id);
    int rc = id && c->st->auth ? cd_events__auth_check(c->st->auth, p->data, p->data_len, id, &why) : -ENOMEM;
    if (rc < 0) {
        cd_debug("events: client %s: CONNECT refused: %s", c->sid, why);
        free(id);
        refuse_connect(c, p, why);
        return -1;
    }
    *out = id;
    return 0;
}

static void on_connect(cd_events_client *c, const cd_sio_packet *p, int nsp)
{
    cd_events_identity *id;
    if (find_socket(c, nsp) || cd_events__sio_connecting(c, nsp))
        return; /* already connected to it (or asking): nothing changes */
    if (authenticate(c, p, &id) < 0)
        return;
    if (!cd_events__sio_connect(c, nsp, id, p->data, p->data_len))
        cd_events__socket_open(c, nsp, id, NULL, NULL);
}

cd_events_socket *cd_events__socket_open(cd_events_client *c, int nsp, cd_events_identity *id, const char *sid,
                                         struct cd_sio_socket *h)
{
    cd_events_state *st = c->st;
    cd_events_socket *s = calloc(1, sizeof *s);
    if (!s || !(s->rooms = calloc((size_t)st->conf->max_rooms + CD_EVENTS_OWN_ROOMS, sizeof *s->rooms))) {
        free(s);
        if (id)
            cd_events__identity_free(id);
        free(id);
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return NULL;
    }
    s->client = c;
    s->nsp = nsp;
    s->identity = id;
    if (sid)
        memcpy(s->sid, sid, sizeof s->sid);
    else
        cd_events__random_id(s->sid);
    s->next = c->sockets;
    c->sockets = s;
    c->nsockets++;
    st->nsp_sockets[nsp]++;
    if (join_own(s) < 0 || cd_events__sio_attach(s, h) < 0) {
        socket_drop(s, "transport error");
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return NULL;
    }
    char buf[64];
    int n = snprintf(buf, sizeof buf, "{\"sid\":\"%s\"}", s->sid);
    send_sio(s, '0', buf, (size_t)n);
    return s;
}

/* A binary packet: its attachments come next, in c->partial.  Returns
 * 0, or -1 when the client was closed. */
static int start_partial(cd_events_client *c, const char *msg, size_t len, const cd_sio_packet *p, int relay)
{
    if (len > (size_t)c->st->conf->max_message_size) {
        cd_events__fail(c, WS_MESSAGE_TOO_BIG, "message too big");
        return -1;
    }
    struct cd_events_partial *pp = calloc(1, sizeof *pp);
    if (!pp || !(pp->text = malloc(len))) {
        free(pp);
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    memcpy(pp->text, msg, len);
    pp->text_len = len;
    pp->total = len;
    pp->want = p->nattach;
    pp->discard = !relay;
    c->partial = pp;
    return 0;
}

/* The partial packet has all its attachments: relayed (or dropped, or
 * matched to its emitWithAck) and freed.  It leaves the client first: a
 * handler may close the client, which frees c->partial. */
static void finish_partial(cd_events_client *c)
{
    struct cd_events_partial *pp = c->partial;
    cd_sio_packet p;
    cd_events_socket *s;
    c->partial = NULL;
    if (!pp->discard && cd_events__sio_parse(pp->text, pp->text_len, &p) == 0 &&
        (s = find_socket(c, nsp_index(c->st->conf, &p))) != NULL) {
        cd_events_packet att = {.nattach = pp->have, .attach = (const char *const *)pp->attach,
                                .attach_len = pp->attach_len};
        if (p.type == CD_SIO_BINARY_ACK)
            cd_events__sio_ack_in(s, &p, &att);
        else
            on_event(s, &p, &att);
    }
    c->partial = pp;
    partial_free(c);
}

void cd_events__on_socketio(cd_events_client *c, const char *msg, size_t len)
{
    cd_sio_packet p;
    if (c->partial) {
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "a Socket.IO packet while attachments were due");
        return;
    }
    int rc = cd_events__sio_parse(msg, len, &p);
    if (rc == -EMSGSIZE) {
        cd_events__fail(c, WS_MESSAGE_TOO_BIG, "message too big");
        return;
    }
    if (rc < 0) {
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "invalid Socket.IO packet");
        return;
    }
    int nsp = nsp_index(c->st->conf, &p);
    cd_events_socket *s = nsp < 0 ? NULL : find_socket(c, nsp);
    if (p.type == CD_SIO_BINARY_EVENT || p.type == CD_SIO_BINARY_ACK) {
        /* Its attachments come next whatever becomes of it. */
        int ev = p.type == CD_SIO_BINARY_EVENT;
        if (p.nattach && start_partial(c, msg, len, &p, s && (ev || s->api)) < 0)
            return;
        if (!p.nattach && s && ev)
            on_event(s, &p, &(cd_events_packet){0});
        else if (!p.nattach && s && s->api)
            cd_events__sio_ack_in(s, &p, &(cd_events_packet){0});
        return;
    }
    if (nsp < 0) {
        /* Packets to namespaces that do not exist are ignored. */
        if (p.type == CD_SIO_CONNECT)
            refuse_connect(c, &p, "Invalid namespace");
        return;
    }
    if (p.type == CD_SIO_CONNECT) {
        on_connect(c, &p, nsp);
        return;
    }
    if (!s)
        return; /* not connected there (any more): ignored, as Socket.IO does */
    switch (p.type) {
    case CD_SIO_DISCONNECT:
        /* The transport stays open (socket.io-client closes it itself when
         * its last socket goes). */
        socket_drop(s, "client namespace disconnect");
        break;
    case CD_SIO_EVENT:
        on_event(s, &p, NULL);
        break;
    default: /* ACK: an emitWithAck's answer, or nothing to match */
        if (s->api)
            cd_events__sio_ack_in(s, &p, NULL);
        break;
    }
}

void cd_events__on_binary(cd_events_client *c, const void *data, size_t len)
{
    struct cd_events_partial *pp = c->partial;
    if (!pp) {
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "a binary message with no packet awaiting it");
        return;
    }
    if (len > (size_t)c->st->conf->max_message_size - pp->total) {
        cd_events__fail(c, WS_MESSAGE_TOO_BIG, "message too big");
        return;
    }
    if (!(pp->attach[pp->have] = malloc(len + 1))) {
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    if (len) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(pp->attach[pp->have], data, len);
    pp->attach_len[pp->have++] = len;
    pp->total += len;
    if (pp->have == pp->want)
        finish_partial(c);
}

void cd_events__sockets_close(cd_events_client *c)
{
    partial_free(c);
    cd_events__sio_client_gone(c);
    while (c->sockets) {
        cd_events_socket *s = c->sockets;
        c->st->nsp_sockets[s->nsp]--;
        c->sockets = s->next;
        socket_free(s, c->close_reason ? c->close_reason : "transport close");
    }
    c->nsockets = 0;
}

void cd_events__socket_disconnect(cd_events_socket *s, int close_transport)
{
    cd_events_client *c = s->client;
    send_sio(s, '1', "", 0);
    if (c->phase == CD_EV_CLOSING)
        return; /* the send failed (queue full): s went with the client's sockets */
    socket_drop(s, "server namespace disconnect");
    if (close_transport) {
        if (!c->close_reason)
            c->close_reason = "forced server close"; /* what its other sockets hear */
        cd_events__fail(c, CD_WS_NORMAL, "");
    }
}
