/*
 * Integration tests of the binary upgrade in place: the master's PID stays,
 * a new generation of workers takes over on the same listeners, no request
 * fails meanwhile; and a new generation that cannot start rolls back to the
 * old one.  The binary runs from a copy in a temp dir, which the tests
 * replace like a package upgrade would (write a new file, rename over).
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
    "graceful_timeout = 3s\nupgrade_timeout = 5s\n"

static th_server srv;
static char bindir[] = "/tmp/clusterd-bin-XXXXXX";
static char bin[256];

static void fini(void)
{
    int rc = th_finish(&srv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bindir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", bindir);
    cr_assert_eq(rc, 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(upgrade, .fini = fini, .timeout = 90);

/* Copies the built binary to path (via a temp file and rename, as dpkg does). */
static void install_binary(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.new' && mv -f '%s.new' '%s'", getenv("CLUSTERD_BIN"), bin, bin, bin);
    cr_assert_eq(system(cmd), 0);
}

static void setup_binary(void)
{
    cr_assert_not_null(mkdtemp(bindir));
    snprintf(bin, sizeof bin, "%s/clusterd", bindir);
    install_binary();
}

static int ctl_upgrade(char *out, size_t cap)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' -t 30 upgrade 2>&1", getenv("CLUSTERCTL_BIN"), srv.conf_path);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(upgrade, in_place_under_load_without_failed_requests)
{
    setup_binary();
    const char *real = getenv("CLUSTERD_BIN");
    setenv("CLUSTERD_BIN", bin, 1);
    int rc = th_start(&srv, 2, "/dummy", NULL, CONF "[dummy]\ntype = dummy\nbody = {\"u\":1}\n");
    setenv("CLUSTERD_BIN", real, 1);
    cr_assert_eq(rc, 0);
    pid_t master = srv.pid;
    pid_t old[2];
    cr_assert_eq(th_workers(&srv, old, 2), 2);
    int rfd1, rfd2;
    pid_t c1 = th_client_loop(srv.port, 3500, &rfd1, "{\"u\":1}");
    pid_t c2 = th_client_loop(srv.port, 3500, &rfd2, "{\"u\":1}");
    usleep(500000);
    install_binary(); /* "the package was upgraded" */
    char out[4096];
    cr_assert_eq(ctl_upgrade(out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "upgrade done"), "%s", out);
    th_loop_result a = th_client_result(c1, rfd1), b = th_client_result(c2, rfd2);
    cr_assert_gt(a.ok + b.ok, 100);
    cr_assert_eq(a.failed + b.failed, 0, "failed requests during the upgrade: %d + %d (ok %d + %d)", a.failed,
                 b.failed, a.ok, b.ok);
    cr_assert_eq(srv.pid, master);
    cr_assert_eq(kill(master, 0), 0, "same master pid");
    cr_assert(th_log_contains(&srv, "upgrade done", 0));
    cr_assert_eq(th_wait_workers(&srv, 2, old, 2, 8000), 0, "a new generation replaced both workers");
    /* The upgraded master is fully itself: it reloads and stops as usual. */
    cr_assert_eq(th_write_conf(&srv, CONF "[dummy]\ntype = dummy\nbody = {\"u\":2}\n", srv.port), 0);
    kill(master, SIGHUP);
    cr_assert(th_log_contains(&srv, "reload done", 8000));
    th_response r;
    th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
    cr_assert_str_eq(r.body, "{\"u\":2}");
    th_response_free(&r);
    int st = th_stop(&srv, SIGTERM, 8000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
}

Test(upgrade, new_generation_that_cannot_start_rolls_back)
{
    setup_binary();
    char body[300];
    snprintf(body, sizeof body, "%s/body.json", bindir);
    FILE *f = fopen(body, "w");
    fputs("{\"old\":true}", f);
    fclose(f);
    const char *real = getenv("CLUSTERD_BIN");
    setenv("CLUSTERD_BIN", bin, 1);
    int rc = th_start(&srv, 2, "/dummy", NULL, CONF "[dummy]\ntype = dummy\nbody_file = %s\n", body);
    setenv("CLUSTERD_BIN", real, 1);
    cr_assert_eq(rc, 0);
    pid_t master = srv.pid;
    pid_t old[2];
    cr_assert_eq(th_workers(&srv, old, 2), 2);
    unlink(body); /* the new generation will fail to boot */
    int rfd;
    pid_t c = th_client_loop(srv.port, 2500, &rfd, "{\"old\":true}");
    usleep(300000);
    char out[4096];
    cr_assert_eq(ctl_upgrade(out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "rolled back"), "%s", out);
    cr_assert(strstr(out, "body.json"), "the reason names the cause: %s", out);
    th_loop_result res = th_client_result(c, rfd);
    cr_assert_eq(res.failed, 0, "%d requests failed", res.failed);
    cr_assert_eq(res.bodies_changed, 0);
    cr_assert_eq(kill(master, 0), 0, "same master");
    pid_t now[2];
    cr_assert_eq(th_wait_workers(&srv, 2, NULL, 0, 3000), 0);
    cr_assert_eq(th_workers(&srv, now, 2), 2);
    cr_assert((now[0] == old[0] || now[0] == old[1]) && (now[1] == old[0] || now[1] == old[1]),
              "the old workers still serve");
    th_response r;
    th_http(&r, srv.port, "GET", "/dummy", NULL, 2000);
    cr_assert_str_eq(r.body, "{\"old\":true}");
    th_response_free(&r);
}
