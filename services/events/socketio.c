/*
 * socketio.c - Socket.IO v5 on top of a client's Engine.IO session
 * (worker, loop thread): CONNECT and DISCONNECT of the main namespace,
 * events, and the acks the service sends back.
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

/* Queues the ack "43<id>[<json_args>]".  Sized to what it carries, so no
 * ack is ever dropped for its length (cd_events__send still applies
 * max_send_queue). */
static void send_ack(cd_events_client *c, long long id, const char *json_args, size_t len)
{
    char stackbuf[256];
    size_t cap = 2 + 20 + 1 + len + 1 + 1;
    char *buf = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (!buf) {
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    int n = snprintf(buf, cap, "43%lld[%.*s]", id, (int)len, json_args);
    if (n > 0 && (size_t)n < cap)
        cd_events__send(c, buf, (size_t)n);
    if (buf != stackbuf)
        free(buf);
}

/* send_ack for a NUL-terminated json_args. */
static void send_ack_str(cd_events_client *c, long long id, const char *json_args)
{
    send_ack(c, id, json_args, strlen(json_args));
}

/* {"ok":false,"error":<why>}. */
static void send_ack_error(cd_events_client *c, long long id, const char *why)
{
    char esc[128], ack[160];
    cd_json_escape(esc, sizeof esc, why, strlen(why));
    snprintf(ack, sizeof ack, "{\"ok\":false,\"error\":\"%s\"}", esc);
    send_ack_str(c, id, ack);
}

/* join / leave: the first argument is the room name.  With an ack id the
 * client always gets an answer: {"ok":true,"room":<its own token>} or
 * {"ok":false,"error":...}. */
static void on_room_event(cd_events_client *c, int join, const cd_sio_packet *p)
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
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return;
    }
    memcpy(ack, head, sizeof head - 1);
    memcpy(ack + sizeof head - 1, a, tl);
    ack[al - 1] = '}';
    send_ack(c, p->ack_id, ack, al);
    free(ack);
}

/* Sends the event to the client's rooms: "42[" name [, args] "]", the
 * client's own bytes minus its ack id.  Returns 0 or -errno. */
static int relay_event(cd_events_client *c, const cd_sio_packet *p)
{
    size_t len = 3 + p->name_len + 1 + p->args_len + 1;
    char *pkt = malloc(len);
    const char *rooms[1024];
    size_t lens[1024];
    if (!pkt)
        return -ENOMEM;
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
    int rc = cd_events__broadcast(c->st, c->sid, rooms, lens, c->nrooms, pkt, o);
    free(pkt);
    return rc;
}

static void on_event(cd_events_client *c, const cd_sio_packet *p)
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
        snprintf(ack, sizeof ack, "{\"sid\":\"%s\",\"worker\":%d,\"rooms\":%zu}", c->sid, c->st->svc->slot,
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

/* CONNECT to a namespace other than "/": refused as Socket.IO does, with
 * the namespace echoed whole (cutting it could split a UTF-8 sequence, and
 * the client must recognise its own). */
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
    if (p.nsp_len != 1) {
        /* Only the main namespace exists: packets to others are ignored. */
        if (p.type == CD_SIO_CONNECT)
            refuse_namespace(c, &p);
        return;
    }
    switch (p.type) {
    case CD_SIO_CONNECT: {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "40{\"sid\":\"%s\"}", c->sid);
        c->phase = CD_EV_SOCKET;
        cd_events__send(c, buf, (size_t)n);
        break;
    }
    case CD_SIO_DISCONNECT:
        /* The transport stays open (socket.io-client closes it itself when
         * its last socket goes); the socket's rooms go now. */
        cd_events__room_leave_all(c);
        c->phase = CD_EV_OPEN;
        break;
    case CD_SIO_EVENT:
        if (c->phase == CD_EV_SOCKET)
            on_event(c, &p);
        break;
    default: /* ACK: we never ask clients for acks, so there is nothing to match */
        break;
    }
}
