/*
 * channel.c - see channel.h.
 */
#include "ipc/channel.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct frame_header {
    uint16_t magic;
    uint16_t type;
    uint32_t len;
} frame_header;

_Static_assert(sizeof(frame_header) == CD_IPC_HEADER, "header is 8 bytes");

int cd_ipc_encode(uint8_t *out, size_t outlen, unsigned type, const void *payload, size_t len)
{
    if (len > CD_IPC_MAX_PAYLOAD || outlen < CD_IPC_HEADER + len)
        return -EMSGSIZE;
    frame_header h = {.magic = CD_IPC_MAGIC, .type = (uint16_t)type, .len = (uint32_t)len};
    memcpy(out, &h, sizeof h);
    if (len)
        memcpy(out + CD_IPC_HEADER, payload, len);
    return (int)(CD_IPC_HEADER + len);
}

/* Moves unconsumed bytes to the front so there is room to read. */
static void compact(cd_ipc_decoder *d)
{
    if (d->consumed == 0)
        return;
    memmove(d->buf, d->buf + d->consumed, d->have - d->consumed);
    d->have -= d->consumed;
    d->consumed = 0;
}

size_t cd_ipc_feed(cd_ipc_decoder *d, const void *data, size_t len)
{
    compact(d);
    size_t room = sizeof d->buf - d->have;
    if (len > room)
        len = room;
    memcpy(d->buf + d->have, data, len);
    d->have += len;
    return len;
}

long cd_ipc_read(cd_ipc_decoder *d, int fd)
{
    compact(d);
    size_t room = sizeof d->buf - d->have;
    if (room == 0)
        return -ENOBUFS; /* cannot happen: a full buffer holds a whole frame */
    ssize_t n;
    do
        n = read(fd, d->buf + d->have, room);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    d->have += (size_t)n;
    return n;
}

int cd_ipc_next(cd_ipc_decoder *d, cd_ipc_msg *msg)
{
    size_t avail = d->have - d->consumed;
    if (avail < CD_IPC_HEADER)
        return 0;
    frame_header h;
    memcpy(&h, d->buf + d->consumed, sizeof h);
    if (h.magic != CD_IPC_MAGIC)
        return -EPROTO;
    if (h.len > CD_IPC_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (avail < CD_IPC_HEADER + h.len)
        return 0;
    msg->type = h.type;
    msg->payload = d->buf + d->consumed + CD_IPC_HEADER;
    msg->len = h.len;
    d->consumed += CD_IPC_HEADER + h.len;
    return 1;
}

int cd_ipc_send(int fd, unsigned type, const void *payload, size_t len)
{
    uint8_t frame[CD_IPC_HEADER + 1024];
    if (len > sizeof frame - CD_IPC_HEADER)
        return -EMSGSIZE; /* control messages are small by design */
    int n = cd_ipc_encode(frame, sizeof frame, type, payload, len);
    if (n < 0)
        return n;
    size_t off = 0;
    int waits = 0;
    while (off < (size_t)n) {
        ssize_t w = send(fd, frame + off, (size_t)n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0) {
            off += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        /* A frame must never be left half-written: wait briefly for room. */
        if (++waits > 10)
            return -EAGAIN;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 10);
    }
    return 0;
}
