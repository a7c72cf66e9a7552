/*
 * fuzz_http.c - the HTTP layer end to end: bytes into a connection of an
 * HTTP context (http/server.c, parse.c: llhttp and our callbacks, limits,
 * pipelining, bodies, 100-continue; upgrade.c), the router (http/router.c)
 * and services that answer: the real dummy (with ?delay_ms=0, answered from
 * a timer), health and metrics services, plus three defined here: echo
 * (answers at once), later (answers from a zero timer, so a request is in
 * service while more pipelined bytes arrive) and up (takes the socket over
 * with cd_http_upgrade, as events does for a WebSocket).
 *
 * Input: byte 0 picks the chunk sizes, byte 1 the flags (close the client
 * half-way, half-close after the last byte, drain the worker, a slow reader
 * with small socket buffers so answers queue and wait for EV_WRITE), the
 * rest is what the client sends.  The client end of a socketpair writes it chunk
 * by chunk while the context's loop turns (EVRUN_NOWAIT, a bounded number
 * of times), reading and keeping what comes back.  Then every connection
 * is closed, the services answer what they still hold, and:
 *   - every response starts with "HTTP/1.1 " and a known status, carries a
 *     Content-Length unless it is 1xx, and the stream is made of exactly
 *     such responses (until a 101, after which the bytes are the service's);
 *   - no request is in flight, no connection and no watcher is left, and
 *     every upgrade callback ran exactly once (never inside the handler).
 * The context, loop and services are built once; nothing survives an
 * input.
 */
#include <ev.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/log.h"
#include "core/stats.h"
#include "http/router.h"
#include "http/server.h"
#include "services/registry.h"
#include "services/service.h"

#define MAX_CHUNKS 48
#define TURNS_PER_CHUNK 2
#define TURNS_AFTER 12
#define OUT_CAP (1 << 20)

/* ---- services defined here ---- */

static void echo_handle(cd_service *svc, cd_request *req)
{
    (void)svc;
    size_t blen;
    const char *body = cd_request_body(req, &blen);
    char q[64] = "-";
    cd_request_query_param(req, "q", q, sizeof q);
    const char *h = cd_request_header(req, "X-Test");
    char out[512];
    int n = snprintf(out, sizeof out, "m=%u sub=%s q=%s h=%s len=%zu", cd_request_method(req),
                     cd_request_subpath(req), q, h ? h : "-", blen);
    if (n < 0 || (size_t)n >= sizeof out)
        n = (int)strlen(out);
    /* The body itself follows, so a bad body copy shows as a bad length. */
    char *all = malloc((size_t)n + blen);
    if (!all) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    memcpy(all, out, (size_t)n);
    memcpy(all + n, body, blen);
    cd_request_respond(req, 200, "text/plain", all, (size_t)n + blen);
    free(all);
}

typedef struct later {
    ev_timer t; /* first member */
    cd_request *req;
    struct later *prev, *next;
} later;

static later *pending; /* requests the later service holds */

static void later_answer(later *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        pending = l->next;
    if (l->next)
        l->next->prev = l->prev;
    const char *p = cd_request_path(l->req);
    cd_request_respond(l->req, 202, "text/plain", p, strlen(p));
    free(l);
}

static void later_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    later_answer((later *)t);
}

static void later_handle(cd_service *svc, cd_request *req)
{
    later *l = calloc(1, sizeof *l);
    if (!l) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    l->req = req;
    l->next = pending;
    if (pending)
        pending->prev = l;
    pending = l;
    ev_timer_init(&l->t, later_cb, 0., 0.);
    ev_timer_start(svc->loop, &l->t);
}

static int upgrades; /* hand-overs begun and not yet called back */

static void up_cb(void *arg, int fd, const char *head, size_t headlen)
{
    (void)arg;
    (void)head;
    if (headlen > 16384)
        abort(); /* more than the input buffer holds */
    upgrades--;
    if (fd < 0)
        return;
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    ssize_t wr = send(fd, sw, sizeof sw - 1, MSG_NOSIGNAL);
    (void)wr;
    close(fd);
}

static void up_handle(cd_service *svc, cd_request *req)
{
    (void)svc;
    upgrades++;
    cd_http_upgrade(req, up_cb, NULL);
    if (upgrades == 0)
        abort(); /* called back inside cd_http_upgrade */
}

static const cd_service_type echo_type = {
    .name = "echo", .methods = CD_M_GET | CD_M_HEAD | CD_M_POST | CD_M_PUT, .handle = echo_handle};
static const cd_service_type later_type = {
    .name = "later", .methods = CD_M_GET | CD_M_HEAD | CD_M_POST, .handle = later_handle};
static const cd_service_type up_type = {.name = "up", .methods = CD_M_GET, .handle = up_handle};

/* ---- the context, built once ---- */

static const char conf_text[] = "[cluster]\n"
                                "header_timeout = 10s\n"
                                "body_timeout = 10s\n"
                                "body_deadline = 10s\n"
                                "keepalive_timeout = 10s\n"
                                "max_header_size = 2k\n"
                                "max_body_size = 4k\n"
                                "[dummy]\n"
                                "max_delay = 0\n"
                                "[healthz]\n"
                                "type = health\n"
                                "[metrics]\n";

static cd_http_ctx ctx;
static struct ev_loop *loop;
static cd_conf *conf;
static cd_service services[6];
static size_t nservices;
static cd_route routes[6];
static const cd_route **sorted;
static cd_snapshot *snap;
static char *out;
static size_t out_len;
static int dump; /* CD_FUZZ_DUMP=1: print what the server wrote (for writing seeds) */
static int slow_reader; /* this input: read answers only every fourth turn */
static unsigned turns;

/* What health and metrics ask of their host. */
static const cd_snapshot *host_cluster(cd_service *svc)
{
    (void)svc;
    return snap;
}

static cd_service *host_all(cd_service *svc, size_t *n)
{
    (void)svc;
    *n = nservices;
    return services;
}

static const cd_service_host host = {.all = host_all, .cluster = host_cluster};

static void init_once(void)
{
    char err[256];
    cd_log_set_level(CD_LOG_ERR);
    dump = getenv("CD_FUZZ_DUMP") != NULL;
    signal(SIGPIPE, SIG_IGN);
    cd_conf_set_binder(cd_service_bind); /* as clusterd does first thing */
    if (cd_conf_load_text("fuzz.ini", conf_text, sizeof conf_text - 1, &conf, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    loop = ev_loop_new(EVFLAG_AUTO);
    cd_http_init(&ctx, loop, conf); /* no hooks: nobody counts, logs or accepts */
    size_t n = 0;
    for (size_t i = 0; i < conf->nservices; i++) {
        const cd_conf_service *cs = &conf->services[i];
        services[n] = (cd_service){.type = cs->type, .name = cs->name, .route = cs->route,
                                   .route_len = cs->route_len, .conf = cs->conf};
        n++;
    }
    services[n++] = (cd_service){.type = &echo_type, .name = "echo", .route = "/echo", .route_len = 5};
    services[n++] = (cd_service){.type = &later_type, .name = "later", .route = "/later", .route_len = 6};
    services[n++] = (cd_service){.type = &up_type, .name = "up", .route = "/up", .route_len = 3};
    for (size_t i = 0; i < n; i++) {
        services[i].loop = loop;
        services[i].host = &host;
        routes[i] = cd_service_route(&services[i]);
        if (services[i].type->init && services[i].type->init(&services[i], err, sizeof err) < 0) {
            fprintf(stderr, "fuzz_http: init %s: %s\n", services[i].name, err);
            abort();
        }
    }
    nservices = n;
    if (cd_router_build(routes, n, &sorted) < 0)
        abort();
    ctx.routes = sorted;
    ctx.nroutes = n;
    snap = calloc(1, sizeof *snap + sizeof snap->workers[0]);
    out = malloc(OUT_CAP);
    if (!snap || !out)
        abort();
    snap->nsvc = 2;
    strcpy(snap->svc[0].name, "dummy");
    strcpy(snap->svc[1].name, "-");
    snap->nworkers = 1;
    snap->workers[0].state = 1;
}

/* ---- the client side ---- */

static void collect(int fd)
{
    for (;;) {
        char sink[16384];
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n <= 0)
            return;
        size_t k = (size_t)n;
        if (k > OUT_CAP - out_len)
            k = OUT_CAP - out_len;
        memcpy(out + out_len, sink, k);
        out_len += k;
    }
}

static void turn(int client, int times)
{
    for (int i = 0; i < times; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        if (ctx.draining)
            cd_http_drain(&ctx, 0);
        if (client >= 0 && (!slow_reader || ++turns % 4 == 0))
            collect(client);
    }
}

static int known_status(int s)
{
    static const int ok[] = {100, 101, 200, 202, 400, 404, 405, 408, 413, 414, 431, 500, 503, 505};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (ok[i] == s)
            return 1;
    return 0;
}

/* The invariant on what the server wrote (see the top of the file).  A
 * response may be cut short at the end (the connection was closed under
 * it), nothing else. */
static void check_stream(const char *p, size_t n)
{
    static const char pre[] = "HTTP/1.1 ";
    size_t pos = 0;
    while (pos < n) {
        size_t left = n - pos;
        if (left < 13) {
            if (memcmp(p + pos, pre, left < 9 ? left : 9) != 0)
                abort(); /* a response that does not start right */
            return;
        }
        if (memcmp(p + pos, pre, 9) != 0)
            abort();
        const char *st = p + pos + 9;
        if (st[0] < '1' || st[0] > '5' || st[1] < '0' || st[1] > '9' || st[2] < '0' || st[2] > '9' || st[3] != ' ')
            abort();
        int status = (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0');
        if (!known_status(status))
            abort();
        const char *end = memmem(p + pos, left, "\r\n\r\n", 4);
        if (!end)
            return; /* cut short */
        size_t hlen = (size_t)(end - (p + pos)) + 4;
        if (memmem(p + pos, hlen, " Unknown\r\n", 10))
            abort();
        if (status == 101)
            return; /* the rest is the service's own protocol */
        const char *cl = memmem(p + pos, hlen, "\r\nContent-Length: ", 18);
        if (!cl && status >= 200)
            abort();
        size_t body = cl ? strtoul(cl + 18, NULL, 10) : 0;
        pos += hlen;
        /* A HEAD response has a Content-Length but no body: the next
         * response follows at once.  No body we serve starts like one. */
        if (n - pos >= 9 && memcmp(p + pos, pre, 9) == 0)
            continue;
        if (n - pos < body)
            return; /* cut short */
        pos += body;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init_once();
        ready = 1;
    }
    if (size < 2)
        return 0;
    uint8_t sizes = data[0], flags = data[1];
    data += 2;
    size -= 2;
    int close_at = (flags & 1) ? (flags >> 4) : -1; /* close the client after this many chunks */
    int half_close = flags & 2;
    slow_reader = (flags & 8) != 0;
    ctx.draining = (flags & 4) != 0;
    ctx.drain_started = ev_now(loop);
    out_len = 0;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        abort();
    int client = sv[1];
    if (slow_reader) {
        int small = 1; /* the kernel rounds it up to its minimum */
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        setsockopt(client, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    uint32_t rng = 0x9e3779b9u ^ sizes;
    size_t maxchunk = (size_t)1 << (sizes & 7); /* 1 .. 128 bytes */
    size_t off = 0;
    int chunk = 0, first = 1;
    while (off < size || first) {
        size_t len = size - off;
        if (chunk < MAX_CHUNKS - 1 && (sizes & 0x80) == 0) {
            rng = rng * 1103515245u + 12345u;
            size_t want = 1 + (rng >> 16) % maxchunk;
            if (want < len)
                len = want;
        }
        if (len) {
            ssize_t wr = send(client, data + off, len, MSG_NOSIGNAL);
            if (wr > 0)
                off += (size_t)wr;
            else
                off = size; /* the server closed its end (or the buffer is full): stop */
        }
        if (first) {
            /* The connection arrives with its first bytes, as after accept. */
            cd_http_conn_new(&ctx, sv[0], NULL, 0);
            first = 0;
        }
        turn(client, TURNS_PER_CHUNK);
        chunk++;
        if (chunk == close_at) {
            close(client);
            client = -1;
            break;
        }
    }
    if (client >= 0 && half_close)
        shutdown(client, SHUT_WR);
    turn(client, TURNS_AFTER);

    /* Teardown: the connections go, the services answer what they hold
     * (into detached requests), and nothing may be left. */
    cd_http_close_all(&ctx);
    if (client >= 0)
        collect(client);
    while (pending) {
        ev_timer_stop(loop, &pending->t);
        later_answer(pending);
    }
    for (int i = 0; i < 4 && ev_run(loop, EVRUN_NOWAIT); i++) /* dummy's delay_ms=0 timers, gone upgrades */
        ;
    if (ev_run(loop, EVRUN_NOWAIT))
        abort(); /* a watcher outlived its connection */
    if (ctx.nconns != 0 || ctx.conns || ctx.in_flight != 0)
        abort(); /* a request or connection left behind */
    if (upgrades != 0)
        abort(); /* an upgrade callback not called exactly once */
    if (client >= 0)
        close(client);
    if (dump)
        fprintf(stderr, "---- %zu bytes in, %zu out:\n%.*s\n", size, out_len, (int)out_len, out);
    check_stream(out, out_len);
    return 0;
}
