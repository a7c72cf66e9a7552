/*
 * test_idle.c - many idle connections, still served after they sat idle
 * (issue 16), against the real clusterd on -w 2.
 *
 * An idle keep-alive connection holds no buffer in the worker (http/
 * server.c reads into the loop's one buffer and frees the output and the
 * request once an answer is out), so these check that nothing is lost by
 * that: 5,000 connections each send one GET /dummy, sit idle for 3 s, and
 * then each is answered again on the same connection; the workers' RSS
 * growth per connection is printed, and checked (at most 1 KiB) in a build
 * without sanitizers, whose allocator overhead would swamp it.  Then 5,000
 * Socket.IO clients (2,000 under the sanitizers: node and an ASan
 * clusterd for 5,000 WebSockets is more than a shared CI runner should
 * take) connect over WebSocket with the real socket.io-client, join one
 * room, sit idle, and a publish to the room reaches each of them once
 * (tests/socketio/idle.js).
 *
 * The test process holds one descriptor per connection: it raises its
 * soft fd limit to the hard one before anything starts (clusterd inherits
 * it; its workers raise their own anyway) and exits 77 (skipped, saying
 * why) when the hard limit is too low for 5,000.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define N_HTTP 5000
#define N_SIO (SANITIZED ? 2000 : 5000)
#define FDS_NEEDED (N_HTTP + 256)
#define IDLE_SECONDS 3

#define BASE_CONF                                                                                            \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 3s\n"                                                                               \
    "backlog = 4096\n"                                                                                       \
    "[dummy]\ntype = dummy\nroute = /dummy\n"

static th_server srv;

/* Before any test (in the runner, so every test process inherits it). */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < FDS_NEEDED)) {
        fprintf(stderr, "SKIP: the hard fd limit (%llu) is below the %d descriptors %d idle connections need\n",
                (unsigned long long)rl.rlim_max, FDS_NEEDED, N_HTTP);
        exit(77);
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            fprintf(stderr, "SKIP: cannot raise the soft fd limit to %llu: %s\n", (unsigned long long)rl.rlim_cur,
                    strerror(errno));
            exit(77);
        }
    }
}

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(idle, .fini = fini, .timeout = 300);

/* Summed VmRSS (KiB) of the master and its workers. */
static long rss_kib(void)
{
    pid_t pids[66];
    int n = th_workers(&srv, pids + 1, 64);
    pids[0] = srv.pid;
    long sum = 0;
    for (int i = 0; i <= n; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        long kib;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                sum += kib;
        fclose(f);
    }
    return sum;
}

static const char get[] = "GET /dummy HTTP/1.1\r\nHost: t\r\n\r\n";

/* Reads one whole answer from fd (Content-Length framed) within ms; its
 * status, or 0. */
static int read_answer(int fd, int ms)
{
    char buf[4096];
    size_t len = 0;
    long long end = th_now_ms() + ms;
    while (len < sizeof buf - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = end - th_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return 0;
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
        const char *eoh = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (eoh && cl && len >= (size_t)(eoh + 4 - buf) + strtoul(cl + 16, NULL, 10)) {
            int status = 0;
            return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : 0;
        }
    }
    return 0;
}

/* Sends GET /dummy on every connection, then reads every answer: how many
 * were answered 200. */
static int round_trip(const int *fds, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        if (send(fds[i], get, sizeof get - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof get - 1))
            cr_log_error("connection %d: send: %s", i, strerror(errno));
    for (int i = 0; i < n; i++)
        ok += read_answer(fds[i], 10000) == 200;
    return ok;
}

Test(idle, keepalive_connections_are_answered_after_sitting_idle)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    cr_assert(th_log_contains(&srv, "fd limit", 3000), "the workers did not log their fd limit");
    long before = rss_kib();
    static int fds[N_HTTP];
    for (int i = 0; i < N_HTTP; i++) {
        fds[i] = th_connect(srv.port);
        cr_assert_geq(fds[i], 0, "connection %d: %s", i, strerror(errno));
    }
    cr_assert_eq(round_trip(fds, N_HTTP), N_HTTP, "not every first request was answered");
    sleep(IDLE_SECONDS);
    long after = rss_kib();
    double per = (double)(after - before) * 1024.0 / N_HTTP;
    cr_log_info("%d idle keep-alive connections: RSS %ld -> %ld KiB, %.0f bytes each", N_HTTP, before, after, per);
    fprintf(stderr, "%d idle keep-alive connections: RSS %ld -> %ld KiB, %.0f bytes each\n", N_HTTP, before, after,
            per);
    if (!SANITIZED)
        cr_expect_leq(per, 1024.0, "an idle keep-alive connection costs %.0f bytes (at most 1 KiB)", per);
    cr_assert_eq(round_trip(fds, N_HTTP), N_HTTP, "not every idle connection was answered after %d s",
                 IDLE_SECONDS);
    for (int i = 0; i < N_HTTP; i++)
        close(fds[i]);
}

Test(idle, socketio_clients_get_a_broadcast_after_sitting_idle)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF "[events]\ntype = events\nroute = /socket.io\n"), 0);
    char port[16], n[16], secs[16];
    snprintf(port, sizeof port, "%d", srv.port);
    snprintf(n, sizeof n, "%d", N_SIO);
    snprintf(secs, sizeof secs, "%d", IDLE_SECONDS);
    const char *args[] = {port, n, secs, NULL};
    int rc = th_node(srv.dir, "idle.js", 240000, args);
    if (rc == 127)
        cr_skip_test("socket.io-client is not installed (npm ci in tests/socketio)");
    cr_assert_eq(rc, 0, "idle.js failed (its log is above)");
}
