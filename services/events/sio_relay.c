/*
 * sio_relay.c - what the events service does with a client's events in a
 * namespace without handlers (worker, loop thread): the events `join`,
 * `leave` and `whoami`, and the relay of any other event to the sender's
 * rooms, with the service's own acks.  socketio.c hands events here when
 * no handler (sio_api.c) takes them.
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
    return cd_events__nsp_name(s->client->st->conf, s->nsp);
}

static void send_sio(cd_events_socket *s, char type, const char *rest, size_t len)
{
    const char *nsp = nsp_name(s);
    cd_events__send_nsp(s->client, nsp, strlen(nsp), type, rest, len);
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

void cd_events__relay(cd_events_socket *c, const cd_sio_packet *p, const cd_events_packet *att)
{
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

