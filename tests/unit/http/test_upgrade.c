/*
 * Unit tests for http/upgrade.c: a handler takes its connection with
 * cd_http_upgrade (the fixture's /up from handle(), /upcblater from a
 * timer); the callback runs exactly once, after the handler has unwound
 * and earlier answers are written, with the socket and the bytes the
 * client sent after the request, or with fd -1 when the connection went
 * first (the client reset it, or the server closed it).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(http_upgrade, .init = setup, .fini = teardown);

/* cd_http_upgrade from handle(): the callback runs once handle() has
 * returned, with the socket and the bytes sent after the request. */
Test(http_upgrade, upgrade_from_handle_hands_over_the_socket)
{
    put("GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nEARLY");
    const char *r = pump(-1, 1000);
    cr_assert_eq(up.calls, 1);
    cr_assert_eq(up.calls_in_handle, 0, "not called inside cd_http_upgrade or handle()");
    cr_assert_geq(up.fd, 0);
    cr_assert_str_eq(up.head, "EARLY");
    cr_assert(strstr(r, "HTTP/1.1 101 Switching Protocols\r\n\r\nleft=EARLY") == r, "no HTTP answer first: %s", r);
    cr_assert(got_eof, "the callee closed it");
    cr_assert_eq(ctx.nconns, 0, "the HTTP layer let go of the connection");
    cr_assert_eq(ctx.in_flight, 0);
    cr_assert_eq(counted.status[1], 1, "counted as a 101");
}

/* Earlier pipelined answers still queued are written before the hand-over. */
Test(http_upgrade, upgrade_callback_after_a_pipelined_answer)
{
    put("GET /later/first HTTP/1.1\r\nHost: t\r\n\r\nGET /up HTTP/1.1\r\nUpgrade: x\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert_eq(up.calls, 1);
    cr_assert_str_eq(up.head, "");
    cr_assert(strstr(r, "HTTP/1.1 202 ") == r, "%s", r);
    cr_assert(strstr(r, "/later/first"), "%s", r);
    cr_assert(strstr(r, "HTTP/1.1 101 Switching Protocols\r\n\r\nleft="), "%s", r);
}

/* The client is gone before the service upgrades: the callback still runs
 * once, later, with fd -1. */
static void wait_for_upgrade_callback(void)
{
    for (int i = 0; i < 400 && up.calls == 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ev_run(loop, EVRUN_NOWAIT);
}

Test(http_upgrade, upgrade_callback_gets_minus_one_when_the_client_left_first)
{
    put("GET /upcblater HTTP/1.1\r\nHost: t\r\nUpgrade: x\r\n\r\n");
    pump(0, 5);
    cd_http_close_all(&ctx); /* the connection goes while the service holds the request */
    cr_assert_eq(up.calls, 0);
    wait_for_upgrade_callback();
    cr_assert_eq(up.calls, 1);
    cr_assert_eq(up.calls_in_handle, 0, "not called inside cd_http_upgrade");
    cr_assert_eq(up.fd, -1);
    cr_assert_eq(up.headlen, 0);
    cr_assert_eq(ctx.in_flight, 0);
}

/* The same with a real client that resets its TCP connection while the
 * service holds the request (a socketpair's close reads as a half-close,
 * which keeps the connection for the answer). */
Test(http_upgrade, upgrade_callback_gets_minus_one_when_the_client_reset)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    cr_assert_geq(s, 0);
    close(l);
    const char req[] = "GET /upcblater HTTP/1.1\r\nHost: t\r\nUpgrade: x\r\n\r\n";
    cr_assert_eq(send(c, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
    cd_http_conn_new(&ctx, s, NULL, 0);
    cr_assert_eq(ctx.in_flight, 1, "the service holds it");
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c); /* RST */
    for (int i = 0; i < 150 && ctx.nconns > 1; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(ctx.nconns, 1, "the reset connection is gone (the fixture's remains)");
    cr_assert_eq(up.calls, 0);
    wait_for_upgrade_callback();
    cr_assert_eq(up.calls, 1);
    cr_assert_eq(up.calls_in_handle, 0, "not called inside cd_http_upgrade");
    cr_assert_eq(up.fd, -1);
    cr_assert_eq(ctx.in_flight, 0);
}

/* The connection is closed between cd_http_upgrade and the hand-over (a
 * worker stopping at once): the callback gets fd -1, exactly once. */
Test(http_upgrade, upgrade_callback_gets_minus_one_when_closed_before_the_hand_over)
{
    put("GET /up HTTP/1.1\r\nHost: t\r\nUpgrade: x\r\n\r\n");
    /* One turn reads and dispatches; the hand-over waits for the next. */
    for (int i = 0; i < 50 && counted.requests == 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(counted.requests, 1);
    cr_assert_eq(up.calls, 0, "the hand-over is not done in the turn that dispatched");
    cd_http_close_all(&ctx);
    cr_assert_eq(up.calls, 1);
    cr_assert_eq(up.fd, -1);
    for (int i = 0; i < 5; i++)
        ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(up.calls, 1, "exactly once");
}
