/*
 * test_hooks.c - the events service's HTTP hooks (issue 17,
 * services/events/hooks.c): a chat whose server side is an HTTP backend,
 * driven with the real socket.io-client (tests/socketio/hooks.js) against
 * the real clusterd on -w 4 and a small backend in Python's http.server
 * (tests/hooks/backend.py), started here on a free port before clusterd,
 * whose config names its URLs.
 *
 * chat: connects accepted and refused by the backend, acked events, emits
 * to rooms and joins asked by its answers, binary both ways, a disconnect
 * it asks for, over WebSocket and polling.  failures: a hook on a dead
 * port and one slower than hook_timeout give connect_error "hook
 * unavailable" and an error ack, are counted in /metrics, and a failing
 * hook is logged once per worker, not once per call.
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
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 3s\n"                                                                               \
    "[dummy]\ntype = dummy\nroute = /dummy\n"                                                                \
    "[metrics]\ntype = metrics\nroute = /metrics\n"                                                          \
    "[events]\ntype = events\nroute = /socket.io\n"                                                          \
    "forward_headers = Cookie\n"

static th_server srv;
static pid_t backend = -1;
static int backend_port;

static void fini(void)
{
    if (backend > 0) {
        kill(backend, SIGTERM);
        waitpid(backend, NULL, 0);
        backend = -1;
    }
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(hooks, .fini = fini, .timeout = 180);

/* Starts tests/hooks/backend.py on a free port and waits for its "ready". */
static void start_backend(void)
{
    const char *src = getenv("CLUSTERD_SRC") ? getenv("CLUSTERD_SRC") : ".";
    char path[512], port[16];
    snprintf(path, sizeof path, "%s/tests/hooks/backend.py", src);
    backend_port = th_free_port();
    snprintf(port, sizeof port, "%d", backend_port);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    backend = fork();
    cr_assert_geq(backend, 0);
    if (backend == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", path, port, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[16] = "";
    FILE *f = fdopen(fds[0], "r");
    cr_assert(f && fgets(line, sizeof line, f), "backend.py did not start (python3?)");
    cr_assert_str_eq(line, "ready\n");
    fclose(f);
}

static int run_node(const char *mode)
{
    char port[16], bport[16];
    snprintf(port, sizeof port, "%d", srv.port);
    snprintf(bport, sizeof bport, "%d", backend_port);
    const char *args[] = {port, bport, mode, NULL};
    int rc = th_node(srv.dir, "hooks.js", 120000, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    return rc;
}

/* How many lines of the log hold needle. */
static int log_count(const char *needle)
{
    FILE *f = fopen(srv.log_path, "r");
    char line[2048];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

Test(hooks, a_chat_through_the_backend)
{
    start_backend();
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL,
                          CONF "namespaces = /, /chat\n"
                               "connect_hook = /chat=http://127.0.0.1:%d/connect\n"
                               "event_hook = /chat=http://127.0.0.1:%d/event\n"
                               "disconnect_hook = /chat=http://127.0.0.1:%d/disconnect\n",
                          backend_port, backend_port, backend_port),
                 0);
    cr_assert_eq(run_node("chat"), 0);
    cr_expect_eq(log_count("hook"), 0, "a hook was logged failing while all went well");
}

Test(hooks, backend_down_or_slow)
{
    start_backend();
    int dead = th_free_port();
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL,
                          CONF "namespaces = /, /chat, /down, /slow\n"
                               "hook_timeout = 1s\n"
                               "connect_hook = /down=http://127.0.0.1:%d/connect, "
                               "/slow=http://127.0.0.1:%d/slow, /chat=http://127.0.0.1:%d/connect\n"
                               "event_hook = /chat=http://127.0.0.1:%d/event\n",
                          dead, backend_port, backend_port, backend_port),
                 0);
    cr_assert_eq(run_node("failures"), 0);
    /* Ten failed connects to /down over four workers: some worker failed
     * twice or more, yet each worker says it once. */
    int down = log_count("of namespace /down failing");
    cr_expect(down >= 1 && down <= 4, "/down's failure logged %d times", down);
    cr_expect_eq(log_count("of namespace /slow failing: timed out (hook_timeout)"), 1);
    /* The event hook: failing (slow, then not JSON) logged once, answering
     * again once. */
    cr_expect_eq(log_count("event hook"), 2);
    cr_expect_eq(log_count("of namespace /chat failing: timed out (hook_timeout)"), 1);
    cr_expect_eq(log_count("of namespace /chat answers again"), 1);
}

/* clusterd -t: a hook of a namespace that does not exist, and a URL
 * that is not one, are config errors naming the key. */
Test(hooks, config_check_names_the_problem)
{
    const char *bin = getenv("CLUSTERD_BIN");
    cr_assert_not_null(bin);
    static const struct {
        const char *conf, *want;
    } cases[] = {
        {"connect_hook = /chat=http://127.0.0.1:1/c\n", "connect_hook: namespace '/chat' is not in namespaces"},
        {"event_hook = /=127.0.0.1:1/e\n", "event_hook"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[4096], path[] = "/tmp/clusterd-hooks-XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        dprintf(fd, "[cluster]\nlisten = 127.0.0.1:1\n[events]\ntype = events\n%s", cases[i].conf);
        close(fd);
        const char *argv[] = {bin, "-t", "-c", path, NULL};
        cr_expect_eq(th_run(argv, out, sizeof out), 2, "%s", out);
        cr_expect(strstr(out, cases[i].want), "%s", out);
        unlink(path);
    }
}

/* A namespace has a handler module's handlers or hooks, not both: the
 * workers refuse to start, saying which namespace. */
Test(hooks, hooks_and_a_handler_module_on_one_namespace)
{
    const char *build = getenv("CLUSTERD_BUILD");
    cr_assert_not_null(build);
    cr_expect_neq(th_start(&srv, 1, "/dummy", NULL,
                           CONF "namespaces = /, /custom\nhandlers = %s/sio-reference.so\n"
                                "event_hook = /custom=http://127.0.0.1:1/e\n",
                           build),
                  0);
    cr_expect(th_log_contains(&srv, "hooks of namespace /custom: the handler module has handlers for it already", 5000));
}
