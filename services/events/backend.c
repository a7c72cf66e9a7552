/*
 * backend.c - the backend endpoints of the events service (worker, loop
 * thread): POST {route}/publish, /join, /leave and /disconnect, socket.io's
 * io.to(..).emit, socketsJoin, socketsLeave and disconnectSockets for
 * servers that are not Node.
 *
 * Each endpoint takes one JSON body (cd_events__cmd_parse): a target
 * (namespace, rooms, sids, users, except) and what to do, and puts one
 * message on the bus (broadcast.c), so it acts on the sockets of every
 * worker.  The answer, 202 {"ok":true}, comes once the message is on the
 * bus, before any worker has applied it: delivery is best effort, as with
 * socket.io's adapters.
 *
 * With publish_token_file set, every request must carry
 * "Authorization: Bearer <token>"; the comparison takes the same time
 * whatever the bytes, so the token cannot be guessed byte by byte from
 * timings, and neither the expected nor the offered token is ever logged.
 * The token is checked before the body is parsed: a caller without it
 * learns nothing about the body's checks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clusterd/log.h"
#include "clusterd/request.h"
#include "services/events/events.h"

/* Whether a and b (b_len bytes) are equal, in a time that depends only on
 * b_len (the secret's) and not on where they differ. */
static int same_secret(const char *a, size_t a_len, const char *b, size_t b_len)
{
    unsigned char diff = a_len != b_len;
    for (size_t i = 0; i < b_len; i++)
        diff |= (unsigned char)((i < a_len ? (unsigned char)a[i] : 0) ^ (unsigned char)b[i]);
    return diff == 0;
}

/* Whether the request carries the token (when one is configured). */
static int authorized(const cd_events_conf *conf, cd_request *req)
{
    if (!conf->publish_token)
        return 1;
    const char *h = cd_request_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    size_t l = strlen(h);
    while (l && (h[l - 1] == ' ' || h[l - 1] == '\t'))
        l--;
    return same_secret(h, l, conf->publish_token, conf->publish_token_len);
}

static int command_of(const char *what)
{
    static const char *const names[] = {"publish", "join", "leave", "disconnect"};
    static const int cmds[] = {CD_EVENTS_CMD_PUBLISH, CD_EVENTS_CMD_JOIN, CD_EVENTS_CMD_LEAVE,
                               CD_EVENTS_CMD_DISCONNECT};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(what, names[i]) == 0)
            return cmds[i];
    return -1;
}

/* The status of a parse error. */
static int parse_status(int rc)
{
    switch (rc) {
    case -ENOENT:
        return 404;
    case -EMSGSIZE:
        return 413;
    case -ENOMEM:
        return 503;
    default:
        return 400;
    }
}

/* Sends the parsed command o; answers every case. */
static void dispatch(cd_events_state *st, cd_request *req, const char *what, cd_events_cmd *o)
{
    int nsp = cd_events__nsp_index(st->conf, o->nsp, o->nsp_len);
    if (nsp < 0) {
        cd_request_respond_error(req, 404, "unknown namespace");
        return;
    }
    cd_events_target t = {.nsp = nsp, .nrooms = o->nrooms, .rooms = o->rooms, .room_lens = o->room_lens,
                          .nexcept = o->nexcept, .except = o->except, .except_lens = o->except_lens};
    cd_events_packet p = {.text = o->packet, .text_len = o->packet_len};
    cd_events_bus_op op = {.op = o->cmd == CD_EVENTS_CMD_PUBLISH ? CD_EVENTS_BUS_PACKET
                                 : o->cmd == CD_EVENTS_CMD_JOIN  ? CD_EVENTS_BUS_JOIN
                                 : o->cmd == CD_EVENTS_CMD_LEAVE ? CD_EVENTS_BUS_LEAVE
                                                                 : CD_EVENTS_BUS_DISCONNECT,
                           .packet = &p, .room = o->room, .room_len = o->room_len, .close = o->close};
    int rc = cd_events__bus_send(st, &t, &op);
    if (rc == -EAGAIN || rc == -ENOMEM) {
        cd_request_respond_error(req, 503, "the bus is busy; try again");
        return;
    }
    if (rc == -EMSGSIZE) {
        cd_request_respond_error(req, 413, "the message is too large for the bus");
        return;
    }
    if (rc < 0) {
        cd_warn("events: %s to namespace %s failed: %s", what, st->conf->namespaces[nsp], strerror(-rc));
        cd_request_respond_error(req, 500, "internal error");
        return;
    }
    static const char ok[] = "{\"ok\":true}";
    cd_request_respond(req, 202, "application/json", ok, sizeof ok - 1);
}

void cd_events__backend(cd_events_state *st, cd_request *req, const char *what)
{
    int cmd = command_of(what);
    if (cmd < 0) {
        cd_request_respond_error(req, 404, "no such resource");
        return;
    }
    if (!authorized(st->conf, req)) {
        cd_debug("events: %s without the publish token refused", what);
        if (cd_response_header(req, "WWW-Authenticate", "Bearer") < 0) {
            cd_request_respond_error(req, 503, "out of memory");
            return;
        }
        cd_request_respond_error(req, 401, "a valid bearer token is required");
        return;
    }
    size_t blen = 0;
    const char *body = cd_request_body(req, &blen);
    if (!body) /* no body at all: still "not an object", without NULL + 0 */
        body = "", blen = 0;
    cd_events_cmd *o = malloc(sizeof *o);
    if (!o) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    const char *why = "bad body";
    int rc = cd_events__cmd_parse(cmd, body, blen, (size_t)st->conf->max_message_size, o, &why);
    if (rc < 0)
        cd_request_respond_error(req, parse_status(rc), why);
    else
        dispatch(st, req, what, o);
    cd_events__cmd_free(o);
    free(o);
}
