/*
 * Unit tests for what a service adds to its answers (issue 11): response
 * headers (http/headers.c: validated, server-owned ones refused, a
 * Content-Type never sent twice), streamed answers (http/stream.c: chunked
 * framing on HTTP/1.1, a close-delimited body on HTTP/1.0, headers only
 * for HEAD, a write after the client left says -EPIPE) and the request id
 * (http/reqid.c: the client's when valid, else generated, always echoed).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "feat_fixture.h"

static void fini(void) { feat_teardown(); }
TestSuite(http_features, .init = setup, .fini = fini);

/* ---- response headers ---- */

static int hdr_rc[8];

static void hdr_handle(void *arg, cd_request *r)
{
    (void)arg;
    hdr_rc[0] = cd_response_header(r, "X-Custom", "yes");
    hdr_rc[1] = cd_response_header(r, "Bad Name", "v");
    hdr_rc[2] = cd_response_header(r, "X-Split", "a\r\nInjected: 1");
    hdr_rc[3] = cd_response_header(r, "content-length", "5");
    hdr_rc[4] = cd_response_header(r, "Transfer-Encoding", "chunked");
    hdr_rc[5] = cd_response_header(r, "Content-Type", "text/x-own");
    hdr_rc[6] = cd_response_header(r, "X-Request-Id", "mine");
    hdr_rc[7] = cd_response_header(r, "Set-Cookie", "a=1");
    cd_response_header(r, "Set-Cookie", "b=2");
    const char *q = cd_request_query(r);
    if (strcmp(q, "own") == 0)
        cd_request_respond(r, 200, NULL, "hi", 2); /* the service's Content-Type */
    else
        cd_request_respond(r, 200, "text/plain", "hi", 2); /* the answer's wins */
}

static cd_route hdr_route[] = {{.prefix = "/h", .len = 2, .name = "h", .methods = CD_M_GET, .handle = hdr_handle}};

Test(http_features, response_headers_are_validated_and_sent)
{
    feat_routes(hdr_route, 1);
    put("GET /h HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(1, 1000);
    cr_assert_eq(hdr_rc[0], 0);
    cr_assert_eq(hdr_rc[1], -EINVAL, "a name that is not a token");
    cr_assert_eq(hdr_rc[2], -EINVAL, "a value with CR/LF");
    cr_assert_eq(hdr_rc[3], -EINVAL, "Content-Length is the server's (any case)");
    cr_assert_eq(hdr_rc[4], -EINVAL);
    cr_assert_eq(hdr_rc[5], 0);
    cr_assert_eq(hdr_rc[6], -EINVAL, "X-Request-Id is the server's");
    cr_assert_eq(hdr_rc[7], 0);
    cr_assert(strstr(got, "\r\nX-Custom: yes\r\n"), "%s", got);
    cr_assert(strstr(got, "\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"), "repeats kept, in order: %s", got);
    cr_assert_null(strstr(got, "Injected"), "%s", got);
    cr_assert_null(strstr(got, "Bad Name"), "%s", got);
    cr_assert_eq(count(got, "Content-Type:"), 1, "one Content-Type: %s", got);
    cr_assert(strstr(got, "Content-Type: text/plain\r\n"), "%s", got);
    cr_assert_eq(count(got, "Content-Length:"), 1, "%s", got);
    cr_assert(strstr(got, "\r\n\r\nhi"), "%s", got);

    put("GET /h?own HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(1, 1000);
    cr_assert_eq(count(got, "Content-Type:"), 1, "%s", got);
    cr_assert(strstr(got, "Content-Type: text/x-own\r\n"), "the service's when the answer gives none: %s", got);
}

/* ---- streamed answers ---- */

typedef struct streamer {
    ev_timer t;
    cd_request *r;
    int step, last_rc;
} streamer;
static streamer st;

static void stream_step(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)revents;
    streamer *s = (streamer *)t;
    if (s->step < 2) {
        s->last_rc = cd_response_write(s->r, s->step ? " world" : "hello", s->step ? 6 : 5);
        s->step++;
        return;
    }
    ev_timer_stop(loop, &s->t);
    cd_response_end(s->r);
    s->r = NULL;
}

/* Begins at once, writes two pieces from a timer, then ends. */
static void stream_handle(void *arg, cd_request *r)
{
    (void)arg;
    memset(&st, 0, sizeof st);
    st.r = r;
    cd_response_header(r, "X-Streamed", "1");
    cr_assert_eq(cd_response_begin(r, 200, "text/plain"), 0);
    cr_assert_eq(cd_response_begin(r, 200, "text/plain"), -EINVAL, "begins once");
    cr_assert_eq(cd_response_header(r, "X-Late", "1"), -EINVAL, "headers are gone once begun");
    ev_timer_init(&st.t, stream_step, 0.005, 0.005);
    ev_timer_start(loop, &st.t);
}

static cd_route stream_route[] = {
    {.prefix = "/s", .len = 2, .name = "s", .methods = CD_M_GET | CD_M_HEAD, .handle = stream_handle},
    {.prefix = "/echo", .len = 5, .name = "echo", .methods = CD_M_GET, .handle = NULL},
};

static void echo_route(void *arg, cd_request *r)
{
    (void)arg;
    cd_request_respond(r, 200, "text/plain", "next", 4);
}

Test(http_features, a_streamed_answer_is_chunked_on_http11_and_the_connection_lives_on)
{
    stream_route[1].handle = echo_route;
    feat_routes(stream_route, 2);
    put("GET /s HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_for("0\r\n\r\n", 2000);
    cr_assert(strstr(got, "HTTP/1.1 200 OK\r\n"), "%s", got);
    cr_assert(strstr(got, "Transfer-Encoding: chunked\r\n"), "%s", got);
    cr_assert_null(strstr(got, "Content-Length"), "%s", got);
    cr_assert(strstr(got, "X-Streamed: 1\r\n"), "%s", got);
    cr_assert(strstr(got, "\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "%s", got);
    cr_assert_eq(st.last_rc, 0);
    cr_assert_eq(counted.requests, 1, "counted once, at the end");
    cr_assert_eq(ctx.in_flight, 0);
    put("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "\r\n\r\nnext"), "keep-alive after the last chunk: %s", got);
}

Test(http_features, a_streamed_answer_to_head_has_headers_only)
{
    stream_route[1].handle = echo_route;
    feat_routes(stream_route, 2);
    put("HEAD /s HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_for("next", 2000);
    cr_assert_eq(count(got, "HTTP/1.1 200"), 2, "%s", got);
    cr_assert_null(strstr(got, "hello"), "%s", got);
    cr_assert_null(strstr(got, "0\r\n\r\n"), "no chunks, not even the last: %s", got);
    cr_assert(strstr(got, "Transfer-Encoding: chunked\r\n"), "the headers a GET would get: %s", got);
}

Test(http_features, a_streamed_answer_to_http10_ends_with_the_connection)
{
    feat_routes(stream_route, 1);
    put("GET /s HTTP/1.0\r\n\r\n");
    wait_for(NULL, 2000); /* until EOF */
    cr_assert(got_eof, "closed: that is the end of the body");
    cr_assert_null(strstr(got, "Transfer-Encoding"), "%s", got);
    cr_assert_null(strstr(got, "Content-Length"), "%s", got);
    cr_assert(strstr(got, "Connection: close\r\n"), "%s", got);
    cr_assert(strstr(got, "\r\n\r\nhello world"), "%s", got);
    cr_assert_eq(got + got_len - strstr(got, "hello world"), 11, "nothing after the body: %s", got);
}

Test(http_features, a_write_after_the_client_left_says_epipe)
{
    feat_routes(stream_route, 1);
    put("GET /s HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_for("Transfer-Encoding", 1000);
    cr_assert_not_null(st.r);
    cd_http_close_all(&ctx); /* the client is gone (reset) */
    cr_assert_eq(cd_response_write(st.r, "x", 1), -EPIPE);
    ev_timer_stop(loop, &st.t);
    cd_response_end(st.r); /* frees it: LeakSanitizer checks */
    cr_assert_eq(counted.requests, 1);
}

/* ---- the request id ---- */

static char seen_id[80];

static void id_handle(void *arg, cd_request *r)
{
    (void)arg;
    snprintf(seen_id, sizeof seen_id, "%s", r->reqid);
    cd_request_respond(r, 200, NULL, "", 0);
}

static cd_route id_route[] = {{.prefix = "/id", .len = 3, .name = "id", .methods = CD_M_GET, .handle = id_handle}};

static const char *answered_id(const char *req, char *out, size_t cap)
{
    put(req);
    pump(1, 1000);
    const char *h = strstr(got, "\r\nX-Request-Id: ");
    cr_assert_not_null(h, "%s", got);
    h += 16;
    snprintf(out, cap, "%.*s", (int)strcspn(h, "\r"), h);
    return out;
}

Test(http_features, the_request_id_is_the_clients_when_valid_else_generated)
{
    feat_routes(id_route, 1);
    char a[80], b[80];
    answered_id("GET /id HTTP/1.1\r\nX-Request-Id: abc-123_x.y\r\n\r\n", a, sizeof a);
    cr_assert_str_eq(a, "abc-123_x.y");
    cr_assert_str_eq(seen_id, "abc-123_x.y", "the service sees the same");

    char longid[100];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    char req[256];
    snprintf(req, sizeof req, "GET /id HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", longid);
    answered_id(req, a, sizeof a);
    cr_assert_str_neq(a, longid, "65 bytes is too long");
    longid[64] = '\0';
    snprintf(req, sizeof req, "GET /id HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", longid);
    answered_id(req, a, sizeof a);
    cr_assert_str_eq(a, longid, "64 is fine");

    answered_id("GET /id HTTP/1.1\r\nX-Request-Id: a b\"<\r\n\r\n", a, sizeof a);
    cr_assert(cd_http__reqid_valid(a) && !strchr(a, ' '), "replaced: %s", a);
    answered_id("GET /id HTTP/1.1\r\n\r\n", b, sizeof b);
    cr_assert(cd_http__reqid_valid(b), "%s", b);
    cr_assert_str_neq(a, b, "two generated ids differ");
    answered_id("GET /nowhere HTTP/1.1\r\n\r\n", a, sizeof a);
    cr_assert(strstr(got, "404"), "a 404 carries one too");
}

Test(http_features, a_refused_request_gets_an_id_too)
{
    feat_routes(id_route, 1);
    put("GET /id HTTP/1.1\r\nBad Header: x\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "400"), "%s", got);
    cr_assert(strstr(got, "\r\nX-Request-Id: "), "%s", got);
}

Test(http_features, reqid_validity)
{
    cr_assert(cd_http__reqid_valid("a"));
    cr_assert(cd_http__reqid_valid("A.b_c-9"));
    cr_assert_not(cd_http__reqid_valid(""));
    cr_assert_not(cd_http__reqid_valid("a/b"));
    cr_assert_not(cd_http__reqid_valid("a\nb"));
    cr_assert_not(cd_http__reqid_valid("é"));
}
