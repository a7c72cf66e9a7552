/*
 * ws_frame.h - what websocket.c needs of ws_frame.c: the frame header of
 * a server message, and following the frame boundaries of a client's
 * input (both compiled into the modules with websocket.c).
 */
#ifndef CD_HTTP_WS_FRAME_H
#define CD_HTTP_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

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
