/*
 * test_socketio.c - the events service as a drop-in Socket.IO server
 * (issue 12), proven with the clients people use: the real
 * socket.io-client 4.x (the scripts in tests/socketio, run with node by
 * th_node) and a real browser (headless Chromium driven by puppeteer-core
 * through tests/socketio/browser.js, on the demo chat page
 * conf/www/chat.html), against the real clusterd on -w 4 on a loopback
 * port.
 *
 * Each test writes the config the behaviour needs (transports, pings,
 * namespaces, auth = jwt with keys made by tests/socketio/tokens.js, a
 * publish token), starts clusterd, runs one script and asserts that it
 * passed; the script says what failed.  Every wait is bounded: node runs
 * in its own process group, SIGKILLed at its deadline.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define BASE_CONF                                                                                            \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 3s\n"                                                                               \
    "[dummy]\ntype = dummy\nroute = /dummy\n"                                                                \
    "[metrics]\ntype = metrics\nroute = /metrics\n"

#define EVENTS "[events]\ntype = events\nroute = /socket.io\n"

static th_server srv;
static char keys[64]; /* a temp dir of JWT keys and the publish token, when a test made one */

/* Stops the server, removes its dir and the keys; 0, or -1 when the log
 * holds a sanitizer report.  Run by the suite's fini, and before a skip
 * (criterion runs no fini after cr_skip_test). */
static int finish(void)
{
    int rc = th_finish(&srv);
    if (keys[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", keys);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", keys);
        keys[0] = '\0';
    }
    return rc;
}

static void fini(void)
{
    cr_assert_eq(finish(), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(socketio, .fini = fini, .timeout = 180);

/* Runs `node tests/socketio/SCRIPT PORT [a3 [a4 [a5]]]`; 0 = its checks passed. */
static int run_node(const char *script, int timeout_ms, const char *a3, const char *a4, const char *a5)
{
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *args[] = {port, a3, a3 ? a4 : NULL, a3 && a4 ? a5 : NULL, NULL};
    int rc = th_node(srv.dir, script, timeout_ms, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    return rc;
}

/* A temp dir with the JWT keys (tokens.js) and a publish token file. */
static const char *make_keys(void)
{
    snprintf(keys, sizeof keys, "/tmp/clusterd-keys-XXXXXX");
    cr_assert_not_null(mkdtemp(keys));
    const char *args[] = {keys, NULL};
    cr_assert_eq(th_node(keys, "tokens.js", 30000, args), 0, "tokens.js could not write the keys");
    char path[128];
    snprintf(path, sizeof path, "%s/publish.token", keys);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("s3cret-publish-token\n", f);
    fclose(f);
    return keys;
}

/* ---- transports ---- */

Test(socketio, websocket_only_four_workers)
{
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL, BASE_CONF EVENTS "transports = websocket\n"), 0);
    cr_assert_eq(run_node("websocket.js", 40000, NULL, NULL, NULL), 0);
}

Test(socketio, default_options_poll_then_upgrade_across_workers)
{
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL, BASE_CONF EVENTS), 0);
    cr_assert_eq(run_node("default.js", 40000, NULL, NULL, NULL), 0);
}

/* 40 clients that never leave polling: their requests land on every
 * worker (reuseport) and reach the session's owner; pings every 500 ms go
 * through the queue and the client's POSTed pongs keep them alive (the
 * timeout leaves room for a loaded ASan run). */
Test(socketio, polling_only_forty_clients_pings_rooms, .timeout = 240)
{
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL,
                          BASE_CONF EVENTS "ping_interval = 500ms\nping_timeout = 5s\n"),
                 0);
    cr_assert_eq(run_node("polling.js", 120000, "40", NULL, NULL), 0);
}

/* ---- protocol ---- */

Test(socketio, binary_over_websocket)
{
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL, BASE_CONF EVENTS), 0);
    cr_assert_eq(run_node("binary.js", 40000, "websocket", NULL, NULL), 0);
}

Test(socketio, binary_over_polling)
{
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL, BASE_CONF EVENTS), 0);
    cr_assert_eq(run_node("binary.js", 40000, "polling", NULL, NULL), 0);
}

Test(socketio, namespaces_keep_their_rooms)
{
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL, BASE_CONF EVENTS "namespaces = /, /chat\n"), 0);
    cr_assert_eq(run_node("namespaces.js", 40000, NULL, NULL, NULL), 0);
}

/* ---- auth = jwt ---- */

static void jwt_case(const char *alg, const char *pubkey)
{
    const char *dir = make_keys();
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL,
                          BASE_CONF EVENTS "auth = jwt\njwt_alg = %s\njwt_key_file = %s/%s\n", alg, dir, pubkey),
                 0);
    cr_assert_eq(run_node("jwt.js", 40000, alg, dir, NULL), 0);
}

Test(socketio, jwt_hs256) { jwt_case("HS256", "hs256.key"); }
Test(socketio, jwt_rs256) { jwt_case("RS256", "rs256.pub.pem"); }
Test(socketio, jwt_es256) { jwt_case("ES256", "es256.pub.pem"); }

/* ---- the backend endpoints ---- */

Test(socketio, backend_token_targets_join_leave_disconnect)
{
    const char *dir = make_keys();
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL,
                          BASE_CONF EVENTS "auth = jwt\njwt_key_file = %s/hs256.key\n"
                                           "publish_token_file = %s/publish.token\n",
                          dir, dir),
                 0);
    cr_assert_eq(run_node("backend.js", 60000, dir, "s3cret-publish-token", NULL), 0);
}

/* ---- a real browser ---- */

Test(socketio, browser_chat_between_two_pages)
{
    const char *src = getenv("CLUSTERD_SRC") ? getenv("CLUSTERD_SRC") : ".";
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL,
                          BASE_CONF EVENTS "[static]\ntype = static\nroute = /\nroot = %s/conf/www\n", src),
                 0);
    int rc = run_node("browser.js", 90000, NULL, NULL, NULL);
    if (rc == 77) { /* criterion lists skips only with --verbose: say it on stderr too */
        cr_assert_eq(finish(), 0, "sanitizer report in the clusterd log (printed above)");
        fprintf(stderr, "SKIP socketio::browser_chat_between_two_pages: no chromium (apt-get install chromium)\n");
        cr_skip_test("no headless browser: see node browser.js's SKIP line above (apt-get install chromium)");
    }
    cr_assert_eq(rc, 0);
}
