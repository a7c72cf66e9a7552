/*
 * Integration tests of clusterctl against a running clusterd: every command,
 * the events stream during a kill and a reload, and a fast, clear failure
 * when no master is there.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define CONF                                                                                                 \
    "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 100ms\nheartbeat_timeout = 2s\n"                  \
    "graceful_timeout = 3s\n[dummy]\ntype = dummy\nbody = %s\n"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(ctl, .fini = fini, .timeout = 90);

/* Runs clusterctl with args; captures stdout+stderr into out.  Returns the
 * exit code (or -1). */
static int ctl(char *out, size_t cap, const char *a1, const char *a2, const char *a3)
{
    const char *argv[] = {getenv("CLUSTERCTL_BIN"), "-c", srv.conf_path, "-t", "30", a1, a2, a3, NULL};
    return th_run(argv, out, cap);
}

static char out[65536];

static long served(void)
{
    cr_assert_eq(ctl(out, sizeof out, "--json", "status", NULL), 0, "%s", out);
    cr_assert(strstr(out, "\"ok\":true"), "%s", out);
    long total = 0;
    for (char *p = strstr(out, "\"requests\":"); p; p = strstr(p + 1, "\"requests\":"))
        total += atol(p + 11);
    return total;
}

Test(ctl, status_table_and_json)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF, "{}"), 0);
    usleep(300000);
    long before = served();
    for (int i = 0; i < 10; i++) {
        th_response r;
        th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
        th_response_free(&r);
    }
    usleep(300000); /* a heartbeat or two carries the counters */
    cr_assert_eq(ctl(out, sizeof out, "status", NULL, NULL), 0, "%s", out);
    cr_assert(strstr(out, "SLOT"), "%s", out);
    cr_assert(strstr(out, "ready"), "%s", out);
    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    char pid[32];
    snprintf(pid, sizeof pid, " %d ", (int)w[0]);
    cr_assert(strstr(out, pid), "worker %d listed: %s", (int)w[0], out);
    /* Ten more requests served, counted by the heartbeats. */
    cr_assert_eq(served() - before, 10, "%s", out);
}

Test(ctl, reload_waits_and_reports_bad_config)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF, "{\"v\":1}"), 0);
    cr_assert_eq(th_write_conf(&srv, CONF, srv.port, "{\"v\":2}"), 0);
    cr_assert_eq(ctl(out, sizeof out, "reload", NULL, NULL), 0, "%s", out);
    cr_assert(strstr(out, "reload done"), "%s", out);
    /* When clusterctl returns, the new generation serves. */
    th_response r;
    th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
    cr_assert_str_eq(r.body, "{\"v\":2}");
    th_response_free(&r);

    cr_assert_eq(th_write_conf(&srv, CONF "max_delay = whenever\n", srv.port, "{\"v\":3}"), 0);
    cr_assert_eq(ctl(out, sizeof out, "reload", NULL, NULL), 1, "%s", out);
    cr_assert(strstr(out, "services.ini:9: max_delay"), "the reason with file:line: %s", out);
    th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
    cr_assert_str_eq(r.body, "{\"v\":2}", "still the old config");
    th_response_free(&r);
}

Test(ctl, scale_waits_for_the_count)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, CONF, "{}"), 0);
    cr_assert_eq(ctl(out, sizeof out, "scale", "3", NULL), 0, "%s", out);
    cr_assert_eq(th_workers(&srv, NULL, 0), 3);
    cr_assert_eq(ctl(out, sizeof out, "scale", "1", NULL), 0, "%s", out);
    cr_assert_eq(th_workers(&srv, NULL, 0), 1);
    cr_assert_eq(ctl(out, sizeof out, "scale", "0", NULL), 1, "%s", out);
    cr_assert(strstr(out, "scale"), "%s", out);
}

Test(ctl, reopen_logs_and_stop)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF, "{}"), 0);
    cr_assert_eq(ctl(out, sizeof out, "reopen-logs", NULL, NULL), 0, "%s", out);
    cr_assert(th_log_contains(&srv, "reopening log files: told 2 worker(s)", 2000));
    cr_assert_eq(ctl(out, sizeof out, "stop", NULL, NULL), 0, "%s", out);
    int st;
    cr_assert_eq(waitpid(srv.pid, &st, 0), srv.pid);
    srv.pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

Test(ctl, stop_now)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF, "{}"), 0);
    cr_assert_eq(ctl(out, sizeof out, "stop", "--now", NULL), 0, "%s", out);
    cr_assert(th_log_contains(&srv, "immediate stop", 1000));
    int st;
    cr_assert_eq(waitpid(srv.pid, &st, 0), srv.pid);
    srv.pid = 0;
}

Test(ctl, events_follow_a_kill_and_a_reload)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF, "{}"), 0);
    char evlog[400];
    snprintf(evlog, sizeof evlog, "%s/events.log", srv.dir);
    pid_t follower = fork();
    if (follower == 0) {
        int fd = open(evlog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        const char *bin = getenv("CLUSTERCTL_BIN");
        execl(bin, bin, "-c", srv.conf_path, "-t", "20", "events", (char *)NULL);
        _exit(127);
    }
    usleep(500000); /* the subscription connects */
    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    kill(w[0], SIGKILL);
    cr_assert_eq(th_wait_workers(&srv, 2, w, 1, 5000), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(th_log_contains(&srv, "reload done", 8000));
    usleep(300000);
    kill(follower, SIGTERM);
    waitpid(follower, NULL, 0);
    FILE *f = fopen(evlog, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    char killed[128];
    snprintf(killed, sizeof killed, "\"event\":\"worker_exited\",\"slot\":0,\"pid\":%d", (int)w[0]);
    cr_assert(strstr(out, killed) || strstr(out, "\"worker_exited\""), "%s", out);
    cr_assert(strstr(out, "killed by signal 9"), "%s", out);
    cr_assert(strstr(out, "\"event\":\"worker_started\""), "%s", out);
    cr_assert(strstr(out, "\"event\":\"worker_ready\""), "%s", out);
    cr_assert(strstr(out, "\"event\":\"reload_begun\""), "%s", out);
    cr_assert(strstr(out, "\"event\":\"reload_done\""), "%s", out);
    cr_assert(strstr(out, "reload_begun") < strstr(out, "reload_done"), "%s", out);
}

Test(ctl, absent_master_fails_fast)
{
    /* No th_start: the config names a port nobody serves. */
    snprintf(srv.dir, sizeof srv.dir, "/tmp/clusterd-test-XXXXXX");
    cr_assert_not_null(mkdtemp(srv.dir));
    snprintf(srv.conf_path, sizeof srv.conf_path, "%s/services.ini", srv.dir);
    srv.port = th_free_port();
    cr_assert_eq(th_write_conf(&srv, CONF, srv.port, "{}"), 0);
    char rundir[320];
    snprintf(rundir, sizeof rundir, "%s/run", srv.dir); /* as th_start would use */
    setenv("RUNTIME_DIRECTORY", rundir, 1);
    long long t0 = th_now_ms();
    cr_assert_eq(ctl(out, sizeof out, "status", NULL, NULL), 1, "%s", out);
    cr_assert(strstr(out, "no control socket"), "%s", out);
    cr_assert_lt(th_now_ms() - t0, 2000);

    /* A stale socket file of a dead master: an answer never comes, in ~2 s. */
    mkdir(rundir, 0700);
    char sock[400];
    snprintf(sock, sizeof sock, "%s/control", rundir);
    close(open(sock, O_CREAT | O_WRONLY, 0600));
    t0 = th_now_ms();
    cr_assert_eq(ctl(out, sizeof out, "status", NULL, NULL), 1, "%s", out);
    cr_assert(strstr(out, "did not answer") || strstr(out, "cannot send"), "%s", out);
    cr_assert_lt(th_now_ms() - t0, 6000);
    unlink(sock);
    rmdir(rundir);
}

Test(ctl, master_answers_while_workers_are_stuck)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF, "{}"), 0);
    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    kill(w[0], SIGSTOP);
    kill(w[1], SIGSTOP);
    /* clusterctl gives up after 2 s without an answer: rc 0 means it came. */
    int rc = ctl(out, sizeof out, "status", NULL, NULL);
    kill(w[0], SIGCONT);
    kill(w[1], SIGCONT);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "SLOT"), "%s", out);
}
