/*
 * clusterd/websocket.h - the server side of a WebSocket (RFC 6455) on a
 * libev loop: the opening handshake's checks, and the connection, wslay
 * behind a few functions in the shape of h2o's websocket.h (public,
 * installed; worker, loop thread).
 *
 * Not in the binary: the clusterd binary does not link wslay, so a worker
 * whose services do not speak WebSocket maps no such library.  The code
 * (http/websocket.c) is compiled into each module that uses it, linked with
 * wslay and libcrypto: clusterd's build does so for the events module.  It
 * is not installed as a library (yet): a module built out of tree that
 * wants these functions compiles that one file in the same way.
 *
 * A service checks an upgrade request with cd_ws_check_handshake, takes
 * the connection from the HTTP layer (cd_http_upgrade in clusterd/request.h:
 * the fd and the bytes the client sent after its request) and passes them
 * to cd_ws_new with the Sec-WebSocket-Accept the check computed.  From
 * then on this unit does the rest: it writes the 101, then frames over the
 * non-blocking fd (masking rules, fragmentation, ping/pong, the close
 * handshake, the largest message), driven by a read and a write watcher
 * that follow what wslay wants.  It knows nothing of what the messages
 * mean: whole text and binary messages go to on_message.
 *
 * Sending.  A message is framed once into a cd_ws_frame (header and
 * payload in one refcounted allocation); a broadcast makes one and hands
 * it to every recipient with cd_ws_send_frame, each of which keeps a
 * reference, not a copy, until its socket has taken the frame.  A
 * connection's frames wait in its own queue and leave at the end of the
 * loop iteration (an ev_prepare of its own: no extra wakeup, no
 * epoll_ctl), all of them in one sendmsg of up to IOV_MAX pieces, so a
 * client that got k messages in one iteration costs one syscall, not k.
 * wslay is used for reading and for the control frames it answers by
 * itself (pongs, the close); its output goes between whole frames.
 *
 * Backpressure.  Everything sent to the peer counts against
 * limits.max_send_queue: the owner's frames (their wire length each, with
 * a per-message allowance for the bookkeeping), and the pongs and close
 * frames wslay queues by itself while reading (cd_ws_queued), so a peer
 * that pings and never reads is bounded like one that reads slowly.  Past
 * the limit the connection is closed with 1008 "send queue full", stops
 * being read, and is dropped after limits.close_grace whether or not the
 * peer reads the close frame.  Reading is fair: at most READ_BUDGET bytes
 * per loop iteration from one peer.
 *
 * Closing.  After the close handshake (either side's), the write side is
 * shut down and the socket drained until EOF, bounded by close_grace, so
 * the peer reads the close frame instead of a reset (the linger).
 *
 * Lifetime.  The owner keeps the connection (pointer) until on_close, and
 * may free it with cd_ws_free at any time but from inside on_message or
 * on_closing.  Callbacks run from this unit's watchers only, never from
 * inside a cd_ws_* call of the owner's, so the owner may call cd_ws_send /
 * cd_ws_close from anywhere (a broadcast walking a list of connections
 * included) without the connection or its owner's state going away under
 * it.
 *
 * Functions return 0 or -errno and never log; the owner decides.
 */
#ifndef CLUSTERD_WEBSOCKET_H
#define CLUSTERD_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "clusterd/request.h"

struct ev_loop;
typedef struct cd_ws_conn cd_ws_conn;

/* ---- The opening handshake (RFC 6455 4.2) ---- */

/* Checks that req is a WebSocket opening handshake (a GET with Upgrade:
 * websocket, Connection: upgrade, Sec-WebSocket-Version: 13 and a
 * well-formed Sec-WebSocket-Key) and writes its Sec-WebSocket-Accept into
 * accept.  Returns NULL, or the reason to refuse the request with (400). */
const char *cd_ws_check_handshake(cd_request *req, char accept[29]);
/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA1(key + GUID)),
 * written NUL-terminated into out (29 bytes).  The key must be the base64
 * form of 16 bytes (24 characters), as RFC 6455 4.1 demands.  Returns 0 or
 * -EINVAL. */
int cd_ws_accept_key(const char *key, char out[29]);
/* Whether the comma-separated header value (Connection, Upgrade) contains
 * token, case-insensitively. */
int cd_ws_header_has_token(const char *value, const char *token);

/* ---- The connection ---- */

/* Close codes (RFC 6455 7.4.1) the owner is likely to send. */
enum {
    CD_WS_NORMAL = 1000,
    CD_WS_GOING_AWAY = 1001,
    CD_WS_PROTOCOL_ERROR = 1002,
    CD_WS_UNSUPPORTED_DATA = 1003,
    CD_WS_POLICY_VIOLATION = 1008,
    CD_WS_INTERNAL_ERROR = 1011,
};

typedef struct cd_ws_limits {
    size_t max_message;    /* largest message taken from the peer (longer: 1009) */
    size_t max_send_queue; /* bytes queued to the peer, bookkeeping included (cd_ws_queued) */
    double close_grace;    /* seconds a closing peer gets to read our close frame */
} cd_ws_limits;

typedef struct cd_ws_callbacks {
    /* One whole message from the peer (binary: 0 text, 1 binary).  Text
     * is not checked for UTF-8 here: the owner checks what it parses.
     * Not called once the connection is closing. */
    void (*on_message)(void *arg, int binary, const char *msg, size_t len);
    /* The connection started closing on this side without the owner
     * asking: err -EPROTO, the peer broke the framing (a 1002 close goes
     * out); -EILSEQ, it sent a close reason that is not UTF-8 (dropped
     * without a close frame: RFC 6455 7.1.7); -ENOBUFS, the pongs and closes wslay queued by itself took the
     * queue past max_send_queue (called before 1008 "send queue full" is
     * queued, so cd_ws_queued still tells what overflowed).  From
     * now on nothing is delivered and sends are dropped.  (A peer that
     * goes away, or closes, leads to on_close without this.)  May be NULL. */
    void (*on_closing)(void *arg, int err);
    /* The connection is over: its fd is closed and its watchers stopped.
     * The owner frees it (cd_ws_free), here or later, and forgets it. */
    void (*on_close)(void *arg);
} cd_ws_callbacks;

/* Takes over fd (non-blocking, an upgraded connection; closed on failure)
 * on loop.  Queues the 101 Switching Protocols with Sec-WebSocket-Accept
 * `accept` (cd_ws_check_handshake computes it) ahead of any frame, and
 * takes pre[0, pre_len) (copied: bytes the HTTP layer read past the
 * request) as the first input, read on the next loop iteration.  limits
 * and cbs are copied; arg is passed to every callback.  Returns the
 * connection, or NULL (-ENOMEM: the fd is closed). */
cd_ws_conn *cd_ws_new(struct ev_loop *loop, int fd, const char *accept, const char *pre, size_t pre_len,
                      const cd_ws_limits *limits, const cd_ws_callbacks *cbs, void *arg);

/* ---- Frames: a message framed once, shared by many connections ---- */

typedef struct cd_ws_frame cd_ws_frame;

/* A server message (binary: 0 text, 1 binary; unmasked, final) framed
 * into one allocation with one reference, the caller's.  msg is copied.
 * NULL without memory. */
cd_ws_frame *cd_ws_frame_new(int binary, const void *msg, size_t len);
/* Takes one more reference; returns f. */
cd_ws_frame *cd_ws_frame_ref(cd_ws_frame *f);
/* Drops one reference; the last frees the frame.  NULL is fine. */
void cd_ws_frame_unref(cd_ws_frame *f);
/* Its length on the wire (header and payload). */
size_t cd_ws_frame_len(const cd_ws_frame *f);

/* Queues frame f to the peer: the connection takes its own reference (the
 * caller keeps its own, and may hand f to other connections).  It leaves
 * with the connection's other pending frames at the end of the loop
 * iteration, or when the socket takes more.  Returns 0; -EPIPE when the
 * connection is closing (dropped); -ENOBUFS when it would take the queue
 * past max_send_queue (with its bookkeeping): nothing is queued, and the
 * caller decides (a peer that does not keep up is usually closed:
 * cd_ws_close 1008 "send queue full"); -ENOMEM. */
int cd_ws_send_frame(cd_ws_conn *ws, cd_ws_frame *f);

/* One message to one connection: cd_ws_frame_new, cd_ws_send_frame and
 * the unref in one call; the same returns (-ENOMEM without memory for
 * the frame). */
int cd_ws_send(cd_ws_conn *ws, int binary, const char *msg, size_t len);

/* Starts the close handshake with code and reason (at most 123 bytes),
 * stops reading the peer, and arms the deadline (close_grace) after which
 * the fd goes whatever the peer does; on_close follows.  A normal close
 * (1000) goes after the messages queued before it; any other code goes
 * first (what is queued is moot).  Does nothing when the connection is
 * already closing. */
void cd_ws_close(cd_ws_conn *ws, uint16_t code, const char *reason);

/* Bytes queued to the peer, with the bookkeeping per message (frames
 * shared with other connections count whole here too): what
 * max_send_queue bounds. */
size_t cd_ws_queued(const cd_ws_conn *ws);

/* Whether the connection is closing (or closed): sends are dropped. */
int cd_ws_closing(const cd_ws_conn *ws);

/* Frees the connection now: writes what the socket takes of what is
 * queued (one non-blocking attempt: a close frame queued just before gets
 * its chance), closes the fd, stops the watchers.  No callback runs.
 * NULL is fine. */
void cd_ws_free(cd_ws_conn *ws);

#endif
