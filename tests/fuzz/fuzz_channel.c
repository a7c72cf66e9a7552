/*
 * fuzz_channel.c - the master<->worker channel (ipc/channel.c) as its
 * receiver sees it.  The input is the byte stream that arrives on the
 * socketpair; it is written in chunks of fuzz-chosen sizes and read back
 * with cd_ipc_read + cd_ipc_next, the loop master.c and worker.c run.
 *
 * Input: two bytes seed the chunk sizes (and whether file descriptors
 * ride along, as the master hands connections to a worker), the rest is the
 * stream.
 * Invariants, checked against the stream itself: a frame is delivered only
 * once all its bytes have arrived, with the header's type and length
 * (never over CD_IPC_MAX_PAYLOAD) and exactly the payload bytes that
 * follow it; a frame still missing bytes is not delivered; bad magic and
 * oversized lengths are reported (and keep being reported: the stream is
 * no longer trusted); the decoder never runs out of room on a good stream;
 * EOF reads as 0.  With descriptors, the worker's cd_ipc_read_fds reads
 * (keeping a fuzz-chosen number, as when its table is nearly full): each
 * one taken is open and close-on-exec, never more than were sent, and none
 * is left open (the rest are closed).  Every frame delivered also goes
 * through the decoders of the payloads that carry a connection
 * (ipc/handoff.c: CONN's flags and bytes, HANDOFF's worker id and bytes),
 * which answer 0 with bytes inside the payload or -EPROTO.  Then round
 * trips: the stream as one payload through cd_ipc_send (or cd_ipc_send_fd)
 * and back, and as the bytes of a CONN and a HANDOFF through
 * cd_ipc_send_conn (with its descriptor), decoded back to the same word
 * and bytes.  No crash, leak or out-of-bounds access.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/channel.h"
#include "ipc/proto.h"

static cd_ipc_decoder dec; /* 64 KiB: reset (have, consumed) for each input */
static int passfd = -1;    /* what rides along: /dev/null, opened once */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    passfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return passfd < 0 ? -1 : 0;
}

/* Sends len bytes with passfd attached. */
static ssize_t send_with_fd(int fd, const uint8_t *buf, size_t len)
{
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
    memcpy(CMSG_DATA(c), &passfd, sizeof(int));
    return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Reads like the worker when fds is set (keeping at most max), else like
 * the master.  Checks and closes what came along; returns what the read
 * returned and adds the descriptors taken to *taken. */
static long read_some(int fd, int with_fds, int max, int *taken)
{
    if (!with_fds)
        return cd_ipc_read(&dec, fd);
    int fds[4], n = -1;
    long r = cd_ipc_read_fds(&dec, fd, fds, max, &n);
    if (n < 0 || n > max)
        abort();
    for (int i = 0; i < n; i++) {
        int fl = fcntl(fds[i], F_GETFD);
        if (fl < 0 || !(fl & FD_CLOEXEC))
            abort(); /* not open, or would leak into an exec'd child */
        close(fds[i]);
    }
    *taken += n;
    return r;
}

typedef struct shadow {
    const uint8_t *s; /* the stream */
    size_t written;   /* bytes of it sent so far */
    size_t off;       /* where the next frame starts */
    int bad;          /* the decoder reported an error: the stream is untrusted */
} shadow;

static uint32_t next_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Decodes m's payload as CONN and as HANDOFF, whatever its type: 0 with
 * the bytes inside the payload, or -EPROTO. */
static void check_conn_payload(const cd_ipc_msg *m)
{
    uint32_t word = 0;
    if (m->len >= 4)
        memcpy(&word, m->payload, 4);
    unsigned flags;
    uint32_t to;
    const uint8_t *b;
    size_t n;
    int rc = cd_ipc_conn_decode(m->payload, m->len, &flags, &b, &n);
    int good = m->len == 0 || (m->len >= 4 && !(word & ~CD_CONN_MOVED));
    if (rc != (good ? 0 : -EPROTO))
        abort();
    if (rc == 0 && (flags != word || (m->len && (b != m->payload + 4 || n != m->len - 4)) || (!m->len && n)))
        abort();
    rc = cd_ipc_handoff_decode(m->payload, m->len, &to, &b, &n);
    if (rc != (m->len >= 4 && word ? 0 : -EPROTO))
        abort();
    if (rc == 0 && (to != word || b != m->payload + 4 || n != m->len - 4))
        abort();
}

/* Takes every frame the decoder has and checks each against the stream. */
static void drain(shadow *sh)
{
    cd_ipc_msg m;
    int rc;
    while ((rc = cd_ipc_next(&dec, &m)) == 1) {
        if (sh->written - sh->off < CD_IPC_HEADER)
            abort(); /* delivered before its header arrived */
        uint16_t magic, type;
        uint32_t len;
        memcpy(&magic, sh->s + sh->off, 2);
        memcpy(&type, sh->s + sh->off + 2, 2);
        memcpy(&len, sh->s + sh->off + 4, 4);
        if (magic != CD_IPC_MAGIC || m.type != type || m.len != len || m.len > CD_IPC_MAX_PAYLOAD)
            abort();
        if (sh->written - sh->off - CD_IPC_HEADER < len)
            abort(); /* delivered before it was complete */
        if (len && memcmp(m.payload, sh->s + sh->off + CD_IPC_HEADER, len) != 0)
            abort();
        check_conn_payload(&m);
        sh->off += CD_IPC_HEADER + len;
    }
    size_t avail = sh->written - sh->off;
    if (rc == 0) {
        if (avail < CD_IPC_HEADER)
            return;
        uint16_t magic;
        uint32_t len;
        memcpy(&magic, sh->s + sh->off, 2);
        memcpy(&len, sh->s + sh->off + 4, 4);
        if (magic != CD_IPC_MAGIC || len > CD_IPC_MAX_PAYLOAD || avail >= CD_IPC_HEADER + (size_t)len)
            abort(); /* a complete frame (or a bad one) was held back */
        return;
    }
    if (rc != -EPROTO && rc != -EMSGSIZE)
        abort();
    if (avail < CD_IPC_HEADER)
        abort();
    uint16_t magic;
    uint32_t len;
    memcpy(&magic, sh->s + sh->off, 2);
    memcpy(&len, sh->s + sh->off + 4, 4);
    if ((rc == -EPROTO) != (magic != CD_IPC_MAGIC) || (rc == -EMSGSIZE && len <= CD_IPC_MAX_PAYLOAD))
        abort();
    if (cd_ipc_next(&dec, &m) != rc)
        abort(); /* an error is not forgotten */
    sh->bad = 1;
}

static void stream(int sv[2], const uint8_t *s, size_t len, uint32_t seed)
{
    shadow sh = {.s = s};
    dec.have = dec.consumed = 0;
    uint32_t x = seed | 1;
    unsigned maxchunk = 1u + (seed & 0x3ff); /* 1..1024: byte by byte up to big gulps */
    int with_fds = (seed & 0x400) != 0, sent = 0, taken = 0;
    while (sh.written < len && !sh.bad) {
        uint32_t rnd = next_rand(&x);
        size_t chunk = 1 + rnd % maxchunk;
        if (chunk > len - sh.written)
            chunk = len - sh.written;
        int attach = with_fds && (rnd & 0x10000);
        ssize_t w = attach ? send_with_fd(sv[0], s + sh.written, chunk)
                           : send(sv[0], s + sh.written, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0)
            abort(); /* the reader empties the pair after every chunk */
        sent += attach;
        size_t got = 0;
        for (;;) {
            long n = read_some(sv[1], with_fds, (int)(rnd >> 20) % 4, &taken);
            if (n == -EAGAIN)
                break;
            if (n <= 0)
                abort(); /* no EOF yet, and a good stream never fills the decoder */
            got += (size_t)n;
            sh.written += (size_t)n;
            drain(&sh);
            if (sh.bad)
                break;
        }
        if (taken > sent)
            abort();
        if (sh.bad)
            return;
        if (got != (size_t)w)
            abort();
    }
    if (sh.bad)
        return;
    shutdown(sv[0], SHUT_WR);
    if (read_some(sv[1], with_fds, 1, &taken) != 0)
        abort(); /* EOF */
}

static void round_trip(int sv[2], unsigned type, const uint8_t *p, size_t len, int with_fd)
{
    if (len > CD_IPC_MAX_PAYLOAD)
        len = CD_IPC_MAX_PAYLOAD;
    dec.have = dec.consumed = 0;
    if (cd_ipc_send_fd(sv[0], type, len ? p : NULL, len, with_fd ? passfd : -1) != 0)
        abort();
    cd_ipc_msg m;
    int rc = 0, taken = 0;
    for (int i = 0; i < 64 && rc == 0; i++) {
        if (read_some(sv[1], 1, 4, &taken) <= 0)
            abort();
        rc = cd_ipc_next(&dec, &m);
    }
    if (rc != 1 || m.type != type || m.len != len || (len && memcmp(m.payload, p, len) != 0))
        abort();
    if (taken != with_fd)
        abort(); /* the descriptor came with the frame, once */
    if (cd_ipc_next(&dec, &m) != 0)
        abort();
    uint8_t small[CD_IPC_HEADER];
    if (len && cd_ipc_encode(small, sizeof small, type, p, len) != -EMSGSIZE)
        abort();
}

/* p as the bytes of a CONN (word: flags) or HANDOFF (word: a worker id)
 * through cd_ipc_send_conn, its descriptor along, decoded back. */
static void round_trip_conn(int sv[2], unsigned type, uint32_t word, const uint8_t *p, size_t len)
{
    if (len > CD_IPC_MAX_PAYLOAD - 4)
        len = CD_IPC_MAX_PAYLOAD - 4;
    dec.have = dec.consumed = 0;
    if (cd_ipc_send_conn(sv[0], type, word, p, len, passfd) != 0)
        abort();
    if (cd_ipc_send_conn(sv[0], type, word, p, CD_IPC_MAX_PAYLOAD - 3, passfd) != -EMSGSIZE)
        abort(); /* over the limit: refused, nothing sent */
    cd_ipc_msg m;
    int rc = 0, taken = 0;
    for (int i = 0; i < 64 && rc == 0; i++) {
        if (read_some(sv[1], 1, 4, &taken) <= 0)
            abort();
        rc = cd_ipc_next(&dec, &m);
    }
    if (rc != 1 || m.type != type || m.len != len + 4 || taken != 1)
        abort();
    unsigned flags;
    uint32_t to;
    const uint8_t *b;
    size_t n;
    rc = type == CD_MSG_CONN ? cd_ipc_conn_decode(m.payload, m.len, &flags, &b, &n)
                             : cd_ipc_handoff_decode(m.payload, m.len, &to, &b, &n);
    if (rc != 0 || n != len || (len && memcmp(b, p, len) != 0) || (type == CD_MSG_CONN ? flags : to) != word)
        abort();
    if (cd_ipc_next(&dec, &m) != 0)
        abort();
}

static void pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    int buf = 1 << 20; /* room for a whole input, so a round trip never waits */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

/* The lowest free descriptor: the same after an input as before, or one
 * was left open. */
static int lowest_free(void)
{
    int fd = dup(2);
    close(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (passfd < 0) /* a replay without LLVMFuzzerInitialize */
        LLVMFuzzerInitialize(NULL, NULL);
    uint32_t seed = (uint32_t)data[0] | (uint32_t)data[1] << 8;
    int before = lowest_free();
    int sv[2];
    pair(sv);
    stream(sv, data + 2, size - 2, seed);
    close(sv[0]);
    close(sv[1]);
    pair(sv);
    round_trip(sv, seed & 0xffff, data + 2, size - 2, (seed & 0x800) != 0);
    close(sv[0]);
    close(sv[1]);
    pair(sv);
    round_trip_conn(sv, CD_MSG_CONN, seed & CD_CONN_MOVED, data + 2, size - 2);
    round_trip_conn(sv, CD_MSG_HANDOFF, seed | 1u << 16, data + 2, size - 2);
    close(sv[0]);
    close(sv[1]);
    if (lowest_free() != before)
        abort(); /* a descriptor that came along was left open */
    return 0;
}
