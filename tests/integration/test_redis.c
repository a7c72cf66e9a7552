/*
 * test_redis.c - Socket.IO rooms across hosts through Redis (issue 14):
 * the events service with adapter = redis against a real Redis (Debian's
 * redis-server, started here on a free loopback port with no persistence,
 * in its own process group), two clusterd "hosts" (-w 2 each, distinct
 * ports, the same key prefix), a Node.js socket.io server with
 * @socket.io/redis-adapter and @socket.io/redis-emitter
 * (tests/socketio/redis_server.js and redis.js, run by th_node).
 *
 *   across_hosts_and_node       redis.js: relays, binary, the Node host's
 *                               broadcasts and joins, the emitter, A's
 *                               backend endpoints, disconnects, and a
 *                               Redis restart in the middle (what redis.js
 *                               checks is listed in its opening comment)
 *   unreachable_redis_serves_locally  a redis_uri nothing listens on: the
 *                               host serves, rooms across its workers
 *                               work (rooms.js), /healthz/ready answers 503
 *                               naming the adapter, /metrics say
 *                               clusterd_events_redis_up 0, and the log
 *                               says so once per worker, not once per retry
 *
 * Without redis-server on the PATH the suite cannot run: main says why and
 * exits 77, which ctest reports as skipped.  Every wait is bounded; the
 * suite's fini kills both clusterds and Redis (its whole process group),
 * also after a failed assertion.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define EXIT_SKIP 77 /* ctest's SKIP_RETURN_CODE for the integration tests */
#define PREFIX "cdtest" /* not the default: the key option is honoured on both sides */

#define CONF                                                                                                 \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 3s\n"                                                                               \
    "[dummy]\ntype = dummy\nroute = /dummy\n"                                                                \
    "[metrics]\ntype = metrics\nroute = /metrics\n"                                                          \
    "[healthz]\ntype = health\nroute = /healthz\n"                                                           \
    "[events]\ntype = events\nroute = /socket.io\n"                                                          \
    "adapter = redis\n"                                                                                      \
    "redis_uri = redis://127.0.0.1:%d/0\n"                                                                   \
    "redis_prefix = " PREFIX "\n"                                                                            \
    "redis_timeout = 1s\n"                                                                                   \
    "namespaces = /, /chat, /junk\n"

static th_server hosts[2];
static pid_t redis_pid;
static char redis_dir[64];

/* ---- Redis ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts redis-server on 127.0.0.1:port in its own process group, output
 * in redis_dir/redis.log; waits (5 s at most) until it accepts. */
static void redis_start(int port)
{
    snprintf(redis_dir, sizeof redis_dir, "/tmp/clusterd-redis-XXXXXX");
    cr_assert_not_null(mkdtemp(redis_dir));
    char log[128], portstr[16];
    snprintf(log, sizeof log, "%s/redis.log", redis_dir);
    snprintf(portstr, sizeof portstr, "%d", port);
    redis_pid = fork();
    cr_assert_geq(redis_pid, 0);
    if (redis_pid == 0) {
        setpgid(0, 0);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execlp("redis-server", "redis-server", "--port", portstr, "--save", "", "--appendonly", "no", "--bind",
               "127.0.0.1", "--dir", redis_dir, (char *)NULL);
        _exit(127);
    }
    setpgid(redis_pid, redis_pid);
    for (long long end = th_now_ms() + 5000;; sleep_ms(20)) {
        int fd = th_connect(port);
        if (fd >= 0) {
            close(fd);
            return;
        }
        cr_assert_lt(th_now_ms(), end, "redis-server did not accept on %d within 5 s (%s)", port, log);
    }
}

/* Kills Redis's process group (a restarted Redis lives in node's group,
 * which th_node kills) and removes its dir. */
static void redis_stop(void)
{
    if (redis_pid > 0) {
        kill(-redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
    if (redis_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", redis_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", redis_dir);
        redis_dir[0] = '\0';
    }
}

static void fini(void)
{
    int rc = th_finish(&hosts[0]) | th_finish(&hosts[1]);
    redis_stop();
    cr_assert_eq(rc, 0, "sanitizer report in a clusterd log (printed above)");
}

TestSuite(redis, .fini = fini, .timeout = 300);

/* ---- helpers ---- */

/* The sum of the samples of a /metrics family in body, or -1 when absent. */
static double family_sum(const char *body, const char *name)
{
    double sum = -1;
    size_t nl = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) != 0 || (p[nl] != ' ' && p[nl] != '{'))
            continue;
        const char *v = p[nl] == '{' ? strchr(p, '}') : p + nl;
        v = v ? strchr(v, ' ') : NULL;
        if (v)
            sum = (sum < 0 ? 0 : sum) + strtod(v + 1, NULL);
    }
    return sum;
}

/* The sum of the samples of a /metrics family on port (-1 when absent).
 * Just after a start /metrics answers 503 (no figures yet), then 200
 * without the services' families until each worker's first heartbeat:
 * both are waited out, 5 s at most. */
static double metric_sum(int port, const char *name)
{
    th_response r;
    double sum = -1;
    for (long long end = th_now_ms() + 5000;; sleep_ms(100)) {
        int rc = th_http(&r, port, "GET", "/metrics", NULL, 3000);
        if (rc == 0 && r.status == 200 && (sum = family_sum(r.body, name)) >= 0)
            break;
        if (th_now_ms() > end) {
            fprintf(stderr, "GET /metrics: %d (err %d), %zu bytes, no %s:\n%.4000s\n", r.status, r.err,
                    r.body_len, name, r.body ? r.body : "");
            break;
        }
        th_response_free(&r);
    }
    th_response_free(&r);
    return sum;
}

/* Lines of the log holding `needle`. */
static int log_lines(const th_server *s, const char *needle)
{
    FILE *f = fopen(s->log_path, "r");
    char line[2048];
    int n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strcasestr(line, needle))
            n++;
    fclose(f);
    return n;
}

static void print_lines(const th_server *s, const char *needle)
{
    FILE *f = fopen(s->log_path, "r");
    char line[2048];
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (strcasestr(line, needle))
            fprintf(stderr, "  log | %s", line);
    fclose(f);
}

/* ---- tests ---- */

Test(redis, across_hosts_and_node, .timeout = 400)
{
    int rport = th_free_port();
    redis_start(rport);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(th_start(&hosts[i], 2, "/healthz/ready", NULL, CONF, rport), 0, "host %c did not start",
                     'A' + i);
    cr_assert(th_log_contains(&hosts[0], "all 2 workers ready", 10000));
    cr_assert(th_log_contains(&hosts[1], "all 2 workers ready", 10000));
    char pa[16], pb[16], pn[16], pr[16];
    snprintf(pa, sizeof pa, "%d", hosts[0].port);
    snprintf(pb, sizeof pb, "%d", hosts[1].port);
    snprintf(pn, sizeof pn, "%d", th_free_port());
    snprintf(pr, sizeof pr, "%d", rport);
    const char *args[] = {pa, pb, pn, pr, PREFIX, hosts[0].dir, NULL};
    int rc = th_node(hosts[0].dir, "redis.js", 240000, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    cr_assert_eq(rc, 0, "redis.js failed (its output above)");
}

Test(redis, unreachable_redis_serves_locally)
{
    int nowhere = th_free_port(); /* bound then released: nothing listens there */
    cr_assert_eq(th_start(&hosts[0], 2, "/dummy", NULL, CONF, nowhere), 0);
    cr_assert(th_log_contains(&hosts[0], "all 2 workers ready", 10000));
    int port = hosts[0].port;
    th_response r;
    for (long long end = th_now_ms() + 5000;; sleep_ms(50)) {
        cr_assert_eq(th_http(&r, port, "GET", "/healthz/ready", NULL, 3000), 0);
        if (r.status == 503 && strstr(r.body, "redis adapter disconnected"))
            break;
        cr_assert_lt(th_now_ms(), end, "/healthz/ready: %d %s", r.status, r.body);
        th_response_free(&r);
    }
    cr_assert(strstr(r.body, "\"events\"") != NULL, "ready names the service: %s", r.body);
    cr_assert(strstr(r.body, "127.0.0.1") == NULL && strstr(r.body, "redis://") == NULL,
              "ready shows internals: %s", r.body);
    th_response_free(&r);
    double up = metric_sum(port, "clusterd_events_redis_up");
    cr_assert_eq(up, 0, "clusterd_events_redis_up is %g, not 0 (-1: absent)", up);
    cr_assert_eq(th_http(&r, port, "GET", "/dummy", NULL, 3000), 0);
    cr_assert_eq(r.status, 200);
    th_response_free(&r);

    /* Rooms across the host's two workers, POST /publish included. */
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *args[] = {ps, NULL};
    int rc = th_node(hosts[0].dir, "rooms.js", 60000, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    cr_assert_eq(rc, 0, "rooms.js failed (its output above)");

    /* Retries go on (backoff from 100 ms: several in 4 s), the log does
     * not grow with them: once per worker for the state change. */
    int before = log_lines(&hosts[0], "redis");
    sleep_ms(4000);
    int after = log_lines(&hosts[0], "redis");
    if (after != before || after < 1 || after > 2 * 2)
        print_lines(&hosts[0], "redis");
    cr_assert_geq(after, 1, "the log never says the adapter is disconnected");
    cr_assert_eq(after, before, "the log grows with the retries: %d lines about redis, then %d", before, after);
    cr_assert_leq(after, 2 * 2, "%d lines about redis from 2 workers (above): once per state change", after);
    up = metric_sum(port, "clusterd_events_redis_up");
    cr_assert_eq(up, 0, "clusterd_events_redis_up is %g after the retries", up);
}

/* ---- main: the suite, or why it is skipped ---- */

/* Whether redis-server is on the PATH. */
static int have_redis(void)
{
    const char *path = getenv("PATH");
    char buf[4096], exe[4200];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(exe, sizeof exe, "%s/redis-server", d);
        if (access(exe, X_OK) == 0)
            return 1;
    }
    return 0;
}

int main(int argc, char *argv[])
{
    if (!have_redis()) {
        printf("SKIPPED: the Redis adapter's tests need redis-server (apt-get install redis-server, "
               "or scripts/setup.sh packages)\n");
        return EXIT_SKIP;
    }
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
