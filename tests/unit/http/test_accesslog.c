/*
 * Unit tests for http/accesslog.c's line format (cd_accesslog_format): the
 * combined log format with the duration, JSON lines with the slot, text
 * from the client escaped in both, and lines cut to fit; then the writer
 * thread end to end through a file.  And the on_log / on_done hooks of an
 * HTTP context: what a served, a refused and an unrouted request report.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "http/accesslog.h"
#include "http/router.h"
#include "http/server.h"

/* 2026-01-02 03:04:05 UTC */
#define T0 1767323045.0

static cd_access_entry entry(void)
{
    return (cd_access_entry){.time = T0, .peer = "10.0.0.1", .method = "GET", .url = "/dummy?x=1",
                             .http_minor = 1, .status = 200, .bytes = 11, .duration = 0.00125,
                             .route = "dummy", .user_agent = "curl/8", .referer = NULL,
                             .request_id = "a1-b2.c_3"};
}

Test(accesslog, combined_format)
{
    cd_access_entry e = entry();
    char line[512];
    size_t n = cd_accesslog_format(line, sizeof line, &e, 0, 3);
    cr_assert_str_eq(line, "10.0.0.1 - - [02/Jan/2026:03:04:05 +0000] \"GET /dummy?x=1 HTTP/1.1\" 200 11 \"-\" "
                           "\"curl/8\" 0.001250 a1-b2.c_3\n");
    cr_assert_eq(n, strlen(line));
    e.request_id = NULL; /* a request refused before it had one */
    cd_accesslog_format(line, sizeof line, &e, 0, 3);
    cr_assert(strstr(line, " 0.001250 -\n"), "%s", line);
}

Test(accesslog, json_format_with_slot)
{
    cd_access_entry e = entry();
    e.referer = "http://r/";
    char line[512];
    cd_accesslog_format(line, sizeof line, &e, 1, 3);
    cr_assert_str_eq(line, "{\"time\":\"2026-01-02T03:04:05Z\",\"remote\":\"10.0.0.1\",\"method\":\"GET\","
                           "\"url\":\"/dummy?x=1\",\"status\":200,\"bytes\":11,\"duration\":0.001250,"
                           "\"service\":\"dummy\",\"user_agent\":\"curl/8\",\"referer\":\"http://r/\","
                           "\"request_id\":\"a1-b2.c_3\",\"slot\":3}\n");
    e.request_id = NULL;
    cd_accesslog_format(line, sizeof line, &e, 1, 3);
    cr_assert(strstr(line, "\"request_id\":\"-\","), "%s", line);
}

/* A quote, backslash or control byte from the client cannot end a field or
 * the line, in either format. */
Test(accesslog, client_text_is_escaped)
{
    cd_access_entry e = entry();
    e.url = "/a\"b\\c";
    e.user_agent = "x\ny\x7f";
    char line[512];
    cd_accesslog_format(line, sizeof line, &e, 0, 0);
    cr_assert(strstr(line, "\"GET /a\\\"b\\\\c HTTP/1.1\""), "%s", line);
    cr_assert(strstr(line, "\"x\\u000ay\\u007f\""), "%s", line);
    cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "one line: %s", line);
    cd_accesslog_format(line, sizeof line, &e, 1, 0);
    cr_assert(strstr(line, "\"url\":\"/a\\\"b\\\\c\""), "%s", line);
    cr_assert(strstr(line, "\"user_agent\":\"x\\u000ay\\u007f\""), "%s", line);
}

Test(accesslog, long_lines_are_cut_to_fit)
{
    cd_access_entry e = entry();
    char url[3000];
    memset(url, 'u', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    e.url = url;
    char line[300];
    size_t n = cd_accesslog_format(line, sizeof line, &e, 1, 0);
    cr_assert_eq(n, sizeof line - 1);
    cr_assert_eq(strlen(line), n);
}

Test(accesslog, lines_reach_the_file)
{
    char path[] = "/tmp/cd-accesslog-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cd_accesslog al;
    cr_assert_eq(cd_accesslog_open(&al, path), 0);
    cd_access_entry e = entry();
    char line[512];
    size_t n = cd_accesslog_format(line, sizeof line, &e, 0, 0);
    cd_accesslog_append(&al, line, n);
    cd_accesslog_close(&al); /* flushes */
    char got[512] = "";
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t k = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    unlink(path);
    got[k] = '\0';
    cr_assert_str_eq(got, line);
}

/* ---- the hooks of an HTTP context ---- */

static struct {
    int done, logs;
    const cd_route *route;
    int status;
    double seconds;
    char log_route[32], log_method[16], log_url[64];
    int log_status;
} heard;

static void on_done(void *owner, const cd_route *route, int status, double seconds)
{
    (void)owner;
    heard.done++;
    heard.route = route;
    heard.status = status;
    heard.seconds = seconds;
}

static void on_log(void *owner, const cd_access_entry *e)
{
    (void)owner;
    heard.logs++;
    heard.log_status = e->status;
    snprintf(heard.log_route, sizeof heard.log_route, "%s", e->route);
    snprintf(heard.log_method, sizeof heard.log_method, "%s", e->method);
    snprintf(heard.log_url, sizeof heard.log_url, "%s", e->url);
}

static void ok_handle(void *arg, cd_request *r)
{
    (void)arg;
    cd_request_respond(r, 200, "text/plain", "ok", 2);
}

/* Sends req on a fresh connection of a context with one route (/ok, GET)
 * and the two hooks, turns the loop until the answer is in. */
static void serve(const char *req)
{
    static cd_conf conf; /* only the limits cd_http_init reads */
    conf.max_header_size = 4096;
    conf.max_body_size = 64;
    conf.header_timeout_ms = conf.body_timeout_ms = conf.body_deadline_ms = 10000;
    conf.keepalive_timeout_ms = 10000;
    conf.max_connections = 10;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    cd_http_ctx ctx;
    cd_http_init(&ctx, loop, &conf);
    static const cd_route route = {.prefix = "/ok", .len = 3, .name = "ok", .methods = CD_M_GET,
                                   .handle = ok_handle};
    static const cd_route *const sorted[] = {&route};
    ctx.routes = sorted;
    ctx.nroutes = 1;
    ctx.on_done = on_done;
    ctx.on_log = on_log;
    memset(&heard, 0, sizeof heard);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    cr_assert_eq(send(sv[1], req, strlen(req), 0), (ssize_t)strlen(req));
    cd_http_conn_new(&ctx, sv[0], NULL, 0);
    for (int i = 0; i < 100 && heard.done == 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct pollfd p = {.fd = sv[1], .events = POLLIN};
        poll(&p, 1, 2);
    }
    cd_http_close_all(&ctx);
    close(sv[1]);
    ev_loop_destroy(loop);
    cr_assert_eq(heard.done, 1);
    cr_assert_eq(heard.logs, 1, "logged once, like it was counted");
}

Test(http_hooks, a_served_request_names_its_route_and_is_timed)
{
    serve("GET /ok/x HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_not_null(heard.route);
    cr_assert_str_eq(heard.route->name, "ok");
    cr_assert_eq(heard.status, 200);
    cr_assert_geq(heard.seconds, 0);
    cr_assert_str_eq(heard.log_route, "ok");
    cr_assert_str_eq(heard.log_method, "GET");
    cr_assert_str_eq(heard.log_url, "/ok/x");
}

Test(http_hooks, no_route_and_wrong_method_count_without_a_route)
{
    serve("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_null(heard.route);
    cr_assert_eq(heard.status, 404);
    cr_assert_str_eq(heard.log_route, "-");
    serve("POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    cr_assert_null(heard.route, "a 405 is not the route's");
    cr_assert_eq(heard.status, 405);
}

Test(http_hooks, a_malformed_request_is_refused_untimed)
{
    serve("GET /ok HTTP/1.1\r\nBad Header: v\r\n\r\n");
    cr_assert_null(heard.route);
    cr_assert_eq(heard.status, 400);
    cr_assert_lt(heard.seconds, 0, "refused before dispatch: not timed");
    cr_assert_eq(heard.log_status, 400);
    cr_assert_str_eq(heard.log_method, "-", "its headers were never complete");
}
