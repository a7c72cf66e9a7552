/*
 * test_websocket.c - unit tests of http/websocket.c, the WebSocket the
 * events service runs on: the accept key, and one connection over a
 * socketpair on its own libev loop, the test playing the client with
 * hand-made frames.  It lives with the services' tests because
 * http/websocket.c is compiled into the events module, which unit_services
 * links.  Criterion runs each test in its own process.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clusterd/websocket.h"
#include "core/util.h"

Test(websocket_handshake, accept_key_matches_rfc6455)
{
    char out[29];
    /* The example of RFC 6455 section 1.3. */
    cr_assert_eq(cd_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    cr_expect_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    cr_expect_eq(cd_ws_accept_key(NULL, out), -EINVAL);
    cr_expect_eq(cd_ws_accept_key("short==", out), -EINVAL);
    cr_expect_eq(cd_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=x", out), -EINVAL);
    cr_expect_eq(cd_ws_accept_key("dGhlIHNhbXBsZSBub25j!!==", out), -EINVAL);
}

Test(websocket_handshake, header_tokens)
{
    cr_expect(cd_ws_header_has_token("keep-alive, Upgrade", "upgrade"));
    cr_expect(cd_ws_header_has_token("websocket", "websocket"));
    cr_expect(!cd_ws_header_has_token("keep-alive, upgrades", "upgrade"));
    cr_expect(!cd_ws_header_has_token("", "upgrade"));
}

static struct ev_loop *loop;
static cd_ws_conn *ws;
static int peer = -1, srv = -1; /* the client's end, the server's */

/* What the callbacks saw. */
static struct {
    char msg[8][256];
    int binary[8];
    size_t nmsg;
    int closing_err, closing_calls, closed;
} seen;

static void on_message(void *arg, int binary, const char *msg, size_t len)
{
    cr_assert_eq(arg, &seen);
    if (seen.nmsg < 8) {
        snprintf(seen.msg[seen.nmsg], sizeof seen.msg[0], "%.*s", (int)len, msg);
        seen.binary[seen.nmsg++] = binary;
    }
}

static void on_closing(void *arg, int err)
{
    (void)arg;
    seen.closing_err = err;
    seen.closing_calls++;
}

static void on_close(void *arg)
{
    (void)arg;
    seen.closed++;
    cd_ws_free(ws);
    ws = NULL;
}

static const cd_ws_callbacks cbs = {on_message, on_closing, on_close};

/* A connection on a fresh socketpair; pre: bytes "read by HTTP". */
static void open_ws(const cd_ws_limits *limits, const char *pre, size_t pre_len)
{
    static const cd_ws_limits dflt = {.max_message = 4096, .max_send_queue = 64 * 1024, .close_grace = 0.3};
    int sv[2];
    memset(&seen, 0, sizeof seen);
    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert(loop);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(cd_set_nonblock(sv[0], 1), 0);
    peer = sv[1];
    srv = sv[0];
    ws = cd_ws_new(loop, sv[0], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", pre, pre_len, limits ? limits : &dflt, &cbs,
                   &seen);
    cr_assert(ws);
}

static void turn(int times)
{
    for (int i = 0; i < times; i++)
        ev_run(loop, EVRUN_NOWAIT);
}

/* Turns the loop until cond or about 2 s. */
#define TURN_UNTIL(cond)                                                                                     \
    do {                                                                                                     \
        for (int i_ = 0; i_ < 400 && !(cond); i_++) {                                                        \
            ev_run(loop, EVRUN_NOWAIT);                                                                      \
            usleep(5000);                                                                                    \
        }                                                                                                    \
    } while (0)

/* A masked client frame (key 0: the payload reads as is). */
static void client_frame(int fin_op, const char *payload, size_t len)
{
    unsigned char f[300];
    cr_assert_lt(len, 126);
    f[0] = (unsigned char)fin_op;
    f[1] = (unsigned char)(0x80 | len);
    memset(f + 2, 0, 4);
    memcpy(f + 6, payload, len);
    cr_assert_eq(send(peer, f, 6 + len, 0), (ssize_t)(6 + len));
}

/* Reads what the server sent so far (blocking up to 1 s for the first byte). */
static size_t client_read(unsigned char *buf, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < 200; i++) {
        turn(1);
        ssize_t r = recv(peer, buf + n, cap - n, MSG_DONTWAIT);
        if (r > 0)
            n += (size_t)r;
        else if (r == 0 || n)
            break;
        else
            usleep(5000);
    }
    return n;
}

/* Skips the 101 head; returns the offset of the first frame. */
static size_t skip_head(const unsigned char *buf, size_t n)
{
    const char *e = memmem(buf, n, "\r\n\r\n", 4);
    cr_assert(e, "no 101 head");
    cr_assert_eq(memcmp(buf, "HTTP/1.1 101 Switching Protocols\r\n", 34), 0);
    cr_assert(memmem(buf, n, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", 52));
    return (size_t)((const unsigned char *)e - buf) + 4;
}

static void teardown(void)
{
    cd_ws_free(ws);
    ws = NULL;
    if (peer >= 0)
        close(peer);
    peer = -1;
    /* Nothing of the connection is left on the loop. */
    cr_expect_eq(ev_run(loop, EVRUN_NOWAIT), 0, "watchers left on the loop");
    ev_loop_destroy(loop);
}

TestSuite(websocket, .fini = teardown);

Test(websocket, writes_the_101_before_any_frame)
{
    open_ws(NULL, NULL, 0);
    cr_assert_eq(cd_ws_send(ws, 0, "hello", 5), 0);
    cr_assert_eq(cd_ws_send(ws, 1, "\x01\x02", 2), 0);
    unsigned char buf[512];
    size_t n = client_read(buf, sizeof buf), o = skip_head(buf, n);
    cr_assert_eq(n - o, 7 + 4);
    cr_expect_eq(memcmp(buf + o, "\x81\x05hello", 7), 0);     /* text, unmasked */
    cr_expect_eq(memcmp(buf + o + 7, "\x82\x02\x01\x02", 4), 0); /* binary */
}

Test(websocket, delivers_whole_messages_text_and_binary)
{
    open_ws(NULL, NULL, 0);
    client_frame(0x01, "hel", 3); /* text, not final */
    client_frame(0x80, "lo", 2);  /* continuation, final */
    client_frame(0x82, "bin", 3);
    TURN_UNTIL(seen.nmsg == 2);
    cr_assert_eq(seen.nmsg, 2);
    cr_expect_str_eq(seen.msg[0], "hello");
    cr_expect_eq(seen.binary[0], 0);
    cr_expect_str_eq(seen.msg[1], "bin");
    cr_expect_eq(seen.binary[1], 1);
    cr_expect_eq(seen.closing_calls, 0);
}

Test(websocket, early_bytes_are_read_first_and_never_inside_cd_ws_new)
{
    static const char early[] = "\x81\x85\0\0\0\0first";
    open_ws(NULL, early, sizeof early - 1);
    cr_expect_eq(seen.nmsg, 0, "a callback ran inside cd_ws_new");
    client_frame(0x81, "second", 6);
    TURN_UNTIL(seen.nmsg == 2);
    cr_assert_eq(seen.nmsg, 2);
    cr_expect_str_eq(seen.msg[0], "first");
    cr_expect_str_eq(seen.msg[1], "second");
}

Test(websocket, close_sends_code_and_reason_and_finishes_after_the_peers_close)
{
    open_ws(NULL, NULL, 0);
    cd_ws_close(ws, CD_WS_POLICY_VIOLATION, "ping timeout");
    cr_expect(cd_ws_closing(ws));
    cr_expect_eq(cd_ws_send(ws, 0, "late", 4), -EPIPE);
    unsigned char buf[512];
    size_t n = client_read(buf, sizeof buf), o = skip_head(buf, n);
    cr_assert_eq(n - o, 2 + 2 + 12);
    cr_expect_eq(memcmp(buf + o, "\x88\x0e\x03\xf0ping timeout", 16), 0);
    cr_expect_eq(seen.closed, 0);
    client_frame(0x88, "\x03\xf0", 2);
    TURN_UNTIL(seen.closed);
    cr_expect_eq(seen.closed, 1);
    cr_expect_eq(seen.closing_calls, 0, "on_closing after the owner's own close");
    char c;
    cr_expect_eq(recv(peer, &c, 1, MSG_DONTWAIT), 0, "the server's side is not closed");
}

/* wslay sends control frames first; a normal close still comes after the
 * messages queued before it (a server-side DISCONNECT, then the close). */
Test(websocket, a_normal_close_follows_the_queued_messages)
{
    open_ws(NULL, NULL, 0);
    cr_assert_eq(cd_ws_send(ws, 0, "41", 2), 0);
    cd_ws_close(ws, CD_WS_NORMAL, "");
    cr_expect_eq(cd_ws_send(ws, 0, "late", 4), -EPIPE);
    unsigned char buf[512];
    size_t n = client_read(buf, sizeof buf), o = skip_head(buf, n);
    cr_assert_eq(n - o, 4 + 4, "%zu bytes", n - o);
    cr_expect_eq(memcmp(buf + o, "\x81\x02" "41" "\x88\x02\x03\xe8", 8), 0);
}

Test(websocket, an_error_close_goes_before_the_queued_messages)
{
    open_ws(NULL, NULL, 0);
    cr_assert_eq(cd_ws_send(ws, 0, "41", 2), 0);
    cd_ws_close(ws, CD_WS_POLICY_VIOLATION, "x");
    unsigned char buf[512];
    size_t n = client_read(buf, sizeof buf), o = skip_head(buf, n);
    cr_assert_eq(n - o, 5, "%zu bytes: only the close", n - o);
    cr_expect_eq(memcmp(buf + o, "\x88\x03\x03\xf0x", 5), 0);
}

Test(websocket, a_peer_that_never_answers_the_close_goes_after_the_grace)
{
    open_ws(NULL, NULL, 0);
    cd_ws_close(ws, CD_WS_GOING_AWAY, "bye");
    turn(2);
    cr_expect_eq(seen.closed, 0);
    TURN_UNTIL(seen.closed); /* close_grace is 0.3 s */
    cr_expect_eq(seen.closed, 1);
}

Test(websocket, the_peers_close_is_echoed_and_lingers_until_eof)
{
    open_ws(NULL, NULL, 0);
    client_frame(0x88, "\x03\xe8" "done", 6);
    unsigned char buf[512];
    size_t n = client_read(buf, sizeof buf), o = skip_head(buf, n);
    cr_assert_eq(n - o, 8);
    cr_expect_eq(memcmp(buf + o, "\x88\x06\x03\xe8" "done", 8), 0);
    TURN_UNTIL(seen.closed);
    cr_expect_eq(seen.closed, 1);
    cr_expect_eq(seen.closing_calls, 0);
}

Test(websocket, a_peer_that_goes_away_is_closed_without_on_closing)
{
    open_ws(NULL, NULL, 0);
    turn(2);
    close(peer);
    peer = -1;
    TURN_UNTIL(seen.closed);
    cr_expect_eq(seen.closed, 1);
    cr_expect_eq(seen.closing_calls, 0);
}

Test(websocket, a_frame_it_cannot_parse_gets_1002)
{
    open_ws(NULL, NULL, 0);
    unsigned char buf[512];
    size_t n = client_read(buf, sizeof buf); /* the 101: the output is idle */
    skip_head(buf, n);
    client_frame(0x09, "x", 1); /* a fragmented ping */
    TURN_UNTIL(seen.closing_calls);
    cr_assert_eq(seen.closing_err, -EPROTO);
    n = client_read(buf, sizeof buf);
    cr_assert_geq(n, 4);
    cr_expect_eq(memcmp(buf, "\x88\x0f\x03\xea" "invalid frame", 17), 0);
    cr_expect_eq(seen.nmsg, 0);
}

Test(websocket, a_close_reason_that_is_not_utf8_is_dropped_without_echo)
{
    open_ws(NULL, NULL, 0);
    unsigned char buf[512];
    skip_head(buf, client_read(buf, sizeof buf));
    /* wslay checks a close reason itself (1007), but skips the first two
     * bytes of every piece it reads, as if each began with the code: a
     * frame that arrives in two reads gets past it. */
    static const char frame[] = "\x88\x86\0\0\0\0\x03\xe8ok";
    cr_assert_eq(send(peer, frame, sizeof frame - 1, 0), (ssize_t)sizeof frame - 1);
    turn(2);
    cr_assert_eq(send(peer, "\xff\xfe", 2, 0), 2);
    TURN_UNTIL(seen.closed);
    cr_expect_eq(seen.closing_err, -EILSEQ);
    cr_expect_eq(seen.closed, 1);
    ssize_t r = recv(peer, buf, sizeof buf, MSG_DONTWAIT);
    cr_expect_eq(r, 0, "something was written after the bad close (%zd bytes)", r);
}

Test(websocket, sends_past_max_send_queue_are_refused_with_enobufs)
{
    const cd_ws_limits small = {.max_message = 4096, .max_send_queue = 4096, .close_grace = 0.3};
    open_ws(&small, NULL, 0);
    char big[1000];
    memset(big, 'x', sizeof big);
    /* Nothing is written before the loop turns: each message costs its
     * length plus its bookkeeping. */
    int i, rc = 0;
    for (i = 0; i < 10 && (rc = cd_ws_send(ws, 0, big, sizeof big)) == 0; i++)
        ;
    cr_expect_eq(rc, -ENOBUFS);
    cr_expect_eq(i, 3, "%d messages of 1000 bytes fit in 4096", i);
    cr_expect_geq(cd_ws_queued(ws), 3 * sizeof big + 3 * 64);
    cr_expect(!cd_ws_closing(ws), "the owner decides what to do");
}

Test(websocket, a_ping_flood_without_reading_is_cut_off_with_1008)
{
    const cd_ws_limits small = {.max_message = 4096, .max_send_queue = 8192, .close_grace = 0.3};
    open_ws(&small, NULL, 0);
    /* Small buffers both ways, so the pongs pile up in wslay's queue. */
    int sz = 4096;
    setsockopt(srv, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    cr_assert_eq(cd_set_nonblock(peer, 1), 0);
    unsigned char f[6 + 125];
    f[0] = 0x89, f[1] = 0x80 | 125;
    memset(f + 2, 0, 4);
    memset(f + 6, 'p', 125);
    for (int i = 0; i < 20000 && !seen.closing_calls; i++) {
        (void)!send(peer, f, sizeof f, 0); /* whole frames: the server reads as fast as we write */
        turn(1);
    }
    cr_expect_eq(seen.closing_err, -ENOBUFS);
    cr_expect_eq(seen.closing_calls, 1);
    cr_expect(ws == NULL || cd_ws_closing(ws));
    cr_expect_eq(seen.nmsg, 0);
}
