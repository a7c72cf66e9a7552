/*
 * test_events_backend.c - the events service's backend endpoints (issue
 * 12, server-side addressing) against the real clusterd -w 2 on a
 * loopback port: POST {route}/publish, /join, /leave and /disconnect with
 * their targets (sid, room, user, the whole namespace, except), acting on
 * sockets of both workers through the bus; the publish token (401 with
 * WWW-Authenticate without it or with a wrong one, 202 with it, never
 * logged); 404 for an unknown namespace, 400 for bad bodies, 413 for an
 * event over max_message_size.  The sockets are raw WebSocket clients
 * (harness_ws.c), so each check sees the exact packets.
 *
 * Nothing here waits for something not to happen: "a did not get X" is
 * checked by what a gets first, a marker published after X on the same
 * HTTP connection (so the same worker put both on the bus, in that order,
 * and every worker applies them in that order).  A command's effect is
 * awaited by asking the socket (whoami) until it shows, within a bound.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
static char tmpdir[64]; /* the token or key file's dir, when a test made one */

static void fini(void)
{
    int rc = th_finish(&srv);
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        cr_expect_eq(system(cmd), 0);
        tmpdir[0] = '\0';
    }
    cr_assert_eq(rc, 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(events_backend, .fini = fini, .timeout = 120);

/* Writes content to a new file in tmpdir; returns its path (static). */
static const char *temp_file(const char *name, const char *content)
{
    static char path[128];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cd-backend-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
    return path;
}

/* ---- HTTP, keep-alive ---- */

static int read_some(int fd, char *buf, size_t len)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1)
        return -1;
    ssize_t n = recv(fd, buf, len, 0);
    return n > 0 ? (int)n : -1;
}

/* POST {route}/what with body on the open connection fd (auth: a whole
 * Authorization value, or NULL).  Returns the status; the head and body
 * go to head and out (NUL-terminated, may be NULL). */
static int post(int fd, const char *what, const char *body, const char *auth, char *head, char *out, size_t cap)
{
    char req[8192], buf[16384];
    int n = snprintf(req, sizeof req,
                     "POST /socket.io/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s%s%s\r\n%s",
                     what, strlen(body), auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "", body);
    cr_assert(n > 0 && (size_t)n < sizeof req);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t l = 0;
    char *end = NULL;
    while (!end) {
        int k = read_some(fd, buf + l, sizeof buf - 1 - l);
        cr_assert_gt(k, 0, "no answer to POST %s %s", what, body);
        l += (size_t)k;
        buf[l] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &status), 1);
    const char *cl = strstr(buf, "Content-Length: ");
    size_t blen = cl && cl < end ? (size_t)atol(cl + 16) : 0, have = l - (size_t)(end + 4 - buf);
    while (have < blen) {
        int k = read_some(fd, buf + l, sizeof buf - 1 - l);
        cr_assert_gt(k, 0);
        l += (size_t)k, have += (size_t)k;
    }
    buf[l] = '\0';
    if (head)
        snprintf(head, 2048, "%.*s", (int)(end - buf), buf);
    if (out)
        snprintf(out, cap, "%s", end + 4);
    return status;
}

/* One request on its own connection. */
static int post1(const char *what, const char *body, const char *auth, char *head, char *out, size_t cap)
{
    int fd = th_connect(srv.port);
    cr_assert_geq(fd, 0);
    int st = post(fd, what, body, auth, head, out, cap);
    close(fd);
    return st;
}

/* Waits until publishes are taken (202): a worker connects to the bus in
 * the background, and answers 503 ("try again") until it has.  Eight in a
 * row on new connections, which land on any worker. */
static void bus_ready(const char *auth)
{
    int st = 0, ok = 0;
    for (long long deadline = th_now_ms() + 5000; ok < 8 && th_now_ms() < deadline;) {
        st = post1("publish", "{\"room\":\"nobody\",\"event\":\"warm-up\"}", auth, NULL, NULL, 0);
        ok = st == 202 ? ok + 1 : 0;
        if (st != 202 && st != 503)
            break;
    }
    cr_assert_eq(ok, 8, "publish answers %d", st);
}

/* ---- sockets ---- */

static int sio(const char *nsp, const char *payload, char *sid)
{
    int fd = thw_sio_open(srv.port, nsp, payload, sid, 64);
    cr_assert_geq(fd, 0, "no Socket.IO connection to \"%s\"", nsp);
    return fd;
}

/* whoami's "worker" and "rooms" (joined ones). */
static void whoami(int fd, int *worker, int *rooms)
{
    char buf[1024];
    cr_assert_gt(thw_sio_call(fd, "", 99, "\"whoami\"", buf, sizeof buf), 0);
    const char *w = strstr(buf, "\"worker\":"), *r = strstr(buf, "\"rooms\":");
    cr_assert(w && r, "%s", buf);
    if (worker)
        *worker = atoi(w + 9);
    if (rooms)
        *rooms = atoi(r + 8);
}

/* Asks until the socket has joined n rooms (a command's effect arrived). */
static void wait_rooms(int fd, int n)
{
    int rooms = -1;
    for (long long deadline = th_now_ms() + 5000; th_now_ms() < deadline;) {
        whoami(fd, NULL, &rooms);
        if (rooms == n)
            return;
    }
    cr_assert_fail("the socket has %d rooms, not %d", rooms, n);
}

/* Two sockets of "/" on different workers (others opened meanwhile closed). */
static void two_workers(int *a, char *sid_a, int *b, char *sid_b)
{
    int fds[40], n = 0, w0 = -1;
    char sid[64];
    *a = *b = -1;
    while (n < 40 && *b < 0) {
        int fd = fds[n++] = sio("", NULL, sid), w;
        whoami(fd, &w, NULL);
        if (*a < 0) {
            *a = fd, w0 = w;
            strcpy(sid_a, sid);
        } else if (w != w0) {
            *b = fd;
            strcpy(sid_b, sid);
        }
    }
    cr_assert_geq(*b, 0, "40 sessions, all on worker %d", w0);
    for (int i = 0; i < n; i++)
        if (fds[i] != *a && fds[i] != *b)
            close(fds[i]);
}

/* The next event the socket gets is exactly want. */
static void expect_event(int fd, const char *want)
{
    char buf[2048];
    cr_assert_gt(thw_expect(fd, "42", buf, sizeof buf), 0, "no event (wanted %s)", want);
    cr_expect_str_eq(buf, want);
}

#define MARK "{\"event\":\"mark\"}"
#define MARKED "42[\"mark\"]"

/* ---- targets ---- */

Test(events_backend, publish_reaches_a_sid_on_either_worker_and_the_namespace_but_except)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    bus_ready(NULL);
    int a, b;
    char sa[64], sb[64], body[512];
    two_workers(&a, sa, &b, sb);
    int http = th_connect(srv.port);
    cr_assert_geq(http, 0);
    /* Each sid from the same connection (one worker): one of them is on
     * the other worker. */
    const int fds[] = {a, b};
    const char *sids[] = {sa, sb};
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body, "{\"sid\":\"%s\",\"event\":\"direct\",\"args\":[%d,{\"x\":\"\xc3\xa9\"}]}",
                 sids[i], i);
        cr_assert_eq(post(http, "publish", body, NULL, NULL, NULL, 0), 202);
        cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
        char want[128];
        snprintf(want, sizeof want, "42[\"direct\",%d,{\"x\":\"\xc3\xa9\"}]", i);
        expect_event(fds[i], want);
        expect_event(fds[i], MARKED);
        expect_event(fds[1 - i], MARKED);
    }
    /* The whole namespace but a (by sid), and but b (by a room it joined). */
    snprintf(body, sizeof body, "{\"event\":\"all\",\"except\":[\"%s\"]}", sa);
    cr_assert_eq(post(http, "publish", body, NULL, NULL, NULL, 0), 202);
    cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
    expect_event(a, MARKED);
    expect_event(b, "42[\"all\"]");
    expect_event(b, MARKED);
    char buf[512];
    cr_assert_gt(thw_sio_call(b, "", 1, "\"join\",\"quiet\"", buf, sizeof buf), 0);
    cr_assert_eq(post(http, "publish", "{\"event\":\"all2\",\"except\":\"quiet\"}", NULL, NULL, NULL, 0), 202);
    cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
    expect_event(a, "42[\"all2\"]");
    expect_event(b, MARKED);
    /* Rooms and sids together: each socket once. */
    snprintf(body, sizeof body, "{\"rooms\":[\"quiet\"],\"sid\":\"%s\",\"event\":\"once\"}", sb);
    cr_assert_eq(post(http, "publish", body, NULL, NULL, NULL, 0), 202);
    cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
    expect_event(b, "42[\"once\"]");
    expect_event(b, MARKED);
    close(http);
    close(a);
    close(b);
}

Test(events_backend, join_and_leave_by_sid_then_publish_to_the_room)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    bus_ready(NULL);
    int a, b;
    char sa[64], sb[64], body[512];
    two_workers(&a, sa, &b, sb);
    snprintf(body, sizeof body, "{\"sid\":\"%s\",\"join\":\"team\"}", sb);
    cr_assert_eq(post1("join", body, NULL, NULL, NULL, 0), 202);
    wait_rooms(b, 1);
    wait_rooms(a, 0);
    int http = th_connect(srv.port);
    cr_assert_eq(post(http, "publish", "{\"room\":\"team\",\"event\":\"t\"}", NULL, NULL, NULL, 0), 202);
    cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
    expect_event(b, "42[\"t\"]");
    expect_event(a, MARKED);
    expect_event(b, MARKED);
    /* Everyone joins "all" (no target: the namespace), then b leaves it. */
    cr_assert_eq(post(http, "join", "{\"join\":\"all\"}", NULL, NULL, NULL, 0), 202);
    wait_rooms(a, 1);
    wait_rooms(b, 2);
    snprintf(body, sizeof body, "{\"room\":\"all\",\"leave\":\"all\",\"except\":[\"%s\"]}", sa);
    cr_assert_eq(post(http, "leave", body, NULL, NULL, NULL, 0), 202);
    wait_rooms(b, 1);
    cr_assert_eq(post(http, "publish", "{\"room\":\"all\",\"event\":\"a-only\"}", NULL, NULL, NULL, 0), 202);
    cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
    expect_event(a, "42[\"a-only\"]");
    expect_event(b, MARKED);
    /* A socket's own sid room cannot be left. */
    snprintf(body, sizeof body, "{\"leave\":\"%s\"}", sb);
    cr_assert_eq(post(http, "leave", body, NULL, NULL, NULL, 0), 202);
    snprintf(body, sizeof body, "{\"sid\":\"%s\",\"event\":\"still\"}", sb);
    cr_assert_eq(post(http, "publish", body, NULL, NULL, NULL, 0), 202);
    expect_event(b, "42[\"still\"]");
    close(http);
    close(a);
    close(b);
}

Test(events_backend, disconnect_by_room_sends_disconnect_and_close_ends_the_session)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    bus_ready(NULL);
    int a, b;
    char sa[64], sb[64], buf[512];
    two_workers(&a, sa, &b, sb);
    cr_assert_gt(thw_sio_call(a, "", 1, "\"join\",\"kick\"", buf, sizeof buf), 0);
    cr_assert_gt(thw_sio_call(b, "", 1, "\"join\",\"kick-hard\"", buf, sizeof buf), 0);
    cr_assert_eq(post1("disconnect", "{\"room\":\"kick\"}", NULL, NULL, NULL, 0), 202);
    cr_assert_gt(thw_expect(a, "41", buf, sizeof buf), 0, "no DISCONNECT");
    cr_expect_str_eq(buf, "41");
    /* The session stays: the client may connect again. */
    cr_assert_eq(thw_text(a, "40"), 0);
    cr_assert_gt(thw_expect(a, "40{\"sid\":\"", buf, sizeof buf), 0);
    cr_expect(strstr(buf, sa) == NULL, "the new socket has a new sid: %s", buf);
    cr_assert_eq(post1("disconnect", "{\"room\":\"kick-hard\",\"close\":true}", NULL, NULL, NULL, 0), 202);
    /* DISCONNECT first (so the client's reason is "io server
     * disconnect"), then the transport's close. */
    cr_assert_gt(thw_expect(b, "41", buf, sizeof buf), 0, "no DISCONNECT before the close");
    cr_expect_str_eq(buf, "41");
    cr_expect_eq(thw_close_code(b), 1000);
    whoami(a, NULL, NULL); /* a is still served */
    close(a);
    close(b);
}

/* Commands that free what the walk is on: every member of a room leaves
 * it (the room goes with its last member), then every member of another
 * is disconnected; each socket is acted on once. */
Test(events_backend, commands_act_on_every_member_while_walking_the_room)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    bus_ready(NULL);
    enum { N = 8 };
    int fds[N];
    char sid[64], buf[512];
    for (int i = 0; i < N; i++) {
        fds[i] = sio("", NULL, sid);
        cr_assert_gt(thw_sio_call(fds[i], "", 1, "\"join\",\"crowd\"", buf, sizeof buf), 0);
        cr_assert_gt(thw_sio_call(fds[i], "", 2, "\"join\",\"crowd2\"", buf, sizeof buf), 0);
    }
    cr_assert_eq(post1("leave", "{\"room\":\"crowd\",\"leave\":\"crowd\"}", NULL, NULL, NULL, 0), 202);
    for (int i = 0; i < N; i++)
        wait_rooms(fds[i], 1);
    cr_assert_eq(post1("disconnect", "{\"rooms\":[\"crowd2\",\"crowd\"]}", NULL, NULL, NULL, 0), 202);
    for (int i = 0; i < N; i++) {
        cr_assert_gt(thw_expect(fds[i], "41", buf, sizeof buf), 0, "socket %d: no DISCONNECT", i);
        cr_expect_str_eq(buf, "41");
        /* One DISCONNECT only: what follows is the answer to a new CONNECT. */
        cr_assert_eq(thw_text(fds[i], "40"), 0);
        int op;
        cr_assert_gt(thw_next(fds[i], &op, buf, sizeof buf), 0);
        cr_expect(strncmp(buf, "40{\"sid\":", 9) == 0, "socket %d: %s", i, buf);
        close(fds[i]);
    }
}

/* ---- namespaces, users ---- */

Test(events_backend, namespace_targets_only_its_sockets_and_unknown_is_404)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF "namespaces = /, /chat\n"), 0);
    bus_ready(NULL);
    char sid[64], buf[512];
    int main_fd = sio("", NULL, sid), chat = sio("/chat", NULL, sid);
    int http = th_connect(srv.port);
    cr_assert_eq(post(http, "publish", "{\"namespace\":\"/chat\",\"event\":\"c\",\"args\":[1]}", NULL, NULL, NULL, 0),
                 202);
    cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
    cr_assert_eq(post(http, "publish", "{\"namespace\":\"/chat\",\"event\":\"mark\"}", NULL, NULL, NULL, 0), 202);
    cr_assert_gt(thw_expect(chat, "42", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "42/chat,[\"c\",1]");
    cr_assert_gt(thw_expect(chat, "42", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "42/chat,[\"mark\"]", "a \"/\" event reached /chat");
    expect_event(main_fd, MARKED);
    const char *unknown[] = {"{\"namespace\":\"/nope\",\"event\":\"e\"}", "{\"namespace\":\"chat\",\"event\":\"e\"}"};
    for (size_t i = 0; i < 2; i++) {
        cr_expect_eq(post(http, "publish", unknown[i], NULL, NULL, buf, sizeof buf), 404, "%s", unknown[i]);
        cr_expect(strstr(buf, "unknown namespace"), "%s", buf);
    }
    cr_expect_eq(post(http, "join", "{\"namespace\":\"/nope\",\"join\":\"r\"}", NULL, NULL, NULL, 0), 404);
    close(http);
    close(main_fd);
    close(chat);
}

/* HS256 tokens for SECRET (made once with Python's hmac): sub "alice" and
 * sub "bob", rooms ["lobby"], exp 2100-01-01. */
#define SECRET "clusterd-events-backend-secret"
#define TOKEN_ALICE                                                                                          \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvb21zIjpbImxvYmJ5Il0sImV4cCI6NDEwMjQ0NDgwMH0." \
    "yD3Tu1GeMGq1BFvBUndXu8AeAGxzUMZcSKTuHgP60Xo"
#define TOKEN_BOB                                                                                            \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJib2IiLCJyb29tcyI6WyJsb2JieSJdLCJleHAiOjQxMDI0NDQ4MDB9." \
    "xUg2eMzbJqH4o3a26kIOmL3BVTB_j6yk1i0g7BpE7tM"

Test(events_backend, publish_and_disconnect_by_user)
{
    const char *key = temp_file("secret", SECRET "\n");
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF "auth = jwt\njwt_key_file = %s\n", key), 0);
    bus_ready(NULL);
    char sid[64], buf[512];
    int alice = sio("", "{\"token\":\"" TOKEN_ALICE "\"}", sid);
    int alice2 = sio("", "{\"token\":\"" TOKEN_ALICE "\"}", sid);
    int bob = sio("", "{\"token\":\"" TOKEN_BOB "\"}", sid);
    int http = th_connect(srv.port);
    cr_assert_eq(post(http, "publish", "{\"user\":\"alice\",\"event\":\"hi\"}", NULL, NULL, NULL, 0), 202);
    cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
    expect_event(alice, "42[\"hi\"]");
    expect_event(alice2, "42[\"hi\"]");
    expect_event(bob, MARKED);
    /* A user is a room of the except list too. */
    cr_assert_eq(post(http, "publish", "{\"event\":\"no-alice\",\"except\":[\"user:alice\"]}", NULL, NULL, NULL, 0),
                 202);
    cr_assert_eq(post(http, "publish", MARK, NULL, NULL, NULL, 0), 202);
    expect_event(bob, "42[\"no-alice\"]");
    expect_event(alice, MARKED);
    expect_event(alice2, MARKED);
    cr_assert_eq(post(http, "disconnect", "{\"user\":\"bob\"}", NULL, NULL, NULL, 0), 202);
    cr_assert_gt(thw_expect(bob, "41", buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "41");
    close(http);
    close(alice);
    close(alice2);
    close(bob);
}

/* ---- the publish token, bad bodies ---- */

#define TOKEN "s3cr3t-publish-token-0123456789"

Test(events_backend, every_endpoint_needs_the_token_when_one_is_set)
{
    const char *tok = temp_file("token", TOKEN "\n");
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "publish_token_file = %s\n", tok), 0);
    bus_ready("Bearer " TOKEN);
    static const struct {
        const char *what, *body;
    } eps[] = {{"publish", "{\"room\":\"r\",\"event\":\"e\"}"},
               {"join", "{\"room\":\"r\",\"join\":\"s\"}"},
               {"leave", "{\"room\":\"r\",\"leave\":\"s\"}"},
               {"disconnect", "{\"room\":\"nobody\"}"}};
    const char *wrong[] = {NULL, "Bearer wrong", "Bearer " TOKEN "x", "Bearer s3cr3t", "Basic " TOKEN, TOKEN};
    char head[2048], buf[512];
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        for (size_t k = 0; k < sizeof wrong / sizeof wrong[0]; k++) {
            cr_expect_eq(post1(eps[i].what, eps[i].body, wrong[k], head, buf, sizeof buf), 401, "%s with %s",
                         eps[i].what, wrong[k] ? wrong[k] : "no token");
            cr_expect(strstr(head, "\r\nWWW-Authenticate: Bearer"), "%s", head);
        }
        cr_expect_eq(post1(eps[i].what, eps[i].body, "Bearer " TOKEN, NULL, buf, sizeof buf), 202, "%s: %s",
                     eps[i].what, buf);
        cr_expect_eq(post1(eps[i].what, eps[i].body, "bearer  " TOKEN, NULL, buf, sizeof buf), 202, "%s: %s",
                     eps[i].what, buf);
    }
    /* The token is checked before the body: no hint about the body. */
    cr_expect_eq(post1("publish", "not json", NULL, NULL, NULL, 0), 401);
    cr_expect_eq(th_log_contains(&srv, TOKEN, 0), 0, "the token is in the log");
    cr_expect_eq(th_log_contains(&srv, "Bearer wrong", 0), 0, "an offered token is in the log");
}

Test(events_backend, bad_bodies_answer_400_and_big_events_413)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "max_message_size = 1024\n"), 0);
    bus_ready(NULL);
    static const struct {
        const char *what, *body, *why;
    } bad[] = {
        {"publish", "[]", "JSON object"},
        {"publish", "{\"room\":\"r\"}", "event"},
        {"publish", "{\"rooms\":[\"a\",2],\"event\":\"e\"}", "names"},
        {"publish", "{\"sid\":\"\",\"event\":\"e\"}", "names"},
        {"publish", "{\"event\":\"e\",\"args\":{}}", "args"},
        {"join", "{\"room\":\"r\"}", "join"},
        {"leave", "{\"leave\":7}", "leave"},
        {"disconnect", "{\"close\":\"yes\"}", "close"},
        {"disconnect", "{\"room\":\"r\"} trailing", "JSON object"},
    };
    char buf[1024];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(post1(bad[i].what, bad[i].body, NULL, NULL, buf, sizeof buf), 400, "%s %s", bad[i].what,
                     bad[i].body);
        cr_expect(strstr(buf, bad[i].why), "%s %s: %s", bad[i].what, bad[i].body, buf);
    }
    char big[2048];
    snprintf(big, sizeof big, "{\"event\":\"e\",\"args\":[\"%01100d\"]}", 0);
    cr_expect_eq(post1("publish", big, NULL, NULL, buf, sizeof buf), 413, "%s", buf);
    cr_expect_eq(post1("nope", "{}", NULL, NULL, NULL, 0), 404);
    cr_expect_eq(post1("publish", "{\"room\":\"r\",\"event\":\"fine\"}", NULL, NULL, buf, sizeof buf), 202, "%s", buf);
}
