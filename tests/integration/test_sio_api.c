/*
 * test_sio_api.c - the Socket.IO handler API (clusterd/socketio.h, issue
 * 17) end to end: the real clusterd on -w 4 loads the handler module
 * tests/integration/sio_test_module.c (sio-test.so, built by CMake next to
 * clusterd, found by `handlers = sio-test` as a module name), and
 * tests/socketio/sio_api.js drives it with the real socket.io-client, once
 * over WebSockets and once over long-polling (the session's requests
 * steered to its worker), and once behind auth = jwt.  Then the config check: a handler module that
 * does not exist, or that is not one, is a clusterd -t error naming it.
 * Every wait is bounded (node runs in its own process group, killed at
 * its deadline).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

#define CONF                                                                                                 \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 3s\n"                                                                               \
    "[dummy]\ntype = dummy\nroute = /dummy\n"                                                                \
    "[events]\ntype = events\nroute = /socket.io\n"                                                          \
    "namespaces = /, /plain\n"                                                                               \
    "forward_headers = X-Test, Cookie\n"                                                                    \
    "ping_interval = 1s\nping_timeout = 2s\n"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(sio_api, .fini = fini, .timeout = 240);

static void run(const char *transport)
{
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL, CONF "handlers = sio-test\n"), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *args[] = {port, transport, NULL};
    int rc = th_node(srv.dir, "sio_api.js", 90000, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    cr_assert_eq(rc, 0, "sio_api.js %s failed (its log is above)", transport);
}

Test(sio_api, handlers_over_websocket) { run("websocket"); }
Test(sio_api, handlers_over_polling) { run("polling"); }

/* auth = jwt: handlers see CONNECTs whose token passed, with its sub. */
Test(sio_api, handlers_behind_jwt)
{
    char keys[64];
    snprintf(keys, sizeof keys, "/tmp/clusterd-keys-XXXXXX");
    cr_assert_not_null(mkdtemp(keys));
    const char *kargs[] = {keys, NULL};
    cr_assert_eq(th_node(keys, "tokens.js", 30000, kargs), 0, "tokens.js could not write the keys");
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL, CONF "handlers = sio-test\nauth = jwt\njwt_key_file = %s/hs256.key\n",
                          keys),
                 0);
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *args[] = {port, keys, NULL};
    int rc = th_node(srv.dir, "sio_api_jwt.js", 60000, args);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", keys);
    cr_expect_eq(system(cmd), 0);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    cr_assert_eq(rc, 0, "sio_api_jwt.js failed (its log is above)");
}

/* clusterd -t with `handlers = value`: its exit code, its output in out. */
static int check_conf(const char *value, char *out, size_t cap)
{
    cr_assert_eq(th_write_conf(&srv, CONF "handlers = %s\n", th_free_port(), value), 0);
    const char *argv[] = {getenv("CLUSTERD_BIN"), "-t", "-c", srv.conf_path, NULL};
    return th_run(argv, out, cap);
}

Test(sio_api, config_check_refuses_a_missing_or_foreign_handler_module)
{
    char out[4096];
    snprintf(srv.dir, sizeof srv.dir, "/tmp/clusterd-sioapi-XXXXXX");
    cr_assert_not_null(mkdtemp(srv.dir));
    snprintf(srv.conf_path, sizeof srv.conf_path, "%s/services.ini", srv.dir);
    cr_assert_eq(check_conf("sio-test", out, sizeof out), 0, "the test module passes -t: %s", out);
    cr_assert_neq(check_conf("no-such-handlers", out, sizeof out), 0);
    cr_assert(strstr(out, "no-such-handlers.so was not found") && strstr(out, "next to the config"), "%s", out);
    /* A bare name not in the module directories is looked for next to the config. */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cp '%s/sio-test.so' '%s/beside.so'", getenv("CLUSTERD_BUILD"), srv.dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(check_conf("beside", out, sizeof out), 0, "a module next to the config: %s", out);
    /* A file that is no handler module: clusterd's own events module. */
    cr_assert_neq(check_conf("clusterd-events", out, sizeof out), 0);
    cr_assert(strstr(out, "has no symbol cd_sio_module_info"), "%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", srv.dir);
    cr_assert_eq(system(cmd), 0);
    srv.dir[0] = '\0';
}
