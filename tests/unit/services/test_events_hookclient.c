/*
 * test_events_hookclient.c - unit tests of the HTTP hooks' client
 * (services/events/hookclient.c) against a tiny HTTP server on a thread of
 * the test (a listening socket on 127.0.0.1, one behaviour per test): the
 * answer and what the server received, a refused connection, a server too
 * slow for the timeout, the bound on requests in flight, an answer too
 * large, and requests cancelled when the client is freed.  A libev loop of
 * the test's own drives the client, as the worker's does.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "services/events/hooks.h"

enum { SRV_ANSWER, SRV_SILENT, SRV_HUGE };

typedef struct server {
    int lfd, port, mode;
    pthread_t th;
    char got[4096]; /* the last request, headers and body */
    size_t got_len;
    int served;
} server;

/* Reads one request (headers, then Content-Length bytes of body). */
static void read_request(server *s, int fd)
{
    s->got_len = 0;
    for (;;) {
        ssize_t n = read(fd, s->got + s->got_len, sizeof s->got - 1 - s->got_len);
        if (n <= 0)
            return;
        s->got_len += (size_t)n;
        s->got[s->got_len] = '\0';
        char *eoh = strstr(s->got, "\r\n\r\n");
        char *cl = strcasestr(s->got, "content-length:");
        if (eoh && cl && s->got_len >= (size_t)(eoh + 4 - s->got) + (size_t)atol(cl + 15))
            return;
    }
}

static void *serve(void *arg)
{
    server *s = arg;
    int fd;
    while ((fd = accept(s->lfd, NULL, NULL)) >= 0) {
        read_request(s, fd);
        if (s->mode == SRV_SILENT) { /* holds the connection until the test ends */
            char c;
            while (read(fd, &c, 1) > 0) {
            }
        } else if (s->mode == SRV_HUGE) {
            static char big[64 * 1024];
            memset(big, 'x', sizeof big);
            dprintf(fd, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", sizeof big);
            (void)!write(fd, big, sizeof big);
        } else {
            const char *body = "{\"accept\":true}";
            dprintf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%s", strlen(body), body);
        }
        __atomic_add_fetch(&s->served, 1, __ATOMIC_SEQ_CST);
        close(fd);
    }
    return NULL;
}

static server *server_start(int mode)
{
    server *s = calloc(1, sizeof *s);
    s->mode = mode;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s->lfd, 16), 0);
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, serve, s);
    return s;
}

/* A port nothing listens on: bound, then closed. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct outcome {
    struct ev_loop *loop;
    int calls, err;
    long status;
    char body[256];
    size_t len;
} outcome;

static void done(void *arg, const cd_hook_result *r)
{
    outcome *o = arg;
    o->calls++;
    o->err = r->err;
    o->status = r->status;
    o->len = r->len;
    if (!r->err)
        snprintf(o->body, sizeof o->body, "%.*s", (int)(r->len < 255 ? r->len : 255), r->body);
    if (o->loop)
        ev_break(o->loop, EVBREAK_ALL);
}

static char url[128];

static void post(cd_hookclient *hc, int port, outcome *o, long timeout_ms, int expect)
{
    snprintf(url, sizeof url, "http://127.0.0.1:%d/connect", port);
    const char *body = "{\"type\":\"connect\",\"sid\":\"abc\"}";
    cr_assert_eq(cd_events__hook_post(hc, url, body, strlen(body), timeout_ms, 1024, done, o), expect);
}

Test(events_hookclient, posts_json_and_reads_the_answer)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    server *s = server_start(SRV_ANSWER);
    cd_hookclient *hc;
    cr_assert_eq(cd_events__hookclient_new(loop, 4, &hc), 0);
    outcome o = {.loop = loop};
    post(hc, s->port, &o, 5000, 0);
    cr_expect_eq(o.calls, 0, "never called from inside post");
    cr_expect_eq(cd_events__hookclient_in_flight(hc), 1);
    ev_run(loop, 0);
    cr_assert_eq(o.calls, 1);
    cr_expect_eq(o.err, 0);
    cr_expect_eq(o.status, 200);
    cr_expect_str_eq(o.body, "{\"accept\":true}");
    cr_expect_eq(cd_events__hookclient_in_flight(hc), 0);
    cr_expect(strncmp(s->got, "POST /connect HTTP/1.1\r\n", 24) == 0, "%s", s->got);
    cr_expect(strcasestr(s->got, "\r\nContent-Type: application/json\r\n"), "%s", s->got);
    cr_expect(!strcasestr(s->got, "\r\nExpect:"), "%s", s->got);
    cr_expect(strstr(s->got, "\r\n\r\n{\"type\":\"connect\",\"sid\":\"abc\"}"), "%s", s->got);
    cd_events__hookclient_free(hc);
    ev_loop_destroy(loop);
}

Test(events_hookclient, a_refused_connection_is_an_error)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    cd_hookclient *hc;
    cr_assert_eq(cd_events__hookclient_new(loop, 4, &hc), 0);
    outcome o = {.loop = loop};
    post(hc, dead_port(), &o, 5000, 0);
    ev_run(loop, 0);
    cr_assert_eq(o.calls, 1);
    cr_expect_eq(o.err, -ECONNREFUSED);
    cd_events__hookclient_free(hc);
    ev_loop_destroy(loop);
}

Test(events_hookclient, a_silent_server_times_out)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    server *s = server_start(SRV_SILENT);
    cd_hookclient *hc;
    cr_assert_eq(cd_events__hookclient_new(loop, 4, &hc), 0);
    outcome o = {.loop = loop};
    post(hc, s->port, &o, 200, 0);
    ev_run(loop, 0);
    cr_assert_eq(o.calls, 1);
    cr_expect_eq(o.err, -ETIMEDOUT);
    cr_expect_eq(cd_events__hookclient_in_flight(hc), 0);
    cd_events__hookclient_free(hc);
    ev_loop_destroy(loop);
}

Test(events_hookclient, over_max_in_flight_fails_at_once)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    server *s = server_start(SRV_ANSWER);
    cd_hookclient *hc;
    cr_assert_eq(cd_events__hookclient_new(loop, 1, &hc), 0);
    outcome o = {.loop = loop}, o2 = {0};
    post(hc, s->port, &o, 5000, 0);
    post(hc, s->port, &o2, 5000, -EBUSY);
    ev_run(loop, 0);
    cr_expect_eq(o.calls, 1);
    cr_expect_eq(o2.calls, 0, "a refused post is never called back");
    /* the slot is free again */
    outcome o3 = {.loop = loop};
    post(hc, s->port, &o3, 5000, 0);
    ev_run(loop, 0);
    cr_expect_eq(o3.calls, 1);
    cr_expect_eq(o3.status, 200);
    cd_events__hookclient_free(hc);
    ev_loop_destroy(loop);
}

Test(events_hookclient, an_answer_too_large_is_an_error)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    server *s = server_start(SRV_HUGE);
    cd_hookclient *hc;
    cr_assert_eq(cd_events__hookclient_new(loop, 4, &hc), 0);
    outcome o = {.loop = loop};
    post(hc, s->port, &o, 5000, 0); /* max_answer 1024 */
    ev_run(loop, 0);
    cr_assert_eq(o.calls, 1);
    cr_expect_eq(o.err, -EMSGSIZE);
    cd_events__hookclient_free(hc);
    ev_loop_destroy(loop);
}

Test(events_hookclient, freeing_cancels_what_is_in_flight)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    server *s = server_start(SRV_SILENT);
    cd_hookclient *hc;
    cr_assert_eq(cd_events__hookclient_new(loop, 4, &hc), 0);
    outcome o = {0}, o2 = {0};
    post(hc, s->port, &o, 5000, 0);
    post(hc, s->port, &o2, 5000, 0);
    ev_run(loop, EVRUN_NOWAIT); /* connecting */
    cd_events__hookclient_free(hc);
    cr_expect_eq(o.calls, 1);
    cr_expect_eq(o.err, -ECANCELED);
    cr_expect_eq(o2.calls, 1);
    cr_expect_eq(o2.err, -ECANCELED);
    cr_expect_eq(ev_run(loop, EVRUN_NOWAIT), 0, "no watcher left on the loop");
    ev_loop_destroy(loop);
}
