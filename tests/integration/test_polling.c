/*
 * test_polling.c - Engine.IO v4 HTTP long-polling against the real
 * clusterd, in plain HTTP (services/events/polling.c, engineio.c, and the
 * sticky path that moves a request to the worker owning its session).
 *
 * Every request is a new connection (Connection: close), as a browser's
 * may be, so on -w N it lands on any worker.  The held GET is sent on a
 * raw connection and read after what should answer it.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

#define POLL "/socket.io/?EIO=4&transport=polling"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(polling, .fini = fini, .timeout = 120);

/* Opens a session: its sid into sid (27 bytes), the open packet checked. */
static void open_session(char sid[32])
{
    th_response r;
    cr_assert_eq(th_http(&r, srv.port, "GET", POLL, NULL, 5000), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    cr_assert(strncmp(r.body, "0{\"sid\":\"", 9) == 0, "%s", r.body);
    const char *q = strchr(r.body + 9, '"');
    cr_assert(q && q - (r.body + 9) < 32);
    memcpy(sid, r.body + 9, (size_t)(q - (r.body + 9)));
    sid[q - (r.body + 9)] = '\0';
    th_response_free(&r);
}

/* One request on the session; the answer's status, its body in *body (malloc'd). */
static int req(const char *method, const char *sid, const char *body, char **out)
{
    char path[128];
    snprintf(path, sizeof path, POLL "&sid=%s", sid);
    th_response r;
    if (th_http(&r, srv.port, method, path, body, 5000) < 0) {
        th_response_free(&r);
        return -1;
    }
    int st = r.status;
    if (out)
        *out = r.body ? strdup(r.body) : strdup("");
    th_response_free(&r);
    return st;
}

/* POSTs body and expects "ok". */
static void post(const char *sid, const char *body)
{
    char *b = NULL;
    int st = req("POST", sid, body, &b);
    cr_assert_eq(st, 200, "POST %s: %d %s", body, st, b);
    cr_assert_str_eq(b, "ok");
    free(b);
}

/* A GET sent on its own connection, not read yet. */
static int get_start(const char *sid)
{
    int fd = th_connect(srv.port);
    cr_assert_geq(fd, 0);
    char r[256];
    int n = snprintf(r, sizeof r, "GET " POLL "&sid=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", sid);
    cr_assert_eq(send(fd, r, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

/* Whether fd has bytes to read within ms. */
static int readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Reads the whole answer (the server closes); returns it malloc'd. */
static char *get_finish(int fd)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    while (len < cap - 1 && readable(fd, 5000)) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

Test(polling, a_session_opens_and_connects)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    th_response r;
    cr_assert_eq(th_http(&r, srv.port, "GET", POLL, NULL, 5000), 0);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.headers, "Content-Type: text/plain; charset=UTF-8"), "%s", r.headers);
    cr_expect(strstr(r.body, "\"upgrades\":[\"websocket\"]"), "%s", r.body);
    cr_expect(strstr(r.body, "\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}"), "%s", r.body);
    th_response_free(&r);

    char sid[32], *b = NULL;
    open_session(sid);
    post(sid, "40");
    cr_assert_eq(req("GET", sid, NULL, &b), 200);
    cr_expect(strncmp(b, "40{\"sid\":\"", 10) == 0, "the CONNECT answer: %s", b);
    free(b);
    /* Several packets in one POST, answered in one GET. */
    post(sid, "421[\"join\",\"r\"]\x1e" "422[\"whoami\"]");
    cr_assert_eq(req("GET", sid, NULL, &b), 200);
    cr_expect(strstr(b, "431[{\"ok\":true,\"room\":\"r\"}]\x1e" "432[{"), "both acks, in order: %s", b);
    free(b);
}

Test(polling, a_held_get_is_answered_by_a_publish)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    char sid[32], *b = NULL;
    open_session(sid);
    post(sid, "40");
    post(sid, "421[\"join\",\"news\"]");
    cr_assert_eq(req("GET", sid, NULL, &b), 200);
    cr_expect(strstr(b, "40{\"sid\":") && strstr(b, "431[{\"ok\":true"), "%s", b);
    free(b);

    int fd = get_start(sid);
    cr_expect_not(readable(fd, 300), "the GET was answered with nothing queued");
    th_response r;
    cr_assert_eq(th_http(&r, srv.port, "POST", "/socket.io/publish",
                         "{\"room\":\"news\",\"event\":\"flash\",\"args\":[1,\"two\"]}", 5000),
                 0);
    cr_expect_eq(r.status, 202, "%s", r.body);
    th_response_free(&r);
    char *got = get_finish(fd);
    cr_expect(strstr(got, "200 OK") && strstr(got, "\r\n\r\n42[\"flash\",1,\"two\"]"), "%s", got);
    free(got);
}

Test(polling, a_second_get_while_one_is_held_closes_the_session)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    char sid[32], *b = NULL;
    open_session(sid);
    int fd = get_start(sid);
    cr_expect_not(readable(fd, 300), "the first GET was answered with nothing queued");
    int st = req("GET", sid, NULL, &b);
    cr_expect_eq(st, 400, "%d %s", st, b);
    cr_expect_str_eq(b, "{\"code\":3,\"message\":\"Bad request\"}");
    free(b);
    char *got = get_finish(fd);
    cr_expect(strstr(got, "\r\n\r\n1") && got[strlen(got) - 1] == '1', "the held GET gets close: %s", got);
    free(got);
    /* The session is gone (or going: then it only says close). */
    st = req("GET", sid, NULL, &b);
    cr_expect(st == 400 || (st == 200 && strcmp(b, "1") == 0), "%d %s", st, b);
    free(b);
}

/* A client that goes away from its held GET (a closed tab) ends its
 * session then, as engine.io does, not a ping timeout (45 s) later: POSTs
 * (which never wait) soon find the sid unknown. */
Test(polling, a_held_get_whose_client_leaves_ends_the_session)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    char sid[32], *b = NULL;
    open_session(sid);
    post(sid, "40");
    cr_assert_eq(req("GET", sid, NULL, &b), 200);
    free(b);
    int fd = get_start(sid);
    cr_expect_not(readable(fd, 300), "the GET was answered with nothing queued");
    close(fd);
    int st = 0;
    long long until = th_now_ms() + 10000;
    while (th_now_ms() < until) {
        st = req("POST", sid, "6", &b);
        int gone = st == 400 && strcmp(b, "{\"code\":1,\"message\":\"Session ID unknown\"}") == 0;
        cr_assert(gone || (st == 200 && strcmp(b, "ok") == 0), "%d %s", st, b);
        free(b);
        if (gone)
            break;
        usleep(20000);
    }
    cr_expect_eq(st, 400, "the session outlived its client's GET");
}

Test(polling, unknown_sids_and_bad_requests_get_engine_io_errors)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "transports = polling\n"), 0);
    char *b = NULL;
    cr_expect_eq(req("GET", "AAAAAQnope", NULL, &b), 400);
    cr_expect_str_eq(b, "{\"code\":1,\"message\":\"Session ID unknown\"}");
    free(b);
    cr_expect_eq(req("POST", "AAAAAQnope", "40", &b), 400);
    cr_expect_str_eq(b, "{\"code\":1,\"message\":\"Session ID unknown\"}");
    free(b);
    th_response r;
    cr_assert_eq(th_http(&r, srv.port, "GET", "/socket.io/?EIO=4&transport=websocket", NULL, 5000), 0);
    cr_expect_eq(r.status, 400, "websocket is not among the transports");
    cr_expect_str_eq(r.body, "{\"code\":0,\"message\":\"Transport unknown\"}");
    th_response_free(&r);
    cr_assert_eq(th_http(&r, srv.port, "GET", "/socket.io/?EIO=3&transport=polling", NULL, 5000), 0);
    cr_expect_eq(r.status, 400);
    cr_expect_str_eq(r.body, "{\"code\":5,\"message\":\"Unsupported protocol version\"}");
    th_response_free(&r);
    /* The open packet offers no upgrade. */
    cr_assert_eq(th_http(&r, srv.port, "GET", POLL, NULL, 5000), 0);
    cr_expect(strstr(r.body, "\"upgrades\":[]"), "%s", r.body);
    th_response_free(&r);

    char sid[32];
    open_session(sid);
    cr_expect_eq(req("POST", sid, "40\x1e\x1e" "3", &b), 400, "an empty packet");
    cr_expect_str_eq(b, "{\"code\":3,\"message\":\"Bad request\"}");
    free(b);
    int st = req("GET", sid, NULL, &b);
    cr_expect(st == 400 || (st == 200 && strcmp(b, "1") == 0), "closed after a bad body: %d %s", st, b);
    free(b);
}

Test(polling, a_body_over_max_message_size_gets_413_and_closes)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "max_message_size = 1024\n"), 0);
    char sid[32], *b = NULL;
    open_session(sid);
    post(sid, "40");
    char big[2048];
    memset(big, 'x', sizeof big);
    memcpy(big, "42[\"", 4);
    memcpy(big + sizeof big - 3, "\"]", 3);
    int st = req("POST", sid, big, &b);
    cr_expect_eq(st, 413, "%d %s", st, b);
    free(b);
    st = req("GET", sid, NULL, &b);
    cr_expect(st == 400 || (st == 200 && strstr(b, "1")), "closed after 413: %d %s", st, b);
    free(b);
    /* The limit is the body's: one just under it still goes. */
    open_session(sid);
    post(sid, "40");
    big[1000] = '\0';
    memcpy(big + 997, "\"]", 3);
    post(sid, big);
}

/* The sticky path end to end: every request on a fresh connection lands on
 * any of 4 workers; each session's whoami always names the same worker. */
Test(polling, forty_sessions_on_four_workers_each_polled_ten_times, .timeout = 240)
{
    cr_assert_eq(th_start(&srv, 4, "/dummy", NULL, BASE_CONF), 0);
    /* th_start returns once one worker answers; sessions must open on all. */
    cr_assert(th_log_contains(&srv, "all 4 workers ready", 10000));
    enum { N = 40, ROUNDS = 10 };
    static char sids[N][32];
    int worker[N];
    for (int i = 0; i < N; i++) {
        open_session(sids[i]);
        post(sids[i], "40");
        worker[i] = -1;
    }
    int owners[64] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            char body[64], *b = NULL;
            snprintf(body, sizeof body, "42%d[\"whoami\"]", round + 1);
            post(sids[i], body);
            cr_assert_eq(req("GET", sids[i], NULL, &b), 200, "session %d round %d", i, round);
            char want[32];
            snprintf(want, sizeof want, "43%d[{", round + 1);
            const char *a = strstr(b, want);
            const char *w = a ? strstr(a, "\"worker\":") : NULL;
            cr_assert(w, "session %d round %d: %s", i, round, b);
            int wk = atoi(w + 9);
            if (worker[i] < 0) {
                worker[i] = wk;
                if (wk >= 0 && wk < 64)
                    owners[wk] = 1;
            }
            cr_assert_eq(wk, worker[i], "session %d moved from worker %d to %d", i, worker[i], wk);
            free(b);
        }
    }
    int n = 0;
    for (int i = 0; i < 64; i++)
        n += owners[i];
    cr_expect_geq(n, 2, "all 40 sessions on one worker: nothing was steered");
}

/* ---- the upgrade to WebSocket (a raw client) ---- */

/* The probe: the WebSocket handshake for session sid; the fd after a 101,
 * else -(status). */
static int probe_open(const char *sid)
{
    int fd = th_connect(srv.port);
    cr_assert_geq(fd, 0);
    char r[512];
    int n = snprintf(r, sizeof r,
                     "GET /socket.io/?EIO=4&transport=websocket&sid=%s HTTP/1.1\r\nHost: x\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     sid);
    cr_assert_eq(send(fd, r, (size_t)n, MSG_NOSIGNAL), n);
    char head[1024];
    size_t l = 0; /* byte by byte, so no frame is read past the head */
    while (l < sizeof head - 1 && readable(fd, 5000) && read(fd, head + l, 1) == 1)
        if (++l >= 4 && memcmp(head + l - 4, "\r\n\r\n", 4) == 0)
            break;
    head[l] = '\0';
    int status = 0;
    if (sscanf(head, "HTTP/1.1 %d", &status) != 1 || status != 101) {
        close(fd);
        return -(status ? status : 1);
    }
    return fd;
}

/* One masked text frame (short payloads only). */
static void ws_send(int fd, const char *s)
{
    unsigned char f[128];
    size_t len = strlen(s);
    cr_assert_lt(len, 126);
    f[0] = 0x81;
    f[1] = (unsigned char)(0x80 | len);
    memset(f + 2, 0, 4); /* the key 0: the payload reads as is */
    memcpy(f + 6, s, len);
    cr_assert_eq(send(fd, f, 6 + len, MSG_NOSIGNAL), (ssize_t)(6 + len));
}

/* Reads one unmasked text frame of under 126 bytes from the server into buf. */
static int ws_recv(int fd, char *buf, size_t cap)
{
    unsigned char h[2];
    size_t got = 0;
    while (got < 2 && readable(fd, 5000) && read(fd, h + got, 1) == 1)
        got++;
    if (got < 2 || (h[0] & 0x0f) != 1 || (h[1] & 0x7f) >= 126 || (h[1] & 0x7f) >= cap)
        return -1;
    size_t len = h[1] & 0x7f;
    for (got = 0; got < len && readable(fd, 5000);) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got == len ? (int)len : -1;
}

Test(polling, the_upgrade_moves_the_session_onto_the_websocket)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    char sid[32], *b = NULL, f[128];
    open_session(sid);
    post(sid, "40");
    cr_assert_eq(req("GET", sid, NULL, &b), 200);
    free(b);
    int ws = probe_open(sid);
    cr_assert_geq(ws, 0, "probe refused: %d", -ws);
    int held = get_start(sid);
    cr_expect_not(readable(held, 300), "the GET was answered with nothing queued");
    ws_send(ws, "2probe");
    cr_assert_geq(ws_recv(ws, f, sizeof f), 0);
    cr_expect_str_eq(f, "3probe");
    char *got = get_finish(held);
    cr_expect(strstr(got, "\r\n\r\n6") && got[strlen(got) - 1] == '6', "the held GET gets a noop: %s", got);
    free(got);
    /* Something queued while polling is paused goes out on the WebSocket. */
    post(sid, "421[\"join\",\"r\"]");
    ws_send(ws, "5");
    cr_assert_geq(ws_recv(ws, f, sizeof f), 0);
    cr_expect_str_eq(f, "431[{\"ok\":true,\"room\":\"r\"}]");
    ws_send(ws, "422[\"whoami\"]");
    cr_assert_geq(ws_recv(ws, f, sizeof f), 0);
    cr_expect(strncmp(f, "432[{\"sid\":", 11) == 0 && strstr(f, "\"rooms\":1"), "the same socket: %s", f);
    /* Polling is over for this session. */
    cr_expect_eq(req("POST", sid, "6", &b), 400);
    free(b);
    close(ws);
}

Test(polling, a_probe_that_closes_leaves_polling_intact)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    char sid[32], *b = NULL, f[128];
    open_session(sid);
    post(sid, "40");
    cr_assert_eq(req("GET", sid, NULL, &b), 200);
    free(b);
    cr_expect_eq(probe_open("AAAAAQxxxxxxxxxxxxxxxxxxxx"), -400, "a probe for no session");
    int ws = probe_open(sid);
    cr_assert_geq(ws, 0);
    ws_send(ws, "2probe");
    cr_assert_geq(ws_recv(ws, f, sizeof f), 0);
    close(ws); /* gone before "5" */
    ws = probe_open(sid);
    cr_assert_geq(ws, 0, "a second probe after the first closed");
    ws_send(ws, "42[\"x\"]"); /* not a probe's message: the probe goes */
    cr_expect_lt(ws_recv(ws, f, sizeof f), 0, "a probe that broke the rules stays open");
    close(ws);
    post(sid, "421[\"whoami\"]");
    cr_assert_eq(req("GET", sid, NULL, &b), 200);
    cr_expect(strstr(b, "431[{\"sid\":"), "polling still works: %s", b);
    free(b);
}

/* ---- browsers, and the end ---- */

Test(polling, browsers_from_allowed_origins_get_cors_headers)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF "origins = https://good.example\n"), 0);
    const char pre[] = "OPTIONS " POLL " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://good.example\r\n"
                       "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n";
    size_t len;
    char *a = th_raw(srv.port, pre, sizeof pre - 1, 5000, &len);
    cr_assert_not_null(a);
    cr_expect(strncmp(a, "HTTP/1.1 204", 12) == 0, "%s", a);
    cr_expect(strstr(a, "Access-Control-Allow-Origin: https://good.example\r\n"), "%s", a);
    cr_expect(strstr(a, "Access-Control-Allow-Credentials: true\r\n"), "%s", a);
    cr_expect(strstr(a, "Access-Control-Allow-Methods: GET, POST\r\n"), "%s", a);
    cr_expect(strstr(a, "Access-Control-Allow-Headers: content-type\r\n"), "%s", a);
    free(a);
    const char get[] = "GET " POLL " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://good.example\r\n\r\n";
    a = th_raw(srv.port, get, sizeof get - 1, 5000, &len);
    cr_assert_not_null(a);
    cr_expect(strncmp(a, "HTTP/1.1 200", 12) == 0 && strstr(a, "\r\n\r\n0{\"sid\""), "%s", a);
    cr_expect(strstr(a, "Access-Control-Allow-Origin: https://good.example\r\n"), "%s", a);
    free(a);
    const char evil[] = "GET " POLL " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://evil.example\r\n\r\n";
    a = th_raw(srv.port, evil, sizeof evil - 1, 5000, &len);
    cr_assert_not_null(a);
    cr_expect(strncmp(a, "HTTP/1.1 403", 12) == 0 && strstr(a, "{\"code\":4,\"message\":\"Forbidden\"}"), "%s", a);
    cr_expect_null(strstr(a, "Access-Control-Allow-Origin"), "%s", a);
    free(a);
}

Test(polling, a_stop_answers_the_held_get_with_close)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, BASE_CONF), 0);
    char sid[32], *b = NULL;
    open_session(sid);
    post(sid, "40");
    cr_assert_eq(req("GET", sid, NULL, &b), 200);
    free(b);
    int fd = get_start(sid);
    cr_expect_not(readable(fd, 300), "the GET was answered with nothing queued");
    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    char *got = get_finish(fd);
    cr_expect(strstr(got, "200 OK") && strstr(got, "\r\n\r\n1") && got[strlen(got) - 1] == '1', "%s", got);
    free(got);
    int st = th_stop(&srv, SIGTERM, 10000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}
