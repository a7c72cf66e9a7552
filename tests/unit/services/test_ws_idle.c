/*
 * test_ws_idle.c - unit tests of what lets an idle WebSocket hold no wslay
 * context (issue 16): http/ws_frame.c's frame header and frame-boundary
 * tracking, and http/websocket.c around them, over a socketpair on its own
 * libev loop with the test as the client: a message fragmented over
 * several reads, a frame header split between reads, and messages behind
 * one the socket could take only part of (written directly, its rest kept)
 * all arrive whole and in order.  Next to test_websocket.c, for the same
 * reason (unit_services links the events module, which compiles them).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clusterd/websocket.h"
#include "core/util.h"
#include "http/ws_frame.h"

/* ---- ws_frame.c ---- */

Test(ws_frame, header_lengths)
{
    uint8_t h[10];
    cr_expect_eq(cd_ws__frame_head(h, 0, 0), 2);
    cr_expect(h[0] == 0x81 && h[1] == 0);
    cr_expect_eq(cd_ws__frame_head(h, 1, 125), 2);
    cr_expect(h[0] == 0x82 && h[1] == 125);
    cr_expect_eq(cd_ws__frame_head(h, 0, 126), 4);
    cr_expect(h[1] == 126 && h[2] == 0 && h[3] == 126);
    cr_expect_eq(cd_ws__frame_head(h, 0, 65535), 4);
    cr_expect(h[2] == 0xff && h[3] == 0xff);
    cr_expect_eq(cd_ws__frame_head(h, 0, 65536), 10);
    cr_expect(h[1] == 127 && h[7] == 1 && h[8] == 0 && h[9] == 0);
}

/* A masked client frame of len bytes (payload zeros) into out; its size. */
static size_t frame(uint8_t *out, int fin_op, size_t len)
{
    size_t n = 0;
    out[n++] = (uint8_t)fin_op;
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    }
    memset(out + n, 0, 4 + len);
    return n + 4 + len;
}

Test(ws_frame, tracks_boundaries_over_any_split)
{
    /* A text message in three fragments with a ping between, then a
     * 300-byte binary frame: at rest only after the first fragment's
     * start... never, until the final fragment, and after the last frame. */
    uint8_t buf[1024];
    size_t ends[5], n = 0;
    n += frame(buf + n, 0x01, 3), ends[0] = n;   /* text, not FIN */
    n += frame(buf + n, 0x89, 2), ends[1] = n;   /* ping between fragments */
    n += frame(buf + n, 0x00, 130), ends[2] = n; /* continuation */
    n += frame(buf + n, 0x80, 1), ends[3] = n;   /* final continuation */
    n += frame(buf + n, 0x82, 300), ends[4] = n; /* binary, whole */
    const int rest_at[5] = {0, 0, 0, 1, 1};
    for (size_t step = 1; step <= 7; step++) {
        cd_ws_track t = {0};
        size_t k = 0;
        for (size_t off = 0; off < n;) {
            size_t take = step < n - off ? step : n - off;
            cd_ws__track(&t, buf + off, take);
            off += take;
            while (k < 5 && ends[k] < off)
                k++;
            if (k < 5 && ends[k] == off)
                cr_expect_eq(cd_ws__track_rest(&t), rest_at[k], "step %zu, after frame %zu", step, k);
            else
                cr_expect(!cd_ws__track_rest(&t), "step %zu: at rest inside a frame at %zu", step, off);
        }
    }
}

/* ---- websocket.c ---- */

static struct ev_loop *loop;
static cd_ws_conn *ws;
static int peer = -1;
static struct {
    char msg[4][512];
    size_t len[4], nmsg;
    int closed;
} seen;

static void on_message(void *arg, int binary, const char *msg, size_t len)
{
    (void)arg;
    (void)binary;
    if (seen.nmsg < 4) {
        memcpy(seen.msg[seen.nmsg], msg, len < 512 ? len : 512);
        seen.len[seen.nmsg++] = len;
    }
}

static void on_close(void *arg)
{
    (void)arg;
    seen.closed++;
    cd_ws_free(ws);
    ws = NULL;
}

static const cd_ws_callbacks cbs = {on_message, NULL, on_close};

static void open_ws(void)
{
    static const cd_ws_limits lim = {.max_message = 1 << 20, .max_send_queue = 4 << 20, .close_grace = 0.3};
    int sv[2];
    memset(&seen, 0, sizeof seen);
    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert(loop);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(cd_set_nonblock(sv[0], 1), 0);
    peer = sv[1];
    ws = cd_ws_new(loop, sv[0], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL, 0, &lim, &cbs, &seen);
    cr_assert(ws);
}

static void turn(int times)
{
    for (int i = 0; i < times; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(2000);
    }
}

static void teardown(void)
{
    cd_ws_free(ws);
    ws = NULL;
    if (peer >= 0)
        close(peer);
    peer = -1;
    cr_expect_eq(ev_run(loop, EVRUN_NOWAIT), 0, "watchers left on the loop");
    ev_loop_destroy(loop);
}

TestSuite(ws_idle, .fini = teardown, .timeout = 20);

/* Sends len bytes of a client frame to the server in pieces of `piece`,
 * turning the loop between them. */
static void send_in_pieces(const uint8_t *f, size_t len, size_t piece)
{
    for (size_t off = 0; off < len; off += piece) {
        size_t k = piece < len - off ? piece : len - off;
        cr_assert_eq(send(peer, f + off, k, 0), (ssize_t)k);
        turn(2);
    }
}

Test(ws_idle, a_fragmented_message_over_many_reads_arrives_whole)
{
    open_ws();
    uint8_t buf[64];
    size_t n = 0;
    buf[n++] = 0x01, buf[n++] = 0x80 | 2, memset(buf + n, 0, 4), n += 4, buf[n++] = 'h', buf[n++] = 'e';
    buf[n++] = 0x89, buf[n++] = 0x80, memset(buf + n, 0, 4), n += 4; /* a ping between the fragments */
    buf[n++] = 0x80, buf[n++] = 0x80 | 3, memset(buf + n, 0, 4), n += 4;
    memcpy(buf + n, "llo", 3), n += 3;
    send_in_pieces(buf, n, 1); /* one byte per loop turn: the context must live across them */
    turn(3);
    cr_assert_eq(seen.nmsg, 1);
    cr_expect_eq(seen.len[0], 5);
    cr_expect_eq(memcmp(seen.msg[0], "hello", 5), 0);
    /* And the next message, after it went idle, too. */
    uint8_t f[16] = {0x81, 0x80 | 2, 0, 0, 0, 0, 'o', 'k'};
    send_in_pieces(f, 8, 3);
    turn(3);
    cr_assert_eq(seen.nmsg, 2);
    cr_expect_eq(memcmp(seen.msg[1], "ok", 2), 0);
    cr_expect_eq(seen.closed, 0);
}

/* Reads everything the server writes until `want` bytes are in (the 101
 * head first), turning its loop meanwhile. */
static size_t drain(uint8_t *buf, size_t cap, size_t want)
{
    size_t n = 0;
    for (int i = 0; i < 2000 && n < want; i++) {
        turn(1);
        ssize_t r = recv(peer, buf + n, cap - n, MSG_DONTWAIT);
        if (r > 0)
            n += (size_t)r;
    }
    return n;
}

Test(ws_idle, messages_behind_a_half_written_one_follow_it_intact)
{
    open_ws();
    int small = 4096;
    cr_assert_eq(setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    uint8_t head[512];
    size_t hn = drain(head, sizeof head, 1); /* the 101 goes first */
    cr_assert_gt(hn, 0);
    const uint8_t *e = memmem(head, hn, "\r\n\r\n", 4);
    cr_assert(e);
    size_t extra = hn - (size_t)(e + 4 - head);
    cr_assert_eq(extra, 0);
    /* A message bigger than the socket takes: part goes now, the rest is
     * kept; the next two wait behind it. */
    size_t big = 600 * 1024;
    char *m = malloc(big);
    for (size_t i = 0; i < big; i++)
        m[i] = (char)('a' + i % 26);
    cr_assert_eq(cd_ws_send(ws, 1, m, big), 0);
    cr_assert_gt(cd_ws_queued(ws), 0, "the socket took all of it: the test needs a smaller buffer");
    cr_assert_eq(cd_ws_send(ws, 0, "second", 6), 0);
    cr_assert_eq(cd_ws_send(ws, 0, "third", 5), 0);
    size_t want = 10 + big + 2 + 6 + 2 + 5;
    uint8_t *buf = malloc(want + 64);
    size_t n = drain(buf, want + 64, want);
    cr_assert_eq(n, want, "%zu of %zu bytes", n, want);
    cr_expect(buf[0] == 0x82 && buf[1] == 127);
    cr_expect_eq(memcmp(buf + 10, m, big), 0, "the big message is intact");
    cr_expect_eq(memcmp(buf + 10 + big, "\x81\x06" "second" "\x81\x05" "third", 15), 0);
    cr_expect_eq(cd_ws_queued(ws), 0);
    free(buf);
    free(m);
}
