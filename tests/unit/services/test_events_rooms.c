/*
 * test_events_rooms.c - unit tests of the events service's room registry
 * (services/events/rooms.c): joining, leaving, the max_rooms bound, rooms
 * that go with their last member, and the table growing past its first
 * buckets.  Clients here are bare structs (no connection, no loop): the
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

/* A socket of namespace 0 on a bare client. */
static cd_events_socket *client(void)
{
    cd_events_client *cl = calloc(1, sizeof *cl);
    cd_events_socket *c = calloc(1, sizeof *c);
    cr_assert(cl && c);
    cl->st = &st;
    c->client = cl;
    c->rooms = calloc((size_t)conf.max_rooms, sizeof *c->rooms);
    cr_assert(c->rooms);
    return c;
}

static void client_free(cd_events_socket *c)
{
    cd_events__room_leave_all(c);
    free(c->rooms);
    free(c->client);
    free(c);
}

static size_t members(const char *name)
{
    cd_events_room *r = cd_events__room_find(&st, 0, name, strlen(name));
    size_t n = 0;
    for (cd_events_member *m = r ? r->members : NULL; m; m = m->next)
        n++;
    return n;
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
