/*
 * test_events.c - integration tests of the events service: the real
 * clusterd (-w 2) on a loopback port, driven by
 *   - the real socket.io-client 4.x (npm; the scripts in tests/socketio,
 *     run with node): rooms across workers, acks, publish, reconnect, a SIGKILLed
 *     worker, a 1000-client broadcast;
 *   - a raw WebSocket client written here, for what a well-behaved client
 *     never sends: unmasked, reserved-opcode, oversized and binary frames,
 *     broken Engine.IO/Socket.IO packets, a client that never answers
 *     pings, a client that never reads.
 * Each case checks the close code the server sends and that the other
 * clients are undisturbed.  Every wait is bounded; node runs in its own
 * process group and is SIGKILLed at its deadline.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define BASE_CONF                                                                                            \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 3s\n"                                                                               \
    "[dummy]\ntype = dummy\nroute = /dummy\n"                                                                \
    "[events]\ntype = events\nroute = /socket.io\n"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(events, .fini = fini, .timeout = 120);

/* ---- node ---- */

/* Runs `node tests/socketio/SCRIPT PORT [a3 [a4]]` with a deadline
 * (th_node); returns its exit status (0 = the script's checks passed). */
static int run_node(const char *script, int timeout_ms, const char *a3, const char *a4)
{
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *args[] = {port, a3, a3 ? a4 : NULL, NULL};
    int rc = th_node(srv.dir, script, timeout_ms, args);
    cr_assert_neq(rc, 127, "node or tests/socketio/node_modules is missing: run scripts/npm-setup.sh");
    return rc;
}

/* The pid of the worker of `slot` (from its command line). */
static pid_t worker_of_slot(int slot)
{
    pid_t w[8];
    int n = th_workers(&srv, w, 8);
    for (int i = 0; i < n; i++) {
        char p[64], cmd[256];
        snprintf(p, sizeof p, "/proc/%d/cmdline", (int)w[i]);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        size_t l = fread(cmd, 1, sizeof cmd - 1, f);
        fclose(f);
        cmd[l] = '\0';
        /* argv: clusterd\0--worker\0SLOT\0GEN */
        const char *a = cmd + strlen(cmd) + 1;
        if (strcmp(a, "--worker") == 0 && atoi(a + strlen(a) + 1) == slot)
            return w[i];
    }
    return -1;
}

/* ---- a raw WebSocket client ---- */

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Reads exactly len bytes within timeout_ms.  Returns 0 or -1. */
static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    long long deadline = th_now_ms() + timeout_ms;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = deadline - th_now_ms();
        if (poll(&p, 1, left > 0 ? (int)left : 0) != 1)
            return -1;
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Sends the upgrade request for `target` with extra header lines; returns
 * the fd after a 101, else closes it and returns -(HTTP status) (or -1). */
static int ws_open(const char *target, const char *extra)
{
    int fd = tcp_connect(srv.port);
    if (fd < 0)
        return -1;
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     target, extra ? extra : "");
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    /* The response head, byte by byte so no frame is read past it. */
    char head[2048];
    size_t l = 0;
    while (l < sizeof head - 1) {
        if (read_full(fd, head + l, 1, 3000) < 0)
            break;
        l++;
        if (l >= 4 && memcmp(head + l - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[l] = '\0';
    int status = 0;
    if (sscanf(head, "HTTP/1.1 %d", &status) != 1)
        status = 1;
    if (status != 101) {
        close(fd);
        return -status;
    }
    cr_expect(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "%s", head);
    return fd;
}

/* Sends one frame; masked unless `unmasked`. */
static int ws_frame(int fd, int fin, int opcode, int unmasked, const void *payload, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
    hdr[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x7f)); /* opcode may carry RSV bits */
    unsigned char m = unmasked ? 0 : 0x80;
    if (len < 126) {
        hdr[h++] = m | (unsigned char)len;
    } else if (len < 65536) {
        hdr[h++] = m | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((unsigned long long)len >> (8 * i));
    }
    if (!unmasked) {
        memcpy(hdr + h, key, 4);
        h += 4;
    }
    unsigned char *buf = malloc(h + len);
    memcpy(buf, hdr, h);
    for (size_t i = 0; i < len; i++)
        buf[h + i] = ((const unsigned char *)payload)[i] ^ (unmasked ? 0 : key[i & 3]);
    ssize_t n = send(fd, buf, h + len, MSG_NOSIGNAL);
    free(buf);
    return n == (ssize_t)(h + len) ? 0 : -1;
}

static int ws_text(int fd, const char *s) { return ws_frame(fd, 1, 1, 0, s, strlen(s)); }

/* Reads one frame (payload NUL-terminated in buf, truncated to cap-1).
 * Returns the payload length, -1 on EOF/timeout. */
static long ws_read(int fd, int *opcode, char *buf, size_t cap, int timeout_ms)
{
    unsigned char h[2];
    if (read_full(fd, h, 1, timeout_ms) < 0)
        return -1;
    /* A frame has begun: the rest gets a fair time even when the caller
     * only polled (timeout 0), so the stream never loses its framing. */
    if (timeout_ms < 3000)
        timeout_ms = 3000;
    if (read_full(fd, h + 1, 1, timeout_ms) < 0)
        return -1;
    *opcode = h[0] & 0x0f;
    unsigned long long len = h[1] & 0x7f;
    if (len >= 126) {
        unsigned char e[8];
        int k = len == 126 ? 2 : 8;
        if (read_full(fd, e, (size_t)k, timeout_ms) < 0)
            return -1;
        len = 0;
        for (int i = 0; i < k; i++)
            len = len << 8 | e[i];
    }
    unsigned long long keep = len < cap - 1 ? len : cap - 1;
    if (read_full(fd, buf, keep, timeout_ms) < 0)
        return -1;
    buf[keep] = '\0';
    for (unsigned long long skip = len - keep; skip > 0;) {
        char junk[4096];
        size_t k = skip < sizeof junk ? skip : sizeof junk;
        if (read_full(fd, junk, k, timeout_ms) < 0)
            return -1;
        skip -= k;
    }
    return (long)len;
}

/* Reads frames until a text frame starting with prefix (Engine.IO pings in
 * between are answered).  Returns its length (text in buf) or -1. */
static long ws_expect(int fd, const char *prefix, char *buf, size_t cap, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        int op;
        int left = (int)(deadline - th_now_ms());
        long n = left > 0 ? ws_read(fd, &op, buf, cap, left) : -1;
        if (n < 0)
            return -1;
        if (op == 1 && strcmp(buf, "2") == 0) {
            ws_text(fd, "3");
            continue;
        }
        if (op == 1 && strncmp(buf, prefix, strlen(prefix)) == 0)
            return n;
        if (op == 8)
            return -1;
    }
}

/* Reads until the server's close frame; returns its code (reason in
 * reason), 0 for a close without code, -1 for EOF or timeout. */
static int ws_expect_close(int fd, char *reason, size_t cap, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    char buf[8192];
    for (;;) {
        int op;
        int left = (int)(deadline - th_now_ms());
        long n = left > 0 ? ws_read(fd, &op, buf, sizeof buf, left) : -1;
        if (n < 0)
            return -1;
        if (op != 8)
            continue;
        if (reason && cap) {
            size_t rl = n > 2 ? strnlen(buf + 2, cap - 1) : 0;
            memcpy(reason, buf + 2, rl);
            reason[rl] = '\0';
        }
        return n >= 2 ? ((unsigned char)buf[0] << 8 | (unsigned char)buf[1]) : 0;
    }
}

/* A raw client connected to Socket.IO's main namespace. */
static int sio_open(void)
{
    char buf[512];
    int fd = ws_open("/socket.io/?EIO=4&transport=websocket", NULL);
    cr_assert_geq(fd, 0, "upgrade refused: %d", fd);
    cr_assert_gt(ws_expect(fd, "0{", buf, sizeof buf, 3000), 0, "no Engine.IO open packet");
    cr_assert(strstr(buf, "\"upgrades\":[]") && strstr(buf, "\"pingInterval\":"), "%s", buf);
    ws_text(fd, "40");
    cr_assert_gt(ws_expect(fd, "40{\"sid\":\"", buf, sizeof buf, 3000), 0, "no CONNECT answer");
    return fd;
}

/* The client answers whoami: it is alive and served. */
static int sio_alive(int fd, int ack_id)
{
    char req[64], want[32], buf[512];
    snprintf(req, sizeof req, "42%d[\"whoami\"]", ack_id);
    snprintf(want, sizeof want, "43%d[{\"sid\":", ack_id);
    return ws_text(fd, req) == 0 && ws_expect(fd, want, buf, sizeof buf, 3000) > 0;
}

/* ---- tests with socket.io-client ---- */

Test(events, rooms_acks_publish_and_reconnect_across_workers)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    cr_assert_eq(run_node("rooms.js", 40000, NULL, NULL), 0);
}

Test(events, killed_worker_clients_reconnect_and_keep_receiving)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    pid_t victim = worker_of_slot(0);
    cr_assert_gt(victim, 0);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)victim);
    cr_assert_eq(run_node("kill.js", 45000, pid, "0"), 0);
    cr_assert(th_log_contains(&srv, "killed by signal 9", 2000), "the worker was not SIGKILLed");
    cr_assert_eq(th_wait_workers(&srv, 2, &victim, 1, 5000), 0, "slot 0 was not replaced");
}

Test(events, thousand_clients_receive_one_broadcast_each, .timeout = 200)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    cr_assert_eq(run_node("fanout.js", 120000, "1000", NULL), 0);
}

/* ---- tests with the raw client ---- */

Test(events, refused_upgrades_answer_http_errors)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF "origins = https://good.example\n"), 0);
    th_response r;
    th_http(&r, srv.port, "GET", "/socket.io/?EIO=4&transport=xhr", NULL, 3000);
    cr_expect_eq(r.status, 400);
    cr_expect(r.body && strstr(r.body, "\"Transport unknown\""), "%s", r.body);
    th_response_free(&r);
    th_http(&r, srv.port, "POST", "/socket.io/?EIO=4&transport=polling", "x", 3000);
    cr_expect_eq(r.status, 400, "a session opens with GET");
    th_response_free(&r);
    th_http(&r, srv.port, "GET", "/socket.io/?EIO=4&transport=websocket", NULL, 3000);
    cr_expect_eq(r.status, 400, "no Upgrade header");
    th_response_free(&r);
    th_http(&r, srv.port, "GET", "/socket.io/publish", NULL, 3000);
    cr_expect_eq(r.status, 405);
    th_response_free(&r);

    cr_expect_eq(ws_open("/socket.io/?EIO=3&transport=websocket", NULL), -400, "Engine.IO v3");
    cr_expect_eq(ws_open("/socket.io/?EIO=4&transport=websocket", "Origin: https://evil.example\r\n"), -403);
    cr_expect_eq(ws_open("/socket.io/nope?EIO=4&transport=websocket", NULL), -404);
    int fd = ws_open("/socket.io/?EIO=4&transport=websocket", "Origin: https://good.example\r\n");
    cr_expect_geq(fd, 0, "allowed origin refused");
    if (fd >= 0)
        close(fd);
    /* No Origin: not a browser, nothing to check. */
    fd = ws_open("/socket.io/?EIO=4&transport=websocket", NULL);
    cr_expect_geq(fd, 0);
    if (fd >= 0)
        close(fd);
}

/* One misbehaving client per case; each gets `code`, the bystander is
 * served throughout. */
Test(events, malformed_input_closes_that_connection_with_the_right_code)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF "max_message_size = 4k\nmax_send_queue = 64k\n"),
                 0);
    int bystander = sio_open();
    static const char invalid_utf8[] = "42[\"a\xff\xfe\"]";
    char big[6000];
    memset(big, 'x', sizeof big);
    memcpy(big, "42[\"", 4);
    struct {
        const char *what;
        int fin, opcode, unmasked;
        const char *payload;
        size_t len;
        int code;
    } cases[] = {
        {"unmasked frame", 1, 1, 1, "42[\"a\"]", 7, 1002},
        {"reserved opcode 3", 1, 3, 0, "x", 1, 1002},
        {"RSV1 without an extension", 1, 0x41, 0, "42[\"a\"]", 7, 1002},
        {"continuation without a start", 1, 0, 0, "x", 1, 1002},
        {"fragmented ping", 0, 9, 0, "x", 1, 1002},
        {"control frame over 125 bytes", 1, 9, 0, big, 200, 1002},
        {"binary frame with no binary packet before it", 1, 2, 0, "\x01\x02", 2, 1002},
        {"oversized message", 1, 1, 0, big, sizeof big, 1009},
        {"unknown Engine.IO packet", 1, 1, 0, "9", 1, 1002},
        {"empty Engine.IO packet", 1, 1, 0, "", 0, 1002},
        {"unknown Socket.IO packet", 1, 1, 0, "49[]", 4, 1002},
        {"Socket.IO event that is not an array", 1, 1, 0, "42{\"a\":1}", 9, 1002},
        {"Socket.IO event with broken JSON", 1, 1, 0, "42[\"a\",]", 8, 1002},
        {"Socket.IO binary event, placeholder beyond its count", 1, 1, 0,
         "450-[\"up\",{\"_placeholder\":true,\"num\":0}]", 40, 1002},
        {"Socket.IO binary event with 17 attachments", 1, 1, 0, "4517-[\"up\"]", 11, 1009},
        {"invalid UTF-8 in a text frame", 1, 1, 0, invalid_utf8, sizeof invalid_utf8 - 1, 1007},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = sio_open();
        cr_assert_eq(ws_frame(fd, cases[i].fin, cases[i].opcode, cases[i].unmasked, cases[i].payload,
                              cases[i].len),
                     0);
        char reason[128] = "";
        int code = ws_expect_close(fd, reason, sizeof reason, 3000);
        cr_expect_eq(code, cases[i].code, "%s: close code %d (%s), want %d", cases[i].what, code, reason,
                     cases[i].code);
        close(fd);
        cr_assert(sio_alive(bystander, (int)i), "the bystander stopped being served after: %s", cases[i].what);
    }

    /* A message of two fragments (with a ping between them) is one message,
     * and a total over max_message_size is refused like a single frame. */
    int fd = sio_open();
    char buf[512];
    cr_assert_eq(ws_frame(fd, 0, 1, 0, "427[\"who", 8), 0);
    cr_assert_eq(ws_frame(fd, 1, 9, 0, "hi", 2), 0);
    cr_assert_eq(ws_frame(fd, 1, 0, 0, "ami\"]", 5), 0);
    int op = 0;
    long n = ws_read(fd, &op, buf, sizeof buf, 3000);
    cr_expect(n == 2 && op == 10 && memcmp(buf, "hi", 2) == 0, "no pong for the ping (op %d)", op);
    cr_expect_gt(ws_expect(fd, "437[{\"sid\":", buf, sizeof buf, 3000), 0, "fragmented message not served");
    cr_assert_eq(ws_frame(fd, 0, 1, 0, big, 3000), 0);
    cr_assert_eq(ws_frame(fd, 1, 0, 0, big, 3000), 0);
    cr_expect_eq(ws_expect_close(fd, NULL, 0, 3000), 1009);
    close(fd);

    /* Reserved names are refused (not relayed); unknown namespaces get
     * CONNECT_ERROR and the connection stays. */
    fd = sio_open();
    ws_text(fd, "42[\"join\",\"r\"]");
    ws_text(fd, "421[\"disconnect\",1]");
    cr_expect_gt(ws_expect(fd, "431[{\"ok\":false", buf, sizeof buf, 3000), 0);
    ws_text(fd, "40/admin,");
    cr_expect_gt(ws_expect(fd, "44/admin,{\"message\":\"Invalid namespace\"}", buf, sizeof buf, 3000), 0);
    cr_expect(sio_alive(fd, 99));
    /* A clean Engine.IO close. */
    ws_text(fd, "1");
    cr_expect_eq(ws_expect_close(fd, NULL, 0, 3000), 1000);
    close(fd);
    cr_assert(sio_alive(bystander, 100));
    close(bystander);
}

Test(events, heartbeat_closes_clients_that_do_not_pong)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF "ping_interval = 200ms\nping_timeout = 300ms\n"), 0);
    int good = sio_open(), silent = sio_open();
    char buf[512];
    /* The good client answers every ping; the silent one reads them but
     * never answers.  Both are watched for 2 s. */
    long long t0 = th_now_ms(), took = -1;
    int pings = 0, good_pings = 0, code = -1, good_closed = 0;
    while (th_now_ms() - t0 < 2000) {
        struct pollfd p[2] = {{.fd = good, .events = POLLIN}, {.fd = code < 0 ? silent : -1, .events = POLLIN}};
        if (poll(p, 2, 100) <= 0)
            continue;
        int op;
        if (p[0].revents) {
            long n = ws_read(good, &op, buf, sizeof buf, 1000);
            if (n < 0 || op == 8) {
                good_closed = 1;
                break;
            }
            if (op == 1 && strcmp(buf, "2") == 0) {
                good_pings++;
                ws_text(good, "3");
            }
        }
        if (p[1].revents) {
            long n = ws_read(silent, &op, buf, sizeof buf, 1000);
            if (n >= 0 && op == 1 && strcmp(buf, "2") == 0)
                pings++;
            if (n < 0 || op == 8) {
                code = n >= 2 ? ((unsigned char)buf[0] << 8 | (unsigned char)buf[1]) : 0;
                if (n > 2)
                    cr_expect_str_eq(buf + 2, "ping timeout");
                took = th_now_ms() - t0;
            }
        }
    }
    cr_expect_eq(pings, 1, "pings before the timeout: %d", pings);
    cr_expect_eq(code, 1008);
    cr_expect(took >= 350 && took < 1500, "closed after %lld ms (interval 200 + timeout 300)", took);
    cr_expect(!good_closed, "the client that answered pings was closed");
    cr_expect_geq(good_pings, 5, "the good client saw %d pings in 2 s (interval 200 ms)", good_pings);
    cr_expect(sio_alive(good, 1));
    close(silent);
    close(good);
}

Test(events, slow_reader_is_disconnected_and_others_keep_receiving)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF "max_message_size = 64k\nmax_send_queue = 256k\n"),
                 0);
    int slow = sio_open(), fast = sio_open();
    char buf[70000];
    ws_text(slow, "421[\"join\",\"flood\"]");
    ws_text(fast, "421[\"join\",\"flood\"]");
    cr_assert_gt(ws_expect(slow, "431[", buf, sizeof buf, 3000), 0);
    cr_assert_gt(ws_expect(fast, "431[", buf, sizeof buf, 3000), 0);
    /* Up to 65 MB of events for a client that reads nothing: far more than
     * the kernel's socket buffers and the queue hold. */
    char *body = malloc(60000);
    int len = snprintf(body, 60000, "{\"room\":\"flood\",\"event\":\"blob\",\"args\":[\"");
    memset(body + len, 'y', 50000);
    snprintf(body + len + 50000, 100, "\"]}");
    int fast_got = 0, published = 0;
    for (int i = 0; i < 1300 && !th_log_contains(&srv, "send queue full", 0); i++) {
        th_response r;
        th_http(&r, srv.port, "POST", "/socket.io/publish", body, 3000);
        published += r.status == 202;
        th_response_free(&r);
        /* The fast client keeps up. */
        int op;
        while (ws_read(fast, &op, buf, sizeof buf, i % 10 ? 0 : 50) >= 0)
            fast_got += op == 1 && strncmp(buf, "42[\"blob\"", 9) == 0;
    }
    free(body);
    cr_assert(th_log_contains(&srv, "send queue full", 2000), "the slow reader was never cut off (%d published)",
              published);
    /* The slow client's socket is closed by the server within the grace. */
    long long t0 = th_now_ms();
    int op, eof = 0;
    while (th_now_ms() - t0 < 10000) {
        if (ws_read(slow, &op, buf, sizeof buf, 3000) < 0) {
            eof = 1;
            break;
        }
    }
    cr_expect(eof, "the slow client's connection stayed open");
    close(slow);
    /* The fast one still receives. */
    th_response r;
    th_http(&r, srv.port, "POST", "/socket.io/publish", "{\"room\":\"flood\",\"event\":\"last\"}", 3000);
    cr_expect_eq(r.status, 202);
    th_response_free(&r);
    cr_expect_gt(ws_expect(fast, "42[\"last\"]", buf, sizeof buf, 5000), 0, "fast client got %d blobs, not last",
                 fast_got);
    cr_expect(sio_alive(fast, 5));
    close(fast);
}

Test(events, graceful_stop_sends_going_away)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    int fd = sio_open();
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    char reason[128] = "";
    cr_expect_eq(ws_expect_close(fd, reason, sizeof reason, 5000), 1001, "reason: %s", reason);
    close(fd);
    int st = th_stop(&srv, SIGTERM, 8000);
    srv.pid = 0;
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "master status 0x%x", st);
}

/* ---- hardening (issue 9) ---- */

/* The one worker's pid (the tests below run with -w 1). */
static pid_t only_worker(void)
{
    pid_t w[4];
    cr_assert_eq(th_workers(&srv, w, 4), 1);
    return w[0];
}

/* POST {route}/publish; returns the status, the body in why (if not NULL). */
static int publish(const char *body, char *why, size_t cap)
{
    th_response r;
    th_http(&r, srv.port, "POST", "/socket.io/publish", body, 3000);
    int status = r.status;
    if (why && cap)
        snprintf(why, cap, "%s", r.body ? r.body : "");
    th_response_free(&r);
    return status;
}

/* Keys the JSON key decoder refuses (a NUL, longer than its 255-byte
 * buffer, a lone surrogate) once took the decoder's NULL into the scanner:
 * SIGSEGV.  Each is an object without "room", so 400; the worker lives. */
Test(events, publish_with_undecodable_keys_answers_400_and_the_worker_survives)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    pid_t before = only_worker();
    char longkey[400];
    snprintf(longkey, sizeof longkey, "{\"%0300d\":1}", 0);
    const char *bodies[] = {
        "{\"\\u0000\":1}",
        " { \"\\u0000\" : 1 } ",
        longkey,
        "{\"\\ud800\":1}",
        "{\"\\udc00x\":1}",
        "{\"\\ud800\\u0041\":1}",
        "{\"\\u0000\":1,\"room\":\"r\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char why[512] = "";
        int st = publish(bodies[i], why, sizeof why);
        cr_expect_eq(st, 400, "body %zu (%.40s): status %d %s", i, bodies[i], st, why);
        pid_t w[4];
        cr_assert_eq(th_workers(&srv, w, 4), 1);
        cr_assert_eq(w[0], before, "the worker died on body %zu (%.40s)", i, bodies[i]);
    }
    /* Unknown keys the decoder cannot hold are still just unknown keys. */
    char body[600];
    snprintf(body, sizeof body, "{\"room\":\"r\",\"event\":\"e\",\"%0300d\":1,\"\\u0000\":2,\"\\udfff\":3}", 0);
    cr_expect_eq(publish(body, NULL, 0), 202);
    cr_expect_eq(only_worker(), before);
    cr_expect_eq(publish("{\"room\":\"r\",\"event\":\"e\"}", NULL, 0), 202);
}

/* Invalid UTF-8 anywhere in the body is refused (a text frame carrying it
 * makes RFC 6455 clients drop the connection); a member of the room gets
 * none of it, then the valid event, intact. */
Test(events, publish_with_invalid_utf8_answers_400_and_relays_nothing)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    int fd = sio_open();
    char buf[512];
    ws_text(fd, "421[\"join\",\"r\"]");
    cr_assert_gt(ws_expect(fd, "431[{\"ok\":true", buf, sizeof buf, 3000), 0);
    const char *bodies[] = {
        "{\"room\":\"r\",\"event\":\"a\xff\"}",
        "{\"room\":\"r\",\"event\":\"e\",\"args\":[\"\xc3\x28\"]}",
        "{\"room\":\"r\",\"event\":\"e\",\"args\":[{\"k\":\"\xc0\xaf\"}]}",        /* overlong '/' */
        "{\"room\":\"r\",\"event\":\"e\",\"args\":[\"\xed\xa0\x80\"]}",            /* a surrogate */
        "{\"room\":\"r\",\"event\":\"e\",\"args\":[\"\xf4\x90\x80\x80\"]}",        /* above U+10FFFF */
        "{\"room\":\"r\",\"event\":\"e\",\"args\":[\"\xe2\x82\"]}",                /* truncated */
        "{\"room\":\"r\",\"event\":\"e\",\"args\":[1],\"k\xff\":1}",             /* a key */
        "{\"room\":\"r\",\"event\":\"e\",\"args\":[1]} \xff",                    /* after the object */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char why[512] = "";
        int st = publish(bodies[i], why, sizeof why);
        cr_expect_eq(st, 400, "body %zu: status %d %s", i, st, why);
        cr_expect(strstr(why, "UTF-8") || strstr(why, "JSON"), "body %zu: reason %s", i, why);
    }
    cr_expect_eq(publish("{\"room\":\"r\",\"event\":\"ok\",\"args\":[\"h\xc3\xa9llo \xf0\x9f\x98\x80\"]}", NULL, 0),
                 202);
    int op;
    long n = ws_read(fd, &op, buf, sizeof buf, 3000);
    cr_expect(n > 0 && op == 1 && strcmp(buf, "42[\"ok\",\"h\xc3\xa9llo \xf0\x9f\x98\x80\"]") == 0,
              "first frame after the refused bodies: op %d %s", op, buf);
    close(fd);
}

/* A room name within the limit is acknowledged however long its JSON
 * token (here every byte escaped: 770 bytes for 128); one over the limit
 * gets an explicit error ack, not silence. */
Test(events, join_acks_long_room_names_and_refuses_names_over_the_limit)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    int fd = sio_open();
    char room[128 * 6 + 1], msg[1024], buf[2048];
    for (int i = 0; i < 128; i++)
        memcpy(room + 6 * i, "\\u0061", 6);
    room[128 * 6] = '\0';
    snprintf(msg, sizeof msg, "421[\"join\",\"%s\"]", room);
    ws_text(fd, msg);
    cr_expect_gt(ws_expect(fd, "431[{\"ok\":true,\"room\":\"\\u0061", buf, sizeof buf, 3000), 0,
                 "no ack for a 128-byte room name");
    snprintf(msg, sizeof msg, "422[\"whoami\"]");
    ws_text(fd, msg);
    cr_expect_gt(ws_expect(fd, "432[{\"sid\":", buf, sizeof buf, 3000), 0);
    cr_expect(strstr(buf, "\"rooms\":1"), "%s", buf);
    /* The same room by its plain name: already a member, still acked. */
    char plain[200];
    memset(plain, 'a', 128);
    plain[128] = '\0';
    snprintf(msg, sizeof msg, "423[\"leave\",\"%s\"]", plain);
    ws_text(fd, msg);
    cr_expect_gt(ws_expect(fd, "433[{\"ok\":true", buf, sizeof buf, 3000), 0);
    /* 129 bytes: over CD_EVENTS_ROOM_MAX. */
    memset(plain, 'b', 129);
    plain[129] = '\0';
    snprintf(msg, sizeof msg, "424[\"join\",\"%s\"]", plain);
    ws_text(fd, msg);
    cr_expect_gt(ws_expect(fd, "434[{\"ok\":false,\"error\":\"", buf, sizeof buf, 3000), 0,
                 "no error ack for a 129-byte room name");
    cr_expect(strstr(buf, "128"), "the error names the limit: %s", buf);
    snprintf(msg, sizeof msg, "425[\"join\",\"%s%s\"]", room, "\\u0062");
    ws_text(fd, msg);
    cr_expect_gt(ws_expect(fd, "435[{\"ok\":false,\"error\":\"", buf, sizeof buf, 3000), 0,
                 "no error ack for an escaped 129-byte room name");
    cr_expect(sio_alive(fd, 6));
    close(fd);
}

/* Peak resident memory of pid in kB (VmHWM), or -1. */
static long vm_hwm_kb(pid_t pid)
{
    char p[64], line[256];
    long kb = -1;
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Sends masked ping frames with `payload` bytes each, round and round,
 * without reading, until `target` bytes are out, the server stops reading
 * (no progress for 5 s) or the connection fails.  Then reads until EOF or
 * reset (15 s at most).  Returns the bytes sent; *closed says whether the
 * server closed the connection. */
static size_t ping_flood(int fd, size_t payload, size_t target, int *closed)
{
    size_t frame = 2 + 4 + payload, nframes = 65536 / frame;
    unsigned char *frames = malloc(frame * nframes);
    for (size_t f = 0; f < nframes; f++) {
        unsigned char *h = frames + f * frame;
        h[0] = 0x89;
        h[1] = (unsigned char)(0x80 | payload); /* control frames carry at most 125 bytes */
        memcpy(h + 2, "\x12\x34\x56\x78", 4);
        for (size_t i = 0; i < payload; i++)
            h[6 + i] = (unsigned char)('p' ^ h[2 + (i & 3)]);
    }
    size_t all = frame * nframes, sent = 0, off = 0;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    long long t0 = th_now_ms(), last_progress = t0;
    int err = 0;
    while (sent < target && th_now_ms() - t0 < 60000 && th_now_ms() - last_progress < 5000) {
        ssize_t n = send(fd, frames + off, all - off, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            off = (off + (size_t)n) % all;
            last_progress = th_now_ms();
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 100);
        } else {
            err = errno;
            break;
        }
    }
    free(frames);
    fprintf(stderr, "ping flood (%zu-byte payloads): sent %zu bytes in %lld ms, then %s\n", payload, sent,
            th_now_ms() - t0, err ? strerror(err) : sent >= target ? "all sent" : "the server stopped reading");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *closed = 0;
    long long t1 = th_now_ms();
    static char junk[65536];
    while (th_now_ms() - t1 < 15000) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 500) != 1)
            continue;
        if (recv(fd, junk, sizeof junk, 0) <= 0) {
            *closed = 1;
            break;
        }
    }
    return sent;
}

/* Clients that send WebSocket pings and never read: every pong wslay
 * queues counts against max_send_queue, with its bookkeeping, so the
 * worker cuts them off instead of holding ~1.7x what they send (far more
 * for empty pings).  The peak RSS (VmHWM) is the measure: it sees any
 * transient growth.  Under ASan the quarantine would keep the churn of
 * freed buffers, so it is off for this server. */
Test(events, ping_flood_without_reading_is_cut_off_and_memory_stays_bounded, .timeout = 180)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=0", asan ? asan : "", asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "max_send_queue = 256k\nmax_message_size = 64k\n"), 0);
    pid_t worker = only_worker();
    int bystander = sio_open();
    cr_assert(sio_alive(bystander, 1));
    long hwm0 = vm_hwm_kb(worker);
    cr_assert_gt(hwm0, 0);

    struct {
        size_t payload, target;
    } floods[] = {{0, 2u << 20}, {125, 20u << 20}};
    for (size_t i = 0; i < sizeof floods / sizeof floods[0]; i++) {
        int fd = sio_open(), closed;
        size_t sent = ping_flood(fd, floods[i].payload, floods[i].target, &closed);
        close(fd);
        long hwm1 = vm_hwm_kb(worker);
        fprintf(stderr, "  worker VmHWM %ld -> %ld kB\n", hwm0, hwm1);
        cr_expect(closed, "flood %zu: the flooding client's connection stayed open", i);
        /* 256k of queue and one read budget of pings in flight: far below
         * the bytes a flood sends when nothing stops it. */
        cr_expect_lt((hwm1 - hwm0) * 1024L, (long)(floods[i].target / 4),
                     "flood %zu: the worker grew by %ld kB for %zu bytes of pings", i, hwm1 - hwm0, sent);
        cr_expect(sio_alive(bystander, 2 + (int)i), "the bystander was not served after flood %zu", i);
    }
    cr_expect(th_log_contains(&srv, "send queue full", 2000), "no log line for the cut-off clients");
    cr_expect_eq(only_worker(), worker);
    close(bystander);
}

/* The room table (SipHash buckets) grows from 64 buckets to 512 under 320
 * rooms and still finds each one: every room's publish reaches exactly its
 * one member. */
Test(events, room_table_grows_and_finds_every_room)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    enum { NCLIENTS = 5, PER = 64 };
    int fds[NCLIENTS];
    char msg[256], buf[512];
    for (int i = 0; i < NCLIENTS; i++) {
        fds[i] = sio_open();
        for (int j = 0; j < PER; j++) {
            snprintf(msg, sizeof msg, "42%d[\"join\",\"c%d-room-%d\"]", j, i, j);
            ws_text(fds[i], msg);
        }
        /* Acks come in order: the last one means all were joined. */
        snprintf(msg, sizeof msg, "43%d[{\"ok\":true", PER - 1);
        cr_assert_gt(ws_expect(fds[i], msg, buf, sizeof buf, 5000), 0, "client %d: joins not acked", i);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        for (int j = 0; j < PER; j += 7) {
            snprintf(msg, sizeof msg, "{\"room\":\"c%d-room-%d\",\"event\":\"hit\",\"args\":[%d,%d]}", i, j, i, j);
            char why[256] = "";
            int st = publish(msg, why, sizeof why);
            cr_assert_eq(st, 202, "publish to c%d-room-%d: status %d %s", i, j, st, why);
            char want[64];
            snprintf(want, sizeof want, "42[\"hit\",%d,%d]", i, j);
            cr_expect_gt(ws_expect(fds[i], "42[\"hit\"", buf, sizeof buf, 3000), 0, "room c%d-room-%d: nothing", i, j);
            cr_expect_str_eq(buf, want);
        }
    }
    /* Nobody got anything meant for another client: whoami comes next. */
    for (int i = 0; i < NCLIENTS; i++) {
        snprintf(msg, sizeof msg, "4299[\"whoami\"]");
        ws_text(fds[i], msg);
        int op;
        long n = ws_read(fds[i], &op, buf, sizeof buf, 3000);
        cr_expect(n > 0 && strncmp(buf, "4399[{\"sid\":", 12) == 0, "client %d: %s", i, buf);
        cr_expect(strstr(buf, "\"rooms\":64"), "client %d: %s", i, buf);
        close(fds[i]);
    }
}
