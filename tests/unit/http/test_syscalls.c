/*
 * test_syscalls.c - what a request costs the loop, and that the savings
 * keep the timeouts (unit_http, one process: the fixture's context and one
 * client socket, the loop turned by pump).
 *
 * The connection timer is lazy (server.c): a later deadline is only
 * stored, an earlier one re-arms it, and an expiry that finds the deadline
 * moved on waits for the rest.  So a keep-alive request must not re-arm
 * the timer, a header_timeout shorter than the armed keepalive_timeout
 * must still fire on time, and a keepalive_timeout longer than the armed
 * header_timeout must not close the connection early.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "http/conn.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void setup_long(void) { setup_with("header_timeout = 10s\nkeepalive_timeout = 10s"); }

TestSuite(lazy_timer, .init = setup_long, .fini = teardown);

/* The second request's deadlines are all later than the armed one: the
 * timer keeps the expiry it was armed with (re-armed, it would have 10 s
 * left again). */
Test(lazy_timer, keepalive_request_does_not_rearm)
{
    put("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(strstr(pump(1, 1000), "HTTP/1.1 200 "));
    cr_assert_not_null(ctx.conns);
    cr_assert(ev_is_active(&ctx.conns->timer), "an idle connection waits for keepalive_timeout");
    double first = ev_timer_remaining(loop, &ctx.conns->timer);
    sleep_ms(40);
    put("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(strstr(pump(1, 1000), "HTTP/1.1 200 "));
    cr_assert(ev_is_active(&ctx.conns->timer));
    double second = ev_timer_remaining(loop, &ctx.conns->timer);
    cr_assert_lt(second, first - 0.03, "re-armed: %f then %f", first, second);
    cr_assert_gt(ctx.conns->deadline, ev_now(loop) + 9.0, "the deadline is keepalive_timeout from the answer");
}

static void setup_short_headers(void) { setup_with("header_timeout = 150ms\nkeepalive_timeout = 10s"); }

TestSuite(lazy_timer_short, .init = setup_short_headers, .fini = teardown);

/* Armed for keepalive_timeout (10 s), the connection gets half a head: the
 * earlier header_timeout deadline re-arms the timer, and it answers 408. */
Test(lazy_timer_short, earlier_deadline_rearms)
{
    put("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(strstr(pump(1, 1000), "HTTP/1.1 200 "));
    put("GET /echo HTTP/1.1\r\nHost: t\r\n");
    const char *r = pump(-1, 3000);
    cr_assert(strstr(r, "HTTP/1.1 408 "), "%s", r);
    cr_assert(got_eof);
}

static void setup_short_keepalive(void) { setup_with("header_timeout = 100ms\nkeepalive_timeout = 400ms"); }

TestSuite(lazy_timer_moved, .init = setup_short_keepalive, .fini = teardown);

/* The head comes in two pieces, so header_timeout (100 ms) is armed; the
 * answer moves the deadline to keepalive_timeout (400 ms), which is only
 * stored.  The expiry at 100 ms must wait for the rest, not close. */
Test(lazy_timer_moved, expiry_before_the_deadline_waits)
{
    put("GET /echo HTTP/1.1\r\n");
    pump(0, 20);
    put("Host: t\r\n\r\n");
    cr_assert(strstr(pump(1, 1000), "HTTP/1.1 200 "));
    got_len = 0;
    pump(-1, 200); /* past the armed 100 ms, well before 400 ms */
    cr_assert_eq(got_eof, 0, "closed at the armed header_timeout, not keepalive_timeout");
    cr_assert(ev_is_active(&ctx.conns->timer), "re-armed for the rest");
    pump(-1, 3000);
    cr_assert(got_eof, "closed after keepalive_timeout");
    cr_assert_eq(got_len, 0);
}
