/*
 * Integration tests of draining (issue 14): what a load balancer in front
 * of clusterd sees.  `clusterctl drain` makes every worker answer
 * GET /healthz/ready with 503 {"ready":false,"draining":true,...} while new
 * connections are accepted and every other route serves; workers started
 * while drained (a reload's) say so too; `clusterctl undrain` reverts.  A
 * graceful stop (SIGTERM) does the same for drain_delay and only then
 * stops the listeners and exits 0; a second SIGTERM skips the delay.  A
 * binary upgrade keeps the drain.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define CONF                                                                                                 \
    "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 100ms\nheartbeat_timeout = 2s\n"                  \
    "graceful_timeout = 3s\ndrain_delay = %s\n"                                                              \
    "[dummy]\ntype = dummy\n[healthz]\ntype = health\n"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(drain, .fini = fini, .timeout = 120);

/* Runs clusterctl CMD against srv; its exit code, its output in out. */
static int ctl(const char *cmd, char *out, size_t cap)
{
    const char *argv[] = {getenv("CLUSTERCTL_BIN"), "-c", srv.conf_path, "-t", "30", cmd, NULL};
    return th_run(argv, out, cap);
}

/* GET path on a new connection: its status (0: none), the body in body. */
static int get(const char *path, char *body, size_t cap)
{
    th_response r;
    th_http(&r, srv.port, "GET", path, NULL, 3000);
    snprintf(body, cap, "%s", r.body ? r.body : "");
    int status = r.status;
    th_response_free(&r);
    return status;
}

/* Waits (bounded) until /healthz/ready answers `status`, then asserts the
 * next answers, each on a new connection, all do (at least 20, until both
 * workers have answered), with "draining" as expected. */
static void expect_ready(int status, const char *draining)
{
    char body[2048] = "";
    int st = 0;
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && (st = get("/healthz/ready", body, sizeof body)) != status;)
        usleep(20000);
    cr_assert_eq(st, status, "readiness never answered %d: %d %s", status, st, body);
    int slots = 0; /* both workers, in time: the second may still be starting */
    long long end = th_now_ms() + 10000;
    for (int i = 0; i < 20 || (slots != 3 && th_now_ms() < end); i++) {
        st = get("/healthz/ready", body, sizeof body);
        cr_assert_eq(st, status, "answer %d: %d %s", i, st, body);
        cr_assert(strstr(body, draining), "answer %d: %s", i, body);
        slots |= strstr(body, "\"slot\":0") ? 1 : strstr(body, "\"slot\":1") ? 2 : 0;
    }
    cr_assert_eq(slots, 3, "both workers answered (seen %#x)", slots);
}

static void expect_served(void)
{
    char body[2048];
    cr_assert_eq(get("/dummy", body, sizeof body), 200, "%s", body);
    cr_assert_eq(get("/healthz", body, sizeof body), 200, "liveness: %s", body);
}

/* Waits for the master to exit by itself: its wait status, or -1. */
static int wait_exit(int timeout_ms)
{
    int st;
    for (long long end = th_now_ms() + timeout_ms; th_now_ms() < end; usleep(10000))
        if (waitpid(srv.pid, &st, WNOHANG) == srv.pid) {
            srv.pid = 0;
            return st;
        }
    return -1;
}

Test(drain, drain_undrain_and_workers_started_while_drained)
{
    cr_assert_eq(th_start(&srv, 2, "/healthz/ready", NULL, CONF, "0s"), 0);
    expect_ready(200, "\"draining\":false");
    char out[4096];
    cr_assert_eq(ctl("drain", out, sizeof out), 0, "%s", out);
    expect_ready(503, "\"ready\":false,\"draining\":true");
    expect_served();
    cr_assert_eq(ctl("status", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "DRAINING"), "%s", out);
    /* A reload's new workers start drained. */
    pid_t before[2];
    cr_assert_eq(th_workers(&srv, before, 2), 2);
    cr_assert_eq(ctl("reload", out, sizeof out), 0, "%s", out);
    cr_assert_eq(th_wait_workers(&srv, 2, before, 2, 10000), 0, "the reload replaced both workers");
    expect_ready(503, "\"draining\":true");
    /* ...and a respawned one. */
    pid_t now[2];
    cr_assert_eq(th_workers(&srv, now, 2), 2);
    kill(now[0], SIGKILL);
    cr_assert_eq(th_wait_workers(&srv, 2, now, 1, 10000), 0, "the killed worker was replaced");
    expect_ready(503, "\"draining\":true");
    expect_served();
    cr_assert_eq(ctl("drain", out, sizeof out), 0, "drain twice is fine: %s", out);
    cr_assert_eq(ctl("undrain", out, sizeof out), 0, "%s", out);
    expect_ready(200, "\"ready\":true,\"draining\":false");
    cr_assert_eq(ctl("status", out, sizeof out), 0, "%s", out);
    cr_assert_null(strstr(out, "DRAINING"), "%s", out);
}

/* A binary upgrade (the same binary executed again) hands the drain over:
 * the new generation's workers start drained. */
Test(drain, an_upgrade_keeps_the_drain)
{
    cr_assert_eq(th_start(&srv, 2, "/healthz/ready", NULL, CONF, "0s"), 0);
    char out[4096];
    cr_assert_eq(ctl("drain", out, sizeof out), 0, "%s", out);
    expect_ready(503, "\"draining\":true");
    pid_t before[2];
    cr_assert_eq(th_workers(&srv, before, 2), 2);
    cr_assert_eq(ctl("upgrade", out, sizeof out), 0, "%s", out);
    cr_assert_eq(th_wait_workers(&srv, 2, before, 2, 10000), 0, "the upgrade replaced both workers");
    expect_ready(503, "\"draining\":true");
    cr_assert_eq(ctl("status", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "DRAINING"), "%s", out);
    cr_assert_eq(ctl("undrain", out, sizeof out), 0, "%s", out);
    expect_ready(200, "\"draining\":false");
}

Test(drain, sigterm_waits_drain_delay_while_serving)
{
    cr_assert_eq(th_start(&srv, 2, "/healthz/ready", NULL, CONF, "2s"), 0);
    expect_ready(200, "\"draining\":false");
    long long t0 = th_now_ms();
    kill(srv.pid, SIGTERM);
    /* During the delay: readiness says 503, new connections are accepted
     * and answered. */
    char body[2048] = "";
    int st = 0;
    for (long long end = t0 + 1500; th_now_ms() < end && (st = get("/healthz/ready", body, sizeof body)) != 503;)
        usleep(10000);
    cr_assert_eq(st, 503, "%s", body);
    cr_assert(strstr(body, "\"draining\":true"), "%s", body);
    cr_assert_eq(get("/dummy", body, sizeof body), 200, "a new connection during drain_delay: %s", body);
    cr_assert(th_now_ms() - t0 < 2000, "the checks ran inside the delay (machine too slow to tell)");
    /* After it: the listeners stop, the workers drain, exit 0. */
    int status = wait_exit(20000);
    cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %#x", status);
    cr_assert(th_now_ms() - t0 >= 2000, "exited after drain_delay, not before (%lld ms)", th_now_ms() - t0);
    cr_assert(th_log_contains(&srv, "answers 503 for drain_delay", 0));
}

Test(drain, a_second_sigterm_skips_the_delay)
{
    cr_assert_eq(th_start(&srv, 2, "/healthz/ready", NULL, CONF, "10m"), 0);
    long long t0 = th_now_ms();
    kill(srv.pid, SIGTERM);
    char body[2048] = "";
    int st = 0;
    for (long long end = t0 + 5000; th_now_ms() < end && (st = get("/healthz/ready", body, sizeof body)) != 503;)
        usleep(10000);
    cr_assert_eq(st, 503, "%s", body);
    kill(srv.pid, SIGTERM);
    int status = wait_exit(30000); /* far less than ten minutes */
    cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %#x", status);
    cr_assert(th_log_contains(&srv, "skipping the rest of drain_delay", 0));
}

Test(drain, undrain_is_refused_while_stopping)
{
    cr_assert_eq(th_start(&srv, 2, "/healthz/ready", NULL, CONF, "10m"), 0);
    char out[4096];
    kill(srv.pid, SIGTERM);
    cr_assert(th_log_contains(&srv, "answers 503 for drain_delay", 5000));
    cr_assert_neq(ctl("undrain", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "stopping"), "%s", out);
    cr_assert_eq(ctl("status", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "STOPPING") && strstr(out, "DRAINING"), "%s", out);
    expect_served();
}
