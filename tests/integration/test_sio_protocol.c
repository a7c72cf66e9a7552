/*
 * test_sio_protocol.c - the events service's Socket.IO protocol (issue 12)
 * seen on the wire: the real clusterd on a loopback port, driven by the
 * raw WebSocket client of harness_ws.c, which sends and checks the exact
 * packets (socket.io-client's view is tests/socketio and test_socketio.c).
 *
 * Namespaces (two, isolated, multiplexed on one session, an unknown one
 * refused, one left while the other stays), binary events (relayed byte
 * for byte to a client on the other worker, acked; their limits), JWT auth
 * at CONNECT (an HS256 token fixture made for the secret written here),
 * server-side DISCONNECT before a transport close, and a service stop that
 * sends no DISCONNECT (so clients reconnect).
 *
 * Nothing here waits for something not to happen: "B did not get X" is
 * checked by what B gets first, a later packet that went through the same
 * bus after X (the bus keeps one order on every worker).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/harness_ws.h"

#define BASE_CONF                                                                                            \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 3s\n"                                                                               \
    "[dummy]\ntype = dummy\nroute = /dummy\n"                                                                \
    "[events]\ntype = events\nroute = /socket.io\n"

static th_server srv;
static char keydir[64]; /* the JWT secret's temp dir, when a test made one */

static void fini(void)
{
    int rc = th_finish(&srv);
    if (keydir[0]) {
        char path[128];
        snprintf(path, sizeof path, "%s/secret", keydir);
        unlink(path);
        rmdir(keydir);
        keydir[0] = '\0';
    }
    cr_assert_eq(rc, 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(sio_protocol, .fini = fini, .timeout = 120);

/* ---- the raw client (harness_ws.c), asserting ---- */

/* A WebSocket session with the Engine.IO open packet read. */
static int eio_open(void)
{
    int fd = thw_open(srv.port, "/socket.io/?EIO=4&transport=websocket");
    cr_assert_geq(fd, 0, "no WebSocket session");
    return fd;
}

/* Sends CONNECT for nsp ("" = "/") with payload (may be NULL) and reads
 * the answer into buf.  Returns 1 connected, 0 refused (CONNECT_ERROR). */
static int sio_connect(int fd, const char *nsp, const char *payload, char *buf, size_t cap)
{
    char pkt[1024], ok[64], err[64];
    snprintf(pkt, sizeof pkt, "40%s%s%s", nsp, *nsp ? "," : "", payload ? payload : "");
    snprintf(ok, sizeof ok, "40%s%s{\"sid\":\"", nsp, *nsp ? "," : "");
    snprintf(err, sizeof err, "44%s%s{", nsp, *nsp ? "," : "");
    cr_assert_eq(thw_text(fd, pkt), 0);
    for (;;) {
        int op;
        long n = thw_next(fd, &op, buf, cap);
        cr_assert(n >= 0 && op == 1, "no answer to %s", pkt);
        if (strncmp(buf, ok, strlen(ok)) == 0)
            return 1;
        if (strncmp(buf, err, strlen(err)) == 0)
            return 0;
    }
}

static int sio_open(const char *nsp)
{
    char buf[512];
    int fd = eio_open();
    cr_assert_eq(sio_connect(fd, nsp, NULL, buf, sizeof buf), 1, "%s", buf);
    return fd;
}

/* Sends "42<nsp,><id>[<args>]" and returns the ack's payload in buf. */
static void sio_call(int fd, const char *nsp, int id, const char *args, char *buf, size_t cap)
{
    cr_assert_gt(thw_sio_call(fd, nsp, id, args, buf, cap), 0, "no ack for %s on %s", args, nsp);
}

/* The worker slot whoami names. */
static int sio_worker(int fd)
{
    char buf[512];
    sio_call(fd, "", 99, "\"whoami\"", buf, sizeof buf);
    const char *w = strstr(buf, "\"worker\":");
    cr_assert(w, "%s", buf);
    return atoi(w + 9);
}

/* ---- namespaces ---- */

Test(sio_protocol, namespaces_are_isolated_and_multiplexed)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF "namespaces = /, /chat\n"), 0);
    char buf[1024];
    /* a: "/" and "/chat" on one session; b: /chat only; c: "/" only. */
    int a = sio_open("");
    cr_assert_eq(sio_connect(a, "/chat", NULL, buf, sizeof buf), 1);
    int b = sio_open("/chat"), c = sio_open("");
    sio_call(a, "", 1, "\"join\",\"room\"", buf, sizeof buf);
    sio_call(a, "/chat", 2, "\"join\",\"room\"", buf, sizeof buf);
    cr_expect_str_eq(buf, "43/chat,2[{\"ok\":true,\"room\":\"room\"}]");
    sio_call(b, "/chat", 1, "\"join\",\"room\"", buf, sizeof buf);
    sio_call(c, "", 1, "\"join\",\"room\"", buf, sizeof buf);
    sio_call(a, "/chat", 3, "\"whoami\"", buf, sizeof buf);
    cr_expect(strstr(buf, "\"rooms\":1,") && strstr(buf, "\"namespace\":\"/chat\"") && strstr(buf, "\"user\":null"),
              "%s", buf);

    /* /chat's "room": b -> a; "/"'s "room": a -> c.  What each gets first
     * shows the other namespace's packet did not reach it. */
    sio_call(b, "/chat", 4, "\"m\",\"in chat\"", buf, sizeof buf);
    cr_expect_str_eq(buf, "43/chat,4[{\"ok\":true,\"rooms\":1}]");
    cr_assert_gt(thw_expect(a, "42/chat,", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "42/chat,[\"m\",\"in chat\"]");
    cr_assert_eq(thw_text(a, "42[\"m\",\"in main\"]"), 0);
    cr_assert_eq(thw_text(a, "42/chat,[\"mark\"]"), 0);
    int op;
    cr_assert_gt(thw_next(c, &op, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "42[\"m\",\"in main\"]", "c got a /chat packet first");
    cr_assert_gt(thw_next(b, &op, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "42/chat,[\"mark\"]", "b got a \"/\" packet first");

    /* Unknown namespace: CONNECT_ERROR, the session stays. */
    cr_expect_eq(sio_connect(a, "/nope", NULL, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "44/nope,{\"message\":\"Invalid namespace\"}");
    /* Leaving /chat keeps "/": a /chat packet is ignored now, "/" answered. */
    cr_assert_eq(thw_text(a, "41/chat,"), 0);
    cr_assert_eq(thw_text(a, "42/chat,7[\"whoami\"]"), 0);
    cr_assert_eq(thw_text(a, "428[\"whoami\"]"), 0);
    cr_assert_gt(thw_next(a, &op, buf, sizeof buf), 0);
    cr_expect(strncmp(buf, "438[{\"sid\":", 11) == 0 && strstr(buf, "\"namespace\":\"/\""), "%s", buf);
    close(a);
    close(b);
    close(c);
}

/* ---- binary events ---- */

/* Two sessions on different workers of -w 2 (whoami), others closed. */
static void two_workers(int *a, int *b)
{
    int fds[40], n = 0, w0 = -1;
    *a = *b = -1;
    while (n < 40 && *b < 0) {
        int fd = fds[n++] = sio_open("");
        int w = sio_worker(fd);
        if (*a < 0)
            *a = fd, w0 = w;
        else if (w != w0)
            *b = fd;
    }
    cr_assert_geq(*b, 0, "40 sessions, all on worker %d", w0);
    for (int i = 0; i < n; i++)
        if (fds[i] != *a && fds[i] != *b)
            close(fds[i]);
}

Test(sio_protocol, binary_events_are_relayed_byte_for_byte_across_workers)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    int a, b, op;
    two_workers(&a, &b);
    char buf[2048], all[256];
    sio_call(a, "", 1, "\"join\",\"bin\"", buf, sizeof buf);
    sio_call(b, "", 1, "\"join\",\"bin\"", buf, sizeof buf);
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;

    /* a -> b: one attachment with every byte value; a's ack after it. */
    cr_assert_eq(thw_text(a, "451-17[\"blob\",{\"_placeholder\":true,\"num\":0},\"tail\"]"), 0);
    cr_assert_eq(thw_send(a, 2, all, sizeof all), 0);
    cr_assert_gt(thw_expect(a, "4317[", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "4317[{\"ok\":true,\"rooms\":1}]");
    cr_assert_gt(thw_expect(b, "45", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "451-[\"blob\",{\"_placeholder\":true,\"num\":0},\"tail\"]");
    cr_assert_eq(thw_next(b, &op, buf, sizeof buf), 256);
    cr_expect(op == 2 && memcmp(buf, all, 256) == 0, "the attachment changed (opcode %d)", op);

    /* b -> a: two attachments, the second empty, placeholders nested and
     * in reverse order, left as they are. */
    static const char two[] = "452-[\"pair\",{\"x\":[{\"_placeholder\":true,\"num\":1}]},"
                              "{\"_placeholder\":true,\"num\":0}]";
    cr_assert_eq(thw_text(b, two), 0);
    cr_assert_eq(thw_send(b, 2, "\x00\xff\x00", 3), 0);
    cr_assert_eq(thw_send(b, 2, "", 0), 0);
    cr_assert_gt(thw_expect(a, "45", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, two);
    cr_assert_eq(thw_next(a, &op, buf, sizeof buf), 3);
    cr_expect(op == 2 && memcmp(buf, "\x00\xff\x00", 3) == 0);
    cr_assert_eq(thw_next(a, &op, buf, sizeof buf), 0);
    cr_expect_eq(op, 2);
    /* Text after binary: both still served. */
    cr_assert_eq(thw_text(a, "42[\"after\"]"), 0);
    cr_assert_gt(thw_expect(b, "42", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "42[\"after\"]");
    close(a);
    close(b);
}

/* One misbehaving client per case, closed with `code`; a bystander is
 * served throughout. */
Test(sio_protocol, binary_packets_that_break_the_rules_close_that_client)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "max_message_size = 4k\nmax_send_queue = 64k\n"), 0);
    static char big[3000];
    static const char ph0[] = "{\"_placeholder\":true,\"num\":0}", ph1[] = "{\"_placeholder\":true,\"num\":1}";
    char two[128], dup[128];
    snprintf(two, sizeof two, "452-[\"x\",%s,%s]", ph0, ph1);
    snprintf(dup, sizeof dup, "452-[\"x\",%s,%s]", ph0, ph0);
    struct {
        const char *what, *text;
        int nbin;
        size_t binlen;
        int code;
    } cases[] = {
        {"a binary message with no packet awaiting it", NULL, 1, 3, 1002},
        {"text while attachments are due", two, 1, 3, 1002},
        {"17 attachments", "4517-[\"x\"]", 0, 0, 1009},
        {"attachments over max_message_size", two, 2, sizeof big, 1009},
        {"a placeholder twice", dup, 0, 0, 1002},
        {"a placeholder missing", "452-[\"x\",{\"_placeholder\":true,\"num\":0}]", 0, 0, 1002},
    };
    char buf[512];
    int bystander = sio_open("");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = sio_open("");
        if (cases[i].text)
            cr_assert_eq(thw_text(fd, cases[i].text), 0);
        for (int k = 0; k < cases[i].nbin; k++)
            cr_assert_eq(thw_send(fd, 2, big, cases[i].binlen), 0);
        if (i == 1)
            cr_assert_eq(thw_text(fd, "42[\"x\"]"), 0);
        cr_expect_eq(thw_close_code(fd), cases[i].code, "%s", cases[i].what);
        close(fd);
        sio_call(bystander, "", (int)i, "\"whoami\"", buf, sizeof buf);
    }
    /* A BINARY_ACK (the service never asks for one) and its attachment are
     * consumed; the client goes on. */
    int fd = sio_open("");
    cr_assert_eq(thw_text(fd, "461-3[{\"_placeholder\":true,\"num\":0}]"), 0);
    cr_assert_eq(thw_send(fd, 2, "abc", 3), 0);
    sio_call(fd, "", 4, "\"whoami\"", buf, sizeof buf);
    cr_expect(strncmp(buf, "434[{\"sid\":", 11) == 0, "%s", buf);
    close(fd);
    close(bystander);
}

/* ---- auth = jwt ---- */

/* HS256 tokens for the secret below (made once with Python's hmac): sub
 * "alice", rooms ["lobby","team:42:*"], exp 2100-01-01; the same expired
 * (exp 2001); and one signed with another secret. */
#define SECRET "clusterd-sio-protocol-secret"
#define TOKEN_GOOD                                                                                           \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvb21zIjpbImxvYmJ5IiwidGVhbTo0MjoqIl0sImV4cCI6" \
    "NDEwMjQ0NDgwMH0.XWc4RhLztEx1xLyhyTa_u0Y0QSfHSHrmluO-_i_PvDQ"
#define TOKEN_EXPIRED                                                                                        \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvb21zIjpbImxvYmJ5Il0sImV4cCI6MTAwMDAwMDAwMH0." \
    "26oW4kWyqq-gxjryHX0HW_-Diqa9-NBJzchSClUDczA"
#define TOKEN_OTHER_KEY                                                                                      \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvb21zIjpbImxvYmJ5Il0sImV4cCI6NDEwMjQ0NDgwMH0." \
    "35odF7dr-EAMd2b0MZTaV7GyxUtgo4DXZVecg5VFeTo"

Test(sio_protocol, jwt_is_checked_at_connect_and_limits_the_rooms)
{
    snprintf(keydir, sizeof keydir, "/tmp/cd-sio-XXXXXX");
    cr_assert_not_null(mkdtemp(keydir));
    char path[128];
    snprintf(path, sizeof path, "%s/secret", keydir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(SECRET "\n", f); /* the trailing newline is not part of it */
    fclose(f);
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "auth = jwt\njwt_key_file = %s\n", path), 0);

    char buf[1024];
    int fd = eio_open();
    struct {
        const char *payload, *why;
    } refused[] = {
        {NULL, "missing token"},
        {"{\"token\":\"" TOKEN_EXPIRED "\"}", "token expired"},
        {"{\"token\":\"" TOKEN_OTHER_KEY "\"}", "invalid token"},
        {"{\"token\":\"not.a.jwt\"}", "invalid token"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_expect_eq(sio_connect(fd, "", refused[i].payload, buf, sizeof buf), 0, "%s", refused[i].why);
        char want[64];
        snprintf(want, sizeof want, "44{\"message\":\"%s\"}", refused[i].why);
        cr_expect_str_eq(buf, want);
    }
    /* The same session then connects with a good token. */
    cr_assert_eq(sio_connect(fd, "", "{\"token\":\"" TOKEN_GOOD "\"}", buf, sizeof buf), 1, "%s", buf);
    sio_call(fd, "", 1, "\"whoami\"", buf, sizeof buf);
    cr_expect(strstr(buf, "\"user\":\"alice\"") && strstr(buf, "\"rooms\":0,"), "%s", buf);
    static const struct {
        const char *room;
        int ok;
    } joins[] = {{"lobby", 1}, {"team:42:general", 1}, {"team:7:general", 0}, {"other", 0}, {"user:alice", 0},
                 {"user:bob", 0}};
    for (size_t i = 0; i < sizeof joins / sizeof joins[0]; i++) {
        char args[128], want[128];
        snprintf(args, sizeof args, "\"join\",\"%s\"", joins[i].room);
        sio_call(fd, "", (int)i + 2, args, buf, sizeof buf);
        if (joins[i].ok)
            snprintf(want, sizeof want, "43%d[{\"ok\":true,\"room\":\"%s\"}]", (int)i + 2, joins[i].room);
        else
            snprintf(want, sizeof want, "43%d[{\"ok\":false,\"error\":\"forbidden room\"}]", (int)i + 2);
        cr_expect_str_eq(buf, want, "join %s", joins[i].room);
    }
    sio_call(fd, "", 20, "\"whoami\"", buf, sizeof buf);
    cr_expect(strstr(buf, "\"rooms\":2,"), "%s", buf);
    close(fd);
}

/* ---- who ends a socket ---- */

/* A room name shaped like a socket sid is never joinable: a backend's
 * "sid" target would reach it on any worker. */
Test(sio_protocol, sid_shaped_rooms_and_own_rooms_are_refused)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    int a = sio_open(""), b = eio_open();
    char buf[512], sid[64] = "", args[128];
    cr_assert_eq(sio_connect(b, "", NULL, buf, sizeof buf), 1);
    cr_assert_eq(sscanf(buf, "40{\"sid\":\"%63[^\"]\"}", sid), 1, "%s", buf);
    snprintf(args, sizeof args, "\"join\",\"%s\"", sid);
    sio_call(a, "", 1, args, buf, sizeof buf);
    cr_expect_str_eq(buf, "431[{\"ok\":false,\"error\":\"forbidden room\"}]", "joined b's sid room");
    sio_call(a, "", 2, "\"join\",\"user:x\"", buf, sizeof buf);
    cr_expect_str_eq(buf, "432[{\"ok\":false,\"error\":\"forbidden room\"}]");
    sio_call(a, "", 3, "\"join\",\"\"", buf, sizeof buf);
    cr_expect(strncmp(buf, "433[{\"ok\":false,", 16) == 0, "%s", buf);
    close(a);
    close(b);
}

/* A service stop closes the transports (1001) without DISCONNECT, so
 * socket.io-client reconnects ("io server disconnect" would stop it). */
Test(sio_protocol, a_stop_sends_no_disconnect)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "namespaces = /, /chat\n"), 0);
    char buf[512];
    int fd = sio_open("");
    cr_assert_eq(sio_connect(fd, "/chat", NULL, buf, sizeof buf), 1);
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    for (;;) {
        int op;
        long n = thw_next(fd, &op, buf, sizeof buf);
        cr_assert_geq(n, 0, "no close frame");
        if (op == 8) {
            cr_expect(n >= 2 && ((unsigned char)buf[0] << 8 | (unsigned char)buf[1]) == 1001);
            break;
        }
        cr_expect(!(op == 1 && strncmp(buf, "41", 2) == 0), "DISCONNECT at a stop: %s", buf);
    }
    close(fd);
}

/* POST {route}/disconnect: the socket gets DISCONNECT ("io server
 * disconnect" for socket.io-client); with close, the transport closes
 * after it, never before.  The client's other namespace stays without. */
Test(sio_protocol, a_server_side_disconnect_arrives_before_the_close)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "namespaces = /, /chat\n"), 0);
    char buf[512], sid[64], chat_sid[64], body[256];
    int fd = eio_open();
    cr_assert_eq(sio_connect(fd, "", NULL, buf, sizeof buf), 1);
    cr_assert_eq(sscanf(buf, "40{\"sid\":\"%63[^\"]\"}", sid), 1, "%s", buf);
    cr_assert_eq(sio_connect(fd, "/chat", NULL, buf, sizeof buf), 1);
    cr_assert_eq(sscanf(buf, "40/chat,{\"sid\":\"%63[^\"]\"}", chat_sid), 1, "%s", buf);

    /* /chat's socket only: "/" stays connected. */
    th_response r;
    snprintf(body, sizeof body, "{\"namespace\":\"/chat\",\"sid\":\"%s\"}", chat_sid);
    th_http(&r, srv.port, "POST", "/socket.io/disconnect", body, 3000);
    cr_expect_eq(r.status, 202, "%s", r.body);
    th_response_free(&r);
    cr_assert_gt(thw_expect(fd, "41", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "41/chat,");
    sio_call(fd, "", 1, "\"whoami\"", buf, sizeof buf);
    cr_expect(strstr(buf, sid), "%s", buf);

    /* "/" with close: DISCONNECT, then the close frame. */
    snprintf(body, sizeof body, "{\"sid\":\"%s\",\"close\":true}", sid);
    th_http(&r, srv.port, "POST", "/socket.io/disconnect", body, 3000);
    cr_expect_eq(r.status, 202, "%s", r.body);
    th_response_free(&r);
    int op;
    long n = thw_next(fd, &op, buf, sizeof buf);
    cr_expect(n == 2 && op == 1 && strcmp(buf, "41") == 0, "not DISCONNECT first: opcode %d, %ld bytes", op, n);
    cr_expect_eq(thw_close_code(fd), 1000);
    close(fd);
}
