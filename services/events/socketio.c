/*
 * socketio.c - Socket.IO v5 on top of a client's Engine.IO session
 * (worker, loop thread): CONNECT and DISCONNECT of namespaces (one
 * cd_events_socket each), events, and the acks the service sends back.
 *
 * Rooms.  A client joins and leaves rooms with the events `join` and
 * `leave` (argument: the room name, at most CD_EVENTS_ROOM_MAX bytes;
 * acknowledged, or refused with an error ack, when the client asks for an
 * ack).  Any other event a client emits goes to every other member of
 * every room it is in, each member once, on whichever worker it is
 * (broadcast.c): the natural reading of
 * `socket.rooms.forEach(r => socket.to(r).emit(...))`, without server code.
 * `whoami` (with an ack) answers {"sid", "worker", "rooms"}: which worker
 * slot serves the client.  Acks of the service's events carry one object
 * with "ok" (and "error" when false).
 *
 * Not supported: binary attachments (packets 5 and 6: closed with 1003),
 * namespaces other than "/" (CONNECT_ERROR "Invalid namespace").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/json.h"
#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/events.h"

/* The namespace prefix of a socket's packets: "" for "/", else "/chat,". */
static const char *nsp_name(const cd_events_socket *s)
{
    const cd_events_conf *conf = s->client->st->conf;
    return conf->nnamespaces ? conf->namespaces[s->nsp] : "/";
}

/* Queues "4<type><nsp,><rest>" to the socket's client. */
static void send_sio(cd_events_socket *s, char type, const char *rest, size_t len)
{
    const char *nsp = nsp_name(s);
    size_t nl = strcmp(nsp, "/") == 0 ? 0 : strlen(nsp);
    char stackbuf[256];
    size_t cap = 2 + nl + 1 + len;
    char *buf = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (!buf) {
        cd_events__fail(s->client, CD_WS_INTERNAL_ERROR, "out of memory");
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
    cd_events__send(s->client, buf, o);
    if (buf != stackbuf)
        free(buf);
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

/* join / leave: the first argument is the room name.  With an ack id the
 * client always gets an answer: {"ok":true,"room":<its own token>} or
 * {"ok":false,"error":...}. */
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
    if (err) {
        send_ack_error(c, p->ack_id, err);
        return;
    }
    /* Echo the client's own JSON token: no need to re-escape it.  At most
     * 6 bytes per decoded byte plus the quotes; sized exactly here. */
    static const char head[] = "{\"ok\":true,\"room\":";
    size_t tl = (size_t)(tok_end - a), al = sizeof head - 1 + tl + 1;
    char *ack = malloc(al);
    if (!ack) {
        cd_events__fail(c->client, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    memcpy(ack, head, sizeof head - 1);
    memcpy(ack + sizeof head - 1, a, tl);
    ack[al - 1] = '}';
    send_ack(c, p->ack_id, ack, al);
    free(ack);
}

/* Sends the event to the socket's rooms: "42<nsp,>[" name [, args] "]",
 * the client's own bytes minus its ack id.  Returns 0 or -errno. */
static int relay_event(cd_events_socket *s, const cd_sio_packet *p)
{
    const char *nsp = nsp_name(s);
    size_t nl = strcmp(nsp, "/") == 0 ? 0 : strlen(nsp) + 1;
    size_t len = 3 + nl + p->name_len + 1 + p->args_len + 1;
    char *pkt = malloc(len);
    const char **rooms = malloc(s->nrooms * sizeof *rooms + 1);
    size_t *lens = malloc(s->nrooms * sizeof *lens + 1);
    int rc = -ENOMEM;
    if (!pkt || !rooms || !lens)
        goto out;
    size_t o = 0;
    memcpy(pkt + o, "42", 2), o += 2;
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
    for (size_t i = 0; i < s->nrooms; i++) {
        rooms[i] = s->rooms[i]->room->name;
        lens[i] = s->rooms[i]->room->len;
    }
    const char *except[1] = {s->sid};
    size_t except_len[1] = {strlen(s->sid)};
    cd_events_target t = {.nsp = s->nsp, .nrooms = s->nrooms, .rooms = rooms, .room_lens = lens,
                          .nexcept = 1, .except = except, .except_lens = except_len};
    cd_events_packet pk = {.text = pkt, .text_len = o};
    rc = cd_events__broadcast(s->client->st, &t, &pk);
out:
    free(pkt);
    free(rooms);
    free(lens);
    return rc;
}

static void on_event(cd_events_socket *c, const cd_sio_packet *p)
{
    char name[16];
    /* Names longer than the buffer are not ours: they fail to decode. */
    int nl = cd_events__json_string(p->name, p->name + p->name_len, name, sizeof name, NULL);
    if (nl >= 0 && (strcmp(name, "join") == 0 || strcmp(name, "leave") == 0)) {
        on_room_event(c, name[0] == 'j', p);
        return;
    }
    if (nl >= 0 && strcmp(name, "whoami") == 0) {
        char ack[128];
        snprintf(ack, sizeof ack, "{\"sid\":\"%s\",\"worker\":%d,\"rooms\":%zu}", c->sid, c->client->st->svc->slot,
                 c->nrooms);
        if (p->ack_id >= 0)
            send_ack_str(c, p->ack_id, ack);
        return;
    }
    int rc = 0;
    if (nl >= 0 && cd_events__reserved_event(name)) {
        rc = -EPERM;
        cd_debug("events: client %s: reserved event name %s not relayed", c->sid, name);
    } else if (c->nrooms && (rc = relay_event(c, p)) < 0) {
        cd_info("events: client %s: broadcast dropped: %s", c->sid, strerror(-rc));
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
    char ack[128];
    snprintf(ack, sizeof ack, "{\"ok\":true,\"rooms\":%zu}", c->nrooms);
    send_ack_str(c, p->ack_id, ack);
}

/* CONNECT to a namespace that does not exist: refused as Socket.IO does,
 * with the namespace echoed whole (cutting it could split a UTF-8
 * sequence, and the client must recognise its own). */
static void refuse_namespace(cd_events_client *c, const cd_sio_packet *p)
{
    static const char tail[] = ",{\"message\":\"Invalid namespace\"}";
    size_t n = 2 + p->nsp_len + sizeof tail - 1;
    char *buf = malloc(n);
    if (!buf) {
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    memcpy(buf, "44", 2);
    memcpy(buf + 2, p->nsp, p->nsp_len);
    memcpy(buf + 2 + p->nsp_len, tail, sizeof tail - 1);
    cd_events__send(c, buf, n);
    free(buf);
}

/* The index of the packet's namespace, or -1 when it does not exist. */
static int nsp_index(const cd_events_conf *conf, const cd_sio_packet *p)
{
    if (!conf->nnamespaces)
        return p->nsp_len == 1 && p->nsp[0] == '/' ? 0 : -1;
    for (size_t i = 0; i < conf->nnamespaces; i++)
        if (strlen(conf->namespaces[i]) == p->nsp_len && memcmp(conf->namespaces[i], p->nsp, p->nsp_len) == 0)
            return (int)i;
    return -1;
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

static void socket_free(cd_events_socket *s)
{
    cd_events__room_leave_all(s);
    free(s->rooms);
    free(s);
}

/* Takes s out of service: it leaves its rooms and is freed. */
static void socket_drop(cd_events_socket *s)
{
    s->client->st->nsp_sockets[s->nsp]--;
    socket_unlink(s);
    socket_free(s);
}

static void on_connect(cd_events_client *c, const cd_sio_packet *p, int nsp)
{
    cd_events_state *st = c->st;
    if (find_socket(c, nsp))
        return; /* already connected to it: nothing changes */
    cd_events_socket *s = calloc(1, sizeof *s);
    if (!s || !(s->rooms = calloc((size_t)st->conf->max_rooms + 2, sizeof *s->rooms))) {
        free(s);
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    (void)p;
    s->client = c;
    s->nsp = nsp;
    cd_events__random_id(s->sid);
    s->next = c->sockets;
    c->sockets = s;
    c->nsockets++;
    st->nsp_sockets[nsp]++;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "{\"sid\":\"%s\"}", s->sid);
    send_sio(s, '0', buf, (size_t)n);
}

void cd_events__on_socketio(cd_events_client *c, const char *msg, size_t len)
{
    cd_sio_packet p;
    int rc = cd_events__sio_parse(msg, len, &p);
    if (rc == -ENOTSUP) {
        cd_events__fail(c, CD_WS_UNSUPPORTED_DATA, "binary attachments are not supported");
        return;
    }
    if (rc < 0) {
        cd_events__fail(c, CD_WS_PROTOCOL_ERROR, "invalid Socket.IO packet");
        return;
    }
    int nsp = nsp_index(c->st->conf, &p);
    if (nsp < 0) {
        /* Packets to namespaces that do not exist are ignored. */
        if (p.type == CD_SIO_CONNECT)
            refuse_namespace(c, &p);
        return;
    }
    if (p.type == CD_SIO_CONNECT) {
        on_connect(c, &p, nsp);
        return;
    }
    cd_events_socket *s = find_socket(c, nsp);
    if (!s)
        return; /* not connected there (any more): ignored, as Socket.IO does */
    switch (p.type) {
    case CD_SIO_DISCONNECT:
        /* The transport stays open (socket.io-client closes it itself when
         * its last socket goes). */
        socket_drop(s);
        break;
    case CD_SIO_EVENT:
        on_event(s, &p);
        break;
    default: /* ACK: we never ask clients for acks, so there is nothing to match */
        break;
    }
}

void cd_events__on_binary(cd_events_client *c, const void *data, size_t len)
{
    (void)data;
    (void)len;
    cd_events__fail(c, CD_WS_UNSUPPORTED_DATA, "binary attachments are not supported");
}

void cd_events__sockets_close(cd_events_client *c)
{
    while (c->sockets) {
        cd_events_socket *s = c->sockets;
        c->st->nsp_sockets[s->nsp]--;
        c->sockets = s->next;
        socket_free(s);
    }
    c->nsockets = 0;
}

void cd_events__socket_disconnect(cd_events_socket *s, int close_transport)
{
    cd_events_client *c = s->client;
    send_sio(s, '1', "", 0);
    if (c->phase == CD_EV_CLOSING)
        return; /* the send failed (queue full): s went with the client's sockets */
    socket_drop(s);
    if (close_transport)
        cd_events__fail(c, CD_WS_NORMAL, "");
}
