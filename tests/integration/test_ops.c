/*
 * Integration tests of what operators watch: /metrics values after a known
 * number of requests (answered by any worker for the whole cluster), and
 * liveness/readiness, including a degraded readmongo whose database is down.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define CONF                                                                                                 \
    "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 100ms\nheartbeat_timeout = 2s\n"                  \
    "graceful_timeout = 3s\n"                                                                                \
    "[dummy]\ntype = dummy\n[metrics]\ntype = metrics\n[healthz]\ntype = health\n"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(ops, .fini = fini, .timeout = 60);

/* The value of the exposition line starting with `series` (exact match up
 * to the value), or -1. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static double scrape(const char *series)
{
    th_response r;
    th_http(&r, srv.port, "GET", "/metrics", NULL, 2000);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body ? r.body : "");
    cr_assert(strstr(r.headers, "Content-Type: text/plain; version=0.0.4"), "%s", r.headers);
    double v = metric(r.body, series);
    th_response_free(&r);
    return v;
}

Test(ops, metrics_count_known_requests_across_workers)
{
    cr_assert_eq(th_start(&srv, 2, "/healthz", NULL, CONF), 0);
    usleep(300000);
    double ok0 = scrape("clusterd_requests_total{service=\"dummy\",code=\"2xx\"}");
    double nf0 = scrape("clusterd_requests_total{service=\"-\",code=\"4xx\"}");
    double m4 = scrape("clusterd_requests_total{service=\"dummy\",code=\"4xx\"}");
    cr_assert_geq(ok0, 0);
    for (int i = 0; i < 25; i++) {
        th_response r;
        th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
        cr_assert_eq(r.status, 200);
        th_response_free(&r);
    }
    for (int i = 0; i < 3; i++) {
        th_response r;
        th_http(&r, srv.port, "GET", "/nowhere", NULL, 2000);
        th_response_free(&r);
        th_http(&r, srv.port, "GET", "/dummy?delay_ms=nope", NULL, 2000);
        th_response_free(&r);
    }
    usleep(400000); /* heartbeats to the master, snapshot back to the workers */
    /* Each scrape lands on either worker; both must tell the same totals. */
    for (int k = 0; k < 6; k++) {
        cr_assert_eq(scrape("clusterd_requests_total{service=\"dummy\",code=\"2xx\"}"), ok0 + 25);
        cr_assert_eq(scrape("clusterd_requests_total{service=\"-\",code=\"4xx\"}"), nf0 + 3);
        cr_assert_eq(scrape("clusterd_requests_total{service=\"dummy\",code=\"4xx\"}"), m4 + 3);
    }
    cr_assert_eq(scrape("clusterd_workers_ready"), 2);
    cr_assert_geq(scrape("clusterd_request_duration_seconds_count"), ok0 + 31);

    /* A worker killed: its counts stay in the totals, and the respawn shows. */
    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    kill(w[0], SIGKILL);
    cr_assert_eq(th_wait_workers(&srv, 2, w, 1, 5000), 0);
    usleep(500000);
    cr_assert_geq(scrape("clusterd_requests_total{service=\"dummy\",code=\"2xx\"}"), ok0 + 25 - 0.5,
                  "counters never go down");
    cr_assert_eq(scrape("clusterd_respawns_total"), 1);
}

Test(ops, liveness_and_readiness)
{
    cr_assert_eq(th_start(&srv, 1, "/healthz", NULL, CONF), 0);
    th_response r;
    th_http(&r, srv.port, "GET", "/healthz", NULL, 2000);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "\"status\":\"ok\""), "%s", r.body);
    th_response_free(&r);
    th_http(&r, srv.port, "GET", "/healthz/ready", NULL, 2000);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"ready\":true"), "%s", r.body);
    th_response_free(&r);
}

Test(ops, readiness_names_a_degraded_readmongo)
{
    int dead = th_free_port(); /* nothing listens there */
    cr_assert_eq(th_start(&srv, 1, "/healthz", NULL,
                          CONF "[readmongo]\ntype = readmongo\nuri = mongodb://127.0.0.1:%d/\ncollections = users\n"
                               "server_selection_timeout = 300ms\nconnect_timeout = 200ms\n",
                          dead),
                 0);
    th_response r;
    /* A query notices the database is down (503)... */
    th_http(&r, srv.port, "GET", "/readmongo/users", NULL, 5000);
    cr_assert_eq(r.status, 503, "%s", r.body);
    th_response_free(&r);
    /* ...and readiness says so, naming the service; liveness is still fine. */
    th_http(&r, srv.port, "GET", "/healthz/ready", NULL, 2000);
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert(strstr(r.body, "\"readmongo\":"), "%s", r.body);
    th_response_free(&r);
    th_http(&r, srv.port, "GET", "/healthz", NULL, 2000);
    cr_assert_eq(r.status, 200);
    th_response_free(&r);
}

static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += !needle || strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static int wait_lines(const char *path, const char *needle, int want, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    int n;
    while ((n = count_lines(path, needle)) < want && th_now_ms() < deadline)
        usleep(50000);
    return n;
}

Test(ops, access_log_combined_and_reopen_on_usr1)
{
    char dir[] = "/tmp/clusterd-al-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128], rotated[140];
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(rotated, sizeof rotated, "%s.1", path);
    cr_assert_eq(th_start(&srv, 2, "/healthz", NULL,
                          "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 100ms\nheartbeat_timeout = 2s\n"
                          "graceful_timeout = 3s\naccess_log = %s\n"
                          "[dummy]\ntype = dummy\n[metrics]\ntype = metrics\n[healthz]\ntype = health\n",
                          path),
                 0);
    for (int i = 0; i < 5; i++) {
        th_response r;
        th_http(&r, srv.port, "GET", "/dummy?x=1", NULL, 2000);
        th_response_free(&r);
    }
    cr_assert_geq(wait_lines(path, "\"GET /dummy?x=1 HTTP/1.1\" 200 29 ", 5, 3000), 5);
    cr_assert_geq(count_lines(path, "127.0.0.1 - - ["), 5);
    /* logrotate: move the file, USR1, and new lines go to a new file. */
    cr_assert_eq(rename(path, rotated), 0);
    kill(srv.pid, SIGUSR1);
    usleep(300000);
    for (int i = 0; i < 3; i++) {
        th_response r;
        th_http(&r, srv.port, "GET", "/nowhere", NULL, 2000);
        th_response_free(&r);
    }
    cr_assert_eq(wait_lines(path, "\"GET /nowhere HTTP/1.1\" 404 ", 3, 3000), 3, "new lines in the new file");
    cr_assert_eq(count_lines(rotated, "/nowhere"), 0, "none in the rotated one");
    th_stop(&srv, SIGTERM, 5000);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(ops, access_log_json)
{
    char dir[] = "/tmp/clusterd-al-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/access.json", dir);
    cr_assert_eq(th_start(&srv, 1, "/healthz", NULL,
                          "[cluster]\nlisten = 127.0.0.1:%d\naccess_log = %s\naccess_log_format = json\n"
                          "[dummy]\ntype = dummy\n[healthz]\ntype = health\n",
                          path),
                 0);
    th_response r;
    th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
    th_response_free(&r);
    cr_assert_eq(wait_lines(path, "\"url\":\"/dummy\",\"status\":200,\"bytes\":29,", 1, 3000), 1);
    cr_assert_eq(count_lines(path, "\"service\":\"dummy\""), 1);
    th_stop(&srv, SIGTERM, 5000);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static long proc_field(pid_t pid, const char *file, const char *key)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) {
            char *p = line + strlen(key);
            while (*p == ' ' || *p == '\t' || *p == ':')
                p++;
            v = strtol(p, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

Test(ops, workers_drop_privileges_and_take_rlimit_nofile)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to switch users");
    cr_assert_eq(th_start(&srv, 2, "/healthz", NULL,
                          "[cluster]\nlisten = 127.0.0.1:%d\nuser = nobody\nrlimit_nofile = 4321\n"
                          "[dummy]\ntype = dummy\n[healthz]\ntype = health\n"),
                 0);
    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(proc_field(w[i], "status", "Uid:"), 65534, "worker %d runs as nobody", (int)w[i]);
        cr_assert_eq(proc_field(w[i], "limits", "Max open files"), 4321);
    }
    cr_assert_eq(proc_field(srv.pid, "status", "Uid:"), 0, "the master keeps its privileges");
    th_response r;
    th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
    cr_assert_eq(r.status, 200);
    th_response_free(&r);
}

Test(ops, workers_over_max_rss_are_recycled_without_failures)
{
    /* Every worker is over 1k of RSS: they are replaced one at a time, forever. */
    cr_assert_eq(th_start(&srv, 2, "/healthz", NULL,
                          "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 100ms\nmax_rss = 1k\n"
                          "[dummy]\ntype = dummy\n[healthz]\ntype = health\n"),
                 0);
    int rfd;
    pid_t c = th_client_loop(srv.port, 2000, &rfd, "{\"service\":\"dummy\",\"ok\":true}");
    /* Watched all along: the next replacement waits for the replaced worker
     * to be gone, so there are never more than 2 + 1 workers. */
    int most = 0;
    for (long long end = th_now_ms() + 1800; th_now_ms() < end;) {
        int n = th_workers(&srv, NULL, 0);
        most = n > most ? n : most;
        usleep(5000);
    }
    th_loop_result res = th_client_result(c, rfd);
    cr_assert(th_log_contains(&srv, "over max_rss: recycling it", 0));
    cr_assert_gt(res.ok, 100);
    cr_assert_eq(res.failed, 0, "%d of %d requests failed across recycling", res.failed, res.ok + res.failed);
    cr_assert_leq(most, 3, "at most one extra worker at a time (saw %d)", most);
}
