/*
 * Integration tests of sticky sessions inside one host (http/steer.c,
 * worker/serve.c, master/sticky.c): a request whose service says it
 * belongs to another worker moves there, connection and all, before its
 * body is read.  The real clusterd runs -w 4 with a test module
 * (sticky_mod.c, built here with cc against include/clusterd/ only) that
 * steers `?to=<id>` and answers with the id of the worker that served it
 * and the body it got.  Clients are raw sockets, so pipelining, chunked
 * bodies and Expect: 100-continue are exactly what the test writes.
 * Every wait is bounded.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define NW 4

static th_server srv;
static char stage[256]; /* the module's build dir */
static unsigned ids[NW];

static int sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return th_run(argv, out, cap);
}

/* ---- a raw keep-alive client ---- */

typedef struct client {
    int fd;
    char *buf; /* bytes read and not yet consumed */
    size_t len, cap;
} client;

static void cl_open(client *c)
{
    memset(c, 0, sizeof *c);
    c->fd = th_connect(srv.port);
    cr_assert_geq(c->fd, 0, "connect");
}

static void cl_close(client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    c->fd = -1;
}

static void cl_write(client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        cr_assert_gt(n, 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Reads more into c->buf (waits at most 10 s).  0, or -1 on EOF/timeout. */
static int cl_fill(client *c)
{
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        c->buf = realloc(c->buf, c->cap);
        cr_assert_not_null(c->buf);
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 10000) <= 0)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

/* The next answer on c: its status, the serving worker's id and the body
 * after the id line (malloc'd, *blen bytes).  Returns the status (0: none). */
static int cl_answer(client *c, unsigned *worker, char **body, size_t *blen)
{
    char *end;
    while (!(end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL))
        if (cl_fill(c) < 0)
            return 0;
    size_t hlen = (size_t)(end - c->buf) + 4;
    int status = atoi(c->buf + 9);
    char *cl = memmem(c->buf, hlen, "Content-Length: ", 16);
    cr_assert_not_null(cl, "an answer with a length: %.*s", (int)hlen, c->buf);
    size_t clen = strtoul(cl + 16, NULL, 10);
    while (c->len < hlen + clen)
        if (cl_fill(c) < 0)
            return 0;
    char *b = c->buf + hlen;
    char *nl = memchr(b, '\n', clen);
    *worker = nl ? (unsigned)strtoul(b, NULL, 10) : 0;
    size_t skip = nl ? (size_t)(nl - b) + 1 : 0;
    *blen = clen - skip;
    *body = malloc(*blen + 1);
    memcpy(*body, b + skip, *blen);
    (*body)[*blen] = '\0';
    memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
    c->len -= hlen + clen;
    return status;
}

/* Writes a request for worker `to` (0: any) with body (len bytes). */
static void cl_request(client *c, const char *method, unsigned to, const char *body, size_t len, const char *extra)
{
    char head[512];
    int n = snprintf(head, sizeof head, "%s /s/echo?to=%u HTTP/1.1\r\nHost: t\r\nUser-Agent: test\r\n%s"
                     "Content-Length: %zu\r\n\r\n", method, to, extra ? extra : "", len);
    cl_write(c, head, (size_t)n);
    if (len)
        cl_write(c, body, len);
}

/* One request on c for `to`; asserts a 200 from that worker with body back. */
static void roundtrip(client *c, unsigned to, const char *body, size_t len)
{
    cl_request(c, len ? "POST" : "GET", to, body, len, NULL);
    unsigned got;
    char *back;
    size_t blen;
    cr_assert_eq(cl_answer(c, &got, &back, &blen), 200, "an answer for worker %u", to);
    cr_assert_eq(got, to, "served by worker %u, not %u", to, got);
    cr_assert_eq(blen, len, "the whole body came back (%zu of %zu bytes)", blen, len);
    cr_assert(len == 0 || memcmp(back, body, len) == 0, "the body arrived intact");
    free(back);
}

static char *pattern(size_t len)
{
    char *b = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        b[i] = (char)('a' + (i * 7 + i / 251) % 26);
    b[len] = '\0';
    return b;
}

/* ---- the server ---- */

static void setup(void)
{
    const char *src = getenv("CLUSTERD_SRC");
    cr_assert_not_null(src, "CLUSTERD_SRC is set by ctest");
    snprintf(stage, sizeof stage, "/tmp/clusterd-sticky-XXXXXX");
    cr_assert_not_null(mkdtemp(stage));
    char out[8192];
    int rc = sh(out, sizeof out, "cc -I'%s/include' -Wall -Wextra -Werror -shared -fPIC '%s/tests/integration/sticky_mod.c' "
                "-o %s/sticky.so 2>&1", src, src, stage);
    cr_assert_eq(rc, 0, "building sticky.so: %s", out);
    cr_assert_eq(th_start(&srv, NW, "/dummy", NULL,
                          "[cluster]\nlisten = 127.0.0.1:%d\nworkers = %d\nmax_body_size = 1m\n"
                          "heartbeat_interval = 100ms\naccess_log = /dev/null\n[dummy]\n[metrics]\n[s]\nmodule = %s/sticky.so\ntype = sticky\n",
                          NW, stage),
                 0);
    /* Learn every worker's id: requests without a target land anywhere. */
    int n = 0;
    for (int tries = 0; tries < 2000 && n < NW; tries++) {
        client c;
        cl_open(&c);
        cl_request(&c, "GET", 0, NULL, 0, NULL);
        unsigned id;
        char *b;
        size_t bl;
        cr_assert_eq(cl_answer(&c, &id, &b, &bl), 200);
        free(b);
        cl_close(&c);
        int seen = 0;
        for (int i = 0; i < n; i++)
            seen |= ids[i] == id;
        if (!seen)
            ids[n++] = id;
    }
    cr_assert_eq(n, NW, "every worker answered at least once (%d of %d)", n, NW);
}

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
    char out[256];
    sh(out, sizeof out, "rm -rf %s", stage);
}

TestSuite(sticky, .init = setup, .fini = fini, .timeout = 240);

Test(sticky, requests_on_fresh_and_keepalive_connections_are_served_by_their_worker)
{
    for (int i = 0; i < 60; i++) {
        client c;
        cl_open(&c);
        roundtrip(&c, ids[i % NW], NULL, 0);
        cl_close(&c);
    }
    client ka[NW];
    for (int k = 0; k < NW; k++)
        cl_open(&ka[k]);
    for (int i = 0; i < 15; i++)
        for (int k = 0; k < NW; k++)
            roundtrip(&ka[k], ids[(i + k) % NW], "x", 1); /* each request for another worker */
    for (int k = 0; k < NW; k++)
        cl_close(&ka[k]);
}

Test(sticky, post_bodies_of_0_1k_and_300k_arrive_intact_at_their_worker)
{
    static const size_t sizes[] = {0, 1024, 300 * 1024};
    client ka;
    cl_open(&ka);
    for (int i = 0; i < 3; i++) {
        char *body = pattern(sizes[i]);
        for (int k = 0; k < NW; k++) {
            client c;
            cl_open(&c);
            cl_request(&c, "POST", ids[k], body, sizes[i], NULL);
            unsigned got;
            char *back;
            size_t blen;
            cr_assert_eq(cl_answer(&c, &got, &back, &blen), 200, "POST of %zu bytes", sizes[i]);
            cr_assert_eq(got, ids[k]);
            cr_assert(blen == sizes[i] && memcmp(back, body, blen) == 0, "%zu bytes intact (got %zu)", sizes[i], blen);
            free(back);
            cl_close(&c);
            roundtrip(&ka, ids[(k + i) % NW], body, sizes[i]);
        }
        free(body);
    }
    cl_close(&ka);
}

Test(sticky, pipelined_requests_behind_a_steered_one_are_answered_in_order_by_theirs)
{
    char *body = pattern(5000);
    client c;
    cl_open(&c);
    char reqs[16384];
    size_t n = 0;
    for (int i = 0; i < 6; i++) {
        size_t len = i % 2 ? 0 : 5000;
        n += (size_t)snprintf(reqs + n, sizeof reqs - n, "%s /s/echo?to=%u HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                              len ? "POST" : "GET", ids[(i * 3 + 1) % NW], len);
        memcpy(reqs + n, body, len);
        n += len;
    }
    cl_write(&c, reqs, n); /* all six at once */
    for (int i = 0; i < 6; i++) {
        unsigned got;
        char *back;
        size_t blen;
        cr_assert_eq(cl_answer(&c, &got, &back, &blen), 200, "answer %d", i);
        cr_assert_eq(got, ids[(i * 3 + 1) % NW], "answer %d by its worker", i);
        cr_assert_eq(blen, i % 2 ? 0u : 5000u);
        cr_assert(memcmp(back, body, blen) == 0);
        free(back);
    }
    cl_close(&c);
    free(body);
}

Test(sticky, a_chunked_body_and_an_expect_100_continue_body_arrive_at_their_worker)
{
    client c;
    cl_open(&c);
    char req[512];
    int n = snprintf(req, sizeof req, "POST /s/echo?to=%u HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n", ids[2]);
    cl_write(&c, req, (size_t)n);
    unsigned got;
    char *back;
    size_t blen;
    cr_assert_eq(cl_answer(&c, &got, &back, &blen), 200);
    cr_assert_eq(got, ids[2]);
    cr_assert_str_eq(back, "hello, world");
    free(back);
    cl_close(&c);

    /* The 100 comes before the body is sent; the body then goes to the owner. */
    char *body = pattern(20000);
    cl_open(&c);
    n = snprintf(req, sizeof req, "POST /s/echo?to=%u HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 "Content-Length: 20000\r\n\r\n", ids[3]);
    cl_write(&c, req, (size_t)n);
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    while (c.len < sizeof cont - 1)
        cr_assert_eq(cl_fill(&c), 0, "a 100 Continue before the body");
    cr_assert(memcmp(c.buf, cont, sizeof cont - 1) == 0, "%.*s", (int)c.len, c.buf);
    memmove(c.buf, c.buf + sizeof cont - 1, c.len - (sizeof cont - 1));
    c.len -= sizeof cont - 1;
    cl_write(&c, body, 20000);
    cr_assert_eq(cl_answer(&c, &got, &back, &blen), 200);
    cr_assert_eq(got, ids[3]);
    cr_assert(blen == 20000 && memcmp(back, body, blen) == 0, "the body arrived intact after the 100");
    free(back);
    free(body);
    cl_close(&c);
}

Test(sticky, a_request_for_a_worker_that_does_not_exist_is_served_once)
{
    int slot0 = -1;
    for (int k = 0; k < NW; k++)
        if (ids[k] >> 22 == 0)
            slot0 = k;
    cr_assert_geq(slot0, 0, "a worker in slot 0");
    /* Slot 0, a pid that is not its worker's: slot 0's worker serves it. */
    unsigned gone = (ids[slot0] & ~0x3fffffu) | ((ids[slot0] + 1) & 0x3fffffu);
    /* A slot that does not exist: any worker serves it. */
    unsigned nowhere = (1000u << 22) | 12345u;
    for (int i = 0; i < 10; i++) {
        client c;
        cl_open(&c);
        cl_request(&c, "POST", i % 2 ? gone : nowhere, "abc", 3, NULL);
        unsigned got;
        char *back;
        size_t blen;
        cr_assert_eq(cl_answer(&c, &got, &back, &blen), 200, "served, not dropped (%d)", i);
        cr_assert_str_eq(back, "abc");
        free(back);
        int known = 0;
        for (int k = 0; k < NW; k++)
            known |= got == ids[k];
        cr_assert(known, "by one of the workers (%u)", got);
        if (i % 2)
            cr_assert_eq(got, ids[slot0], "by the worker of the id's slot");
        /* ...and the connection is still good for the next request. */
        roundtrip(&c, ids[i % NW], "z", 1);
        cl_close(&c);
    }
}

/* clusterd_moved_connections_total in /metrics, or -1. */
static long long moved_total(void)
{
    th_response r;
    th_http(&r, srv.port, "GET", "/metrics", NULL, 5000);
    const char *p = r.status == 200 && r.body ? strstr(r.body, "\nclusterd_moved_connections_total ") : NULL;
    long long n = p ? atoll(p + 34) : -1;
    th_response_free(&r);
    return n;
}

Test(sticky, moved_connections_are_counted_in_metrics)
{
    long long before = -1;
    for (long long end = th_now_ms() + 5000; before < 0 && th_now_ms() < end;)
        before = moved_total(); /* 503 until the worker has the cluster's counters */
    cr_assert_geq(before, 0, "/metrics has clusterd_moved_connections_total");
    client c;
    cl_open(&c);
    for (int i = 0; i < 40; i++)
        roundtrip(&c, ids[i % NW], NULL, 0); /* each one for another worker than the last: it moves */
    cl_close(&c);
    long long after = before;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && after < before + 39;) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        after = moved_total();
    }
    cr_assert_geq(after, before + 39, "39 or 40 moves counted (%lld -> %lld)", before, after);
}

Test(sticky, a_burst_of_200_concurrent_steered_requests_is_answered_in_full)
{
    enum { N = 200 };
    client *c = calloc(N, sizeof *c);
    for (int i = 0; i < N; i++) {
        cl_open(&c[i]);
        cl_request(&c[i], "POST", ids[i % NW], "burst", 5, NULL);
    }
    int by_owner = 0;
    for (int i = 0; i < N; i++) {
        unsigned got;
        char *back;
        size_t blen;
        cr_assert_eq(cl_answer(&c[i], &got, &back, &blen), 200, "request %d answered", i);
        cr_assert_str_eq(back, "burst");
        by_owner += got == ids[i % NW];
        free(back);
        cl_close(&c[i]);
    }
    free(c);
    cr_assert_eq(by_owner, N, "every one by its worker (%d of %d)", by_owner, N);
}
