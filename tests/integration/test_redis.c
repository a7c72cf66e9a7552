/*
 * test_redis.c - Socket.IO rooms across hosts through Redis (issue 14):
 * the events service with adapter = redis against a real Redis (Debian's
 * redis-server, started here on a free loopback port with no persistence,
 * in its own process group), two clusterd "hosts" (-w 2 each, distinct
 * ports, the same key prefix), a Node.js socket.io server with
 * @socket.io/redis-adapter and @socket.io/redis-emitter
 * (tests/socketio/redis_server.js, forked by the scenarios redis.js and
 * redis_api.js, which share redis_lib.js; redis_one.js for one host; all
 * run by th_node).
 *
 *   across_hosts_and_node       redis.js: relays, binary, the Node host's
 *                               broadcasts and joins, the emitter, A's
 *                               backend endpoints, disconnects, and a
 *                               Redis restart in the middle (what redis.js
 *                               checks is listed in its opening comment),
 *                               and each worker's log says the state
 *                               changes, not each retry
 *   handler_api_across_hosts    redis_api.js: the handler API's broadcast,
 *                               sockets_join/leave/disconnect (the test
 *                               module, sio-test.so, on both hosts) reach
 *                               the other host and the Node host
 *   unreachable_redis_serves_locally  a redis_uri nothing listens on: the
 *                               host serves, rooms across its workers
 *                               work (rooms.js), /healthz/ready answers 503
 *                               naming the adapter, /metrics say
 *                               clusterd_events_redis_up 0, and the log
 *                               says so once per worker, not once per retry
 *   password_in_uri_never_logged  Redis with requirepass: the right
 *                               password subscribes and carries messages
 *                               both ways (redis_one.js), a wrong one
 *                               leaves the host degraded, logged once; no
 *                               log holds either password
 *   unix_socket                 redis_uri = unix:///path, both ways
 *   silent_redis_is_timed_out   a listener that never answers: redis_timeout
 *                               ends each try, tries go on, the host
 *                               serves, degraded, logged once
 *
 * Without redis-server on the PATH the suite cannot run: main says why and
 * exits 77, which ctest reports as skipped.  Every wait is bounded; the
 * suite's fini kills both clusterds and Redis (its whole process group),
 * also after a failed assertion.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
    "redis_uri = %s\n"                                                                                       \
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

/* Whether something accepts a connection on the unix socket path. */
static int unix_accepts(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof sa.sun_path)
        return 0;
    memcpy(sa.sun_path, path, len + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts redis-server on 127.0.0.1:port (0: no TCP, then on the unix
 * socket redis_dir/redis.sock) with the NULL-terminated extra arguments,
 * in its own process group, output in redis_dir/redis.log; waits (5 s at
 * most) until it accepts. */
static void redis_start(int port, const char *const *extra)
{
    snprintf(redis_dir, sizeof redis_dir, "/tmp/clusterd-redis-XXXXXX");
    cr_assert_not_null(mkdtemp(redis_dir));
    char log[128], sock[128], portstr[16];
    snprintf(log, sizeof log, "%s/redis.log", redis_dir);
    snprintf(sock, sizeof sock, "%s/redis.sock", redis_dir);
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[32] = {"redis-server", "--port", portstr, "--save", "", "--appendonly", "no", "--bind",
                            "127.0.0.1", "--dir", redis_dir};
    int n = 11;
    if (port == 0) {
        argv[n++] = "--unixsocket";
        argv[n++] = sock;
        argv[n++] = "--unixsocketperm";
        argv[n++] = "700";
    }
    for (int i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
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
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    setpgid(redis_pid, redis_pid);
    for (long long end = th_now_ms() + 5000;; sleep_ms(20)) {
        int fd = port ? th_connect(port) : -1;
        if (fd >= 0)
            close(fd);
        if (fd >= 0 || (!port && unix_accepts(sock)))
            return;
        cr_assert_lt(th_now_ms(), end, "redis-server did not accept on %s within 5 s (%s)", port ? portstr : sock,
                     log);
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

/* Waits (5 s at most) until /healthz/ready on port answers 503 naming the
 * events service's adapter, and checks that the answer shows no internals. */
static void wait_degraded(int port)
{
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
}

/* What the log of s says about Redis does not grow over ms while the
 * adapter keeps retrying, and is at most once per worker (2): the log has
 * the state change, not each retry. */
static void logged_once(const th_server *s, int ms)
{
    int before = log_lines(s, "redis");
    sleep_ms(ms);
    int after = log_lines(s, "redis");
    if (after != before || after < 1 || after > 2)
        print_lines(s, "redis");
    cr_assert_geq(after, 1, "the log never says the adapter is disconnected");
    cr_assert_eq(after, before, "the log grows with the retries: %d lines about redis, then %d", before, after);
    cr_assert_leq(after, 2, "%d lines about redis from 2 workers (above): once per state change", after);
}

/* Runs `node tests/socketio/SCRIPT args` with dir for its log; asserts it passed. */
static void node_passes(const char *dir, const char *script, const char *const *args)
{
    int rc = th_node(dir, script, 90000, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    cr_assert_eq(rc, 0, "%s failed (its output above)", script);
}

/* ---- tests ---- */

Test(redis, across_hosts_and_node, .timeout = 400)
{
    int rport = th_free_port();
    redis_start(rport, NULL);
    char uri[64];
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d/0", rport);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(th_start(&hosts[i], 2, "/healthz/ready", NULL, CONF, uri), 0, "host %c did not start",
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
    /* Through the outage, each worker logged its state changes only
     * (subscribed, disconnected, subscribed, and maybe disconnected again
     * as th_node killed the restarted Redis; on A, the worker started
     * after redis.js killed one: subscribed): never once per retry. */
    for (int i = 0; i < 2; i++) {
        int n = log_lines(&hosts[i], "redis"), min = i == 0 ? 7 : 6;
        if (n < min || n > min + 2)
            print_lines(&hosts[i], "redis");
        cr_assert(n >= min && n <= min + 2, "host %c: %d lines about redis (above), not %d to %d", 'A' + i, n, min,
                  min + 2);
    }
}

/* The handler API (tests/integration/sio_test_module.c on "/" of both
 * hosts): its broadcasts, sockets_join/leave and disconnects reach the
 * other host and the Node host (redis_api.js). */
Test(redis, handler_api_across_hosts)
{
    int rport = th_free_port();
    redis_start(rport, NULL);
    char uri[64];
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d/0", rport);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(th_start(&hosts[i], 2, "/healthz/ready", NULL, CONF "handlers = sio-test\n", uri), 0,
                     "host %c did not start", 'A' + i);
    char pa[16], pb[16], pn[16], pr[16];
    snprintf(pa, sizeof pa, "%d", hosts[0].port);
    snprintf(pb, sizeof pb, "%d", hosts[1].port);
    snprintf(pn, sizeof pn, "%d", th_free_port());
    snprintf(pr, sizeof pr, "%d", rport);
    const char *args[] = {pa, pb, pn, pr, PREFIX, hosts[0].dir, NULL};
    node_passes(hosts[0].dir, "redis_api.js", args);
}

Test(redis, unreachable_redis_serves_locally)
{
    char uri[64]; /* a port bound then released: nothing listens there */
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d/0", th_free_port());
    cr_assert_eq(th_start(&hosts[0], 2, "/dummy", NULL, CONF, uri), 0);
    cr_assert(th_log_contains(&hosts[0], "all 2 workers ready", 10000));
    int port = hosts[0].port;
    wait_degraded(port);
    double up = metric_sum(port, "clusterd_events_redis_up");
    cr_assert_eq(up, 0, "clusterd_events_redis_up is %g, not 0 (-1: absent)", up);
    th_response r;
    cr_assert_eq(th_http(&r, port, "GET", "/dummy", NULL, 3000), 0);
    cr_assert_eq(r.status, 200);
    th_response_free(&r);

    /* Rooms across the host's two workers, POST /publish included. */
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *args[] = {ps, NULL};
    node_passes(hosts[0].dir, "rooms.js", args);

    /* Retries go on (backoff from 100 ms: several in 4 s), the log does
     * not grow with them. */
    logged_once(&hosts[0], 4000);
    up = metric_sum(port, "clusterd_events_redis_up");
    cr_assert_eq(up, 0, "clusterd_events_redis_up is %g after the retries", up);
}

/* Redis with requirepass: the right password in redis_uri subscribes
 * (ready 200) and carries messages both ways; a wrong one leaves the host
 * degraded, logged once; neither password is ever in a log. */
Test(redis, password_in_uri_never_logged)
{
    int rport = th_free_port();
    const char *extra[] = {"--requirepass", "s3cr3t-pw", NULL};
    redis_start(rport, extra);
    char good[96], bad[96];
    snprintf(good, sizeof good, "redis://:s3cr3t-pw@127.0.0.1:%d/0", rport);
    snprintf(bad, sizeof bad, "redis://:wrong-pw@127.0.0.1:%d/0", rport);
    cr_assert_eq(th_start(&hosts[0], 2, "/healthz/ready", NULL, CONF, good), 0);
    cr_assert_eq(th_start(&hosts[1], 2, "/dummy", NULL, CONF, bad), 0);
    wait_degraded(hosts[1].port);
    char ps[16], pr[16];
    snprintf(ps, sizeof ps, "%d", hosts[0].port);
    snprintf(pr, sizeof pr, "%d", rport);
    const char *args[] = {ps, pr, PREFIX, "s3cr3t-pw", NULL};
    node_passes(hosts[0].dir, "redis_one.js", args);
    logged_once(&hosts[1], 3000);
    for (int i = 0; i < 2; i++) {
        if (log_lines(&hosts[i], "-pw") != 0)
            print_lines(&hosts[i], "-pw");
        cr_assert_eq(log_lines(&hosts[i], "-pw"), 0, "host %c logs a password (above)", 'A' + i);
    }
}

/* redis_uri = unix:///path: the same, over Redis's unix socket. */
Test(redis, unix_socket)
{
    redis_start(0, NULL);
    char uri[128], sock[96];
    snprintf(sock, sizeof sock, "%s/redis.sock", redis_dir);
    snprintf(uri, sizeof uri, "unix://%s", sock);
    cr_assert_eq(th_start(&hosts[0], 2, "/healthz/ready", NULL, CONF, uri), 0);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", hosts[0].port);
    const char *args[] = {ps, sock, PREFIX, NULL};
    node_passes(hosts[0].dir, "redis_one.js", args);
}

/* A "Redis" that accepts (the kernel completes the connections in the
 * listen backlog) and never answers: redis_timeout (1 s here) ends each
 * try, the adapter tries again (new connections keep coming), the host
 * stays degraded and serves, and the log says it once. */
Test(redis, silent_redis_is_timed_out)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sa;
    cr_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 128) == 0 &&
              getsockname(lfd, (struct sockaddr *)&sa, &slen) == 0);
    char uri[64];
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d/0", ntohs(sa.sin_port));
    cr_assert_eq(th_start(&hosts[0], 2, "/dummy", NULL, CONF, uri), 0);
    wait_degraded(hosts[0].port);
    sleep_ms(1500); /* past the first timeout */
    int first = 0, later = 0, fd;
    while ((fd = accept(lfd, NULL, NULL)) >= 0) {
        close(fd);
        first++;
    }
    int before = log_lines(&hosts[0], "redis");
    th_response r;
    for (long long end = th_now_ms() + 15000; later < 2; sleep_ms(200)) {
        while ((fd = accept(lfd, NULL, NULL)) >= 0) {
            close(fd);
            later++;
        }
        cr_assert_eq(th_http(&r, hosts[0].port, "GET", "/dummy", NULL, 3000), 0, "the host does not answer");
        cr_assert_eq(r.status, 200);
        th_response_free(&r);
        cr_assert_lt(th_now_ms(), end, "no new try within 15 s after the first %d connections", first);
    }
    close(lfd);
    cr_assert_gt(first, 0, "the adapter never connected");
    int after = log_lines(&hosts[0], "redis");
    if (after != before || after > 2)
        print_lines(&hosts[0], "redis");
    cr_assert_eq(after, before, "the log grows with the retries: %d lines about redis, then %d", before, after);
    cr_assert(after >= 1 && after <= 2, "%d lines about redis from 2 workers (above): once per state change", after);
    wait_degraded(hosts[0].port);
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
