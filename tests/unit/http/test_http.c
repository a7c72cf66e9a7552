/*
 * Unit tests for http/ (server, parse, request, response, router): the
 * HTTP context of fixture.h, one end of a socketpair handed to it as a
 * connection, the test writing raw bytes on the other end and reading what
 * comes back while it turns the loop.  Covers pipelining, chunked and split
 * bodies, limits, timeouts and malformed input (also mutated at random).
 * The upgrade hand-over is test_upgrade.c's, services behind the context
 * test_http_services.c's.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "http/router.h"

TestSuite(http, .init = setup, .fini = teardown);

Test(http, get_keepalive_has_date_server_length)
{
    put("GET /echo/x?q=a%20b+c HTTP/1.1\r\nHost: t\r\nX-Test: yes\r\n\r\n");
    const char *r = pump(1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 200 OK\r\n") == r, "%s", r);
    cr_assert(strstr(r, "\r\nServer: clusterd"), "%s", r);
    cr_assert(strstr(r, "\r\nDate: "), "%s", r);
    cr_assert(strstr(r, "GMT\r\n"), "%s", r);
    cr_assert(strstr(r, "m=1 sub=/x q=a b c h=yes body="), "%s", r);
    cr_assert_null(strstr(r, "Connection: close"), "HTTP/1.1 keeps the connection");
    /* The same connection serves a second request. */
    put("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    r = pump(1, 1000);
    cr_assert(strstr(r, "sub= q=-"), "%s", r);
    cr_assert_eq(got_eof, 0);
}

Test(http, pipelined_requests_answer_in_order)
{
    /* A slow (timer) request between fast ones: answers must keep request order. */
    put("GET /later/one HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /echo/two HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /later/three HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /echo/four HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *r = pump(4, 2000);
    cr_assert_eq(count(r, "HTTP/1.1 "), 4, "%s", r);
    const char *a = strstr(r, "/later/one"), *b = strstr(r, "sub=/two"), *c = strstr(r, "/later/three"),
               *d = strstr(r, "sub=/four");
    cr_assert(a && b && c && d, "%s", r);
    cr_assert(a < b && b < c && c < d, "out of order: %s", r);
}

Test(http, chunked_body)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    const char *r = pump(1, 1000);
    cr_assert(strstr(r, "body=hello world"), "%s", r);
}

Test(http, content_length_body_split_across_reads)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nContent-");
    pump(0, 30);
    put("Length: 10\r\n\r\n01234");
    pump(0, 30);
    cr_assert_eq(got_len, 0, "nothing answered before the body is complete");
    put("56789");
    const char *r = pump(1, 1000);
    cr_assert(strstr(r, "body=0123456789"), "%s", r);
}

Test(http, malformed_request_gets_400_and_close)
{
    put("GET / HTTP/1.1\r\nHost t\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 400 "), "%s", r);
    cr_assert(strstr(r, "Connection: close"), "%s", r);
    cr_assert(got_eof, "the connection is closed");
}

Test(http, garbage_gets_400)
{
    put("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 400 "), "%s", r);
    cr_assert(got_eof);
}

Test(http, headers_over_the_limit_get_431)
{
    char big[2048];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char req[4096];
    snprintf(req, sizeof req, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big);
    put(req);
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 431 "), "%s", r);
    cr_assert(got_eof);
}

Test(http, long_uri_gets_414)
{
    char req[4096] = "GET /echo/";
    memset(req + 10, 'u', 2000);
    strcpy(req + 2010, " HTTP/1.1\r\nHost: t\r\n\r\n");
    put(req);
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 414 "), "%s", r);
}

Test(http, body_over_the_limit_gets_413)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 65\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 413 "), "declared too large: %s", r);
    cr_assert(got_eof);
}

Test(http, chunked_body_over_the_limit_gets_413)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
        "1\r\nx\r\n0\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 413 "), "%s", r);
}

Test(http, head_has_length_but_no_body)
{
    put("HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /echo/after HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *r = pump(2, 1000);
    cr_assert(strstr(r, "HTTP/1.1 200 OK"), "%s", r);
    cr_assert_null(strstr(r, "m=2"), "no body for HEAD: %s", r);
    cr_assert(strstr(r, "sub=/after"), "the next response follows the HEAD headers directly: %s", r);
}

Test(http, unknown_route_404_and_wrong_method_405)
{
    put("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\nDELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *r = pump(2, 1000);
    cr_assert(strstr(r, "HTTP/1.1 404 "), "%s", r);
    cr_assert(strstr(r, "HTTP/1.1 405 "), "%s", r);
    cr_assert(strstr(r, "Allow: GET, HEAD, POST\r\n"), "%s", r);
    cr_assert_eq(got_eof, 0, "404 and 405 keep the connection");
}

Test(http, route_matches_on_segment_boundary)
{
    put("GET /echoes HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *r = pump(1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 404 "), "/echoes is not /echo: %s", r);
}

Test(http, http10_closes_and_connection_close_is_honoured)
{
    put("GET /echo HTTP/1.0\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 200 "), "%s", r);
    cr_assert(strstr(r, "Connection: close"), "%s", r);
    cr_assert(got_eof);
}

Test(http, client_connection_close)
{
    put("GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "Connection: close"), "%s", r);
    cr_assert(got_eof);
}

Test(http, expect_100_continue)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    const char *r = pump(-1, 100);
    cr_assert(strstr(r, "HTTP/1.1 100 Continue\r\n\r\n") == r, "%s", r);
    put("abc");
    r = pump(1, 1000);
    cr_assert(strstr(r, "body=abc"), "%s", r);
}

Test(http, client_gone_while_service_works)
{
    put("GET /later/x HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(0, 5);
    close(client);
    client = -1;
    /* The service answers into a detached request: no crash, no leak (ASan). */
    for (int i = 0; i < 20; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(ctx.nconns, 0);
    cr_assert_eq(ctx.in_flight, 0);
}

static void setup_short(void) { setup_with("header_timeout = 100ms\nkeepalive_timeout = 200ms"); }

TestSuite(http_timeouts, .init = setup_short, .fini = teardown);

Test(http_timeouts, stalled_headers_get_408_and_close)
{
    put("GET /echo HTTP/1.1\r\nHost: t\r\n");
    const char *r = pump(-1, 2000);
    cr_assert(strstr(r, "HTTP/1.1 408 "), "%s", r);
    cr_assert(got_eof);
}

Test(http_timeouts, idle_keepalive_is_closed)
{
    put("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(1, 1000);
    const char *r = pump(-1, 2000);
    cr_assert_eq(got_len, 0, "%s", r);
    cr_assert(got_eof, "closed after keepalive_timeout");
}

Test(router, longest_prefix_on_segment_boundaries)
{
    cd_route s[3] = {{.prefix = "/", .len = 1}, {.prefix = "/a", .len = 2}, {.prefix = "/a/b", .len = 4}};
    const cd_route **r;
    cr_assert_eq(cd_router_build(s, 3, &r), 0);
    cr_assert_eq(cd_router_match(r, 3, "/a/b/c"), &s[2]);
    cr_assert_eq(cd_router_match(r, 3, "/a/bc"), &s[1]);
    cr_assert_eq(cd_router_match(r, 3, "/a"), &s[1]);
    cr_assert_eq(cd_router_match(r, 3, "/ab"), &s[0]);
    cr_assert_null(cd_router_match(r, 2, "/zzz"), "without \"/\" nothing catches /zzz");
    free(r);
}

/* Bad input is an expected event: a few thousand mutations of valid
 * requests (bytes flipped, cut, duplicated, spliced), each on a fresh
 * connection of the same worker context.  None may crash (ASan build) or
 * leave a connection or request behind; each gets an answer or a close. */
static const char *const seeds[] = {
    "GET /echo/a?q=1 HTTP/1.1\r\nHost: t\r\nX-Test: v\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "GET /later/x HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\n\r\n",
    "GET /up HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nEARLY",
    "HEAD /echo HTTP/1.0\r\n\r\n",
};

static uint32_t rng = 12345;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

Test(http_fuzz, mutated_requests_never_crash, .init = setup, .fini = teardown, .timeout = 120)
{
    close(client); /* setup's connection is not used */
    client = -1;
    static char buf[8192];
    for (int iter = 0; iter < 3000; iter++) {
        const char *seed = seeds[rnd() % (sizeof seeds / sizeof seeds[0])];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int muts = 1 + (int)(rnd() % 4);
        for (int m = 0; m < muts; m++) {
            switch (rnd() % 5) {
            case 0: /* flip a byte */
                if (len)
                    buf[rnd() % len] = (char)rnd();
                break;
            case 1: /* cut */
                if (len)
                    len = rnd() % len;
                break;
            case 2: { /* duplicate a chunk */
                if (!len)
                    break;
                size_t at = rnd() % len, n = 1 + rnd() % 64;
                if (at + n > len)
                    n = len - at;
                if (len + n < sizeof buf) {
                    memmove(buf + at + n, buf + at, len - at);
                    len += n;
                }
                break;
            }
            case 3: /* insert a special byte */
                if (len + 1 < sizeof buf) {
                    static const char special[] = {'\0', '\r', '\n', ':', ' ', '%', '\x80', '\xff', '?', '/'};
                    size_t at = len ? rnd() % len : 0;
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = special[rnd() % sizeof special];
                    len++;
                }
                break;
            default: { /* a huge header value */
                size_t n = 200 + rnd() % 3000;
                if (len + n + 8 < sizeof buf) {
                    memcpy(buf + len, "X-B: ", 5);
                    memset(buf + len + 5, 'b', n);
                    len += n + 5;
                }
                break;
            }
            }
        }
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        cd_http_conn_new(&ctx, sv[0], NULL, 0);
        ssize_t sent = send(sv[1], buf, len, MSG_NOSIGNAL);
        (void)sent;
        if (rnd() % 2)
            shutdown(sv[1], SHUT_WR);
        for (int k = 0; k < 3; k++)
            ev_run(loop, EVRUN_NOWAIT);
        char sink[16384];
        while (recv(sv[1], sink, sizeof sink, 0) > 0)
            ;
        close(sv[1]);
        for (int k = 0; k < 3; k++)
            ev_run(loop, EVRUN_NOWAIT);
    }
    /* Let the timer service answer whatever it still holds. */
    for (int k = 0; k < 20; k++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(ctx.in_flight, 0, "every request was answered (or freed with its client)");
    cr_assert_gt(counted.requests, 1000, "most mutations still parse into something answered");
    cd_http_close_all(&ctx);
    cr_assert_eq(ctx.nconns, 0);
}

/* RFC 9112 §5.1: no whitespace is allowed between a header name and its
 * colon, and a field name is a token (no spaces inside).  Behind a proxy
 * that reads such a header differently, accepting it smuggles requests. */
Test(http, header_name_with_space_inside_gets_400_and_close)
{
    put("GET /echo HTTP/1.1\r\nHost: t\r\nBad Header: v\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 400 ") == r, "%s", r);
    cr_assert(strstr(r, "Connection: close"), "%s", r);
    cr_assert(got_eof, "the connection is closed");
}

Test(http, whitespace_before_the_colon_gets_400_and_close)
{
    put("GET /echo HTTP/1.1\r\nHost: t\r\nX-Test : v\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 400 ") == r, "%s", r);
    cr_assert(got_eof, "the connection is closed");
}

Test(http, tab_before_the_colon_gets_400)
{
    put("GET /echo HTTP/1.1\r\nHost: t\r\nX-Test\t: v\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 400 ") == r, "%s", r);
    cr_assert(got_eof, "the connection is closed");
}

/* ---- request bodies: body_timeout between reads, body_deadline in all ---- */

static void setup_body(void)
{
    setup_with("header_timeout = 10s\nkeepalive_timeout = 10s\nmax_body_size = 64\n"
               "body_timeout = 300ms\nbody_deadline = 600ms");
}

TestSuite(http_body, .init = setup_body, .fini = teardown);

/* One byte every 50 ms: every read is well within body_timeout (and, before
 * the fix, restarted header_timeout), so only a bound on the whole body
 * stops it.  The body would take 3 s; body_deadline is 600 ms. */
Test(http_body, trickled_body_gets_408_at_body_deadline)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 60\r\n\r\n");
    int sent = 0;
    for (; sent < 60 && !got_eof && !strstr(got, "HTTP/1.1 "); sent++) {
        if (send(client, "x", 1, MSG_NOSIGNAL) != 1)
            break;
        pump(-1, 50);
    }
    if (got_len == 0)
        pump(-1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 408 ") == got, "after %d body bytes: %s", sent, got);
    cr_assert(strstr(got, "Connection: close"), "%s", got);
    cr_assert(got_eof, "the connection is closed");
    cr_assert_lt(sent, 60, "answered before the whole body was in");
}

/* A body that stops: body_timeout (300 ms) ends it long before
 * header_timeout (10 s) would. */
Test(http_body, stalled_body_gets_408_after_body_timeout)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
    const char *r = pump(-1, 5000);
    cr_assert(strstr(r, "HTTP/1.1 408 ") == r, "%s", r);
    cr_assert(got_eof);
}

Test(http_body, chunked_body_that_stalls_gets_408)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    const char *r = pump(-1, 5000);
    cr_assert(strstr(r, "HTTP/1.1 408 ") == r, "%s", r);
    cr_assert(got_eof);
}

/* The timers stop with the body: the next request on the connection and
 * the service's time do not count against them. */
Test(http_body, body_in_time_is_served_and_keeps_the_connection)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab");
    pump(0, 50);
    put("cde");
    const char *r = pump(1, 1000);
    cr_assert(strstr(r, "body=abcde"), "%s", r);
    pump(-1, 800); /* longer than body_deadline */
    cr_assert_eq(got_eof, 0, "an idle keep-alive connection waits for keepalive_timeout");
    put("GET /echo/again HTTP/1.1\r\nHost: t\r\n\r\n");
    r = pump(1, 1000);
    cr_assert(strstr(r, "sub=/again"), "%s", r);
}

/* The same for the names llhttp itself interprets (it matches them before
 * the generic path): a smuggled length must not be read as one. */
Test(http, whitespace_before_the_colon_of_content_length_gets_400)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length : 3\r\n\r\nabc");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 400 ") == r, "%s", r);
    cr_assert_eq(count(r, "HTTP/1.1 "), 1, "%s", r);
    cr_assert(got_eof);
}

Test(http, whitespace_before_the_colon_of_transfer_encoding_gets_400)
{
    put("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    const char *r = pump(-1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 400 ") == r, "%s", r);
    cr_assert_eq(count(r, "HTTP/1.1 "), 1, "%s", r);
    cr_assert(got_eof);
}
