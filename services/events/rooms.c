/*
 * rooms.c - the room registry of an events service (worker, loop thread).
 *
 * A room is a namespace, a name and the list of this worker's sockets in
 * it; it exists while it has members.  Rooms of different namespaces are
 * different rooms, whatever their names.  Every socket is in rooms of its
 * own (joined at CONNECT, first in its array, not counted against
 * max_rooms, left only when it goes): "" (its whole namespace, which a
 * broadcast to no room walks), its sid and, authenticated, "user:<sub>".
 *
 * Names hash with SipHash (events_hash.c) under a per-worker random key,
 * so clients cannot pick names that collide; the table doubles when rooms
 * outnumber buckets.  Each membership is on the room's list and in the
 * socket's array, so both "who is in r" (a broadcast) and "leave all" (a
 * disconnect) are cheap.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "services/events/events.h"

#define FIRST_BUCKETS 64

/* Keyed, so clients cannot pick names that collide: the key is this
 * worker's secret, drawn at init. */
static uint64_t hash_name(const cd_events_state *st, int nsp, const char *s, size_t len)
{
    /* Rooms of different namespaces with one name are different rooms. */
    return cd_events__siphash(st->hash_key, s, len) ^ ((uint64_t)(unsigned)nsp * 0x9E3779B97F4A7C15ull);
}

int cd_events__rooms_init(cd_events_state *st)
{
    if (!(st->buckets = calloc(FIRST_BUCKETS, sizeof *st->buckets)))
        return -ENOMEM;
    st->nbuckets = FIRST_BUCKETS;
    st->nrooms = 0;
    return 0;
}

void cd_events__rooms_free(cd_events_state *st)
{
    free(st->buckets);
    st->buckets = NULL;
    st->nbuckets = 0;
}

cd_events_room *cd_events__room_find(cd_events_state *st, int nsp, const char *name, size_t len)
{
    for (cd_events_room *r = st->buckets[hash_name(st, nsp, name, len) & (st->nbuckets - 1)]; r; r = r->hnext)
        if (r->nsp == nsp && r->len == len && memcmp(r->name, name, len) == 0)
            return r;
    return NULL;
}

/* Doubles the table when rooms outnumber buckets; on ENOMEM it keeps the
 * old one, which still works, only with longer chains. */
static void rooms_grow(cd_events_state *st)
{
    size_t n = st->nbuckets * 2;
    cd_events_room **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < st->nbuckets; i++) {
        cd_events_room *r = st->buckets[i];
        while (r) {
            cd_events_room *next = r->hnext;
            size_t k = hash_name(st, r->nsp, r->name, r->len) & (n - 1);
            r->hnext = b[k];
            b[k] = r;
            r = next;
        }
    }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = n;
}

static cd_events_room *room_add(cd_events_state *st, int nsp, const char *name, size_t len)
{
    cd_events_room *r = calloc(1, sizeof *r + len + 1);
    if (!r)
        return NULL;
    memcpy(r->name, name, len);
    r->len = len;
    r->nsp = nsp;
    size_t k = hash_name(st, nsp, name, len) & (st->nbuckets - 1);
    r->hnext = st->buckets[k];
    st->buckets[k] = r;
    if (++st->nrooms > st->nbuckets)
        rooms_grow(st);
    return r;
}

static int member_of(const cd_events_socket *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->nrooms; i++)
        if (c->rooms[i]->room->len == len && memcmp(c->rooms[i]->room->name, name, len) == 0)
            return 1;
    return 0;
}

/* Adds c to room (nsp, name) at the end of its array. */
static int add_member(cd_events_socket *c, const char *name, size_t len)
{
    cd_events_state *st = c->client->st;
    cd_events_room *r = cd_events__room_find(st, c->nsp, name, len);
    cd_events_member *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    if (!r && !(r = room_add(st, c->nsp, name, len))) {
        free(m);
        return -ENOMEM;
    }
    m->socket = c;
    m->room = r;
    m->next = r->members;
    if (r->members)
        r->members->prev = m;
    r->members = m;
    c->rooms[c->nrooms++] = m;
    return 1;
}

int cd_events__room_join(cd_events_socket *c, const char *name, size_t len)
{
    if (member_of(c, name, len))
        return 0;
    if (c->nrooms - c->nown >= (size_t)c->client->st->conf->max_rooms)
        return -ENOSPC;
    return add_member(c, name, len);
}

/* Own rooms come first in the array: a socket joins them at CONNECT,
 * before it can join any other. */
int cd_events__room_join_own(cd_events_socket *c, const char *name, size_t len)
{
    if (member_of(c, name, len))
        return 0;
    if (c->nown >= CD_EVENTS_OWN_ROOMS || c->nrooms != c->nown)
        return -ENOSPC;
    int rc = add_member(c, name, len);
    if (rc > 0)
        c->nown++;
    return rc;
}

static void member_drop(cd_events_state *st, cd_events_member *m)
{
    cd_events_room *r = m->room;
    if (m->prev)
        m->prev->next = m->next;
    else
        r->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    free(m);
    if (r->members)
        return;
    cd_events_room **pp = &st->buckets[hash_name(st, r->nsp, r->name, r->len) & (st->nbuckets - 1)];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    st->nrooms--;
    free(r);
}

int cd_events__room_leave(cd_events_socket *c, const char *name, size_t len)
{
    for (size_t i = c->nown; i < c->nrooms; i++) {
        if (c->rooms[i]->room->len == len && memcmp(c->rooms[i]->room->name, name, len) == 0) {
            member_drop(c->client->st, c->rooms[i]);
            c->rooms[i] = c->rooms[--c->nrooms];
            return 1;
        }
    }
    return 0;
}

void cd_events__room_leave_all(cd_events_socket *c)
{
    while (c->nrooms)
        member_drop(c->client->st, c->rooms[--c->nrooms]);
    c->nown = 0;
}
