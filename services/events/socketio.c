/*
 * socketio.c - Socket.IO v5 on top of a client's Engine.IO session
 * (worker, loop thread): CONNECT and DISCONNECT of namespaces (one
 * cd_events_socket each), events and binary events, and the acks the
 * service sends back.
 *
 * Namespaces.  A client connects to any namespace of the config (CONNECT
 * to another gets CONNECT_ERROR "Invalid namespace"); with auth = jwt its
 * CONNECT payload carries the token (auth.c), refused with CONNECT_ERROR
 * and the reason.  A socket is in rooms of its own (rooms.c): "" (the
 * whole namespace), its sid and, authenticated, "user:<sub>".  A client's
 * DISCONNECT of one namespace leaves its others connected.
 *
 * Rooms.  A client joins and leaves rooms with the events `join` and
 * `leave` (argument: the room name, at most CD_EVENTS_ROOM_MAX bytes;
 * acknowledged, or refused with an error ack, when the client asks for an
 * ack).  Refused: "", names starting with "user:", names shaped like a
 * socket sid (CD_EVENTS_SID_LEN base64url characters: a sid room may be on
 * any worker, so "is it a live sid here" would not be enough) and, with
 * auth, rooms the token's rooms claim does not allow.  Any other event a
 * client emits goes to every other member of every room it joined (not its
 * own rooms), each member once, on whichever worker it is (broadcast.c):
 * the natural reading of `socket.rooms.forEach(r => socket.to(r).emit())`,
 * without server code.  `whoami` (with an ack) answers {"sid", "worker",
 * "rooms" (how many joined), "user", "namespace"}.  Acks of the service's
 * events carry one object with "ok" (and "error" when false).
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

/* Queues "4<type><nsp,><rest>" to client c (no prefix for "/"). */
static void send_nsp(cd_events_client *c, const char *nsp, size_t nsp_len, char type, const char *rest,
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
    send_nsp(s->client, nsp, strlen(nsp), type, rest, len);
}

/* Queues the ack "43<nsp,><id>[<json_args>]".  Sized to what it carries,
 * so no ack is ever dropped for its length (cd_events__send still applies
 * max_send_queue). */
static void send_ack(cd_events_socket *s, long long id, const char *json_args, size_t len)
{
    char stackbuf[256];
    size_t cap = 20 + 1 + len + 1 + 1;
    char *buf = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (!buf) {
        cd_events__fail(s->client, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    int n = snprintf(buf, cap, "%lld[%.*s]", id, (int)len, json_args);
    if (n > 0 && (size_t)n < cap)
        send_sio(s, '3', buf, (size_t)n);
    if (buf != stackbuf)
        free(buf);
}

/* send_ack for a NUL-terminated json_args. */
static void send_ack_str(cd_events_socket *c, long long id, const char *json_args)
{
    send_ack(c, id, json_args, strlen(json_args));
}

/* {"ok":false,"error":<why>}. */
static void send_ack_error(cd_events_socket *c, long long id, const char *why)
{
    char esc[128], ack[160];
    cd_json_escape(esc, sizeof esc, why, strlen(why));
    snprintf(ack, sizeof ack, "{\"ok\":false,\"error\":\"%s\"}", esc);
    send_ack_str(c, id, ack);
}

/* Whether name is shaped like a socket sid (cd_events__random_id's). */
static int sid_shaped(const char *name, size_t len)
{
    if (len != CD_EVENTS_SID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_'))
            return 0;
    }
    return 1;
}

int cd_events__room_reserved(const char *name, size_t len)
{
    return len == 0 || (len >= 5 && memcmp(name, "user:", 5) == 0) || sid_shaped(name, len);
}

/* Why the client may not join (or leave) room name, or NULL. */
static const char *room_refused(const cd_events_socket *s, int join, const char *name, size_t len)
{
    if (cd_events__room_reserved(name, len))
        return "forbidden room";
    if (join && s->identity && !cd_events__room_allowed(s->identity, name))
        return "forbidden room";
    return NULL;
}

/* {"ok":true,"room":<the client's own JSON token>}: no need to re-escape
 * it; sized to it. */
static void send_room_ack(cd_events_socket *c, long long id, const char *tok, size_t tl)
{
    static const char head[] = "{\"ok\":true,\"room\":";
    size_t al = sizeof head - 1 + tl + 1;
    char *ack = malloc(al);
    if (!ack) {
        cd_events__fail(c->client, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    memcpy(ack, head, sizeof head - 1);
    memcpy(ack + sizeof head - 1, tok, tl);
    ack[al - 1] = '}';
    send_ack(c, id, ack, al);
    free(ack);
}

/* join / leave: the first argument is the room name.  With an ack id the
 * client always gets an answer. */
static void on_room_event(cd_events_socket *c, int join, const cd_sio_packet *p)
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
    } else if ((err = room_refused(c, join, name, (size_t)len)) != NULL) {
        cd_debug("events: socket %s: %s %s refused", c->sid, join ? "join" : "leave", name);
    } else if (join) {
        int rc = cd_events__room_join(c, name, (size_t)len);
        if (rc == -ENOSPC)
            err = "too many rooms (max_rooms)";
        else if (rc < 0)
            err = "out of memory";
    } else {
        cd_events__room_leave(c, name, (size_t)len);
    }
    if (p->ack_id < 0)
        return;
    if (err)
        send_ack_error(c, p->ack_id, err);
    else
        send_room_ack(c, p->ack_id, a, (size_t)(tok_end - a));
}

/* Sends the event to the rooms the socket joined, except itself:
 * "42<nsp,>[" name [, args] "]", or "45<n>-<nsp,>[...]" with attachments,
 * the client's own bytes minus its ack id.  Returns 0 or -errno. */
static int relay_event(cd_events_socket *s, const cd_sio_packet *p, const cd_events_packet *att)
{
    const char *nsp = nsp_name(s);
    size_t nl = strcmp(nsp, "/") == 0 ? 0 : strlen(nsp) + 1;
    size_t nj = s->nrooms - s->nown;
    size_t len = 2 + 3 + nl + p->name_len + 1 + p->args_len + 1 + 1;
    char *pkt = malloc(len);
    const char **rooms = malloc(nj * sizeof *rooms + 1);
    size_t *lens = malloc(nj * sizeof *lens + 1);
    int rc = -ENOMEM;
    if (!pkt || !rooms || !lens)
        goto out;
    size_t o = att ? (size_t)snprintf(pkt, len, "45%zu-", att->nattach) : (memcpy(pkt, "42", 2), 2);
    if (nl) {
        memcpy(pkt + o, nsp, nl - 1), o += nl - 1;
        pkt[o++] = ',';
    }
    pkt[o++] = '[';
    memcpy(pkt + o, p->name, p->name_len), o += p->name_len;
    if (p->args_len) {
        pkt[o++] = ',';
        memcpy(pkt + o, p->args, p->args_len), o += p->args_len;
    }
    pkt[o++] = ']';
    for (size_t i = 0; i < nj; i++) {
        rooms[i] = s->rooms[s->nown + i]->room->name;
        lens[i] = s->rooms[s->nown + i]->room->len;
    }
    const char *except[1] = {s->sid};
    size_t except_len[1] = {strlen(s->sid)};
    cd_events_target t = {.nsp = s->nsp, .nrooms = nj, .rooms = rooms, .room_lens = lens,
                          .nexcept = 1, .except = except, .except_lens = except_len};
    cd_events_packet pk = {.text = pkt, .text_len = o};
    if (att)
        pk.nattach = att->nattach, pk.attach = att->attach, pk.attach_len = att->attach_len;
    rc = cd_events__broadcast(s->client->st, &t, &pk);
out:
    free(pkt);
    free(rooms);
    free(lens);
    return rc;
}

/* whoami's ack: {"sid","worker","rooms","user","namespace"}. */
static void on_whoami(cd_events_socket *s, long long ack_id)
{
    if (ack_id < 0)
        return;
    const cd_events_identity *id = s->identity;
    const char *nsp = nsp_name(s);
    size_t ul = id && id->user ? strlen(id->user) : 0, nl = strlen(nsp);
    size_t cap = 128 + 6 * ul + 6 * nl;
    char *ack = malloc(cap), *user = malloc(6 * ul + 1), *ns = malloc(6 * nl + 1);
    if (ack && user && ns) {
        cd_json_escape(user, 6 * ul + 1, ul ? id->user : "", ul);
        cd_json_escape(ns, 6 * nl + 1, nsp, nl);
        snprintf(ack, cap, "{\"sid\":\"%s\",\"worker\":%d,\"rooms\":%zu,\"user\":%s%s%s,\"namespace\":\"%s\"}",
                 s->sid, s->client->st->svc->slot, s->nrooms - s->nown, ul ? "\"" : "", ul ? user : "null",
                 ul ? "\"" : "", ns);
        send_ack_str(s, ack_id, ack);
    } else {
        cd_events__fail(s->client, CD_WS_INTERNAL_ERROR, "out of memory");
    }
    free(ack);
    free(user);
    free(ns);
}

/* An EVENT, or a BINARY_EVENT with its attachments (att). */
static void on_event(cd_events_socket *c, const cd_sio_packet *p, const cd_events_packet *att)
{
    if (c->api && cd_events__sio_event(c, p, att))
        return; /* its namespace's handler has it (and c may be gone) */
    char name[16];
    /* Names longer than the buffer are not ours: they fail to decode. */
    int nl = cd_events__json_string(p->name, p->name + p->name_len, name, sizeof name, NULL);
    if (nl >= 0 && (strcmp(name, "join") == 0 || strcmp(name, "leave") == 0)) {
        on_room_event(c, name[0] == 'j', p);
        return;
    }
    if (nl >= 0 && strcmp(name, "whoami") == 0) {
        on_whoami(c, p->ack_id);
        return;
    }
    int rc = 0;
    size_t nj = c->nrooms - c->nown;
    if (nl >= 0 && cd_events__reserved_event(name)) {
        rc = -EPERM;
        cd_debug("events: socket %s: reserved event name %s not relayed", c->sid, name);
    } else if (nj && (rc = relay_event(c, p, att)) < 0) {
        cd_info("events: socket %s: broadcast dropped: %s", c->sid, strerror(-rc));
    }
    if (p->ack_id < 0)
        return;
    if (rc < 0) {
        send_ack_error(c, p->ack_id,
                       rc == -EPERM    ? "reserved event name"
                       : rc == -EAGAIN ? "busy, try again"
                                       : "broadcast failed");
        return;
    }
    char ack[64];
    snprintf(ack, sizeof ack, "{\"ok\":true,\"rooms\":%zu}", nj);
    send_ack_str(c, p->ack_id, ack);
}

/* CONNECT_ERROR "44<nsp,>{"message":<why>}", the namespace echoed whole
 * (cutting it could split a UTF-8 sequence, and the client must recognise
 * its own). */
static void refuse_connect(cd_events_client *c, const cd_sio_packet *p, const char *why)
{
    char msg[128];
    int n = snprintf(msg, sizeof msg, "{\"message\":\"%s\"}", why);
    send_nsp(c, p->nsp, p->nsp_len, '4', msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : strlen(msg));
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
    send_nsp(c, name, strlen(name), '4', msg, o);
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
