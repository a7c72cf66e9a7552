/*
 * fixture.c - see fixture.h.
 */
#include "fixture.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "http/router.h"
#include "services/registry.h"

/* ---- test services (fixture.h says what each does) ---- */

void echo_handle(cd_service *svc, cd_request *req)
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
fx_upgrade up;

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
    ev_timer_init(&l->t, upcb_later_cb, 0.2, 0.); /* long enough for a test to act before it fires, even under load */
    ev_timer_start(svc->loop, &l->t);
}

static const cd_service_type upgrade_type = {.name = "up", .methods = CD_M_GET, .handle = upgrade_handle};
static const cd_service_type upcb_later_type = {.name = "upcblater", .methods = CD_M_GET,
                                                .handle = upcb_later_handle};

static const cd_service_type echo_type = {.name = "echo", .methods = CD_M_GET | CD_M_HEAD | CD_M_POST,
                                          .handle = echo_handle};
static const cd_service_type later_type = {.name = "later", .methods = CD_M_GET, .handle = later_handle};

/* ---- fixture ---- */

cd_http_ctx ctx;
struct ev_loop *loop;
static cd_conf *conf;
cd_service services[6];
static cd_route *routes;
static const cd_route **sorted;
int client = -1;

fx_counted counted;

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
cd_snapshot *host_snapshot;
cd_service *host_services;
size_t host_nservices;

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

const cd_service_host test_host = {.all = host_all, .cluster = host_cluster};

/* Routes the context to services s[0..n) (their cd_service_route). */
void set_routes(cd_service *s, size_t n)
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

void setup_with(const char *cluster)
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

void setup(void) { setup_with("header_timeout = 10s\nkeepalive_timeout = 10s\nmax_header_size = 1k\nmax_body_size = 64"); }

void teardown(void)
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

void put(const char *s) { cr_assert_eq(send(client, s, strlen(s), 0), (ssize_t)strlen(s)); }

char got[65536];
size_t got_len;
int got_eof;

int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

const char *pump_until(int responses, const char *needle, int timeout_ms)
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
        if (needle && memmem(got, got_len, needle, strlen(needle)))
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

const char *pump(int responses, int timeout_ms) { return pump_until(responses, NULL, timeout_ms); }
