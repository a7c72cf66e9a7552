/*
 * test_readmongo_net.c - integration tests of readmongo's loop sockets
 * (services/readmongo/stream.c): the real clusterd binary against a real
 * FerretDB on loopback, through the paths the other readmongo tests do not
 * take: TLS (a throwaway CA, a CA that did not sign the server), a host
 * name looked up in a thread (localhost, and a name that does not
 * exist), several hosts polled through one epoll descriptor, and a server
 * that accepts and never answers.  No mocks.
 *
 * Each test (criterion's own process) starts one FerretDB with both a
 * plain and a TLS listener (its binary started here, not by
 * scripts/ferretdb.sh start, which takes no TLS flags; same SQLite state
 * dir handling), seeds it through the plain one, opens a "silent" port
 * (listening, never accepting: the kernel completes the handshake, nobody
 * ever reads or answers), and starts clusterd with one worker and short
 * driver timeouts, so every failure is answered within DOWN_BUDGET_MS.
 * Every wait is bounded; every process started here is killed at the end.
 *
 * Without FerretDB (see scripts/ferretdb.sh check) main exits 77 with the
 * reason, which ctest reports as skipped.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define HTTP_TIMEOUT_MS 15000
/* One query against a database that cannot be had, with the timeouts of
 * RM_SECTION (server selection 1.5 s, connect 500 ms, socket 2 s), plus
 * slack for a loaded machine or an ASan build. */
#define DOWN_BUDGET_MS 3500
#define NITEMS 6

typedef struct fixture {
    char dir[64];     /* FerretDB's state, the certificates */
    char bin[512];    /* FerretDB's binary */
    int db_port;      /* plain listener */
    int tls_port;     /* TLS listener */
    pid_t db_pid;
    int silent_fd;    /* listens on silent_port, never accepts */
    int silent_port;
    th_server srv;
    int srv_started;
} fixture;

static fixture fx;

/* Runs a shell command line; its exit status (output in out), or -1. */
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

/* ---- certificates ---- */

/* ca.pem signs server.pem (CN and SAN 127.0.0.1, SAN localhost); other.pem
 * is a CA that signed nothing here.  EC keys: quick to make. */
static void make_certs(void)
{
    static char out[16384];
    int rc = sh(out, sizeof out,
                "set -e; cd '%s'\n"
                "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
                "openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=cd-test-ca"
                " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign\n"
                "openssl req -x509 $ec -keyout other.key -out other.pem -days 2"
                " -subj /CN=cd-test-other-ca"
                " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign\n"
                "openssl req $ec -keyout server.key -out server.csr -subj /CN=127.0.0.1\n"
                "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext\n"
                "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
                " -out server.pem -days 2 -extfile server.ext\n",
                fx.dir);
    cr_assert_eq(rc, 0, "openssl failed (%d): %s", rc, out);
}

/* ---- FerretDB with a plain and a TLS listener ---- */

static int port_open(int port)
{
    int fd = th_connect(port);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static void db_start(void)
{
    static char out[8192];
    char script[600];

    snprintf(script, sizeof script, "%s/scripts/ferretdb.sh", th_src_dir());
    const char *install[] = {"/bin/bash", script, "install", NULL};
    cr_assert_eq(th_run(install, out, sizeof out), 0, "ferretdb.sh install: %s", out);
    const char *bin[] = {"/bin/bash", script, "bin", NULL};
    cr_assert_eq(th_run(bin, out, sizeof out), 0, "ferretdb.sh bin: %s", out);
    out[strcspn(out, "\n")] = '\0';
    cr_assert_lt(strlen(out), sizeof fx.bin, "%s", out);
    memcpy(fx.bin, out, strlen(out) + 1);

    char data[128], url[160], listen[64], tls[64], cert[128], key[128], state[96], log[128];
    snprintf(data, sizeof data, "%s/data", fx.dir);
    cr_assert_eq(mkdir(data, 0700), 0, "mkdir %s", data);
    snprintf(url, sizeof url, "--sqlite-url=file:%s/", data);
    snprintf(listen, sizeof listen, "--listen-addr=127.0.0.1:%d", fx.db_port);
    snprintf(tls, sizeof tls, "--listen-tls=127.0.0.1:%d", fx.tls_port);
    snprintf(cert, sizeof cert, "--listen-tls-cert-file=%s/server.pem", fx.dir);
    snprintf(key, sizeof key, "--listen-tls-key-file=%s/server.key", fx.dir);
    snprintf(state, sizeof state, "--state-dir=%s", fx.dir);
    snprintf(log, sizeof log, "%s/ferretdb.log", fx.dir);

    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0) {
        /* Not criterion's pipes: the log file. */
        int nul = open("/dev/null", O_RDONLY), lf = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (nul >= 0)
            dup2(nul, 0);
        if (lf >= 0) {
            dup2(lf, 1);
            dup2(lf, 2);
        }
        execl(fx.bin, fx.bin, "--handler=sqlite", url, listen, tls, cert, key, state,
              "--debug-addr=-", "--telemetry=disable", "--log-level=warn", (char *)NULL);
        _exit(127);
    }
    fx.db_pid = pid;
    long long deadline = th_now_ms() + 30000;
    while (!(port_open(fx.db_port) && port_open(fx.tls_port))) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fx.db_pid = 0;
            sh(out, sizeof out, "tail -n 20 '%s'", log);
            cr_assert_fail("ferretdb exited during start: %s", out);
        }
        cr_assert_lt(th_now_ms(), deadline, "ferretdb did not listen in 30 s");
        usleep(50 * 1000);
    }
}

static void db_stop(void)
{
    int st;

    if (fx.db_pid <= 0)
        return;
    kill(fx.db_pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(fx.db_pid, &st, WNOHANG) == fx.db_pid) {
            fx.db_pid = 0;
            return;
        }
        usleep(50 * 1000);
    }
    kill(fx.db_pid, SIGKILL);
    waitpid(fx.db_pid, &st, 0);
    fx.db_pid = 0;
}

/* items: n 0..NITEMS-1, through the plain listener and the real driver. */
static void seed(void)
{
    bson_error_t e;
    char uri[128];

    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=5000", fx.db_port);
    mongoc_init();
    mongoc_client_t *c = mongoc_client_new(uri);
    cr_assert(c);
    mongoc_client_set_error_api(c, 2);
    mongoc_collection_t *items = mongoc_client_get_collection(c, "cdtest", "items");
    for (int i = 0; i < NITEMS; i++) {
        bson_t *d = BCON_NEW("n", BCON_INT32(i), "s", BCON_UTF8("item"));
        cr_assert(mongoc_collection_insert_one(items, d, NULL, NULL, &e), "%s", e.message);
        bson_destroy(d);
    }
    mongoc_collection_destroy(items);
    mongoc_client_destroy(c);
    mongoc_cleanup();
}

/* A port that completes TCP handshakes (the kernel does, into the backlog)
 * but where nobody ever reads or writes: a server that never answers. */
static void silent_open(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;

    fx.silent_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fx.silent_fd, 0, "socket");
    cr_assert_eq(bind(fx.silent_fd, (struct sockaddr *)&a, sizeof a), 0, "bind");
    cr_assert_eq(listen(fx.silent_fd, 128), 0, "listen");
    cr_assert_eq(getsockname(fx.silent_fd, (struct sockaddr *)&a, &len), 0);
    fx.silent_port = ntohs(a.sin_port);
}

static void setup(void)
{
    memset(&fx, 0, sizeof fx);
    fx.silent_fd = -1;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/cd-rmnet-XXXXXX");
    cr_assert(mkdtemp(fx.dir), "mkdtemp");
    make_certs();
    fx.db_port = th_free_port();
    do
        fx.tls_port = th_free_port();
    while (fx.tls_port == fx.db_port);
    db_start();
    seed();
    silent_open();
}

static void teardown(void)
{
    int clean = fx.srv_started ? th_finish(&fx.srv) : 0;
    db_stop();
    if (fx.silent_fd >= 0)
        close(fx.silent_fd);
    char out[256];
    if (sh(out, sizeof out, "rm -rf '%s'", fx.dir) != 0)
        fprintf(stderr, "could not remove %s\n", fx.dir);
    cr_assert_eq(clean, 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(readmongo_net, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the cluster ---- */

/* One worker (every request reaches the same loop); the port first, then
 * the [readmongo] section's uri.  The [dummy] service shares the worker. */
static const char conf_head[] =
    "[cluster]\n"
    "listen = 127.0.0.1:%d\n"
    "workers = 1\n"
    "graceful_timeout = 5s\n"
    "[dummy]\n"
    "type = dummy\n"
    "route = /dummy\n";

/* A [NAME] readmongo section at /NAME with uri and the short timeouts. */
#define RM_SECTION(name)                                                                           \
    "[" name "]\n"                                                                                 \
    "type = readmongo\n"                                                                           \
    "route = /" name "\n"                                                                          \
    "uri = %s\n"                                                                                   \
    "database = cdtest\n"                                                                          \
    "collections = items\n"                                                                        \
    "concurrency = 2\n"                                                                            \
    "server_selection_timeout = 1500ms\n"                                                          \
    "connect_timeout = 500ms\n"                                                                    \
    "socket_timeout = 2s\n"

static void start_cluster(const char *fmt, ...)
{
    char conf[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(conf, sizeof conf, fmt, ap);
    va_end(ap);
    /* th_start's format takes the HTTP port (conf_head's %d); the rest is
     * already in, and holds no other %. */
    cr_assert_eq(strchr(strstr(conf, "%d") + 2, '%'), NULL, "%s", conf);
    cr_assert_eq(th_start(&fx.srv, 1, "/dummy", NULL, conf), 0, "clusterd did not start");
    fx.srv_started = 1;
}

/* ---- HTTP helpers ---- */

static long long get(th_response *r, const char *path)
{
    long long t0 = th_now_ms();
    th_http(r, fx.srv.port, "GET", path, NULL, HTTP_TIMEOUT_MS);
    return th_now_ms() - t0;
}

/* The "n" of each document in order ("0,1,2"), and the count field. */
static void ns_of(const th_response *r, char *out, size_t outlen, long long *count)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)r->body, (ssize_t)r->body_len, &e);
    bson_iter_t it, arr;
    size_t o = 0;

    cr_assert(b, "body is not JSON (%s): %s", e.message, r->body ? r->body : "(none)");
    out[0] = '\0';
    cr_assert(bson_iter_init_find(&it, b, "documents") && BSON_ITER_HOLDS_ARRAY(&it), "%s",
              r->body);
    bson_iter_recurse(&it, &arr);
    while (bson_iter_next(&arr)) {
        bson_iter_t d;
        bson_iter_recurse(&arr, &d);
        int n = bson_iter_find(&d, "n") ? (int)bson_iter_as_int64(&d) : -1;
        o += (size_t)snprintf(out + o, outlen - o, "%s%d", o ? "," : "", n);
    }
    cr_assert(bson_iter_init_find(&it, b, "count"), "%s", r->body);
    *count = bson_iter_as_int64(&it);
    bson_destroy(b);
}

/* GET /NAME/items sorted by n: 200 with every seeded document. */
static void expect_items(const char *route, const char *what)
{
    char path[128], ns[128];
    long long count;
    th_response r;

    snprintf(path, sizeof path, "%s/items?sort=%%7B%%22n%%22%%3A1%%7D", route);
    get(&r, path);
    cr_assert_eq(r.status, 200, "%s: status %d: %s", what, r.status, r.body ? r.body : "");
    ns_of(&r, ns, sizeof ns, &count);
    cr_expect_str_eq(ns, "0,1,2,3,4,5", "%s", what);
    cr_expect_eq(count, NITEMS, "%s", what);
    th_response_free(&r);
}

/* GET /NAME/items: one of the statuses a (want2 0: only want), within
 * DOWN_BUDGET_MS, with a generic reason that names no host or port. */
static int expect_down(const char *route, int want, int want2, const char *what)
{
    char path[128];
    th_response r;

    snprintf(path, sizeof path, "%s/items", route);
    long long took = get(&r, path);
    int status = r.status;
    fprintf(stderr, "%s: %d in %lld ms\n", what, status, took); /* for the ctest log */
    cr_expect(status == want || (want2 && status == want2), "%s: status %d after %lld ms: %s",
              what, status, took, r.body ? r.body : "");
    cr_expect_lt(took, DOWN_BUDGET_MS, "%s: answered after %lld ms", what, took);
    if (status == 503)
        cr_expect(r.body && strstr(r.body, "database unreachable"), "%s: %s", what,
                  r.body ? r.body : "");
    cr_expect(!r.body || (!strstr(r.body, "127.0.0.1") && !strstr(r.body, "invalid") &&
                          !strstr(r.body, "certificate") && !strstr(r.body, "TLS")),
              "%s: the body shows the driver's words: %s", what, r.body);
    th_response_free(&r);
    return status;
}

/* /dummy answers 200 in under a second. */
static void expect_dummy(const char *what)
{
    th_response r;
    long long took = get(&r, "/dummy");
    cr_expect_eq(r.status, 200, "%s: /dummy status %d", what, r.status);
    cr_expect_lt(took, 1000, "%s: /dummy took %lld ms", what, took);
    th_response_free(&r);
}

/* The worker that started is the one still serving, and none died. */
static void expect_same_worker(pid_t before)
{
    pid_t after[4];
    cr_expect_eq(th_workers(&fx.srv, after, 4), 1, "worker count");
    cr_expect_eq(after[0], before, "the worker was replaced");
    cr_expect(!th_log_contains(&fx.srv, "killed by signal", 0), "a worker died");
}

static pid_t the_worker(void)
{
    pid_t w[4];
    cr_assert_eq(th_workers(&fx.srv, w, 4), 1);
    return w[0];
}

/* ---- tests ---- */

/* TLS through the loop sockets: the TLS stream of mongo-c-driver (OpenSSL)
 * sits on stream.c's, its handshake polling through ls_poll.  With the CA
 * that signed the server: 200 and the documents.  With a CA that did not:
 * the handshake fails, 503 within the budget, the worker still serves, and
 * the log (not the body) says the certificate was refused. */
Test(readmongo_net, tls_with_the_right_ca_and_with_another)
{
    char good[256], bad[256];
    snprintf(good, sizeof good, "mongodb://127.0.0.1:%d/?tls=true&tlsCAFile=%s/ca.pem",
             fx.tls_port, fx.dir);
    snprintf(bad, sizeof bad, "mongodb://127.0.0.1:%d/?tls=true&tlsCAFile=%s/other.pem",
             fx.tls_port, fx.dir);
    start_cluster("%s" RM_SECTION("readmongo") RM_SECTION("badca"), conf_head, good, bad);
    pid_t w = the_worker();

    expect_items("/readmongo", "TLS, right CA");
    expect_items("/readmongo", "TLS, right CA, again (the same connection)");
    expect_down("/badca", 503, 0, "TLS, wrong CA");
    expect_dummy("after the refused handshake");
    cr_expect(th_log_contains(&fx.srv, "certificate", 3000),
              "the log does not say why the TLS handshake failed");
    /* The good service is unaffected by the bad one. */
    expect_items("/readmongo", "TLS, right CA, after the wrong one");
    expect_same_worker(w);
}

/* Host names are looked up by getaddrinfo in a thread the fiber awaits on
 * an eventfd: localhost resolves and connects (trying its addresses in
 * turn); a name under .invalid does not resolve: 503 within the budget,
 * and the loop goes on serving. */
Test(readmongo_net, host_names_looked_up_off_the_loop)
{
    char local[128], none[128];
    snprintf(local, sizeof local, "mongodb://localhost:%d/", fx.db_port);
    snprintf(none, sizeof none, "mongodb://nonexistent-host.invalid:%d/", fx.db_port);
    start_cluster("%s" RM_SECTION("readmongo") RM_SECTION("nohost"), conf_head, local, none);
    pid_t w = the_worker();

    expect_items("/readmongo", "localhost");
    expect_down("/nohost", 503, 0, "nonexistent-host.invalid");
    expect_dummy("after the failed lookup");
    cr_expect(th_log_contains(&fx.srv, "nonexistent-host.invalid", 3000),
              "the log does not name the host that did not resolve");
    expect_down("/nohost", 503, 0, "nonexistent-host.invalid, again");
    expect_items("/readmongo", "localhost, after the failed lookup");
    expect_same_worker(w);
}

/* Two seeds, FerretDB and the silent port: the driver's scan of both
 * waits on the two streams at once, which ls_poll does through one epoll
 * descriptor. */
Test(readmongo_net, two_hosts_one_silent)
{
    char two[128];
    snprintf(two, sizeof two, "mongodb://127.0.0.1:%d,127.0.0.1:%d/", fx.db_port,
             fx.silent_port);
    start_cluster("%s" RM_SECTION("readmongo"), conf_head, two);
    pid_t w = the_worker();

    /* Observed: 503, after ~500 ms.  Two seeds without replicaSet make the
     * topology "Unknown"; FerretDB's hello says standalone, and SDAM
     * removes a standalone from a topology of several seeds
     * (updateUnknownWithStandalone), leaving only the silent server, whose
     * hello times out at connect_timeout (500 ms): nothing is selectable,
     * and a single-threaded client tries selection once
     * (serverSelectionTryOnce).  Asked again at once: 503 at once, the
     * silent server being in the scanner's 5 s cooldown. */
    expect_down("/readmongo", 503, 0, "two hosts, one silent");
    expect_dummy("after the two-host query");
    expect_down("/readmongo", 503, 0, "two hosts, one silent, again");
    expect_same_worker(w);
}

typedef struct pending {
    pthread_t t;
    const char *path;
    th_response r;
    long long took_ms;
} pending;

static void *pending_run(void *arg)
{
    pending *p = arg;
    p->took_ms = get(&p->r, p->path);
    return NULL;
}

/* A server that accepts and never answers: the queries wait on the loop
 * (both fibers of the single worker, and one more request queued), and
 * meanwhile /dummy on the same worker answers at once, several times;
 * the queries end 503/504 within the budget.  Observed: 503 after ~500
 * ms (the hello times out at connect_timeout, and selection is tried
 * once); the queued third one gets its 503 when the first fails
 * (exec.c's refuse_early). */
Test(readmongo_net, silent_server_never_holds_the_loop)
{
    char silent[128];
    snprintf(silent, sizeof silent, "mongodb://127.0.0.1:%d/", fx.silent_port);
    start_cluster("%s" RM_SECTION("readmongo"), conf_head, silent);
    pid_t w = the_worker();

    enum { N = 3 };
    pending p[N];
    memset(p, 0, sizeof p);
    for (int i = 0; i < N; i++) {
        p[i].path = "/readmongo/items";
        cr_assert_eq(pthread_create(&p[i].t, NULL, pending_run, &p[i]), 0);
    }
    /* While they wait (their hellos time out at 500 ms). */
    usleep(100 * 1000);
    for (int i = 0; i < 3; i++) {
        expect_dummy("while the database is silent");
        usleep(50 * 1000);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(p[i].t, NULL);
        fprintf(stderr, "silent, concurrent: %d in %lld ms\n", p[i].r.status, p[i].took_ms);
        cr_expect(p[i].r.status == 503 || p[i].r.status == 504, "silent: status %d after %lld ms: %s",
                  p[i].r.status, p[i].took_ms, p[i].r.body ? p[i].r.body : "");
        cr_expect_lt(p[i].took_ms, DOWN_BUDGET_MS, "silent: answered after %lld ms", p[i].took_ms);
        th_response_free(&p[i].r);
    }
    char port[16];
    snprintf(port, sizeof port, "%d", fx.silent_port);
    cr_expect(th_log_contains(&fx.srv, port, 3000), "the log does not name the silent server");
    expect_down("/readmongo", 503, 504, "silent, alone");
    expect_dummy("after the silent queries");
    expect_same_worker(w);
}

/* A reply that is late (the server frozen for 400 ms, well inside the 2 s
 * socket_timeout) is waited for, on an established connection: 200.  The
 * read then finds no data at first, so stream.c's readv has to wait on
 * the loop: through the TLS stream, whose OpenSSL BIO reads the socket
 * with min_bytes 0 and expects that read to wait for at least one byte
 * (the driver's own socket stream does), and without TLS. */
static void late_reply(const char *route, const char *what)
{
    expect_items(route, what); /* connected, handshake done */
    pending p;
    memset(&p, 0, sizeof p);
    char path[128];
    snprintf(path, sizeof path, "%s/items?sort=%%7B%%22n%%22%%3A1%%7D", route);
    p.path = path;
    cr_assert_eq(th_freeze(fx.db_pid), 0, "the database did not stop");
    cr_assert_eq(pthread_create(&p.t, NULL, pending_run, &p), 0);
    usleep(400 * 1000);
    kill(fx.db_pid, SIGCONT);
    pthread_join(p.t, NULL);
    fprintf(stderr, "%s, late reply: %d in %lld ms\n", what, p.r.status, p.took_ms);
    cr_expect_eq(p.r.status, 200, "%s: a reply 400 ms late: status %d after %lld ms: %s", what,
                 p.r.status, p.took_ms, p.r.body ? p.r.body : "");
    th_response_free(&p.r);
}

Test(readmongo_net, late_reply_is_waited_for)
{
    char plain[128];
    snprintf(plain, sizeof plain, "mongodb://127.0.0.1:%d/", fx.db_port);
    start_cluster("%s" RM_SECTION("readmongo"), conf_head, plain);
    late_reply("/readmongo", "plain");
}

Test(readmongo_net, late_reply_is_waited_for_over_tls)
{
    char good[256];
    snprintf(good, sizeof good, "mongodb://127.0.0.1:%d/?tls=true&tlsCAFile=%s/ca.pem",
             fx.tls_port, fx.dir);
    start_cluster("%s" RM_SECTION("readmongo"), conf_head, good);
    late_reply("/readmongo", "TLS");
}

/* While a reply over TLS is late, the loop serves its other clients: the
 * query fiber must wait on the loop, not spin.  Regression (session 22,
 * found by this test): OpenSSL's BIO (mongoc_stream_tls_openssl_bio_read)
 * reads the socket with min_bytes 0, and ls_readv returned at once (0,
 * EAGAIN) instead of waiting for a byte as the driver's own socket stream
 * does; OpenSSL 3's BIO_read reports that as 0 with retry, and
 * _mongoc_stream_tls_openssl_readv looped on it until the data came or
 * socket_timeout passed (strace: 30330 readv() = -1 EAGAIN in 430 ms and
 * no epoll_wait; /dummy waited 764 and 780 ms).  The test: the server
 * frozen for 800 ms with a TLS query waiting; /dummy asked 100 ms in must
 * answer in < 300 ms; the query still gets its 200 after the thaw. */
/* Thaws the database 700 ms after the /dummy request starts (800 ms
 * after the freeze), whatever /dummy does meanwhile. */
static void *thaw_run(void *arg)
{
    (void)arg;
    usleep(700 * 1000);
    kill(fx.db_pid, SIGCONT);
    return NULL;
}

Test(readmongo_net, late_tls_reply_never_holds_the_loop)
{
    char good[256];
    snprintf(good, sizeof good, "mongodb://127.0.0.1:%d/?tls=true&tlsCAFile=%s/ca.pem",
             fx.tls_port, fx.dir);
    start_cluster("%s" RM_SECTION("readmongo"), conf_head, good);
    expect_items("/readmongo", "TLS, warm");
    pending p;
    memset(&p, 0, sizeof p);
    p.path = "/readmongo/items";
    cr_assert_eq(th_freeze(fx.db_pid), 0, "the database did not stop");
    cr_assert_eq(pthread_create(&p.t, NULL, pending_run, &p), 0);
    usleep(100 * 1000);
    pthread_t thaw;
    cr_assert_eq(pthread_create(&thaw, NULL, thaw_run, NULL), 0); /* SIGCONT at 800 ms */
    th_response r;
    long long took = get(&r, "/dummy");
    th_response_free(&r);
    pthread_join(thaw, NULL);
    pthread_join(p.t, NULL);
    fprintf(stderr, "TLS late reply: %d in %lld ms; /dummy meanwhile %lld ms\n", p.r.status,
            p.took_ms, took);
    cr_expect_lt(took, 300, "/dummy took %lld ms while a TLS reply was late", took);
    cr_expect_eq(p.r.status, 200, "late TLS reply: %d", p.r.status);
    th_response_free(&p.r);
}

/* A database that refuses connections, queried back to back: each query
 * fails fast, and the driver's single-threaded server selection then
 * sleeps (usleep) until its minHeartbeatFrequencyMS (500 ms) has passed
 * before it scans again.  That sleep parks the fiber (core/fiber.c's
 * usleep), so /dummy on the same worker answers meanwhile. */
Test(readmongo_net, failed_scans_back_to_back_never_hold_the_loop)
{
    char refused[128];
    snprintf(refused, sizeof refused, "mongodb://127.0.0.1:%d/", th_free_port());
    start_cluster("%s" RM_SECTION("readmongo"), conf_head, refused);
    pid_t w = the_worker();
    for (int k = 0; k < 4; k++) {
        pending p;
        memset(&p, 0, sizeof p);
        p.path = "/readmongo/items";
        cr_assert_eq(pthread_create(&p.t, NULL, pending_run, &p), 0);
        usleep(50 * 1000);
        th_response r;
        long long took = get(&r, "/dummy");
        cr_expect_eq(r.status, 200);
        th_response_free(&r);
        pthread_join(p.t, NULL);
        fprintf(stderr, "refused, back to back: %d in %lld ms, /dummy meanwhile %lld ms\n",
                p.r.status, p.took_ms, took);
        cr_expect_eq(p.r.status, 503, "refused: %s", p.r.body ? p.r.body : "");
        cr_expect_lt(p.took_ms, DOWN_BUDGET_MS);
        cr_expect_lt(took, 300, "/dummy took %lld ms while readmongo's driver slept", took);
        th_response_free(&p.r);
    }
    expect_same_worker(w);
}

/* ---- main: the suite, or why it is skipped ---- */

int main(int argc, char *argv[])
{
    return th_main_with_ferretdb(argc, argv);
}
