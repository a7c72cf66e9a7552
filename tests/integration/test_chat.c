/*
 * test_chat.c - examples/chat, the chat handler module, in the real
 * clusterd on -w 4 with the example's own config (examples/chat/chat.ini:
 * its port replaced by a free one, its [static] root by the source tree's
 * conf/www): the page is served with the vendored client bundle, and
 * tests/socketio/chat-handlers.js drives the chat with the real
 * socket.io-client over long-polling and the upgrade (nicks unique across
 * workers, notices to the others only, acked messages with id and time);
 * tests/socketio/chat-handlers-browser.js uses the page itself in headless
 * Chromium (skipped, saying so, without a browser).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(chat, .fini = fini, .timeout = 180);

/* examples/chat/chat.ini as a th_start format: its port "%d", its root
 * absolute (malloc'd). */
static char *chat_conf(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/examples/chat/chat.ini", th_src_dir());
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        cr_assert_null(strchr(line, '%'), "chat.ini must hold no '%%' (it is used as a format)");
        if (strncmp(line, "listen = ", 9) == 0)
            snprintf(line, sizeof line, "listen = 127.0.0.1:%%d\n");
        else if (strncmp(line, "root = ", 7) == 0)
            snprintf(line, sizeof line, "root = %.900s/conf/www\n", th_src_dir());
        size_t n = strlen(line);
        cr_assert_lt(len + n, cap);
        memcpy(out + len, line, n + 1);
        len += n;
    }
    fclose(f);
    return out;
}

Test(chat, the_page_is_served_and_two_users_chat_across_workers)
{
    char *conf = chat_conf();
    cr_assert_eq(th_start(&srv, 4, "/healthz", NULL, conf), 0);
    free(conf);

    th_response r;
    cr_assert_eq(th_http(&r, srv.port, "GET", "/", NULL, 3000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "vendor/socket.io.min.js"), "the page loads the vendored client");
    cr_assert_not_null(strstr(r.body, "emitWithAck(...args)"), "not the handlers chat page");
    th_response_free(&r);
    cr_assert_eq(th_http(&r, srv.port, "GET", "/vendor/socket.io.min.js", NULL, 3000), 0);
    cr_assert_eq(r.status, 200);
    th_response_free(&r);

    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *args[] = {port, NULL};
    int rc = th_node(srv.dir, "chat-handlers.js", 90000, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    cr_assert_eq(rc, 0, "chat-handlers.js failed (its output above)");
}

Test(chat, the_page_in_a_browser)
{
    char *conf = chat_conf();
    cr_assert_eq(th_start(&srv, 4, "/healthz", NULL, conf), 0);
    free(conf);
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *args[] = {port, NULL};
    int rc = th_node(srv.dir, "chat-handlers-browser.js", 90000, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    if (rc == 77) { /* criterion lists skips only with --verbose: say it on stderr too */
        fprintf(stderr, "test_chat: the browser test is skipped (no chromium: see the SKIP line above)\n");
        cr_skip_test("no headless browser: see node chat-handlers-browser.js's SKIP line above (apt-get install chromium)");
    }
    cr_assert_eq(rc, 0, "chat-handlers-browser.js failed (its output above)");
}
