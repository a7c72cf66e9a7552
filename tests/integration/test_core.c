/*
 * Integration tests of the core: the real clusterd binary on a loopback
 * port, driven with signals and plain HTTP.  Every wait is bounded.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <netinet/tcp.h>

#include "tests/integration/harness.h"

#define BASE_CONF                                                                                            \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 1500ms\n"                                                                           \
    "keepalive_timeout = 5s\n"

#define DUMMY(body) "[dummy]\ntype = dummy\nroute = /dummy\nbody = " body "\n"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(core, .fini = fini, .timeout = 60);

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int get_ok(const char *path, const char *want_body)
{
    th_response r;
    th_http(&r, srv.port, "GET", path, NULL, 5000);
    int ok = r.status == 200 && (!want_body || (r.body && strcmp(r.body, want_body) == 0));
    th_response_free(&r);
    return ok;
}

static int sockets_of(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[512], link[128];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        ssize_t l = readlink(p, link, sizeof link - 1);
        if (l > 0) {
            link[l] = '\0';
            n += strncmp(link, "socket:", 7) == 0;
        }
    }
    closedir(d);
    return n;
}

Test(core, serves_dummy_from_every_worker)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF DUMMY("{\"hello\":1}")), 0);
    th_response r;
    th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"hello\":1}");
    cr_assert(strstr(r.headers, "Content-Type: application/json"), "%s", r.headers);
    th_response_free(&r);

    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    /* th_start returns once one worker answers; until the other is READY
     * the master steers every connection to the first one. */
    cr_assert(th_log_contains(&srv, "all 2 workers ready", 5000));
    int base0 = sockets_of(w[0]), base1 = sockets_of(w[1]);
    /* 16 slow requests held open at once: both workers must be holding some. */
    int fds[16];
    for (int i = 0; i < 16; i++) {
        fds[i] = th_connect(srv.port);
        cr_assert_geq(fds[i], 0);
        const char *req = "GET /dummy?delay_ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n";
        cr_assert_eq(send(fds[i], req, strlen(req), 0), (ssize_t)strlen(req));
    }
    msleep(300);
    int held0 = sockets_of(w[0]) - base0, held1 = sockets_of(w[1]) - base1;
    cr_assert_eq(held0 + held1, 16, "held %d + %d", held0, held1);
    cr_assert_gt(held0, 0, "worker 0 holds none of 16 connections");
    cr_assert_gt(held1, 0, "worker 1 holds none of 16 connections");
    for (int i = 0; i < 16; i++) {
        char buf[512];
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 5000), 1);
        ssize_t n = recv(fds[i], buf, sizeof buf - 1, 0);
        cr_assert_gt(n, 0);
        buf[n] = '\0';
        cr_assert(strstr(buf, "200 OK"), "%s", buf);
        close(fds[i]);
    }
    /* Each worker knows its slot. */
    char env[8192];
    for (int i = 0; i < 2; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/environ", (int)w[i]);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f);
        size_t n = fread(env, 1, sizeof env - 1, f);
        fclose(f);
        int found = 0;
        for (size_t k = 0; k < n; k += strlen(env + k) + 1)
            found |= strncmp(env + k, "CLUSTERD_WORKER_ID=", 19) == 0;
        cr_assert(found, "worker %d has CLUSTERD_WORKER_ID", (int)w[i]);
    }
    int st = th_stop(&srv, SIGTERM, 8000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
}

/* Whether the worker's socket fd has TCP_NODELAY, read through pidfd_getfd
 * (needs ptrace rights over the worker: root, or the same user with
 * yama's ptrace_scope 0).  Returns 1, 0, or -1 when it cannot be read. */
static int nodelay_of(pid_t pid, int fd)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return -1;
    int mine = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
    close(pfd);
    if (mine < 0)
        return -1;
    int v = 0, listening = 0;
    socklen_t vl = sizeof v, ll = sizeof listening;
    int rc = getsockopt(mine, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) == 0 && !listening &&
                     getsockopt(mine, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0
                 ? v != 0
                 : -1;
    close(mine);
    return rc;
}

Test(core, accepted_connections_have_tcp_nodelay)
{
    /* Small writes (an ack, then a broadcast) must not wait for the peer's
     * delayed ACK: found by the events benchmark as a 40 ms stall. */
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF DUMMY("{}")), 0);
    int c = th_connect(srv.port);
    const char *req = "GET /dummy?delay_ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send(c, req, strlen(req), 0), (ssize_t)strlen(req));
    msleep(200);
    pid_t w[1];
    cr_assert_eq(th_workers(&srv, w, 1), 1);
    int checked = 0;
    for (int fd = 3; fd < 64; fd++) {
        int v = nodelay_of(w[0], fd);
        if (v < 0)
            continue;
        cr_assert_eq(v, 1, "fd %d of the worker lacks TCP_NODELAY", fd);
        checked++;
    }
    if (checked == 0)
        cr_skip_test("cannot read the worker's sockets (pidfd_getfd not permitted here)");
    close(c);
}

Test(core, killed_worker_is_replaced_and_queued_connections_survive)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF DUMMY("{\"k\":1}")), 0);
    int failures = 0, done = 0, kills = 0;
    long long deadline = th_now_ms() + 20000;
    for (int i = 0; i < 300 && th_now_ms() < deadline; i++) {
        if (i % 30 == 15) {
            /* Between two requests: nothing is accepted, so nothing may be lost. */
            pid_t w[2];
            int n = th_workers(&srv, w, 2);
            if (n > 0) {
                kill(w[kills % n], SIGKILL);
                kills++;
            }
        }
        if (get_ok("/dummy", "{\"k\":1}"))
            done++;
        else
            failures++;
    }
    cr_assert_geq(kills, 9);
    cr_assert_eq(failures, 0, "%d of %d requests failed across %d worker kills", failures, done + failures, kills);
    cr_assert_eq(th_wait_workers(&srv, 2, NULL, 0, 5000), 0, "two workers again");
    cr_assert(th_log_contains(&srv, "killed by signal 9", 0));
}

Test(core, sigterm_lets_inflight_request_finish)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF DUMMY("{\"slow\":1}")), 0);
    int fd = th_connect(srv.port);
    const char *req = "GET /dummy?delay_ms=1200 HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    msleep(200);
    long long t0 = th_now_ms();
    kill(srv.pid, SIGTERM);
    char buf[1024];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strstr(buf, "HTTP/1.1 200 OK"), "%s", buf);
    cr_assert(strstr(buf, "{\"slow\":1}"), "%s", buf);
    cr_assert(strstr(buf, "Connection: close"), "a draining worker closes: %s", buf);
    close(fd);
    int st = th_stop(&srv, 0, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    cr_assert_lt(th_now_ms() - t0, 4000);
}

Test(core, sighup_rolls_to_new_config_without_failed_requests)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF DUMMY("{\"v\":1}")), 0);
    pid_t old[2];
    cr_assert_eq(th_workers(&srv, old, 2), 2);
    int rfd1, rfd2;
    pid_t c1 = th_client_loop(srv.port, 4000, &rfd1, "{\"v\":1}");
    pid_t c2 = th_client_loop(srv.port, 4000, &rfd2, "{\"v\":1}");
    msleep(800);
    cr_assert_eq(th_write_conf(&srv, BASE_CONF DUMMY("{\"v\":2}"), srv.port), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(th_log_contains(&srv, "reload done", 8000), "reload finished");
    th_loop_result a = th_client_result(c1, rfd1), b = th_client_result(c2, rfd2);
    cr_assert_gt(a.ok, 50);
    cr_assert_gt(b.ok, 50);
    cr_assert_eq(a.failed + b.failed, 0, "failed requests during reload: %d + %d (ok %d + %d)", a.failed, b.failed,
                 a.ok, b.ok);
    cr_assert_gt(a.bodies_changed + b.bodies_changed, 0, "clients saw the new body during the run");
    cr_assert(get_ok("/dummy", "{\"v\":2}"));
    cr_assert_eq(th_wait_workers(&srv, 2, old, 2, 8000), 0, "both workers replaced");
}

Test(core, reload_is_done_only_once_old_workers_stopped_accepting)
{
    /* An old worker that cannot answer STOP yet (stopped) could still take
     * a connection on the slot's shared listener: "reload done" must wait
     * for its DRAINING answer, so new connections after it get the new config. */
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF DUMMY("{\"v\":1}")), 0);
    pid_t old[1];
    cr_assert_eq(th_workers(&srv, old, 1), 1);
    cr_assert_eq(kill(old[0], SIGSTOP), 0);
    cr_assert_eq(th_write_conf(&srv, BASE_CONF DUMMY("{\"v\":2}"), srv.port), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(!th_log_contains(&srv, "reload done", 1500), "reload done while the old worker could still accept");
    cr_assert_eq(kill(old[0], SIGCONT), 0);
    cr_assert(th_log_contains(&srv, "reload done", 5000), "reload finished once the old worker answered");
    for (int i = 0; i < 20; i++)
        cr_assert(get_ok("/dummy", "{\"v\":2}"), "request %d after reload done", i);
}

Test(core, reload_whose_workers_cannot_boot_rolls_back)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF DUMMY("{\"v\":1}")), 0);
    pid_t before[2];
    cr_assert_eq(th_workers(&srv, before, 2), 2);
    int rfd;
    pid_t c = th_client_loop(srv.port, 3000, &rfd, "{\"v\":1}");
    msleep(300);
    /* Valid syntax, but the new workers cannot start: body_file is missing. */
    cr_assert_eq(th_write_conf(&srv, BASE_CONF "[dummy]\ntype = dummy\nbody_file = /nonexistent/v2.json\n", srv.port), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(th_log_contains(&srv, "rolled back", 8000), "the reload rolled back");
    th_loop_result res = th_client_result(c, rfd);
    cr_assert_eq(res.failed, 0, "%d requests failed", res.failed);
    cr_assert_eq(res.bodies_changed, 0, "every answer came from the old config");
    cr_assert(get_ok("/dummy", "{\"v\":1}"));
    pid_t after[2];
    cr_assert_eq(th_workers(&srv, after, 2), 2, "still two workers: the master did not stop");
    cr_assert(!th_log_contains(&srv, "stopping (not respawning", 0));
    /* A good config afterwards reloads normally. */
    cr_assert_eq(th_write_conf(&srv, BASE_CONF DUMMY("{\"v\":3}"), srv.port), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(th_log_contains(&srv, "reload done", 8000));
    cr_assert(get_ok("/dummy", "{\"v\":3}"));
}

Test(core, workers_recycle_after_max_requests_without_failures)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "max_requests = 50\n" DUMMY("{\"r\":1}")), 0);
    pid_t first[1];
    cr_assert_eq(th_workers(&srv, first, 1), 1);
    int rfd;
    pid_t c = th_client_loop(srv.port, 2500, &rfd, "{\"r\":1}");
    th_loop_result res = th_client_result(c, rfd);
    cr_assert_gt(res.ok, 100);
    cr_assert_eq(res.failed, 0, "%d of %d requests failed across recycling", res.failed, res.ok + res.failed);
    cr_assert(th_log_contains(&srv, "recycling worker", 3000));
    cr_assert_eq(th_wait_workers(&srv, 1, first, 1, 5000), 0, "the first worker was replaced");
}

Test(core, bad_config_on_hup_keeps_the_old_one)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF DUMMY("{\"v\":1}")), 0);
    pid_t before[2];
    cr_assert_eq(th_workers(&srv, before, 2), 2);
    cr_assert_eq(th_write_conf(&srv, BASE_CONF "workers = many\n" DUMMY("{\"v\":2}"), srv.port), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(th_log_contains(&srv, "reload failed, keeping the current configuration", 5000));
    cr_assert(th_log_contains(&srv, "services.ini:7: workers", 0), "the error names file:line");
    cr_assert(get_ok("/dummy", "{\"v\":1}"));
    pid_t after[2];
    cr_assert_eq(th_workers(&srv, after, 2), 2);
    cr_assert(after[0] == before[0] || after[0] == before[1], "workers were not restarted");
    cr_assert(after[1] == before[0] || after[1] == before[1], "workers were not restarted");
}

Test(core, crash_loop_backs_off)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF DUMMY("{}")), 0);
    for (int i = 0; i < 4; i++) {
        pid_t w[1];
        cr_assert_eq(th_wait_workers(&srv, 1, NULL, 0, 5000), 0);
        cr_assert_eq(th_workers(&srv, w, 1), 1);
        kill(w[0], SIGKILL);
        cr_assert_eq(th_wait_workers(&srv, 1, w, 1, 5000), 0, "replaced after kill %d", i + 1);
    }
    /* The log says each delay; they grow. */
    FILE *f = fopen(srv.log_path, "r");
    cr_assert_not_null(f);
    char line[1024];
    double d2 = -1, d4 = -1;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "respawning slot 0 in ");
        unsigned crash;
        double ms;
        if (p && sscanf(p, "respawning slot 0 in %lf ms (crash %u", &ms, &crash) == 2) {
            if (crash == 2)
                d2 = ms;
            if (crash == 4)
                d4 = ms;
        }
    }
    fclose(f);
    cr_assert_geq(d2, 0, "second crash was delayed");
    cr_assert_gt(d4, d2, "fourth delay %.0f > second %.0f", d4, d2);
    cr_assert(get_ok("/dummy", "{}"));
}

Test(core, boot_failure_stops_the_master)
{
    th_server s;
    int rc = th_start(&s, 2, NULL, NULL, BASE_CONF "[dummy]\ntype = dummy\nbody_file = /nonexistent/body.json\n");
    /* Either it already exited during start (th_start reports -1), or it exits now. */
    if (rc == 0) {
        int st = th_stop(&s, 0, 5000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "status 0x%x", st);
    }
    cr_assert(th_log_contains(&s, "failed to boot", 0));
    cr_assert(!th_log_contains(&s, "Sanitizer", 0), "sanitizer report in %s", s.log_path);
    cr_assert(th_log_contains(&s, "/nonexistent/body.json", 0));
    cr_assert(!th_log_contains(&s, "respawning slot", 0), "no respawn after a boot failure");
    th_cleanup(&s);
}

Test(core, master_sigkill_leaves_no_worker)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF DUMMY("{}")), 0);
    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    kill(srv.pid, SIGKILL);
    waitpid(srv.pid, NULL, 0);
    srv.pid = 0;
    long long t0 = th_now_ms();
    int alive = 2;
    while (alive && th_now_ms() - t0 < 1000) {
        alive = 0;
        for (int i = 0; i < 2; i++) {
            char path[64], buf[256] = "";
            snprintf(path, sizeof path, "/proc/%d/stat", (int)w[i]);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            if (fgets(buf, sizeof buf, f)) {
                char *rp = strrchr(buf, ')');
                alive += rp && rp[2] != 'Z';
            }
            fclose(f);
        }
        msleep(20);
    }
    cr_assert_eq(alive, 0, "%d worker(s) outlived the master by a second", alive);
}

Test(core, ttin_ttou_change_the_worker_count)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF DUMMY("{}")), 0);
    kill(srv.pid, SIGTTIN);
    cr_assert_eq(th_wait_workers(&srv, 3, NULL, 0, 5000), 0, "3 after TTIN");
    kill(srv.pid, SIGTTOU);
    cr_assert_eq(th_wait_workers(&srv, 2, NULL, 0, 5000), 0, "2 after TTOU");
    kill(srv.pid, SIGTTOU);
    cr_assert_eq(th_wait_workers(&srv, 1, NULL, 0, 5000), 0, "1 after TTOU");
    kill(srv.pid, SIGTTOU);
    cr_assert(th_log_contains(&srv, "already at one worker", 3000));
    for (int i = 0; i < 50; i++)
        cr_assert(get_ok("/dummy", "{}"), "request %d after scaling down", i);
}

Test(core, hung_worker_is_killed_and_replaced)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF DUMMY("{}")), 0);
    pid_t w[1];
    cr_assert_eq(th_workers(&srv, w, 1), 1);
    kill(w[0], SIGSTOP); /* its loop stops: no more heartbeats */
    cr_assert_eq(th_wait_workers(&srv, 1, w, 1, 6000), 0, "replaced");
    cr_assert(th_log_contains(&srv, "missed its heartbeats", 0));
    cr_assert(get_ok("/dummy", "{}"));
}

Test(core, connection_limit_pauses_accepting)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "max_connections = 2\n" DUMMY("{}")), 0);
    int a = th_connect(srv.port), b = th_connect(srv.port);
    cr_assert(a >= 0 && b >= 0);
    /* Listeners defer accept until data comes: a partial request each. */
    cr_assert_eq(send(a, "GET /", 5, 0), 5);
    cr_assert_eq(send(b, "GET /", 5, 0), 5);
    msleep(200); /* both accepted, waiting for the rest of their headers */
    int c = th_connect(srv.port); /* queued in the listener, not accepted */
    const char *req = "GET /dummy HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send(c, req, strlen(req), 0), (ssize_t)strlen(req));
    struct pollfd p = {.fd = c, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 400), 0, "not served while at the limit");
    close(a);
    cr_assert_eq(poll(&p, 1, 3000), 1, "served once a slot frees");
    char buf[512];
    ssize_t n = recv(c, buf, sizeof buf - 1, 0);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strstr(buf, "200 OK"), "%s", buf);
    close(b);
    close(c);
}

/* A client that sends its body one byte at a time, each well within
 * body_timeout: the real worker answers 408 at body_deadline and closes.
 * The config is [dummy] alone (an empty section is a service). */
Test(core, trickled_body_is_cut_at_body_deadline)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL,
                          BASE_CONF "header_timeout = 300ms\nbody_timeout = 500ms\nbody_deadline = 1s\n[dummy]\n"),
                 0);
    int fd = th_connect(srv.port);
    cr_assert_geq(fd, 0);
    const char *head = "POST /dummy HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    cr_assert_eq(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    char buf[1024];
    ssize_t n = 0;
    int sent = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (; sent < 100; sent++) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
            break;
        if (poll(&p, 1, 100) == 1)
            break;
    }
    if (poll(&p, 1, 3000) == 1)
        n = recv(fd, buf, sizeof buf - 1, 0);
    close(fd);
    cr_assert_gt(n, 0, "an answer before the body was in (%d bytes sent)", sent);
    buf[n] = '\0';
    cr_assert(strstr(buf, "HTTP/1.1 408 ") == buf, "%s", buf);
    cr_assert(strstr(buf, "Connection: close"), "%s", buf);
    cr_assert_lt(sent, 100);
}

/* ---- command line ---- */

Test(cli, check_flag_version_help_and_usage)
{
    const char *bin = getenv("CLUSTERD_BIN");
    cr_assert_not_null(bin);
    char out[4096], path[] = "/tmp/clusterd-cli-XXXXXX";
    int fd = mkstemp(path);
    const char *bad = "[cluster]\nworkers = 2\n\n[dummy]\ntype = dummy\nmax_delay = forever\n";
    cr_assert_eq(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    const char *t_bad[] = {bin, "-t", "-c", path, NULL};
    cr_assert_eq(th_run(t_bad, out, sizeof out), 2);
    char want[256];
    snprintf(want, sizeof want, "%s:6: max_delay", path);
    cr_assert(strstr(out, want), "%s", out);

    const char *src = getenv("CLUSTERD_SRC");
    char good[512];
    snprintf(good, sizeof good, "%s/conf/services.ini", src);
    const char *t_good[] = {bin, "-t", "-c", good, NULL};
    cr_assert_eq(th_run(t_good, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "ok"), "%s", out);

    const char *v[] = {bin, "-V", NULL};
    cr_assert_eq(th_run(v, out, sizeof out), 0);
    cr_assert(strstr(out, "clusterd "), "%s", out);
    const char *h[] = {bin, "-h", NULL};
    cr_assert_eq(th_run(h, out, sizeof out), 0);
    cr_assert(strstr(out, "usage:"), "%s", out);
    const char *unknown[] = {bin, "--frobnicate", NULL};
    cr_assert_eq(th_run(unknown, out, sizeof out), 2);
    cr_assert(strstr(out, "usage:"), "%s", out);
    const char *badw[] = {bin, "-w", "zero", "-c", good, NULL};
    cr_assert_eq(th_run(badw, out, sizeof out), 2);
    unlink(path);
}

/* `clusterd -t` warns (and still passes) when the events backend endpoints
 * would be open beyond the host: no publish_token_file while listen is not
 * loopback, wherever [cluster] stands in the file. */
Test(cli, check_warns_of_an_open_events_backend_only_beyond_loopback)
{
    const char *bin = getenv("CLUSTERD_BIN");
    char dir[] = "/tmp/clusterd-cli-XXXXXX", path[64], tok[64], out[4096], conf[512];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/c.ini", dir);
    snprintf(tok, sizeof tok, "%s/token", dir);
    FILE *f = fopen(tok, "w");
    cr_assert_not_null(f);
    fputs("s3cret\n", f);
    fclose(f);
    const char *argv[] = {bin, "-t", "-c", path, NULL};
    struct {
        const char *listen, *extra;
        int warns;
    } cases[] = {{"0.0.0.0", "", 1}, {"127.0.0.1", "", 0}, {"[::1]", "", 0}, {"0.0.0.0", "publish_token_file = token\n", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(conf, sizeof conf, "[events]\ntype = events\n%s\n[cluster]\nlisten = %s:%d\nworkers = 1\n", cases[i].extra,
                 cases[i].listen, th_free_port());
        f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(conf, f);
        fclose(f);
        cr_assert_eq(th_run(argv, out, sizeof out), 0, "%s", out);
        cr_expect_eq(strstr(out, "warning") != NULL, cases[i].warns, "%s\n->\n%s", conf, out);
        if (cases[i].warns)
            cr_expect(strstr(out, "[events]: publish_token_file is not set"), "%s", out);
    }
    unlink(tok);
    unlink(path);
    rmdir(dir);
}
