/*
 * broadcast.c - room broadcasts across workers, and POST {route}/publish
 * (worker, loop thread).
 *
 * Both kinds of broadcast (an event a client emits to its rooms, and a
 * backend's publish) travel as one bus message (cd_service_publish, in
 * the format of cd_events__bcast_encode) that reaches this service on
 * every worker, the sender's included; each worker then delivers it to its
 * local members, once per client even when it is in several of the rooms.
 * So delivery order is the bus order, the same on every worker, and a
 * worker needs no knowledge of where other clients live.  Delivery is best
 * effort, as with Socket.IO's adapters: a worker that falls a whole bus
 * buffer behind loses broadcasts (see ipc/bus.h).
 *
 * A publish body must be valid UTF-8 JSON (cd_events__publish_parse),
 * since it goes to clients in text frames.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/events.h"

int cd_events__broadcast(cd_events_state *st, const cd_events_target *t, const cd_events_packet *p)
{
    /* TODO(issue 12): the namespace, except rooms and attachments travel in
     * the bus format; until then namespace "/" and one except sid. */
    if (t->nsp != 0 || p->nattach || t->nexcept > 1)
        return -ENOTSUP;
    const char *except = t->nexcept ? t->except[0] : NULL;
    size_t except_len = t->nexcept ? t->except_lens[0] : 0;
    size_t cap = 1 + 1 + except_len + 2 + p->text_len;
    for (size_t i = 0; i < t->nrooms; i++)
        cap += 2 + t->room_lens[i];
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    long n = cd_events__bcast_encode(buf, cap, except, except_len, t->rooms, t->room_lens, t->nrooms, p->text,
                                     p->text_len);
    int rc = n < 0 ? (int)n : cd_service_publish(st->svc, buf, (size_t)n);
    free(buf);
    return rc;
}

/* Delivers b to the local members of one room, skipping sockets that got
 * this broadcast (mark) already. */
static void deliver(cd_events_room *r, const cd_events_bcast *b, uint64_t mark)
{
    cd_events_member *m = r ? r->members : NULL;
    cd_events_packet p = {.text = b->packet, .text_len = b->packet_len};
    while (m) {
        cd_events_member *next = m->next; /* acting on m may free it (events.h) */
        cd_events_socket *s = m->socket;
        if (s->mark != mark) {
            s->mark = mark;
            if (!(b->except_len == strlen(s->sid) && memcmp(b->except, s->sid, b->except_len) == 0))
                cd_events__send_packet(s->client, &p);
        }
        m = next;
    }
}

void cd_events__on_bus(cd_service *svc, const void *msg, size_t len)
{
    cd_events_state *st = svc->state;
    cd_events_bcast b;
    if (!st || cd_events__bcast_decode(msg, len, &b) < 0)
        return;
    uint64_t mark = ++st->mark;
    const unsigned char *cur = b.rooms;
    for (size_t i = 0; i < b.nrooms; i++) {
        const char *name;
        size_t nl;
        cd_events__bcast_room(&cur, &name, &nl);
        deliver(cd_events__room_find(st, 0, name, nl), &b, mark);
    }
}

static void publish(cd_events_state *st, cd_request *req)
{
    size_t blen = 0;
    const char *body = cd_request_body(req, &blen);
    if (!body) /* no body at all: still "not an object", without NULL + 0 */
        body = "", blen = 0;
    cd_events_publish pub;
    const char *why = NULL;
    int rc = cd_events__publish_parse(body, blen, (size_t)st->conf->max_message_size, &pub, &why);
    if (rc < 0) {
        cd_request_respond_error(req, rc == -EMSGSIZE ? 413 : rc == -ENOMEM ? 503 : 400, why);
        return;
    }
    const char *rooms[1] = {pub.room};
    size_t lens[1] = {pub.room_len};
    cd_events_target t = {.nsp = 0, .nrooms = 1, .rooms = rooms, .room_lens = lens};
    cd_events_packet p = {.text = pub.packet, .text_len = pub.packet_len};
    rc = cd_events__broadcast(st, &t, &p);
    free(pub.packet);
    if (rc == -EAGAIN) {
        cd_request_respond_error(req, 503, "the bus is backed up; try again");
        return;
    }
    if (rc < 0) {
        cd_info("events: publish to room of %zu bytes failed: %s", pub.room_len, strerror(-rc));
        cd_request_respond_error(req, 500, "publish failed");
        return;
    }
    static const char ok[] = "{\"ok\":true}";
    cd_request_respond(req, 202, "application/json", ok, sizeof ok - 1);
}

void cd_events__backend(cd_events_state *st, cd_request *req, const char *what)
{
    if (strcmp(what, "publish") == 0)
        publish(st, req);
    else
        cd_request_respond_error(req, 404, "no such resource");
}
