/*
 * websocket.c - the server side of a WebSocket: one connection over wslay
 * on a libev loop (worker, loop thread; the contract is in the public
 * clusterd/websocket.h; the opening handshake's checks and the framing
 * this file does itself are in ws_frame.c).
 *
 * wslay reads: it parses and checks the client's frames, and answers
 * pings and closes itself.  What the owner sends does not go through
 * wslay: server frames are unmasked and need no state beyond their header,
 * so a message is framed once (cd_ws_frame, ws_frame.c) and every
 * recipient queues a reference to it (the out queue, a ring of frames);
 * wslay_event_queue_msg would copy the payload per connection, and
 * wslay_event_queue_fragmented_msg, which could read a shared buffer,
 * still allocates per message and hands header and payload to the send
 * callback apart (two syscalls a frame, nothing gathered across frames).
 * A connection's queue is written at the end of the loop iteration (its
 * own ev_prepare, started by the first frame queued), in one sendmsg of
 * up to IOV_MAX frames: a client that got several broadcasts in one
 * iteration costs one syscall, and an idle one still gets its frame in
 * the same iteration with no epoll_ctl nor wakeup; only a socket that is
 * full makes it wait for the write watcher.  The 101 response is the
 * queue's first entry, so nothing can overtake it.  wslay's own output
 * (pongs, the close) goes between whole frames (flush()): a frame begun
 * ends first, then wslay's, then the queue; after a close of ours has
 * gone, what is still queued is dropped (an error close goes first, a
 * normal one waits for the queue: cd_ws_close).
 *
 * Two ev_io watchers follow what wslay wants and whether the socket took
 * everything (update()), and a timer bounds the close: once closing, the
 * fd goes after close_grace whatever the peer does.
 *
 * Memory: wslay's context is 8.8 KiB (its frame buffers), so an idle
 * connection holds none.  It is made when bytes arrive (do_read) or a
 * message must wait for the socket, and freed again (update) once the
 * connection is back at rest: open, nothing of wslay's output pending,
 * and the input at a frame boundary outside a fragmented message, which
 * cd_ws__track (ws_frame.c) follows from the bytes wslay is given.  The
 * owner's frames never need the context, and the out queue's ring is
 * freed whenever it empties.  So an idle client costs its cd_ws_conn and
 * the kernel's socket, and a broadcast to many clients makes no context
 * at all.
 *
 * A connection is finished (fd closed, on_close) only from its own
 * watchers' callbacks (not the ev_prepare's: see out_cb), never from
 * inside a wslay callback or a cd_ws_*
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
#include <unistd.h>
#include <wslay/wslay.h>

#include "clusterd/text.h"
#include "ws_frame.h"

/* ---- the connection ---- */

#define READ_BUDGET (256 * 1024) /* bytes read from one peer per loop iteration */
#define QUEUED_MSG_COST 128      /* bytes of bookkeeping per message wslay queues (see cd_ws_queued) */
#define QUEUED_REF_COST 64       /* per frame in the out queue: its slot, and the frame's own header when unshared */

enum ws_phase {
    PH_OPEN,    /* messages flow */
    PH_CLOSING, /* our close frame is queued (or we gave up): waiting for it to go out */
    PH_LINGER,  /* write side shut; draining until EOF or the deadline */
};

struct cd_ws_conn {
    ev_io rio, wio;
    ev_timer deadline; /* armed once closing */
    ev_prepare out;    /* writes the out queue at the end of this loop iteration */
    struct ev_loop *loop;
    int fd;
    uint8_t phase;          /* enum ws_phase */
    uint8_t dead;           /* finish at the next update() */
    uint8_t finished;       /* fd closed, on_close called */
    uint8_t peer_gone;      /* recv saw EOF or an error: nothing more to say */
    uint8_t close_deferred; /* a normal close waiting for the frames queued before it */
    uint16_t close_code;
    uint32_t read_round; /* bytes read in this loop iteration (fairness) */
    wslay_event_context_ptr ws; /* NULL while the connection is at rest */
    cd_ws_limits limits;
    cd_ws_callbacks cbs;
    void *arg;
    cd_ws_outq q; /* frames to write, the 101 first (ws_frame.c) */
    char *pre; /* bytes the HTTP layer read past the request */
    size_t pre_len, pre_off;
    cd_ws_track in;     /* where the input given to wslay stands (ws_frame.c) */
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

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    cd_ws_conn *c = user;
    if (c->q.raw || c->q.off) { /* the 101, or a frame begun, ends first (flush() sees to it) */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
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
    /* A close goes before the frames queued (flush(), after a frame
     * begun): right for an error (what is queued is moot) but a normal
     * close ends a conversation, so it waits for them (flush queues it). */
    size_t rlen = strnlen(reason, 123); /* a control frame's payload: the code and at most 123 bytes */
    if (code == CD_WS_NORMAL && c->q.n > c->q.raw &&
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

/* What the peer's output costs us: the owner's frames not written yet
 * (whole, even when shared: the peer holds them) with QUEUED_REF_COST
 * each, and every message wslay holds for sending (the pongs and close
 * frames it queues by itself while reading), payload plus bookkeeping (its
 * message struct, the payload's allocation, its queue entry: about
 * QUEUED_MSG_COST bytes with malloc's headers).  Counting the bookkeeping
 * matters for control frames: an empty ping costs its sender 6 bytes and
 * us a whole queued pong. */
size_t cd_ws_queued(const cd_ws_conn *c)
{
    size_t own = c->q.bytes + (size_t)(c->q.n - c->q.raw) * QUEUED_REF_COST;
    if (!c->ws)
        return own;
    return own + wslay_event_get_queued_msg_length(c->ws) + wslay_event_get_queued_msg_count(c->ws) * QUEUED_MSG_COST;
}

/* Whether adding `more` bytes (one more message) would take the queue past
 * max_send_queue. */
static int over_queue(const cd_ws_conn *c, size_t more)
{
    return cd_ws_queued(c) + more > c->limits.max_send_queue;
}

int cd_ws_send_frame(cd_ws_conn *c, cd_ws_frame *f)
{
    /* Once wslay has queued a close of its own (a protocol error it found,
     * or the peer's close echoed) a message is moot, and the close path
     * goes on. */
    if (cd_ws_closing(c) || (c->ws && (wslay_event_get_close_received(c->ws) || wslay_event_get_close_sent(c->ws) ||
                                       !wslay_event_get_write_enabled(c->ws))))
        return -EPIPE;
    if (over_queue(c, f->len + QUEUED_REF_COST))
        return -ENOBUFS;
    if (cd_ws__outq_push(&c->q, f) < 0)
        return -ENOMEM;
    /* Out at the end of this iteration with the rest; a full socket's
     * write watcher is already on. */
    if (!ev_is_active(&c->wio))
        ev_prepare_start(c->loop, &c->out);
    return 0;
}

int cd_ws_send(cd_ws_conn *c, int binary, const char *msg, size_t len)
{
    if (cd_ws_closing(c))
        return -EPIPE;
    cd_ws_frame *f = cd_ws_frame_new(binary, msg, len);
    if (!f)
        return -ENOMEM;
    int rc = cd_ws_send_frame(c, f);
    cd_ws_frame_unref(f);
    return rc;
}

/* ---- reading and writing ---- */

/* Writes what the socket takes, whole frames interleaved: the 101 or a
 * frame begun ends first, then wslay's own output (pongs, a close), then
 * the out queue, then a normal close that waited for it. */
static void flush(cd_ws_conn *c)
{
    if (c->dead)
        return;
    int r = 1;
    int wslay_out = c->ws && wslay_event_want_write(c->ws);
    if (wslay_out && c->q.n && (c->q.raw || c->q.off))
        r = cd_ws__outq_write(&c->q, c->fd, 1);
    if (r > 0 && wslay_out) {
        if (wslay_event_send(c->ws) < 0)
            r = -1;
        else if (wslay_event_want_write(c->ws))
            r = 0; /* the socket is full */
    }
    if (r > 0 && c->ws && wslay_event_get_close_sent(c->ws))
        cd_ws__outq_drop(&c->q); /* nothing goes after a close */
    else if (r > 0 && c->q.n)
        r = cd_ws__outq_write(&c->q, c->fd, UINT32_MAX);
    if (r < 0)
        c->dead = 1;
    if (r > 0 && c->close_deferred && !c->q.n) {
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
 * socket with nothing pending: a single send), after the replies the
 * owner queued while this input was read, if the socket takes them whole
 * (else the peer gets no reason; nothing may follow a close).  Otherwise
 * wslay's own close goes out after the frame being written. */
static void frame_error(cd_ws_conn *c, int was_idle)
{
    static const char frame[] = "\x88\x0f\x03\xea"
                                "invalid frame";
    if (was_idle) {
        wslay_event_shutdown_write(c->ws);
        /* Best effort: a peer that cannot take 19 bytes gets no reason. */
        if (cd_ws__outq_write(&c->q, c->fd, UINT32_MAX) > 0)
            (void)!send(c->fd, frame, sizeof frame - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        cd_ws__outq_drop(&c->q);
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
    int was_idle = !wslay_event_want_write(c->ws) && !c->q.n;
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
    ev_prepare_stop(c->loop, &c->out);
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
    int want_w = (c->ws && wslay_event_want_write(c->ws)) || c->q.n || c->close_deferred;
    if (!want_r && !want_w) {
        ev_prepare_stop(c->loop, &c->out);
        linger(c); /* the close handshake is over, or we gave up reading */
        return;
    }
    if (want_r)
        ev_io_start(c->loop, &c->rio);
    else
        ev_io_stop(c->loop, &c->rio);
    if (!c->q.n)
        ev_prepare_stop(c->loop, &c->out);
    /* Frames queued in this iteration go from the ev_prepare; the write
     * watcher is for a socket that did not take everything. */
    if (want_w && !ev_is_active(&c->out))
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

/* The end of the loop iteration: the frames queued in it go, together.
 * No callback of the owner's runs from here (an on_close here could queue
 * frames to others after their prepare ran, and the loop would block with
 * them queued): what is left to do (a socket that did not take
 * everything, a close, a connection gone bad) goes to the write watcher,
 * or, to finish it, to the deadline (due at once). */
static void out_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    cd_ws_conn *c = w->data;
    ev_prepare_stop(loop, w);
    flush(c);
    if (c->dead) {
        ev_timer_stop(loop, &c->deadline);
        ev_timer_set(&c->deadline, 0., 0.);
        ev_timer_start(loop, &c->deadline);
    } else if (c->q.n || c->phase != PH_OPEN || c->close_deferred || (c->ws && wslay_event_want_write(c->ws))) {
        ev_io_start(loop, &c->wio);
    } else {
        rest(c);
    }
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
    char hs[sizeof fmt + 29];
    int hl = snprintf(hs, sizeof hs, fmt, accept);
    cd_ws_conn *c = calloc(1, sizeof *c);
    char *copy = pre_len ? malloc(pre_len) : NULL;
    struct cd_ws_frame *head = cd_ws__frame_raw(hs, (size_t)hl);
    if (!c || (pre_len && !copy) || !head || cd_ws__outq_push(&c->q, head) < 0) {
        close(fd);
        if (c)
            cd_ws__outq_drop(&c->q);
        free(c);
        free(copy);
        cd_ws_frame_unref(head);
        return NULL;
    }
    cd_ws_frame_unref(head); /* the queue holds it */
    c->q.raw = 1; /* not the owner's: max_send_queue does not count it */
    c->q.bytes = 0;
    if (pre_len)
        memcpy(copy, pre, pre_len);
    c->pre = copy;
    c->pre_len = pre_len;
    c->loop = loop;
    c->fd = fd;
    c->limits = *limits;
    c->cbs = *cbs;
    c->arg = arg;
    ev_io_init(&c->rio, rio_cb, fd, EV_READ);
    ev_io_init(&c->wio, wio_cb, fd, EV_WRITE);
    ev_init(&c->deadline, deadline_cb);
    ev_prepare_init(&c->out, out_cb);
    c->rio.data = c->wio.data = c->deadline.data = c->out.data = c;
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
        flush(c);
        ev_io_stop(c->loop, &c->rio);
        ev_io_stop(c->loop, &c->wio);
        ev_timer_stop(c->loop, &c->deadline);
        ev_prepare_stop(c->loop, &c->out);
        close(c->fd);
    }
    if (c->ws)
        wslay_event_context_free(c->ws);
    c->q.raw = 0; /* everything goes */
    cd_ws__outq_drop(&c->q);
    free(c->pre);
    free(c->close_reason);
    free(c);
}
