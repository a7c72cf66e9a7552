/*
 * test_readmongo_service.c - the readmongo service itself (readmongo.c with
 * exec.c, its query fibers, and stream.c) behind a real HTTP context, with no
 * database: the URI points at a loopback port nobody listens on.  What it
 * shows without MongoDB: the answers given on the loop thread (index,
 * refusals) byte for byte, a full query queue answering 503 at once, jobs
 * coming back from the query fibers as answers, and a destroy while a job
 * is in a fiber's hands and another is queued (no request touched
 * after its connection is gone; ASan would say).  The database paths themselves are
 * tests/integration/test_readmongo.c's, against FerretDB.
 *
 * Each client is one end of a socketpair whose other end the HTTP context
 * serves; the test turns the loop itself, bounded by a deadline that only
 * turns a hang into a failure.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "http/router.h"
#include "http/server.h"
#include "services/readmongo/readmongo.h"
#include "services/registry.h"
#include "services/service.h"

extern const cd_service_type cd_service_readmongo;

static struct ev_loop *loop;
static cd_conf *conf;
static cd_http_ctx ctx;
static cd_service svc;
static cd_readmongo_conf *rmconf;
static cd_route route;
static const cd_route **sorted;
static int dead_fd = -1;

/* A loopback port that refuses connections: bound, never listening. */
static int dead_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;

    dead_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(dead_fd, 0);
    cr_assert_eq(bind(dead_fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(dead_fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static void set(const char *k, const char *v)
{
    char err[256];
    cr_assert_eq(cd_conf_key_set(cd_service_readmongo.keys, rmconf, k, v, err, sizeof err), 0,
                 "%s = %s: %s", k, v, err);
}

static void setup(void)
{
    static const char text[] = "[cluster]\nheader_timeout = 10s\n[dummy]\ntype = dummy\n";
    char err[256], uri[128];

    cd_conf_set_binder(cd_service_bind);
    cr_assert_eq(cd_conf_load_text("t.ini", text, strlen(text), &conf, err, sizeof err), 0, "%s", err);
    loop = ev_loop_new(EVFLAG_AUTO);
    cd_http_init(&ctx, loop, conf);

    rmconf = cd_service_readmongo.conf_new();
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/", dead_port());
    set("uri", uri);
    set("collections", "users, orders");
    set("concurrency", "1");
    set("queue_size", "1");
    set("server_selection_timeout", "300ms");
    cr_assert_eq(cd_service_readmongo.conf_check(rmconf, err, sizeof err), 0, "%s", err);

    svc = (cd_service){.type = &cd_service_readmongo, .name = "readmongo", .route = "/readmongo",
                       .route_len = 10, .loop = loop, .conf = rmconf};
    cr_assert_eq(cd_service_readmongo.init(&svc, err, sizeof err), 0, "%s", err);
    route = cd_service_route(&svc);
    cr_assert_eq(cd_router_build(&route, 1, &sorted), 0);
    ctx.routes = sorted;
    ctx.nroutes = 1;
}

static void teardown(void)
{
    cd_http_close_all(&ctx);
    if (svc.state)
        cd_service_readmongo.destroy(&svc);
    free(sorted);
    ev_loop_destroy(loop);
    cd_service_readmongo.conf_free(rmconf);
    cd_conf_free(conf);
    close(dead_fd);
}

TestSuite(readmongo_service, .init = setup, .fini = teardown);

typedef struct client {
    int fd;
    char got[8192];
    size_t len;
} client;

static void connect_and_send(client *c, const char *path)
{
    int sv[2];
    char req[512];

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    c->fd = sv[1];
    c->len = 0;
    cd_http_conn_new(&ctx, sv[0], NULL, 0);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    cr_assert_eq(send(c->fd, req, (size_t)n, 0), n);
}

/* The body of a complete response in c, or NULL while it is incomplete. */
static const char *body_of(client *c)
{
    c->got[c->len] = '\0';
    const char *end = strstr(c->got, "\r\n\r\n");
    const char *cl = strstr(c->got, "Content-Length: ");
    if (!end || !cl)
        return NULL;
    size_t want = strtoul(cl + 16, NULL, 10);
    return (size_t)(c->got + c->len - (end + 4)) >= want ? end + 4 : NULL;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turns the loop until every client has a whole response. */
static void pump(client *cs, int n)
{
    long long deadline = now_ms() + 20000;

    for (;;) {
        int done = 0;
        ev_run(loop, EVRUN_NOWAIT);
        for (int i = 0; i < n; i++) {
            ssize_t r = recv(cs[i].fd, cs[i].got + cs[i].len, sizeof cs[i].got - 1 - cs[i].len, 0);
            if (r > 0)
                cs[i].len += (size_t)r;
            done += body_of(&cs[i]) != NULL;
        }
        if (done == n)
            return;
        cr_assert_lt(now_ms(), deadline, "%d of %d answered after 20 s", done, n);
        poll(NULL, 0, 2);
    }
}

static int status_of(client *c)
{
    return atoi(c->got + 9); /* "HTTP/1.1 NNN" */
}

Test(readmongo_service, the_index_and_refusals_are_answered_on_the_loop_thread)
{
    client c[3];

    connect_and_send(&c[0], "/readmongo");
    connect_and_send(&c[1], "/readmongo/secret");
    connect_and_send(&c[2], "/readmongo/users?filter=%7B%22%24where%22%3A1%7D");
    pump(c, 3);
    cr_assert_eq(status_of(&c[0]), 200);
    cr_assert_str_eq(body_of(&c[0]), "{\"database\":\"demo\",\"collections\":[\"users\",\"orders\"]}");
    cr_assert_eq(status_of(&c[1]), 403);
    cr_assert_str_eq(body_of(&c[1]),
                     "{\"error\":\"collection 'secret' is not readable through this service\",\"status\":403}");
    cr_assert_eq(status_of(&c[2]), 400);
    cr_assert_str_eq(body_of(&c[2]), "{\"error\":\"filter: operator $where is not allowed\",\"status\":400}");
    for (int i = 0; i < 3; i++)
        close(c[i].fd);
}

/* The check of the database at init (exec.c) holds the fiber for
 * server_selection_timeout; once it has failed, a job queued before it
 * failed is answered at once.  The tests that count what the thread holds
 * let it finish first, so the next job is the one in the fiber's hands. */
static void wait_for_the_check_at_init(void)
{
    long long until = now_ms() + 5000;
    while (!cd_service_readmongo.degraded(&svc) && now_ms() < until) {
        ev_run(loop, EVRUN_NOWAIT);
        poll(NULL, 0, 5);
    }
    cr_assert(cd_service_readmongo.degraded(&svc), "the check at init did not come back");
}

Test(readmongo_service, a_full_queue_answers_503_at_once_and_jobs_come_back_as_answers)
{
    static const char full[] =
        "{\"error\":\"the service is overloaded: its query queue is full\",\"status\":503}";
    static const char down[] = "{\"error\":\"database unreachable\",\"status\":503}";
    client c[4];
    int nfull = 0, ndown = 0;

    /* One fiber, one queue place: of four queries at once, at most two are
     * taken (one in the fiber's hands, one queued); the others are refused
     * at once.  The taken ones fail server selection (nobody listens). */
    wait_for_the_check_at_init();
    for (int i = 0; i < 4; i++)
        connect_and_send(&c[i], "/readmongo/users?limit=1");
    pump(c, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(status_of(&c[i]), 503, "%s", c[i].got);
        const char *b = body_of(&c[i]);
        nfull += strcmp(b, full) == 0;
        ndown += strcmp(b, down) == 0;
        close(c[i].fd);
    }
    cr_assert_eq(nfull + ndown, 4, "an answer other than these two");
    cr_assert_geq(nfull, 2, "a full queue took a job");
    cr_assert_geq(ndown, 1, "no job came back from the thread");
    cr_assert_str_eq(cd_service_readmongo.degraded(&svc), "database unreachable");
}

Test(readmongo_service, destroy_with_jobs_out_answers_nothing)
{
    client c[2];

    /* The port now accepts connections and never answers: the check at
     * start (the fiber's first job, not begun yet) connects and waits for
     * the server's hello, so the fiber is out when the requests come. */
    cr_assert_eq(listen(dead_fd, 8), 0);
    connect_and_send(&c[0], "/readmongo/users");
    connect_and_send(&c[1], "/readmongo/orders");
    /* Dispatch both requests; the first job is queued behind the check,
     * the other finds the queue full.  Destroy drops the queued job and cuts
     * the fiber's wait short (cd_request_drop for what it held): the ASan
     * build's LeakSanitizer fails this test if a request, a job or the
     * driver's client stays allocated. */
    for (int i = 0; i < 20; i++)
        ev_run(loop, EVRUN_NOWAIT);
    /* What was answered at once (a full queue), before the stop. */
    int unanswered = 0;
    for (int i = 0; i < 2; i++) {
        ssize_t r = recv(c[i].fd, c[i].got, sizeof c[i].got - 1, 0);
        unanswered += r <= 0;
    }
    cr_assert_geq(unanswered, 1, "no job was out when the service was destroyed");
    cd_service_readmongo.stop(&svc);
    cd_http_close_all(&ctx); /* as the worker does before destroy */
    cd_service_readmongo.destroy(&svc);
    cr_assert_null(svc.state);
    for (int i = 0; i < 2; i++) {
        char more[512];
        ssize_t r = recv(c[i].fd, more, sizeof more, 0);
        cr_assert_leq(r, 0, "an answer after its connection was closed: %.*s", (int)r, more);
        close(c[i].fd);
    }
}
