/*
 * Unit tests for http/ (server, parse, request, response, upgrade, router):
 * an HTTP context (http/server.h) built from a config text, with routes to
 * test services, one end of a socketpair handed to it as a connection, the
 * test writing raw bytes on the other end and reading what comes back while
 * it turns the loop.  Covers pipelining, chunked and split bodies, limits,
 * timeouts, malformed input and the upgrade hand-over; the on_done hook
 * counts what the context reports.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/stats.h"
#include "http/router.h"
#include "http/server.h"
#include "services/registry.h"
#include "services/service.h"

extern const cd_service_type cd_service_metrics;
extern const cd_service_type cd_service_health;

/* ---- test services: echo (sync) and later (answers from a timer) ---- */

static void echo_handle(cd_service *svc, cd_request *req)
{
    (void)svc;
    size_t blen;
    const char *body = cd_request_body(req, &blen);
    char q[64] = "-";
    cd_request_query_param(req, "q", q, sizeof q);
    const char *h = cd_request_header(req, "X-Test");
    char out[4096];
    int n = snprintf(out, sizeof out, "m=%u sub=%s q=%s h=%s body=%.*s", cd_request_method(req),
                     cd_request_subpath(req), q, h ? h : "-", (int)blen, body);
    cd_request_respond(req, 200, "text/plain", out, (size_t)n);
}

typedef struct later {
    ev_timer t;
    cd_request *req;
} later;

static void later_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    later *l = (later *)t;
    const char *p = cd_request_path(l->req);
    cd_request_respond(l->req, 202, "text/plain", p, strlen(p));
    free(l);
}

static void later_handle(cd_service *svc, cd_request *req)
{
    later *l = malloc(sizeof *l);
    l->req = req;
    ev_timer_init(&l->t, later_cb, 0.02, 0.);
    ev_timer_start(svc->loop, &l->t);
}

/* The "up" service takes the connection over from handle() itself with
 * cd_http_upgrade; its callback writes a 101 and echoes what the client
 * had already sent after the request, then closes.  What it saw: */
static struct {
    int calls, calls_in_handle; /* calls_in_handle: calls made before handle() returned */
    int fd;
    char head[64];
    size_t headlen;
} up;

static void up_cb(void *arg, int fd, const char *head, size_t headlen)
{
    cr_assert_eq(arg, &up);
    up.calls++;
    up.fd = fd;
    up.headlen = headlen;
    snprintf(up.head, sizeof up.head, "%.*s", (int)headlen, head ? head : "");
    if (fd < 0)
        return;
    char out[128];
    int h = snprintf(out, sizeof out, "HTTP/1.1 101 Switching Protocols\r\n\r\nleft=%s", up.head);
    ssize_t w = send(fd, out, (size_t)h, MSG_NOSIGNAL);
    (void)w;
    close(fd);
}

static void upgrade_handle(cd_service *svc, cd_request *req)
{
    (void)svc;
    cd_http_upgrade(req, up_cb, &up);
    up.calls_in_handle = up.calls;
}

/* Upgrades from a timer, after the client may have gone. */
static void upcb_later_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    later *l = (later *)t;
    cd_http_upgrade(l->req, up_cb, &up);
    up.calls_in_handle = up.calls;
    free(l);
}

static void upcb_later_handle(cd_service *svc, cd_request *req)
{
    later *l = malloc(sizeof *l);
    l->req = req;
    ev_timer_init(&l->t, upcb_later_cb, 0.02, 0.);
    ev_timer_start(svc->loop, &l->t);
}

static const cd_service_type upgrade_type = {.name = "up", .methods = CD_M_GET, .handle = upgrade_handle};
static const cd_service_type upcb_later_type = {.name = "upcblater", .methods = CD_M_GET,
                                                .handle = upcb_later_handle};

static const cd_service_type echo_type = {.name = "echo", .methods = CD_M_GET | CD_M_HEAD | CD_M_POST,
                                          .handle = echo_handle};
static const cd_service_type later_type = {.name = "later", .methods = CD_M_GET, .handle = later_handle};

/* ---- fixture ---- */

static cd_http_ctx ctx;
static struct ev_loop *loop;
static cd_conf *conf;
static cd_service services[6];
static cd_route *routes;
static const cd_route **sorted;
static int client = -1;

/* What the on_done hook heard. */
static struct {
    uint64_t requests, status[6];
} counted;

static void on_done(void *owner, const cd_route *route, int status, double seconds)
{
    (void)route;
    (void)seconds;
    cr_assert_eq(owner, &counted);
    counted.requests++;
    if (status / 100 >= 1 && status / 100 <= 5)
        counted.status[status / 100]++;
}

/* What the metrics and health services ask of their host. */
static cd_snapshot *host_snapshot;
static cd_service *host_services;
static size_t host_nservices;

static const cd_snapshot *host_cluster(cd_service *svc)
{
    (void)svc;
    return host_snapshot;
}

static cd_service *host_all(cd_service *svc, size_t *n)
{
    (void)svc;
    *n = host_nservices;
    return host_services;
}

static const cd_service_host test_host = {.all = host_all, .cluster = host_cluster};

/* Routes the context to services s[0..n) (their cd_service_route). */
static void set_routes(cd_service *s, size_t n)
{
    free(routes);
    free(sorted);
    routes = calloc(n, sizeof *routes);
    cr_assert(routes);
    for (size_t i = 0; i < n; i++)
        routes[i] = cd_service_route(&s[i]);
    cr_assert_eq(cd_router_build(routes, n, &sorted), 0);
    ctx.routes = sorted;
    ctx.nroutes = n;
}

static void setup_with(const char *cluster)
{
    char text[1024], err[256];
    snprintf(text, sizeof text, "[cluster]\n%s\n[dummy]\ntype = dummy\n", cluster);
    cd_conf_set_binder(cd_service_bind);
    cr_assert_eq(cd_conf_load_text("t.ini", text, strlen(text), &conf, err, sizeof err), 0, "%s", err);
    loop = ev_loop_new(EVFLAG_AUTO);
    cd_http_init(&ctx, loop, conf);
    ctx.owner = &counted;
    ctx.on_done = on_done;
    memset(&counted, 0, sizeof counted);
    services[0] = (cd_service){.type = &echo_type, .name = "echo", .route = "/echo", .route_len = 5, .loop = loop};
    services[1] = (cd_service){.type = &later_type, .name = "later", .route = "/later", .route_len = 6,
                               .loop = loop};
    services[2] = (cd_service){.type = &upgrade_type, .name = "up", .route = "/up", .route_len = 3, .loop = loop};
    services[3] = (cd_service){.type = &upcb_later_type, .name = "upcblater", .route = "/upcblater",
                               .route_len = 10, .loop = loop};
    set_routes(services, 4);
    memset(&up, 0, sizeof up);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    client = sv[1];
    cd_http_conn_new(&ctx, sv[0], NULL, 0);
}

static void setup(void) { setup_with("header_timeout = 10s\nkeepalive_timeout = 10s\nmax_header_size = 1k\nmax_body_size = 64"); }

static void teardown(void)
{
    cd_http_close_all(&ctx);
    /* Let pending service timers answer (into detached requests) so nothing leaks. */
    for (int i = 0; i < 10; i++)
        ev_run(loop, EVRUN_NOWAIT);
    struct timespec ts = {0, 30 * 1000000L};
    nanosleep(&ts, NULL);
    ev_run(loop, EVRUN_NOWAIT);
    free(routes);
    free(sorted);
    routes = NULL;
    sorted = NULL;
    ev_loop_destroy(loop);
    cd_conf_free(conf);
    conf = NULL;
    if (client >= 0)
        close(client);
    client = -1;
}

TestSuite(http, .init = setup, .fini = teardown);

static void put(const char *s) { cr_assert_eq(send(client, s, strlen(s), 0), (ssize_t)strlen(s)); }

/* Turns the loop and collects output until `responses` HTTP status lines
 * have arrived, EOF, or timeout_ms.  Returns the bytes (static buffer). */
static char got[65536];
static size_t got_len;
static int got_eof;

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static const char *pump(int responses, int timeout_ms)
{
    got_len = 0;
    got_eof = 0;
    got[0] = '\0';
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        ev_run(loop, EVRUN_NOWAIT);
        ssize_t n = recv(client, got + got_len, sizeof got - 1 - got_len, 0);
        if (n > 0) {
            got_len += (size_t)n;
            got[got_len] = '\0';
        } else if (n == 0) {
            got_eof = 1;
            break;
        }
        if (responses > 0 && count(got, "HTTP/1.1 ") >= responses)
            break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (ms > timeout_ms)
            break;
        struct pollfd p = {.fd = client, .events = POLLIN};
        poll(&p, 1, 2);
    }
    return got;
}

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

/* cd_http_upgrade from handle(): the callback runs once handle() has
 * returned, with the socket and the bytes sent after the request. */
Test(http, upgrade_from_handle_hands_over_the_socket)
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
Test(http, upgrade_callback_after_a_pipelined_answer)
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
    for (int i = 0; i < 40 && up.calls == 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ev_run(loop, EVRUN_NOWAIT);
}

Test(http, upgrade_callback_gets_minus_one_when_the_client_left_first)
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
Test(http, upgrade_callback_gets_minus_one_when_the_client_reset)
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
    for (int i = 0; i < 20 && ctx.nconns > 1; i++) {
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
Test(http, upgrade_callback_gets_minus_one_when_closed_before_the_hand_over)
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

/* Service names reach Prometheus label values: a quote, backslash or
 * newline in one must come out escaped (text format 0.0.4), never end the
 * label or the line.  Config forbids such names; the snapshot comes from
 * another process, so the renderer does not rely on that. */
Test(http, metrics_label_values_are_escaped)
{
    services[4] = (cd_service){.type = &cd_service_metrics, .name = "metrics", .route = "/metrics",
                               .route_len = 8, .loop = loop, .host = &test_host};
    set_routes(services, 5);
    cd_snapshot *snap = calloc(1, sizeof *snap);
    snap->nsvc = 2;
    strcpy(snap->svc[0].name, "a\"b\\c\nd");
    snap->svc[0].status[2] = 7;
    memset(snap->svc[1].name, 'x', sizeof snap->svc[1].name); /* not terminated: stops at the array's end */
    snap->svc[1].status[4] = 3;
    host_snapshot = snap;
    put("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *r = pump(1, 1000);
    host_snapshot = NULL;
    free(snap);
    cr_assert(strstr(r, "HTTP/1.1 200 ") == r, "%s", r);
    cr_assert(strstr(r, "\nclusterd_requests_total{service=\"a\\\"b\\\\c\\nd\",code=\"2xx\"} 7\n"), "%s", r);
    cr_assert(strstr(r, "\nclusterd_requests_total{service=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",code=\"4xx\"} 3\n"),
              "%s", r);
    cr_assert_null(strstr(r, "\nd\","), "no raw newline inside a label: %s", r);
}

/* /healthz/ready lists degraded services as JSON: a reason is free text
 * from a service, so it is escaped, and many of them still make valid
 * JSON (no entry cut in half by a fixed buffer). */
static const char *odd_reason(cd_service *svc)
{
    (void)svc;
    return "said \"no\" \\ then\nleft, and this reason is long enough that forty of them do not fit in 2k";
}

Test(http, health_ready_escapes_degraded_reasons)
{
    static cd_service_type odd_type;
    odd_type = (cd_service_type){.name = "odd", .methods = CD_M_GET, .handle = echo_handle, .degraded = odd_reason};
    static cd_service many[42];
    many[0] = (cd_service){.type = &cd_service_health, .name = "healthz", .route = "/healthz", .route_len = 8,
                           .loop = loop, .host = &test_host};
    for (int i = 1; i < 42; i++)
        many[i] = (cd_service){.type = &odd_type, .name = "odd", .route = "/odd", .route_len = 4, .loop = loop};
    host_services = many;
    host_nservices = 42;
    set_routes(many, 42);
    put("GET /healthz/ready HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *r = pump(1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 503 ") == r, "%s", r);
    cr_assert(strstr(r, "\"odd\":\"said \\\"no\\\" \\\\ then\\u000aleft,"), "%s", r);
    const char *body = strstr(r, "\r\n\r\n") + 4;
    cr_assert_eq(count(body, "\"odd\":"), 41, "%s", body);
    cr_assert(strstr(body, "}}") && strstr(body, "}}")[2] == '\0', "ends as JSON: %s", body);
}
