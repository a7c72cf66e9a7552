/*
 * test_events_rooms.c - unit tests of the events service's room registry
 * (services/events/rooms.c): joining, leaving, the max_rooms bound, a
 * socket's own rooms (first, not counted, not left one by one), rooms per
 * namespace, rooms that go with their last member, and the table growing
 * past its first buckets.  Clients here are bare structs (no connection, no loop): the
 * registry only looks at their membership array.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/events/events.h"

static cd_events_conf conf = {.max_rooms = 4};
static cd_events_state st;

static void setup(void)
{
    memset(&st, 0, sizeof st);
    memcpy(st.hash_key, "0123456789abcdef", 16);
    st.conf = &conf;
    cr_assert_eq(cd_events__rooms_init(&st), 0);
}

static void teardown(void)
{
    cr_expect_eq(st.nrooms, 0, "rooms left after every client left");
    cd_events__rooms_free(&st);
}

TestSuite(events_rooms, .init = setup, .fini = teardown);

/* A socket of namespace nsp on a bare client, with room for its own rooms
 * as socketio.c allocates it. */
static cd_events_socket *client_in(int nsp)
{
    cd_events_client *cl = calloc(1, sizeof *cl);
    cd_events_socket *c = calloc(1, sizeof *c);
    cr_assert(cl && c);
    cl->st = &st;
    c->client = cl;
    c->nsp = nsp;
    c->rooms = calloc((size_t)conf.max_rooms + CD_EVENTS_OWN_ROOMS, sizeof *c->rooms);
    cr_assert(c->rooms);
    return c;
}

static cd_events_socket *client(void)
{
    return client_in(0);
}

static void client_free(cd_events_socket *c)
{
    cd_events__room_leave_all(c);
    free(c->rooms);
    free(c->client);
    free(c);
}

static size_t members_in(int nsp, const char *name)
{
    cd_events_room *r = cd_events__room_find(&st, nsp, name, strlen(name));
    size_t n = 0;
    for (cd_events_member *m = r ? r->members : NULL; m; m = m->next)
        n++;
    return n;
}

static size_t members(const char *name)
{
    return members_in(0, name);
}

Test(events_rooms, join_and_leave)
{
    cd_events_socket *a = client(), *b = client();
    cr_expect_eq(cd_events__room_join(a, "r", 1), 1);
    cr_expect_eq(cd_events__room_join(a, "r", 1), 0, "joined twice");
    cr_expect_eq(cd_events__room_join(b, "r", 1), 1);
    cr_expect_eq(members("r"), 2);
    cr_expect_eq(st.nrooms, 1);
    cr_expect_eq(cd_events__room_leave(a, "r", 1), 1);
    cr_expect_eq(cd_events__room_leave(a, "r", 1), 0, "left twice");
    cr_expect_eq(members("r"), 1);
    cr_expect_eq(cd_events__room_leave(b, "r", 1), 1);
    cr_expect_null(cd_events__room_find(&st, 0, "r", 1), "an empty room stays");
    client_free(a);
    client_free(b);
}

Test(events_rooms, names_are_bytes_not_c_strings)
{
    cd_events_socket *a = client();
    cr_expect_eq(cd_events__room_join(a, "ab", 1), 1); /* "a" */
    cr_expect_eq(cd_events__room_join(a, "ab", 2), 1);
    cr_expect_eq(st.nrooms, 2);
    cr_expect_eq(members("a"), 1);
    cr_expect_eq(members("ab"), 1);
    client_free(a);
}

Test(events_rooms, max_rooms_per_client)
{
    cd_events_socket *a = client();
    const char *names[] = {"1", "2", "3", "4"};
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(cd_events__room_join(a, names[i], 1), 1);
    cr_expect_eq(cd_events__room_join(a, "5", 1), -ENOSPC);
    cr_expect_eq(cd_events__room_join(a, "4", 1), 0, "a room it is in is not a new one");
    cr_expect_eq(a->nrooms, 4);
    cd_events__room_leave_all(a);
    cr_expect_eq(a->nrooms, 0);
    cr_expect_eq(st.nrooms, 0);
    client_free(a);
}

Test(events_rooms, the_table_grows_and_finds_every_room)
{
    enum { N = 100 };
    cd_events_socket *c[N];
    char name[16];
    for (int i = 0; i < N; i++) {
        c[i] = client();
        for (int j = 0; j < 4; j++) {
            int n = snprintf(name, sizeof name, "room-%d", i * 4 + j);
            cr_assert_eq(cd_events__room_join(c[i], name, (size_t)n), 1);
        }
    }
    cr_expect_eq(st.nrooms, 4 * N);
    cr_expect_geq(st.nbuckets, 4 * N, "%zu buckets for %d rooms", st.nbuckets, 4 * N);
    for (int i = 0; i < 4 * N; i++) {
        snprintf(name, sizeof name, "room-%d", i);
        cr_expect_eq(members(name), 1, "%s", name);
    }
    for (int i = 0; i < N; i++)
        client_free(c[i]);
}

Test(events_rooms, one_name_in_two_namespaces_is_two_rooms)
{
    cd_events_socket *a = client_in(0), *b = client_in(1), *c = client_in(1);
    cr_expect_eq(cd_events__room_join(a, "r", 1), 1);
    cr_expect_eq(cd_events__room_join(b, "r", 1), 1);
    cr_expect_eq(cd_events__room_join(c, "r", 1), 1);
    cr_expect_eq(st.nrooms, 2);
    cr_expect_eq(members_in(0, "r"), 1);
    cr_expect_eq(members_in(1, "r"), 2);
    cr_expect_null(cd_events__room_find(&st, 2, "r", 1));
    cr_expect_eq(cd_events__room_find(&st, 0, "r", 1)->members->socket, a);
    cr_expect_eq(cd_events__room_leave(a, "r", 1), 1);
    cr_expect_null(cd_events__room_find(&st, 0, "r", 1), "namespace 0's room went with a");
    cr_expect_eq(members_in(1, "r"), 2, "namespace 1's room stays");
    client_free(a);
    client_free(b);
    client_free(c);
}

Test(events_rooms, own_rooms_are_not_counted_nor_left)
{
    cd_events_socket *a = client(), *b = client();
    cr_expect_eq(cd_events__room_join_own(a, "", 0), 1);
    cr_expect_eq(cd_events__room_join_own(a, "sid-a", 5), 1);
    cr_expect_eq(cd_events__room_join_own(a, "user:alice", 10), 1);
    cr_expect_eq(cd_events__room_join_own(a, "one-more", 8), -ENOSPC, "three own rooms at most");
    cr_expect_eq(cd_events__room_join_own(b, "", 0), 1);
    cr_expect_eq(members(""), 2, "the whole namespace's room");
    /* max_rooms (4) joined rooms besides the three own ones. */
    const char *names[] = {"1", "2", "3", "4"};
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(cd_events__room_join(a, names[i], 1), 1);
    cr_expect_eq(cd_events__room_join(a, "5", 1), -ENOSPC);
    cr_expect_eq(cd_events__room_join_own(b, "sid-b", 5), 1);
    cr_expect_eq(cd_events__room_join(b, "1", 1), 1);
    cr_expect_eq(cd_events__room_join_own(b, "late", 4), -ENOSPC, "own rooms come first");
    cr_expect(a->nrooms == 7 && a->nown == 3);
    /* Own rooms are not left one by one; the others are, and a leave keeps
     * the own rooms first. */
    cr_expect_eq(cd_events__room_leave(a, "sid-a", 5), 0);
    cr_expect_eq(cd_events__room_leave(a, "", 0), 0);
    cr_expect_eq(cd_events__room_leave(a, "1", 1), 1);
    cr_expect_eq(cd_events__room_join(a, "5", 1), 1);
    cr_expect_eq(a->nown, 3);
    cr_expect(a->rooms[0]->room->len == 0 && a->rooms[1]->room->len == 5 && a->rooms[2]->room->len == 10);
    cr_expect_eq(cd_events__room_join(a, "sid-a", 5), 0, "already in it");
    cd_events__room_leave_all(a);
    cr_expect(a->nrooms == 0 && a->nown == 0);
    cr_expect_eq(members(""), 1);
    client_free(a);
    client_free(b);
}
