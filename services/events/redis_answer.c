/*
 * redis_answer.c - the Redis adapter's answers to the requests of
 * socket.io-redis-adapter that want one (worker, loop thread): SOCKETS
 * (the sids of the sockets in any of the request's rooms), ALL_ROOMS
 * (the rooms with members) and REMOTE_FETCH (the sockets of a target:
 * {id, handshake: {}, rooms, data: {}}), each for this worker's sockets of
 * one namespace.  Every worker answers: the Node adapter counts answers up
 * to PUBSUB NUMSUB of the request channel, where each clusterd worker is
 * one subscriber.  A socket's own room "" (the namespace's) is never
 * listed; its sid room and user:<sub> are, as a Node socket's id room is.
 * The handshake and data a Node RemoteSocket has are not kept here: empty.
 */
#include <errno.h>
#include <string.h>

#include "clusterd/buf.h"
#include "clusterd/json.h"
#include "services/events/redis.h"

/* Whether socket s is in the query's target (m: rooms, except). */
static int in_target(cd_events_state *st, const cd_events_bus_msg *m, cd_events_socket *s)
{
    const unsigned char *cur = m->except;
    const char *name;
    size_t nl;
    for (size_t i = 0; i < m->nexcept; i++) {
        cd_events__bus_name(&cur, &name, &nl);
        for (size_t j = 0; j < s->nrooms; j++)
            if (s->rooms[j]->room->len == nl && memcmp(s->rooms[j]->room->name, name, nl) == 0)
                return 0;
    }
    if (!m->nrooms)
        return 1;
    cur = m->rooms;
    for (size_t i = 0; i < m->nrooms; i++) {
        cd_events__bus_name(&cur, &name, &nl);
        for (size_t j = 0; j < s->nrooms; j++)
            if (s->rooms[j]->room->len == nl && memcmp(s->rooms[j]->room->name, name, nl) == 0)
                return 1;
    }
    (void)st;
    return 0;
}

/* A socket's rooms as a JSON array (not "", the namespace's own). */
static void rooms_json(cd_buf *b, const cd_events_socket *s)
{
    cd_buf_append(b, "[", 1);
    int first = 1;
    for (size_t j = 0; j < s->nrooms; j++) {
        const cd_events_room *room = s->rooms[j]->room;
        if (!room->len)
            continue;
        if (!first)
            cd_buf_append(b, ",", 1);
        first = 0;
        cd_json_str(b, room->name, room->len);
    }
    cd_buf_append(b, "]", 1);
}

static void sockets_json(cd_events_state *st, int nsp, int type, const cd_events_bus_msg *m, cd_buf *b)
{
    int first = 1;
    for (cd_events_client *c = st->clients; c; c = c->next)
        for (cd_events_socket *s = c->sockets; s; s = s->next) {
            if (s->nsp != nsp || !in_target(st, m, s))
                continue;
            cd_buf_append(b, ",", first ? 0 : 1);
            first = 0;
            if (type == CD_EVENTS_RREQ_SOCKETS) {
                cd_json_str(b, s->sid, strlen(s->sid));
                continue;
            }
            cd_buf_append(b, "{\"id\":", 6);
            cd_json_str(b, s->sid, strlen(s->sid));
            cd_buf_append(b, ",\"handshake\":{},\"rooms\":", 24);
            rooms_json(b, s);
            cd_buf_append(b, ",\"data\":{}}", 11);
        }
}

int cd_events__redis_answer(cd_events_state *st, int nsp, const cd_events_redis_in *in, cd_buf *b)
{
    size_t off = 0, mlen;
    const void *msg;
    cd_events_bus_msg m;
    if (!cd_events__redis_in_next(in, &off, &msg, &mlen) || cd_events__bus_decode(msg, mlen, &m) < 0)
        return -EINVAL;
    int rooms = in->type == CD_EVENTS_RREQ_ALL_ROOMS;
    cd_buf_append(b, "{\"requestId\":", 13);
    cd_json_str(b, in->request_id, strlen(in->request_id));
    cd_buf_append(b, rooms ? ",\"rooms\":[" : ",\"sockets\":[", rooms ? 10 : 12);
    if (rooms) {
        int first = 1;
        for (size_t k = 0; k < st->nbuckets; k++)
            for (const cd_events_room *room = st->buckets[k]; room; room = room->hnext)
                if (room->members && room->len && room->nsp == nsp) {
                    cd_buf_append(b, ",", first ? 0 : 1);
                    first = 0;
                    cd_json_str(b, room->name, room->len);
                }
    } else {
        sockets_json(st, nsp, in->type, &m, b);
    }
    cd_buf_append(b, "]}", 2);
    return b->oom ? -ENOMEM : 0;
}
