/*
 * channel.c - see channel.h.
 */
#include "ipc/channel.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
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
    return cd_ipc_send_fd(fd, type, payload, len, -1);
}

/* One send of frame bytes; the first one that goes out carries passfd. */
static ssize_t send_some(int fd, const uint8_t *buf, size_t len, int *passfd)
{
    if (*passfd < 0)
        return send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), passfd, sizeof(int));
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0)
        *passfd = -1; /* it went with these bytes */
    return n;
}

long cd_ipc_read_fds(cd_ipc_decoder *d, int fd, int *fds, int max, int *nfds)
{
    *nfds = 0;
    compact(d);
    size_t room = sizeof d->buf - d->have;
    if (room == 0)
        return -ENOBUFS;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(8 * sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = d->buf + d->have, .iov_len = room};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (*nfds < max)
                fds[(*nfds)++] = got;
            else
                close(got);
        }
    }
    d->have += (size_t)n;
    return n;
}

int cd_ipc_send_fd(int fd, unsigned type, const void *payload, size_t len, int passfd)
{
    uint8_t stackbuf[CD_IPC_HEADER + 4096];
    uint8_t *frame = len + CD_IPC_HEADER <= sizeof stackbuf ? stackbuf : malloc(CD_IPC_HEADER + len);
    if (!frame)
        return -ENOMEM;
    int n = cd_ipc_encode(frame, CD_IPC_HEADER + len, type, payload, len);
    if (n < 0) {
        if (frame != stackbuf)
            free(frame);
        return n;
    }
    int rc = 0;
    size_t off = 0;
    int waits = 0;
    while (off < (size_t)n) {
        ssize_t w = send_some(fd, frame + off, (size_t)n - off, &passfd);
        if (w >= 0) {
            off += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = -errno;
            break;
        }
        /* A frame must never be left half-written: wait briefly for room. */
        if (++waits > 10) {
            rc = -EAGAIN;
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 10);
    }
    if (frame != stackbuf)
        free(frame);
    return rc;
}
