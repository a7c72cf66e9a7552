/*
 * broadcast.c - packets and commands to sockets on every worker (worker,
 * loop thread).
 *
 * Whatever addresses sockets by room rather than one at a time (an event a
 * client emits to its rooms, a backend's publish, join, leave or
 * disconnect) travels as one bus message (cd_service_publish, in the
 * format of bus_proto.c) that reaches this service on every worker, the
 * sender's included; each worker then applies it to its own sockets.  So
 * every worker sees the operations in the bus order, and none needs to
 * know where other sockets live.  With adapter = redis the sending worker
 * also hands the operation to the Redis adapter (redis_adapter.c), whose
 * messages from other hosts are applied here too (cd_events__bus_apply).
 * Delivery is best effort, as with
 * Socket.IO's adapters: a worker that falls a whole bus buffer behind
 * loses messages (see ipc/bus.h).
 *
 * Applying one: the sockets of the namespace in any target room (none
 * given: room "", which every socket of the namespace is in), each once,
 * minus those in any except room.  Each message takes a new mark: the
 * members of the except rooms get it first, then the target rooms' members
 * are walked, skipping marked sockets and marking the others as they are
 * acted on.  Acting (sending, joining, leaving, disconnecting) may free
 * the current member and its socket, never another member of the room
 * being walked, so saving the next member first is enough (events.h).  A
 * join prepends to its room's list, so even a join to the room being
 * walked never makes the walk see a socket twice.
 *
 * A packet is encoded once: the bus message carries its Engine.IO text
 * and attachments, and the first WebSocket recipient frames each of them
 * (cd_ws_frame); the others queue references to the same frames, which go
 * when the last recipient's socket has taken them.  Polling recipients
 * append the text to their encoded queue (polling.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/events.h"
#include "services/events/redis.h"

int cd_events__bus_send(cd_events_state *st, const cd_events_target *t, const cd_events_bus_op *op)
{
    const cd_events_conf *conf = st->conf;
    if (t->nsp < 0 || (size_t)t->nsp >= conf->nnamespaces)
        return -EINVAL;
    const char *nsp = conf->namespaces[t->nsp];
    long n = cd_events__bus_encode(NULL, 0, nsp, strlen(nsp), t, op);
    if (n < 0)
        return (int)n;
    char *buf = malloc((size_t)n);
    if (!buf)
        return -ENOMEM;
    n = cd_events__bus_encode(buf, (size_t)n, nsp, strlen(nsp), t, op);
    int rc = n < 0 ? (int)n : cd_service_publish(st->svc, buf, (size_t)n);
    free(buf);
    if (rc == 0 && st->redis) /* to the other hosts too (redis_adapter.c) */
        cd_events__redis_publish(st, t, op);
    return rc;
}

int cd_events__broadcast(cd_events_state *st, const cd_events_target *t, const cd_events_packet *p)
{
    cd_events_bus_op op = {.op = CD_EVENTS_BUS_PACKET, .packet = p};
    return cd_events__bus_send(st, t, &op);
}

/* What one message does to each socket it reaches. */
typedef struct apply {
    const cd_events_bus_msg *m;
    cd_events_packet packet;
    uint64_t mark;
    size_t refused; /* joins refused (max_rooms, memory) */
} apply;

static void act(apply *a, cd_events_socket *s)
{
    const cd_events_bus_msg *m = a->m;
    switch (m->op) {
    case CD_EVENTS_BUS_PACKET:
        cd_events__send_packet(s->client, &a->packet);
        break;
    case CD_EVENTS_BUS_JOIN:
        if (cd_events__room_join(s, m->room, m->room_len) < 0)
            a->refused++;
        break;
    case CD_EVENTS_BUS_LEAVE:
        cd_events__room_leave(s, m->room, m->room_len);
        break;
    case CD_EVENTS_BUS_DISCONNECT:
        cd_events__socket_disconnect(s, m->close);
        break;
    }
}

/* Acts on the unmarked members of room [name, len) of nsp (mark: nothing
 * but setting the mark). */
static void walk(cd_events_state *st, apply *a, int nsp, const char *name, size_t len, int mark_only)
{
    cd_events_room *r = cd_events__room_find(st, nsp, name, len);
    cd_events_member *mb = r ? r->members : NULL;
    while (mb) {
        cd_events_member *next = mb->next; /* acting on mb may free it (events.h) */
        cd_events_socket *s = mb->socket;
        if (s->mark != a->mark) {
            s->mark = a->mark;
            if (!mark_only)
                act(a, s);
        }
        mb = next;
    }
}

/* The attachments' pointers and lengths, in arrays (cd_events_packet's
 * shape).  0 or -ENOMEM; *ptrs and *lens to free. */
static int attachments(const cd_events_bus_msg *m, const char ***ptrs, size_t **lens)
{
    *ptrs = NULL;
    *lens = NULL;
    if (!m->nattach)
        return 0;
    *ptrs = malloc(m->nattach * sizeof **ptrs);
    *lens = malloc(m->nattach * sizeof **lens);
    if (!*ptrs || !*lens)
        return -ENOMEM;
    const unsigned char *cur = m->attach;
    for (size_t i = 0; i < m->nattach; i++)
        cd_events__bus_attach(&cur, &(*ptrs)[i], &(*lens)[i]);
    return 0;
}

/* Applies a decoded message to this worker's sockets of namespace nsp.
 * frames: 1 + nattach slots (zeroed) where the first WebSocket recipient
 * leaves the packet's frames for the others to share. */
static void apply_msg(cd_events_state *st, const cd_events_bus_msg *m, int nsp, const char **ptrs, size_t *lens,
                      cd_ws_frame **frames)
{
    apply a = {.m = m, .mark = ++st->mark,
               .packet = {.text = m->text, .text_len = m->text_len, .nattach = m->nattach, .attach = ptrs,
                          .attach_len = lens, .frames = frames}};
    const unsigned char *cur = m->except;
    const char *name;
    size_t nl;
    for (size_t i = 0; i < m->nexcept; i++) {
        cd_events__bus_name(&cur, &name, &nl);
        walk(st, &a, nsp, name, nl, 1);
    }
    if (!m->nrooms)
        walk(st, &a, nsp, "", 0, 0);
    cur = m->rooms;
    for (size_t i = 0; i < m->nrooms; i++) {
        cd_events__bus_name(&cur, &name, &nl);
        walk(st, &a, nsp, name, nl, 0);
    }
    if (a.refused)
        cd_info("events: join of a room of %zu bytes refused to %zu sockets (max_rooms or memory)", m->room_len,
                a.refused);
}

void cd_events__bus_apply(cd_events_state *st, const cd_events_bus_msg *m)
{
    int nsp = cd_events__nsp_index(st->conf, m->nsp, m->nsp_len);
    if (nsp < 0) /* a worker of another configuration (a reload under way) */
        return;
    const char **ptrs;
    size_t *lens;
    cd_ws_frame *few[4] = {0}, **frames = m->nattach < 4 ? few : calloc(m->nattach + 1, sizeof *frames);
    if (attachments(m, &ptrs, &lens) < 0 || !frames)
        cd_warn("events: out of memory for a broadcast's %zu attachments; dropped", m->nattach);
    else
        apply_msg(st, m, nsp, ptrs, lens, frames);
    for (size_t i = 0; frames && i <= m->nattach; i++)
        cd_ws_frame_unref(frames[i]); /* what recipients still hold lives on */
    if (frames != few)
        free(frames);
    free(ptrs);
    free(lens);
}

void cd_events__on_bus(cd_service *svc, const void *msg, size_t len)
{
    cd_events_state *st = svc->state;
    cd_events_bus_msg m;
    if (!st)
        return;
    if (cd_events__bus_decode(msg, len, &m) < 0) {
        cd_debug("events: a bus message of %zu bytes does not decode; ignored", len);
        return;
    }
    cd_events__bus_apply(st, &m);
}
