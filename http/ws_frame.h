/*
 * ws_frame.h - what websocket.c needs of ws_frame.c: the frame header of
 * a server message, the shared frame's layout (cd_ws_frame, refcounted:
 * clusterd/websocket.h), and following the frame boundaries of a client's
 * input (all compiled into the modules with websocket.c).
 */
#ifndef CD_HTTP_WS_FRAME_H
#define CD_HTTP_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* A server frame, header and payload in one allocation, shared by every
 * connection that has it queued (each holds a reference).  Loop thread
 * only: the count is not atomic. */
struct cd_ws_frame {
    uint32_t refs;
    size_t len;      /* bytes on the wire: data[0, len) */
    uint8_t data[];
};

/* Raw bytes to write as they are (the 101 response), in a frame of one
 * reference.  NULL without memory. */
struct cd_ws_frame *cd_ws__frame_raw(const void *bytes, size_t len);

/* A connection's out queue: a ring of frame references, written with
 * sendmsg straight from the frames.  Zeroed: empty (the ring is allocated
 * by the first push and freed whenever the queue empties). */
typedef struct cd_ws_outq {
    struct cd_ws_frame **ring;
    uint32_t head, n, cap; /* the first slot, the frames queued, the ring's size (a power of 2) */
    uint8_t raw;           /* the first frame is raw bytes (the 101), not counted in bytes */
    size_t off;            /* bytes of the first frame already written */
    size_t bytes;          /* bytes queued not yet written, but the raw head's */
} cd_ws_outq;

/* Appends f, taking a reference of its own.  0 or -ENOMEM. */
int cd_ws__outq_push(cd_ws_outq *q, struct cd_ws_frame *f);
/* Drops every frame but a raw head (after a close they are moot). */
void cd_ws__outq_drop(cd_ws_outq *q);
/* Writes up to max frames to fd, up to 1024 (IOV_MAX) per sendmsg, what
 * the socket takes.  1 when they are out, 0 when the socket is full, -1
 * on an error (errno). */
int cd_ws__outq_write(cd_ws_outq *q, int fd, uint32_t max);

/* Where a client's input stands: the frame header being read (hdr_len
 * bytes of it), the payload bytes still to come, whether a fragmented
 * message is under way.  Zeroed: before the first frame. */
typedef struct cd_ws_track {
    uint64_t left;
    uint8_t hdr[14], hdr_len, frag;
} cd_ws_track;

/* Follows n more bytes of input. */
void cd_ws__track(cd_ws_track *t, const uint8_t *p, size_t n);
/* Whether the input so far ends at a message boundary. */
static inline int cd_ws__track_rest(const cd_ws_track *t)
{
    return !t->left && !t->hdr_len && !t->frag;
}
/* The header of an unmasked, final frame of len payload bytes (text, or
 * binary): its length, 2 to 10 bytes. */
size_t cd_ws__frame_head(uint8_t out[10], int binary, size_t len);

#endif
