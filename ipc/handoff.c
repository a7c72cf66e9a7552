/*
 * handoff.c - the payloads of the two channel messages that carry a
 * connection (CD_MSG_HANDOFF, CD_MSG_CONN; ipc/proto.h), and their send
 * (master and workers, loop thread).
 *
 * A sticky hand-off moves a connection, with the bytes already read from
 * it, from the worker that accepted it through the master to the worker
 * that owns its session.  Neither process may wait for the other on the
 * way: a full channel means "not now", so the send here tries once and
 * says -EAGAIN when nothing went out, and the deciding layer chooses (the
 * worker serves the request itself, the master drops the connection).
 * The frame goes out with sendmsg and an iovec (header, the 4-byte word,
 * the bytes), so the bytes are not copied into a frame first.
 *
 * The decoders are what a process runs on what the other sent; they are
 * fuzzed with the channel framing (tests/fuzz/fuzz_channel.c).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ipc/channel.h"
#include "ipc/proto.h"

int cd_ipc_conn_decode(const uint8_t *p, size_t len, unsigned *flags, const uint8_t **bytes, size_t *nbytes)
{
    *flags = 0;
    *bytes = NULL;
    *nbytes = 0;
    if (len == 0)
        return 0; /* a connection the master accepted: nothing read yet */
    if (len < sizeof(uint32_t))
        return -EPROTO;
    uint32_t f;
    memcpy(&f, p, sizeof f);
    if (f & ~CD_CONN_MOVED)
        return -EPROTO;
    *flags = f;
    *bytes = p + sizeof f;
    *nbytes = len - sizeof f;
    return 0;
}

int cd_ipc_handoff_decode(const uint8_t *p, size_t len, uint32_t *to, const uint8_t **bytes, size_t *nbytes)
{
    *to = 0;
    *bytes = NULL;
    *nbytes = 0;
    if (len < sizeof(uint32_t))
        return -EPROTO;
    memcpy(to, p, sizeof *to);
    if (*to == 0)
        return -EPROTO;
    *bytes = p + sizeof *to;
    *nbytes = len - sizeof *to;
    return 0;
}

/* The rest of a frame that went out in part: it must not stay half-sent. */
static int finish(int fd, struct iovec *iov, int n, size_t skip)
{
    for (int waits = 0;;) {
        while (n > 0 && skip >= iov->iov_len) {
            skip -= iov->iov_len;
            iov++;
            n--;
        }
        if (n == 0)
            return 0;
        iov->iov_base = (char *)iov->iov_base + skip;
        iov->iov_len -= skip;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0) {
            skip = (size_t)w;
            continue;
        }
        skip = 0;
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || ++waits > 10)
            return -errno;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 10);
    }
}

int cd_ipc_send_conn(int fd, unsigned type, uint32_t word, const void *data, size_t dlen, int passfd)
{
    size_t len = sizeof word + dlen;
    if (len > CD_IPC_MAX_PAYLOAD)
        return -EMSGSIZE;
    uint8_t head[CD_IPC_HEADER];
    int n = cd_ipc_encode(head, sizeof head, type, NULL, 0);
    if (n < 0)
        return n;
    uint32_t l32 = (uint32_t)len; /* the header's length field (channel.c's layout) */
    memcpy(head + 4, &l32, sizeof l32);
    struct iovec iov[3] = {{head, sizeof head}, {&word, sizeof word}, {(void *)data, dlen}};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = dlen ? 3 : 2, .msg_control = ctl.buf,
                        .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &passfd, sizeof passfd);
    ssize_t w;
    do
        w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return finish(fd, iov, (int)mh.msg_iovlen, (size_t)w);
}
