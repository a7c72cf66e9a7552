/*
 * websocket.c - the server side of a WebSocket: one connection over wslay
 * on a libev loop (worker, loop thread; the contract is in the public
 * clusterd/websocket.h; the opening handshake's checks and the framing
 * this file does itself are in ws_frame.c).
 *
 * wslay does the RFC 6455 framing; this file feeds it the socket.  Two
 * ev_io watchers follow wslay_event_want_read/want_write (update()), and a
 * timer bounds the close: once closing, the fd goes after close_grace
 * whatever the peer does.  The 101 response is written first, from the
 * send callback, so no frame can overtake it.
 *
 * Memory: wslay's context is 8.8 KiB (its frame buffers), so an idle
 * connection holds none.  It is made when bytes arrive (do_read) or a
 * message must wait for the socket, and freed again (update) once the
 * connection is back at rest: open, nothing queued or half-written,
 * and the input at a frame boundary outside a fragmented message, which
 * cd_ws__track (ws_frame.c) follows from the bytes wslay is given.
 * A message to a connection at rest is framed here and written at once
 * (send_direct); only what the socket does not take is kept (tail),
 * written before anything wslay queues after it.  So an idle client
 * costs its cd_ws_conn and the kernel's socket, and a broadcast to many
 * idle clients makes no context at all.
 *
 * A connection is finished (fd closed, on_close) only from its own
 * watchers' callbacks, never from inside a wslay callback or a cd_ws_*
 * call: code that wants it gone marks it dead, and update(), at the end of
 * every watcher callback, finishes the job.  This file is compiled into
 * the modules that use it (CMakeLists.txt: CD_MODULE_SRCS_events), with
 * ws_frame.c, not into the binary, so a worker without them maps no
 * libwslay (nor libcrypto, which the accept key's SHA-1 needs).
 */
#include "clusterd/websocket.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "clusterd/text.h"
#include "ws_frame.h"

/* ---- the connection ---- */

#define READ_BUDGET (256 * 1024) /* bytes read from one peer per loop iteration */
#define QUEUED_MSG_COST 128      /* bytes of bookkeeping per message wslay queues (see cd_ws_queued) */

enum ws_phase {
    PH_OPEN,    /* messages flow */
    PH_CLOSING, /* our close frame is queued (or we gave up): waiting for it to go out */
    PH_LINGER,  /* write side shut; draining until EOF or the deadline */
};

struct cd_ws_conn {
    ev_io rio, wio;
    ev_timer deadline; /* armed once closing */
    struct ev_loop *loop;
    int fd;
    enum ws_phase phase;
    int dead;          /* finish at the next update() */
    int finished;      /* fd closed, on_close called */
    int peer_gone;     /* recv saw EOF or an error: nothing more to say */
    size_t read_round; /* bytes read in this loop iteration (fairness) */
    wslay_event_context_ptr ws; /* NULL while the connection is at rest */
    cd_ws_limits limits;
    cd_ws_callbacks cbs;
    void *arg;
    char *hs; /* the 101 response, written before any frame; freed once out */
    size_t hs_len, hs_off;
    char *pre; /* bytes the HTTP layer read past the request */
    size_t pre_len, pre_off;
    char *tail; /* the rest of a frame send_direct could not write whole */
    size_t tail_len, tail_off;
    cd_ws_track in; /* where the input given to wslay stands (ws_frame.c) */
    int close_deferred;     /* a normal close waiting for the messages queued before it */
    uint16_t close_code;
    char *close_reason; /* its reason (malloc'd), while deferred */
};

static void update(cd_ws_conn *c);

/* ---- wslay's context, made and freed ---- */

static const struct wslay_event_callbacks *wslay_cbs(void);

/* c's wslay context, made when it has none.  NULL without memory. */
static wslay_event_context_ptr ctx_of(cd_ws_conn *c)
{
    if (!c->ws && wslay_event_context_server_init(&c->ws, wslay_cbs(), c) == 0)
        wslay_event_config_set_max_recv_msg_length(c->ws, (uint64_t)c->limits.max_message);
    return c->ws;
}

/* Whether c's wslay context (if any) holds nothing to write and has seen
 * no close: a message may then be written directly. */
static int out_clean(const cd_ws_conn *c)
{
    return !c->ws || (wslay_event_get_read_enabled(c->ws) && wslay_event_get_write_enabled(c->ws) &&
                      !wslay_event_get_close_received(c->ws) && !wslay_event_get_close_sent(c->ws) &&
                      !wslay_event_want_write(c->ws) && wslay_event_get_queued_msg_count(c->ws) == 0);
}

/* Whether c is at rest: nothing of its input or output is inside wslay. */
static int at_rest(const cd_ws_conn *c)
{
    return c->phase == PH_OPEN && !c->dead && !c->close_deferred && cd_ws__track_rest(&c->in) &&
           c->pre_off == c->pre_len && out_clean(c);
}

/* Frees c's context when it is at rest (and the early bytes, once read). */
static void rest(cd_ws_conn *c)
{
    if (c->pre && c->pre_off == c->pre_len) {
        free(c->pre);
        c->pre = NULL;
        c->pre_len = c->pre_off = 0;
    }
    if (c->ws && at_rest(c)) {
        wslay_event_context_free(c->ws);
        c->ws = NULL;
    }
}

/* ---- wslay's I/O callbacks ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    cd_ws_conn *c = user;
    if (c->pre_off < c->pre_len) {
        size_t n = c->pre_len - c->pre_off < len ? c->pre_len - c->pre_off : len;
        memcpy(buf, c->pre + c->pre_off, n);
        c->pre_off += n;
        cd_ws__track(&c->in, buf, n);
        return (ssize_t)n;
    }
    /* Yield to the other peers now and then: the fd stays readable and
     * the (level-triggered) watcher brings us back next iteration. */
    if (c->read_round >= READ_BUDGET) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ssize_t n = recv(c->fd, buf, len, 0);
    if (n > 0) {
        c->read_round += (size_t)n;
        cd_ws__track(&c->in, buf, (size_t)n);
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    } else {
        c->peer_gone = 1; /* EOF or reset */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

/* Writes what is left of the 101 response.  Returns 1 when done, 0 when
 * the socket is full, -1 on error. */
static int write_handshake(cd_ws_conn *c)
{
    while (c->hs_off < c->hs_len) {
        ssize_t n = send(c->fd, c->hs + c->hs_off, c->hs_len - c->hs_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        c->hs_off += (size_t)n;
    }
    free(c->hs);
    c->hs = NULL;
    return 1;
}

/* Writes what is left of a frame send_direct began.  1 when done (the
 * tail freed), 0 when the socket is full, -1 on error. */
static int write_tail(cd_ws_conn *c)
{
    while (c->tail_off < c->tail_len) {
        ssize_t n = send(c->fd, c->tail + c->tail_off, c->tail_len - c->tail_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        c->tail_off += (size_t)n;
    }
    free(c->tail);
    c->tail = NULL;
    c->tail_len = c->tail_off = 0;
    return 1;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    cd_ws_conn *c = user;
    int hs = write_handshake(c);
    if (hs > 0)
        hs = write_tail(c); /* a frame begun by send_direct ends first */
    if (hs <= 0) {
        wslay_event_set_error(ctx, hs == 0 ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | (flags & WSLAY_MSG_MORE ? MSG_MORE : 0));
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* ---- closing ---- */

static void arm_deadline(cd_ws_conn *c)
{
    ev_timer_stop(c->loop, &c->deadline);
    ev_timer_set(&c->deadline, c->limits.close_grace, 0.);
    ev_timer_start(c->loop, &c->deadline);
}

void cd_ws_close(cd_ws_conn *c, uint16_t code, const char *reason)
{
    if (c->dead || c->phase >= PH_CLOSING)
        return;
    if (!ctx_of(c)) { /* no memory to say goodbye: just go (update() finishes it) */
        c->dead = 1;
        c->phase = PH_CLOSING;
        ev_io_start(c->loop, &c->wio);
        return;
    }
    /* wslay sends control frames before the messages queued: right for an
     * error (what is queued is moot) but a normal close ends a
     * conversation, so it waits for them (flush queues it), and for a
     * frame send_direct began. */
    size_t rlen = strnlen(reason, 123); /* a control frame's payload: the code and at most 123 bytes */
    if (code == CD_WS_NORMAL && (wslay_event_get_queued_msg_count(c->ws) > 0 || c->tail) &&
        (c->close_reason = malloc(rlen + 1)) != NULL) {
        c->close_deferred = 1;
        c->close_code = code;
        memcpy(c->close_reason, reason, rlen);
        c->close_reason[rlen] = '\0';
    } else if (wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, rlen) != 0) {
        /* It fails once wslay has queued a close of its own (the peer's
         * close, echoed): that one stands, and the connection goes. */
        c->dead = 1;
    }
    wslay_event_shutdown_read(c->ws);
    c->phase = PH_CLOSING;
    arm_deadline(c);
    ev_io_start(c->loop, &c->wio);
}

int cd_ws_closing(const cd_ws_conn *c)
{
    return c->dead || c->phase >= PH_CLOSING;
}

/* What the peer's output costs us: every message wslay holds for sending
 * (the owner's, and the pongs and close frames it queues by itself while
 * reading), payload plus bookkeeping (its message struct, the payload's
 * allocation, its queue entry: about QUEUED_MSG_COST bytes with malloc's
 * headers).  Counting the bookkeeping matters for control frames: an
 * empty ping costs its sender 6 bytes and us a whole queued pong. */
size_t cd_ws_queued(const cd_ws_conn *c)
{
    size_t tail = c->tail ? c->tail_len - c->tail_off + QUEUED_MSG_COST : 0;
    if (!c->ws)
        return tail;
    return tail + wslay_event_get_queued_msg_length(c->ws) + wslay_event_get_queued_msg_count(c->ws) * QUEUED_MSG_COST;
}

/* Whether adding `more` bytes (one more message) would take the queue past
 * max_send_queue. */
static int over_queue(const cd_ws_conn *c, size_t more)
{
    return cd_ws_queued(c) + more > c->limits.max_send_queue;
}

/* A message to a connection at rest, framed and written now (server
 * frames are not masked).  1 when it went (what the socket did not take
 * kept in tail), 0 when nothing was written (wslay queues it then), -1
 * when the connection is dead or out of memory. */
static int send_direct(cd_ws_conn *c, int binary, const char *msg, size_t len)
{
    uint8_t hdr[10];
    size_t hl = cd_ws__frame_head(hdr, binary, len);
    struct iovec iov[2] = {{hdr, hl}, {(void *)msg, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    size_t done = (size_t)n, total = hl + len;
    if (done == total)
        return 1;
    c->tail_len = total - done;
    c->tail_off = 0;
    if (!(c->tail = malloc(c->tail_len)))
        return -1; /* half a frame is on the wire: the connection cannot go on */
    size_t h = done < hl ? hl - done : 0; /* header bytes left */
    memcpy(c->tail, hdr + hl - h, h);
    memcpy(c->tail + h, msg + (done > hl ? done - hl : 0), c->tail_len - h);
    ev_io_start(c->loop, &c->wio);
    return 1;
}

int cd_ws_send(cd_ws_conn *c, int binary, const char *msg, size_t len)
{
    if (cd_ws_closing(c))
        return -EPIPE;
    if (over_queue(c, len + QUEUED_MSG_COST))
        return -ENOBUFS;
    if (c->hs_off == c->hs_len && !c->tail && out_clean(c)) {
        int d = send_direct(c, binary, msg, len);
        if (d < 0) {
            c->dead = 1;
            ev_io_start(c->loop, &c->wio); /* update() finishes it from the watcher */
            return -EPIPE;
        }
        if (d > 0)
            return 0;
    }
    if (!ctx_of(c))
        return -ENOMEM;
    struct wslay_event_msg m = {
        .opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
        .msg = (const uint8_t *)msg,
        .msg_length = len,
    };
    /* It fails once wslay has queued a close of its own (a protocol error it
     * found, or the peer's close echoed): the message is moot then, and the
     * close path goes on. */
    if (wslay_event_queue_msg(c->ws, &m) != 0)
        return -EPIPE;
    ev_io_start(c->loop, &c->wio);
    return 0;
}

/* ---- reading and writing ---- */

static void flush(cd_ws_conn *c)
{
    if (!c->dead && c->hs_off < c->hs_len && write_handshake(c) < 0)
        c->dead = 1;
    if (!c->dead && c->tail && c->hs_off == c->hs_len && write_tail(c) < 0)
        c->dead = 1;
    if (!c->dead && c->ws && wslay_event_want_write(c->ws) && wslay_event_send(c->ws) < 0)
        c->dead = 1;
    if (!c->dead && c->close_deferred && !c->tail && wslay_event_get_queued_msg_count(c->ws) == 0) {
        c->close_deferred = 0;
        if (wslay_event_queue_close(c->ws, c->close_code, (const uint8_t *)c->close_reason,
                                    strlen(c->close_reason)) != 0 ||
            wslay_event_send(c->ws) < 0)
            c->dead = 1;
        free(c->close_reason);
        c->close_reason = NULL;
    }
}

static void closing_by_itself(cd_ws_conn *c, int err)
{
    if (c->cbs.on_closing)
        c->cbs.on_closing(c->arg, err);
}

static void on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    cd_ws_conn *c = user;
    if (cd_ws_closing(c))
        return;
    /* wslay answers a close frame by echoing its code and reason, without
     * checking that the reason is UTF-8 (RFC 6455 5.5.1, 8.1).  A peer
     * that sends an invalid one has its connection failed instead (7.1.7:
     * the close frame is optional): nothing more is written, and the fd
     * goes.  Found by fuzz_events_ws. */
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->msg_length > 2 &&
        !cd_utf8_valid((const char *)arg->msg + 2, arg->msg_length - 2)) {
        wslay_event_shutdown_write(c->ws);
        c->phase = PH_CLOSING;
        c->dead = 1;
        closing_by_itself(c, -EILSEQ);
        return;
    }
    /* wslay has just queued a pong for a ping (or a close for a close):
     * that output counts like the owner's.  A peer that pings and never
     * reads is cut off here, one message past the limit, since this
     * callback runs for every message and closing stops the reading. */
    if (over_queue(c, 0)) {
        closing_by_itself(c, -ENOBUFS); /* the owner logs what it knows (the queue) first */
        cd_ws_close(c, CD_WS_POLICY_VIOLATION, "send queue full");
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        c->cbs.on_message(c->arg, arg->opcode == WSLAY_BINARY_FRAME, (const char *)arg->msg,
                          arg->msg_length);
    /* close, ping and pong frames are answered by wslay itself */
}

/* wslay_event_recv() failed although the peer is still there: its frame
 * parser met a frame it cannot even frame (a fragmented or oversized
 * control frame, a non-minimal length).  wslay then queues a close frame
 * without a status code; RFC 6455 wants 1002, and a peer deserves to
 * know.  When nothing was queued or half-sent before this read, the
 * output is at a frame boundary, so we can drop wslay's close and write a
 * 1002 close frame ourselves (4 header bytes and a short reason, on a
 * socket with nothing pending: a single send).  Otherwise wslay's own
 * close goes out after what is queued. */
static void frame_error(cd_ws_conn *c, int was_idle)
{
    static const char frame[] = "\x88\x0f\x03\xea"
                                "invalid frame";
    if (was_idle) {
        wslay_event_shutdown_write(c->ws);
        /* Best effort: a peer that cannot take 19 bytes gets no reason. */
        (void)!send(c->fd, frame, sizeof frame - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    c->phase = PH_CLOSING;
    arm_deadline(c);
    closing_by_itself(c, -EPROTO);
}

/* Feeds the peer's input to wslay (which calls on_msg_cb per message). */
static void do_read(cd_ws_conn *c)
{
    c->read_round = 0;
    if (!ctx_of(c)) {
        c->dead = 1; /* out of memory: the owner hears of it as a close */
        return;
    }
    int was_idle = !wslay_event_want_write(c->ws) && c->hs_off == c->hs_len && !c->tail;
    int r = wslay_event_recv(c->ws);
    if (r < 0 && (c->peer_gone || r == WSLAY_ERR_NOMEM || c->phase >= PH_CLOSING))
        c->dead = 1;
    else if (r < 0)
        frame_error(c, was_idle);
    /* Answer what this input produced (pongs, the owner's replies) now. */
    flush(c);
}

static void linger_read(cd_ws_conn *c)
{
    char buf[4096];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        c->dead = 1; /* EOF: the peer has read everything it will */
        return;
    }
}

/* Stops everything, closes the fd and tells the owner, who may free the
 * connection from on_close: nothing touches c afterwards. */
static void finish(cd_ws_conn *c)
{
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_timer_stop(c->loop, &c->deadline);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->finished = 1;
    c->cbs.on_close(c->arg);
}

/* Enters the linger: half-close, and discard the peer's input until EOF
 * or the deadline, so it reads our close frame instead of a reset. */
static void linger(cd_ws_conn *c)
{
    if ((c->ws && wslay_event_get_close_received(c->ws)) || shutdown(c->fd, SHUT_WR) < 0) {
        finish(c);
        return;
    }
    c->phase = PH_LINGER;
    ev_io_stop(c->loop, &c->wio);
    ev_io_start(c->loop, &c->rio);
    arm_deadline(c);
}

/* Finishes a connection marked dead or done, else points the watchers at
 * what wslay wants next.  The only place (with the deadline) that
 * finishes. */
static void update(cd_ws_conn *c)
{
    if (c->dead) {
        finish(c);
        return;
    }
    if (c->phase == PH_LINGER)
        return;
    rest(c);
    int want_r = c->ws ? wslay_event_want_read(c->ws) : c->phase == PH_OPEN;
    int want_w = (c->ws && wslay_event_want_write(c->ws)) || c->hs_off < c->hs_len || c->tail || c->close_deferred;
    if (!want_r && !want_w) {
        linger(c); /* the close handshake is over, or we gave up reading */
        return;
    }
    if (want_r)
        ev_io_start(c->loop, &c->rio);
    else
        ev_io_stop(c->loop, &c->rio);
    if (want_w)
        ev_io_start(c->loop, &c->wio);
    else
        ev_io_stop(c->loop, &c->wio);
}

static void rio_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    cd_ws_conn *c = io->data;
    if (c->phase == PH_LINGER) {
        linger_read(c);
        if (c->dead)
            finish(c);
        return;
    }
    do_read(c);
    update(c);
}

static void wio_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    cd_ws_conn *c = io->data;
    flush(c);
    update(c);
}

/* The close deadline: the peer had its chance to read the close frame. */
static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    finish(t->data);
}

/* ---- lifetime ---- */

static const struct wslay_event_callbacks *wslay_cbs(void)
{
    static const struct wslay_event_callbacks wcbs = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = on_msg_cb,
    };
    return &wcbs;
}

cd_ws_conn *cd_ws_new(struct ev_loop *loop, int fd, const char *accept, const char *pre, size_t pre_len,
                      const cd_ws_limits *limits, const cd_ws_callbacks *cbs, void *arg)
{
    static const char fmt[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n";
    cd_ws_conn *c = calloc(1, sizeof *c);
    char *copy = pre_len ? malloc(pre_len) : NULL;
    char *hs = malloc(sizeof fmt + 29);
    if (!c || (pre_len && !copy) || !hs) {
        close(fd);
        free(c);
        free(copy);
        free(hs);
        return NULL;
    }
    if (pre_len)
        memcpy(copy, pre, pre_len);
    c->pre = copy;
    c->pre_len = pre_len;
    c->loop = loop;
    c->fd = fd;
    c->limits = *limits;
    c->cbs = *cbs;
    c->arg = arg;
    c->hs = hs;
    c->hs_len = (size_t)snprintf(c->hs, sizeof fmt + 29, fmt, accept);
    ev_io_init(&c->rio, rio_cb, fd, EV_READ);
    ev_io_init(&c->wio, wio_cb, fd, EV_WRITE);
    ev_init(&c->deadline, deadline_cb);
    c->rio.data = c->wio.data = c->deadline.data = c;
    ev_io_start(loop, &c->rio);
    ev_io_start(loop, &c->wio); /* the 101 */
    /* The early bytes are read on the next iteration, from the read
     * watcher, so no callback runs before the owner has the connection. */
    if (pre_len)
        ev_feed_event(loop, &c->rio, EV_READ);
    return c;
}

void cd_ws_free(cd_ws_conn *c)
{
    if (!c)
        return;
    if (!c->finished) {
        /* One attempt, whatever state the connection is in (a close the
         * owner just queued, or the echo of the peer's): errors no longer
         * matter. */
        if (c->hs_off < c->hs_len)
            (void)write_handshake(c);
        if (c->tail && c->hs_off == c->hs_len)
            (void)write_tail(c);
        if (c->ws && !c->tail && wslay_event_want_write(c->ws))
            (void)wslay_event_send(c->ws);
        ev_io_stop(c->loop, &c->rio);
        ev_io_stop(c->loop, &c->wio);
        ev_timer_stop(c->loop, &c->deadline);
        close(c->fd);
    }
    if (c->ws)
        wslay_event_context_free(c->ws);
    free(c->pre);
    free(c->hs);
    free(c->tail);
    free(c->close_reason);
    free(c);
}
