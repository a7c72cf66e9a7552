/*
 * Unit tests for http/steer.c: the head written back reads back the same
 * through llhttp (method, URL, headers in order, HTTP/1.0 and 1.1), or is
 * refused (too large, a CR inside); a request the on_steer hook names
 * another worker for leaves with its head and the unread rest, unlogged
 * and uncounted, and the connection adopted with those bytes is served as
 * if it had never moved, its first request not steered again; when it
 * cannot move it is served here.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "http/conn.h"

/* ---- parsing a head with the server's own llhttp callbacks ---- */

static void idle_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
}

/* Parses one request out of s (len bytes) as a connection would, and
 * returns it (the caller frees it); *major its HTTP major version. */
static cd_request *parse(const char *s, size_t len, int *major)
{
    cd_conn c;
    memset(&c, 0, sizeof c);
    c.ctx = &ctx;
    c.fd = -1;
    ev_init(&c.timer, idle_cb);
    llhttp_init(&c.parser, HTTP_REQUEST, cd_http__settings());
    c.parser.data = &c;
    llhttp_errno_t err = llhttp_execute(&c.parser, s, len);
    cr_assert(err == HPE_PAUSED || err == HPE_OK, "parses: %s", llhttp_errno_name(err));
    ev_timer_stop(loop, &c.timer);
    cr_assert_not_null(c.req);
    *major = c.parser.http_major;
    return c.req;
}

static void assert_same(const cd_request *a, const cd_request *b)
{
    cr_assert_eq(a->llmethod, b->llmethod);
    cr_assert_eq(a->http_minor, b->http_minor);
    cr_assert_eq(a->url_len, b->url_len);
    cr_assert(memcmp(a->arena, b->arena, a->url_len) == 0, "url %.*s", (int)b->url_len, b->arena);
    cr_assert_eq(a->nhdrs, b->nhdrs);
    for (int i = 0; i < a->nhdrs; i++) {
        const cd_http_hdr *x = &a->hdrs[i], *y = &b->hdrs[i];
        cr_assert(x->name_len == y->name_len && memcmp(a->arena + x->name, b->arena + y->name, x->name_len) == 0,
                  "header %d's name", i);
        cr_assert(x->value_len == y->value_len &&
                      memcmp(a->arena + x->value, b->arena + y->value, x->value_len) == 0,
                  "header %d's value: '%.*s' / '%.*s'", i, (int)x->value_len, a->arena + x->value,
                  (int)y->value_len, b->arena + y->value);
    }
}

/* Writes raw's head back and parses that again: the same request. */
static void round_trip(const char *raw, const char *want)
{
    int major;
    cd_request *a = parse(raw, strlen(raw), &major);
    char out[2048];
    long n = cd_http__head_write(a, major, out, sizeof out);
    cr_assert_gt(n, 0, "written back: %ld", n);
    if (want)
        cr_assert(strlen(want) == (size_t)n && memcmp(out, want, (size_t)n) == 0, "%.*s", (int)n, out);
    cr_assert_eq(memcmp(out + n - 4, "\r\n\r\n", 4), 0, "ends with the blank line");
    int major2;
    cd_request *b = parse(out, (size_t)n, &major2);
    cr_assert_eq(major, major2);
    assert_same(a, b);
    cd_http__request_free(a);
    cd_http__request_free(b);
}

TestSuite(http_steer, .init = setup, .fini = teardown);

Test(http_steer, a_head_written_back_parses_to_the_same_request)
{
    round_trip("GET /echo?q=1&to=7 HTTP/1.1\r\nHost: t\r\nX-Test:  spaced\r\nX-Test: again\r\nAccept:*/*\r\n\r\n",
               "GET /echo?q=1&to=7 HTTP/1.1\r\nHost: t\r\nX-Test: spaced\r\nX-Test: again\r\nAccept: */*\r\n\r\n");
    round_trip("POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", "POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\n");
    round_trip("DELETE http://h.example/echo/x%20y?a=b#frag HTTP/1.1\r\nX-Empty:\r\nTransfer-Encoding: chunked\r\n\r\n",
               NULL);
    round_trip("OPTIONS * HTTP/1.1\r\nhost: lower-case\r\nX-Tab: \tin\tside \r\n\r\n", NULL);
}

Test(http_steer, a_head_that_does_not_fit_or_would_not_read_back_is_refused)
{
    int major;
    const char raw[] = "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n";
    cd_request *r = parse(raw, sizeof raw - 1, &major);
    char out[64];
    cr_assert_eq(cd_http__head_write(r, major, out, sizeof raw - 1), (long)sizeof raw - 1, "exactly its size fits");
    cr_assert_eq(cd_http__head_write(r, major, out, sizeof raw - 2), -EMSGSIZE);
    cr_assert_eq(cd_http__head_write(r, major, out, 0), -EMSGSIZE);
    cr_assert_eq(cd_http__head_write(r, 2, out, sizeof out), -EINVAL, "HTTP/2 is not written as 1.x");
    r->arena[r->hdrs[0].value] = '\r'; /* as an obs-fold would leave it */
    cr_assert_eq(cd_http__head_write(r, major, out, sizeof out), -EINVAL);
    cd_http__request_free(r);
}

/* ---- moving a connection (the fixture's connection and hooks) ---- */

static struct {
    int steers, fail;
    uint32_t to;
    int fd;
    char bytes[CD_HTTP_IN_BUF];
    size_t len;
} mv = {.fd = -1};

static uint32_t steer(void *owner, const cd_route *route, const cd_request *r)
{
    (void)owner;
    (void)route;
    mv.steers++;
    char to[16];
    return cd_request_query_param(r, "to", to, sizeof to) > 0 ? (uint32_t)atoi(to) : 0;
}

static int move(void *owner, uint32_t to, int fd, const char *bytes, size_t len)
{
    (void)owner;
    if (mv.fail)
        return -EAGAIN;
    mv.to = to;
    mv.fd = dup(fd); /* as the channel would: the context closes its own */
    memcpy(mv.bytes, bytes, len);
    mv.len = len;
    return 0;
}

static void steering(void)
{
    setup_with("header_timeout = 10s\nkeepalive_timeout = 10s\nmax_header_size = 1k\nmax_body_size = 64k");
    memset(&mv, 0, sizeof mv);
    mv.fd = -1;
    ctx.on_steer = steer;
    ctx.on_move = move;
}

TestSuite(http_steer_move, .init = steering, .fini = teardown);

Test(http_steer_move, a_steered_request_leaves_with_its_head_and_unread_rest_and_is_served_where_it_lands)
{
    put("POST /echo?to=7 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhel");
    pump(-1, 200);
    cr_assert_eq(mv.to, 7u);
    static const char want[] = "POST /echo?to=7 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhel";
    cr_assert(mv.len == sizeof want - 1 && memcmp(mv.bytes, want, mv.len) == 0, "%.*s", (int)mv.len, mv.bytes);
    cr_assert_eq(got_len, 0, "nothing answered here, not even the 100 Continue (the owner sends it)");
    cr_assert_eq(ctx.nconns, 0, "the connection left");
    cr_assert_eq(ctx.moved, 1);
    cr_assert_eq(counted.requests, 0, "not counted where it did not run");
    cr_assert_eq(ctx.in_flight, 0);

    /* Adopted (here, as the owner would): served without asking again. */
    int steers = mv.steers;
    cr_assert_eq(cd_http_conn_adopt(&ctx, mv.fd, NULL, 0, mv.bytes, mv.len, 1), 0);
    put("lo");
    const char *r = pump(2, 1000);
    cr_assert(strstr(r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ") == r, "the 100 from the owner, then: %s", r);
    cr_assert(strstr(r, "body=hello"), "%s", r);
    cr_assert_eq(mv.steers, steers, "the moved request was not steered again");
    cr_assert_eq(counted.requests, 1);
    /* Its next request is asked again, and may move again. */
    put("GET /echo?to=9 HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(-1, 200);
    cr_assert_eq(mv.steers, steers + 1);
    cr_assert_eq(mv.to, 9u);
    cr_assert_eq(ctx.moved, 2);
    close(mv.fd);
}

Test(http_steer_move, pipelined_requests_travel_with_the_steered_one)
{
    put("GET /echo?to=3 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?q=second HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(-1, 200);
    cr_assert_eq(mv.to, 3u);
    cr_assert(memmem(mv.bytes, mv.len, "GET /echo?q=second", 18), "the pipelined request went along");
    cr_assert_eq(cd_http_conn_adopt(&ctx, mv.fd, NULL, 0, mv.bytes, mv.len, 1), 0);
    const char *r = pump(2, 1000);
    cr_assert_eq(count(r, "HTTP/1.1 200 "), 2, "%s", r);
    cr_assert(strstr(r, "q=-") < strstr(r, "q=second"), "in order: %s", r);
}

Test(http_steer_move, a_request_that_cannot_move_is_served_here_with_its_100_continue)
{
    mv.fail = 1;
    put("POST /echo?to=7 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    const char *r = pump_until(-1, "100 Continue\r\n\r\n", 1000);
    cr_assert(strstr(r, "HTTP/1.1 100 Continue"), "the 100 from here, once it stays: %s", r);
    put("hello");
    r = pump(1, 1000);
    cr_assert(strstr(r, "body=hello"), "%s", r);
    cr_assert_eq(ctx.moved, 0);
}

/* Answers with the length of the body it got (echo's answer is too short). */
static void len_handle(cd_service *svc, cd_request *req)
{
    (void)svc;
    size_t blen;
    cd_request_body(req, &blen);
    char out[32];
    int n = snprintf(out, sizeof out, "len=%zu", blen);
    cd_request_respond(req, 200, "text/plain", out, (size_t)n);
}

static const cd_service_type len_type = {.name = "len", .methods = CD_M_POST, .handle = len_handle};

Test(http_steer_move, a_head_and_rest_over_the_input_buffer_are_served_here)
{
    services[4] = (cd_service){.type = &len_type, .name = "len", .route = "/len", .route_len = 4, .loop = loop};
    set_routes(services, 5);
    /* "Host:t" is written back one byte longer, so a full buffer no longer fits. */
    char *req = malloc(CD_HTTP_IN_BUF + 1);
    int n = snprintf(req, CD_HTTP_IN_BUF, "POST /len?to=5 HTTP/1.1\r\nHost:t\r\nContent-Length: %d\r\n\r\n", CD_HTTP_IN_BUF);
    memset(req + n, 'b', (size_t)(CD_HTTP_IN_BUF - n));
    cr_assert_eq(send(client, req, CD_HTTP_IN_BUF, 0), CD_HTTP_IN_BUF);
    memset(req, 'b', (size_t)n);
    cr_assert_eq(send(client, req, (size_t)n, 0), n); /* the rest of the body */
    const char *r = pump(1, 2000);
    char want[32];
    snprintf(want, sizeof want, "len=%d", CD_HTTP_IN_BUF);
    cr_assert(strstr(r, "HTTP/1.1 200 ") && strstr(r, want), "%.200s", r);
    cr_assert_eq(mv.steers, 1, "it was asked, and said elsewhere");
    cr_assert_eq(ctx.moved, 0);
    cr_assert_eq(mv.len, 0);
    free(req);
}
