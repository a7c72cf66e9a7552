/*
 * sio_emit.c - what a handler sends (worker, loop thread): an event to
 * one socket (emit, emitWithAck), an answer to a client's ack, a broadcast
 * and socketsJoin/Leave/disconnectSockets to sockets on every worker (one
 * bus message each, broadcast.c); and the packets they carry, built by
 * cd_events__sio_build (pure: no socket, no loop, any process).
 *
 * A handler gives arguments as the JSON array text of socket.io's parser
 * (clusterd/socketio.h: attachments referenced by placeholders), so the
 * packet is the array's inside after the event name: "42/chat,[\"ev\",1,2]",
 * "451-[\"ev\",{\"_placeholder\":true,\"num\":0}]", "43/chat,7[...]",
 * "461-7[...]".  The JSON is checked to be one well-formed array, and the
 * whole packet is then parsed as a client's would be
 * (cd_events__sio_parse: shape, nesting, UTF-8, placeholders numbering
 * the attachments), so a handler's mistake is -EINVAL here, never a
 * packet that would make clients drop their connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/json.h"
#include "services/events/events.h"
#include "services/events/sio_api.h"

/* The inside of the arguments' array (after '[', before ']').  0, or
 * -EINVAL when args->json is not one JSON array. */
static int args_inner(const cd_sio_args *a, const char **in, size_t *inlen)
{
    *in = "";
    *inlen = 0;
    if (!a || !a->json || !a->json_len)
        return 0;
    const char *end = a->json + a->json_len;
    const char *p = cd_events__json_ws(a->json, end);
    if (p == end || *p != '[')
        return -EINVAL;
    const char *v = cd_events__json_skip(p, end, CD_EVENTS_JSON_DEPTH);
    if (!v || cd_events__json_ws(v, end) != end)
        return -EINVAL;
    const char *first = cd_events__json_ws(p + 1, v - 1); /* v - 1 is its ']' */
    *in = first;
    *inlen = (size_t)(v - 1 - first);
    return 0;
}

/* The event name as a JSON string token ("..."), malloc'd, or NULL. */
static char *name_token(const char *event, size_t *len)
{
    size_t el = strlen(event), cap = 6 * el + 3;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    t[0] = '"';
    size_t o = 1 + cd_json_escape(t + 1, cap - 2, event, el);
    t[o++] = '"';
    t[o] = '\0';
    *len = o;
    return t;
}

int cd_events__sio_build(int ack, const char *nsp, long long id, const char *event, const cd_sio_args *args,
                         char **out, size_t *len)
{
    const char *in;
    size_t inlen, namelen = 0, nbin = args ? args->nbin : 0;
    *out = NULL;
    *len = 0;
    if (nbin > CD_EVENTS_ATTACH_MAX)
        return -EMSGSIZE;
    if ((nbin && (!args->bin || !args->bin_len)) || args_inner(args, &in, &inlen) < 0)
        return -EINVAL;
    if (!ack && (!event || !event[0] || cd_events__reserved_event(event)))
        return -EINVAL;
    char *name = ack ? NULL : name_token(event, &namelen);
    size_t nl = strcmp(nsp, "/") == 0 ? 0 : strlen(nsp);
    size_t cap = 2 + 24 + nl + 1 + 24 + 1 + namelen + 1 + inlen + 2;
    char *buf = (ack || name) ? malloc(cap) : NULL;
    if (!buf) {
        free(name);
        return -ENOMEM;
    }
    size_t o = 0;
    buf[o++] = '4';
    buf[o++] = ack ? (nbin ? '6' : '3') : (nbin ? '5' : '2');
    if (nbin)
        o += (size_t)snprintf(buf + o, cap - o, "%zu-", nbin);
    if (nl) {
        memcpy(buf + o, nsp, nl), o += nl;
        buf[o++] = ',';
    }
    if (id >= 0)
        o += (size_t)snprintf(buf + o, cap - o, "%lld", id);
    buf[o++] = '[';
    if (name) {
        memcpy(buf + o, name, namelen), o += namelen;
        if (inlen)
            buf[o++] = ',';
    }
    memcpy(buf + o, in, inlen), o += inlen;
    buf[o++] = ']';
    free(name);
    cd_sio_packet p;
    int rc = cd_events__sio_parse(buf + 1, o - 1, &p);
    if (rc < 0 || p.nattach != nbin) {
        free(buf);
        return rc == -EMSGSIZE ? rc : -EINVAL;
    }
    *out = buf;
    *len = o;
    return 0;
}

/* ---- to sockets on every worker (the bus) ---- */

/* A list of names with their lengths (arrays in *lens, to free). */
static int names(const char *const *in, size_t n, size_t **lens)
{
    *lens = NULL;
    if (!n)
        return 0;
    if (!in || !(*lens = malloc(n * sizeof **lens)))
        return in ? -ENOMEM : -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!in[i] || ((*lens)[i] = strlen(in[i])) > CD_EVENTS_ROOM_MAX)
            return -EINVAL;
    return 0;
}

/* Sends op to the target's sockets of nsp on every worker. */
static int srv_send(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const cd_events_bus_op *op)
{
    int i = nsp ? cd_events__nsp_index(srv->st->conf, nsp, strlen(nsp)) : -1;
    if (i < 0)
        return -ENOENT;
    static const cd_sio_target all = {0};
    if (!to)
        to = &all;
    size_t *rl, *el = NULL;
    int rc = names(to->rooms, to->nrooms, &rl);
    if (rc == 0)
        rc = names(to->except, to->nexcept, &el);
    if (rc == 0) {
        cd_events_target t = {.nsp = i, .nrooms = to->nrooms, .rooms = to->rooms, .room_lens = rl,
                              .nexcept = to->nexcept, .except = to->except, .except_lens = el};
        rc = cd_events__bus_send(srv->st, &t, op);
    }
    free(rl);
    free(el);
    return rc;
}

int cd_events__sio_broadcast(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *event,
                         const cd_sio_args *args)
{
    char *text;
    size_t len;
    if (!nsp || cd_events__nsp_index(srv->st->conf, nsp, strlen(nsp)) < 0)
        return -ENOENT;
    int rc = cd_events__sio_build(0, nsp, -1, event, args, &text, &len);
    if (rc < 0)
        return rc;
    cd_events_packet pk = {.text = text, .text_len = len};
    if (args && args->nbin)
        pk.nattach = args->nbin, pk.attach = (const char *const *)args->bin, pk.attach_len = args->bin_len;
    cd_events_bus_op op = {.op = CD_EVENTS_BUS_PACKET, .packet = &pk};
    rc = srv_send(srv, nsp, to, &op);
    free(text);
    return rc;
}

static int srv_rooms_op(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room, int what)
{
    size_t rl = room ? strlen(room) : 0;
    if (!room || rl > CD_EVENTS_ROOM_MAX || cd_events__room_reserved(room, rl))
        return -EINVAL;
    cd_events_bus_op op = {.op = what, .room = room, .room_len = rl};
    return srv_send(srv, nsp, to, &op);
}

int cd_events__sio_sockets_join(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room)
{
    return srv_rooms_op(srv, nsp, to, room, CD_EVENTS_BUS_JOIN);
}

int cd_events__sio_sockets_leave(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room)
{
    return srv_rooms_op(srv, nsp, to, room, CD_EVENTS_BUS_LEAVE);
}

int cd_events__sio_sockets_disconnect(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, int close_transport)
{
    cd_events_bus_op op = {.op = CD_EVENTS_BUS_DISCONNECT, .close = close_transport != 0};
    return srv_send(srv, nsp, to, &op);
}


/* Builds and queues an event (id >= 0: asking for an ack) to h's socket. */
static int send_event(cd_sio_socket *h, long long id, const char *event, const cd_sio_args *args)
{
    char *text;
    size_t len;
    int rc = cd_events__sio_build(0, cd_events__sio_nsp(h), id, event, args, &text, &len);
    if (rc < 0)
        return rc;
    cd_events_packet pk = {.text = text, .text_len = len};
    if (args && args->nbin)
        pk.nattach = args->nbin, pk.attach = (const char *const *)args->bin, pk.attach_len = args->bin_len;
    cd_events__send_packet(h->sock->client, &pk);
    free(text);
    return 0;
}

int cd_events__sio_emit(cd_sio_socket *h, const char *event, const cd_sio_args *args)
{
    int rc = cd_events__sio_not_open(h);
    return rc < 0 ? rc : send_event(h, -1, event, args);
}

static void out_ack_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    out_ack *a = t->data;
    void (*cb)(void *, int, const cd_sio_args *) = a->cb;
    void *arg = a->arg;
    cd_events__sio_out_ack_free(a->h, a);
    cb(arg, -ETIMEDOUT, NULL);
}

int cd_events__sio_emit_with_ack(cd_sio_socket *h, const char *event, const cd_sio_args *args, double timeout,
                           void (*cb)(void *arg, int err, const cd_sio_args *reply), void *arg)
{
    int rc = cd_events__sio_not_open(h);
    if (rc < 0)
        return rc;
    if (!cb || !(timeout > 0))
        return -EINVAL;
    out_ack *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    *a = (out_ack){.h = h, .id = h->next_id, .cb = cb, .arg = arg, .next = h->acks};
    if ((rc = send_event(h, a->id, event, args)) < 0) {
        free(a);
        return rc;
    }
    /* Linked after the send: a send that closes the client leaves h GONE,
     * and the drain then fails this ack with -ENOTCONN from the loop. */
    h->next_id = h->next_id == (1LL << 53) ? 0 : h->next_id + 1;
    if (h->acks)
        h->acks->prev = a;
    h->acks = a;
    ev_timer_init(&a->timer, out_ack_timeout, timeout, 0.);
    a->timer.data = a;
    ev_timer_start(h->srv->st->svc->loop, &a->timer);
    return 0;
}


int cd_events__sio_ack_send(cd_sio_ack *a, const cd_sio_args *reply)
{
    cd_sio_socket *h = a->h;
    int rc = h && h->state == H_OPEN ? 0 : -ENOTCONN;
    char *text = NULL;
    size_t len;
    if (rc == 0)
        rc = cd_events__sio_build(1, cd_events__sio_nsp(h), a->id, NULL, reply, &text, &len);
    if (rc == 0) {
        cd_events_packet pk = {.text = text, .text_len = len};
        if (reply && reply->nbin)
            pk.nattach = reply->nbin, pk.attach = (const char *const *)reply->bin, pk.attach_len = reply->bin_len;
        cd_events__send_packet(h->sock->client, &pk);
    }
    free(text);
    cd_events__sio_ack_unlink(a);
    free(a);
    return rc;
}

