/*
 * test_ws_frames.c - unit tests of shared frames and the out queue
 * (issue 13): http/ws_frame.c's cd_ws_frame (a message framed once,
 * refcounted) and http/websocket.c's queue of frame references, over
 * socketpairs on one libev loop with the test as the clients.  A frame
 * handed to several connections is held once by each until its socket
 * took it, and freed with the last reference; a connection's pending
 * frames leave in one sendmsg (a SOCK_SEQPACKET pair keeps each sendmsg
 * one record, so the test counts the syscalls by the records); a close
 * after them, or a connection freed, drops its references; a reply
 * queued while reading input that then breaks the framing goes before the
 * 1002 close, and nothing after it.  Next to
 * test_websocket.c, for the same reason (unit_services links the events
 * module, which compiles http/websocket.c and ws_frame.c; unit_http does
 * not).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clusterd/websocket.h"
#include "core/util.h"
#include "http/ws_frame.h"

#define NCONN 3

static struct ev_loop *loop;
static cd_ws_conn *ws[NCONN];
static int peer[NCONN] = {-1, -1, -1};
static int closed[NCONN];

static int echo; /* on_message sends each message back */

static void on_message(void *arg, int binary, const char *msg, size_t len)
{
    if (echo)
        cd_ws_send(ws[(intptr_t)arg], binary, msg, len);
}

static void on_close(void *arg)
{
    int i = (int)(intptr_t)arg;
    closed[i]++;
    cd_ws_free(ws[i]);
    ws[i] = NULL;
}

static const cd_ws_callbacks cbs = {on_message, NULL, on_close};
static const cd_ws_limits limits = {.max_message = 4096, .max_send_queue = 1 << 20, .close_grace = 0.3};

/* n connections over socketpairs of type `type`. */
static void open_all(int n, int type)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert(loop);
    for (int i = 0; i < n; i++) {
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, type, 0, sv), 0);
        cr_assert_eq(cd_set_nonblock(sv[0], 1), 0);
        peer[i] = sv[1];
        closed[i] = 0;
        echo = 0;
        ws[i] = cd_ws_new(loop, sv[0], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL, 0, &limits, &cbs, (void *)(intptr_t)i);
        cr_assert(ws[i]);
    }
}

static void turn(int times)
{
    for (int i = 0; i < times; i++)
        ev_run(loop, EVRUN_NOWAIT);
}

/* Reads and checks the 101 on connection i (one record on SEQPACKET). */
static void skip_101(int i)
{
    char buf[512];
    turn(2);
    ssize_t r = recv(peer[i], buf, sizeof buf, MSG_DONTWAIT);
    cr_assert_gt(r, 0, "no 101 on connection %d", i);
    cr_assert_eq(memcmp(buf, "HTTP/1.1 101 ", 13), 0);
    cr_assert(memmem(buf, (size_t)r, "\r\n\r\n", 4) == buf + r - 4, "the 101 is not alone in its write");
}

static void teardown(void)
{
    for (int i = 0; i < NCONN; i++) {
        cd_ws_free(ws[i]);
        ws[i] = NULL;
        if (peer[i] >= 0)
            close(peer[i]);
        peer[i] = -1;
    }
    cr_expect_eq(ev_run(loop, EVRUN_NOWAIT), 0, "watchers left on the loop");
    ev_loop_destroy(loop);
}

TestSuite(ws_frames, .fini = teardown, .timeout = 20);

Test(ws_frames, a_frame_is_framed_once_and_counted)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    cd_ws_frame *f = cd_ws_frame_new(0, "42[\"x\"]", 7);
    cr_assert(f);
    cr_expect_eq(cd_ws_frame_len(f), 9);
    cr_expect_eq(memcmp(f->data, "\x81\x07" "42[\"x\"]", 9), 0);
    cr_expect_eq(f->refs, 1);
    cr_expect_eq(cd_ws_frame_ref(f), f);
    cr_expect_eq(f->refs, 2);
    cd_ws_frame_unref(f);
    cr_expect_eq(f->refs, 1);
    cd_ws_frame_unref(f); /* freed: ASan would see a leak or a double free */
    cd_ws_frame_unref(NULL);
    cd_ws_frame *b = cd_ws_frame_new(1, NULL, 0);
    cr_assert(b);
    cr_expect_eq(cd_ws_frame_len(b), 2);
    cr_expect_eq(memcmp(b->data, "\x82\x00", 2), 0);
    cd_ws_frame_unref(b);
}

Test(ws_frames, one_frame_shared_by_every_recipient_until_its_socket_took_it)
{
    open_all(NCONN, SOCK_STREAM);
    for (int i = 0; i < NCONN; i++)
        skip_101(i);
    cd_ws_frame *f = cd_ws_frame_new(0, "hello", 5);
    cr_assert(f);
    for (int i = 0; i < NCONN; i++)
        cr_assert_eq(cd_ws_send_frame(ws[i], f), 0);
    cr_expect_eq(f->refs, 1 + NCONN, "each connection holds a reference, not a copy");
    cr_expect_eq(cd_ws_queued(ws[0]), 7 + 64);
    turn(1); /* the end of the iteration writes them */
    cr_expect_eq(f->refs, 1, "the sockets took it: only the caller's reference is left");
    for (int i = 0; i < NCONN; i++) {
        char buf[16];
        cr_assert_eq(recv(peer[i], buf, sizeof buf, MSG_DONTWAIT), 7);
        cr_expect_eq(memcmp(buf, "\x81\x05hello", 7), 0);
        cr_expect_eq(cd_ws_queued(ws[i]), 0);
    }
    cd_ws_frame_unref(f);
}

Test(ws_frames, a_full_socket_keeps_its_reference_and_freeing_it_drops_it)
{
    open_all(2, SOCK_STREAM);
    skip_101(0);
    skip_101(1);
    int small = 4096;
    cr_assert_eq(setsockopt(peer[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    size_t big = 512 * 1024;
    char *m = calloc(1, big);
    cd_ws_frame *f = cd_ws_frame_new(1, m, big);
    cr_assert(f);
    cr_assert_eq(cd_ws_send_frame(ws[0], f), 0);
    cr_assert_eq(cd_ws_send_frame(ws[1], f), 0);
    /* Connection 0's peer reads everything; connection 1's reads nothing. */
    size_t got = 0;
    char *buf = malloc(big + 16);
    for (int i = 0; i < 4000 && got < big + 10; i++) {
        turn(1);
        ssize_t r = recv(peer[0], buf + got, big + 16 - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
    }
    cr_assert_eq(got, big + 10);
    cr_expect_eq(f->refs, 2, "the slow connection still holds the frame");
    cr_expect_gt(cd_ws_queued(ws[1]), 0);
    cd_ws_free(ws[1]);
    ws[1] = NULL;
    cr_expect_eq(f->refs, 1, "freeing the connection dropped its reference");
    cd_ws_frame_unref(f);
    free(buf);
    free(m);
}

Test(ws_frames, pending_frames_leave_in_one_sendmsg)
{
    open_all(1, SOCK_SEQPACKET);
    skip_101(0);
    /* 50 messages in one loop iteration, as a burst of broadcasts. */
    for (int i = 0; i < 50; i++) {
        char msg[8];
        int n = snprintf(msg, sizeof msg, "m%02d", i);
        cr_assert_eq(cd_ws_send(ws[0], 0, msg, (size_t)n), 0);
    }
    turn(1);
    char buf[1024];
    ssize_t r = recv(peer[0], buf, sizeof buf, MSG_DONTWAIT);
    cr_assert_eq(r, 50 * 5, "one record (one sendmsg) holds all 50 frames: got %zd bytes", r);
    for (int i = 0; i < 50; i++) {
        char want[6];
        snprintf(want, sizeof want, "\x81\x03m%02d", i);
        cr_expect_eq(memcmp(buf + 5 * i, want, 5), 0, "frame %d", i);
    }
    cr_expect_lt(recv(peer[0], buf, sizeof buf, MSG_DONTWAIT), 0, "a second write");
}

Test(ws_frames, an_error_close_drops_the_queued_frames_and_their_references)
{
    open_all(1, SOCK_STREAM);
    skip_101(0);
    cd_ws_frame *f = cd_ws_frame_new(0, "41", 2);
    cr_assert_eq(cd_ws_send_frame(ws[0], f), 0);
    cr_assert_eq(f->refs, 2);
    cd_ws_close(ws[0], CD_WS_POLICY_VIOLATION, "x");
    cr_expect_eq(cd_ws_send_frame(ws[0], f), -EPIPE);
    turn(2);
    cr_expect_eq(f->refs, 1, "the queued frame was dropped after the close went");
    char buf[64];
    cr_assert_eq(recv(peer[0], buf, sizeof buf, MSG_DONTWAIT), 5, "only the close");
    cr_expect_eq(memcmp(buf, "\x88\x03\x03\xf0x", 5), 0);
    cd_ws_frame_unref(f);
}

Test(ws_frames, a_reply_queued_before_a_framing_error_goes_before_the_1002_and_nothing_after)
{
    open_all(1, SOCK_STREAM);
    skip_101(0);
    echo = 1;
    /* A text message "hi", then a fragmented ping (cannot be framed), in
     * one read. */
    static const unsigned char in[] = {0x81, 0x82, 0, 0, 0, 0, 'h', 'i', 0x09, 0x80, 0, 0, 0, 0};
    cr_assert_eq(send(peer[0], in, sizeof in, 0), (ssize_t)sizeof in);
    for (int i = 0; i < 200 && !closed[0]; i++) {
        turn(1);
        usleep(5000);
    }
    char buf[64];
    ssize_t r = recv(peer[0], buf, sizeof buf, MSG_DONTWAIT);
    cr_assert_eq(r, 4 + 17, "%zd bytes: the echo, then the close, then nothing", r);
    cr_expect_eq(memcmp(buf, "\x81\x02hi", 4), 0);
    cr_expect_eq(memcmp(buf + 4, "\x88\x0f\x03\xea" "invalid frame", 17), 0);
}
