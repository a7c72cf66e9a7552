/*
 * channel.h - framed messages on the master<->worker socketpair.
 *
 * Both sides of the channel speak the same frames: an 8-byte header
 * (magic, type, payload length; native byte order since both ends run the
 * same binary on the same host) and up to CD_IPC_MAX_PAYLOAD bytes.  EOF on
 * the channel means the other side is gone.  A frame with a bad magic or an
 * oversized length means the stream can no longer be trusted: the receiver
 * treats it like EOF.  Used by the master and by workers.
 */
#ifndef CD_IPC_CHANNEL_H
#define CD_IPC_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#define CD_IPC_MAGIC 0xCD01u
#define CD_IPC_HEADER 8
#define CD_IPC_MAX_PAYLOAD 65536

typedef struct cd_ipc_msg {
    unsigned type;
    const uint8_t *payload; /* points into the decoder; valid until the next call */
    size_t len;
} cd_ipc_msg;

typedef struct cd_ipc_decoder {
    uint8_t buf[CD_IPC_HEADER + CD_IPC_MAX_PAYLOAD];
    size_t have;     /* bytes in buf */
    size_t consumed; /* bytes of buf already returned as messages */
} cd_ipc_decoder;

/* Encodes one frame into out (outlen bytes).  Returns its size or -EMSGSIZE. */
int cd_ipc_encode(uint8_t *out, size_t outlen, unsigned type, const void *payload, size_t len);
/* Appends up to len bytes to the decoder; returns how many it took
 * (fewer when full: call cd_ipc_next, then feed the rest). */
size_t cd_ipc_feed(cd_ipc_decoder *d, const void *data, size_t len);
/* Reads what fd has (non-blocking) into the decoder.
 * Returns bytes read, 0 on EOF, -EAGAIN when nothing is there, or -errno. */
long cd_ipc_read(cd_ipc_decoder *d, int fd);
/* Takes the next complete frame.  Returns 1 (msg filled), 0 (need more
 * bytes), -EPROTO (bad magic) or -EMSGSIZE (length over the maximum). */
int cd_ipc_next(cd_ipc_decoder *d, cd_ipc_msg *msg);
/* Sends one frame on a non-blocking fd, waiting at most ~100 ms for room
 * (payloads up to CD_IPC_MAX_PAYLOAD).
 * Returns 0 or -errno (-EPIPE when the other side is gone). */
int cd_ipc_send(int fd, unsigned type, const void *payload, size_t len);
/* The same, with passfd travelling (SCM_RIGHTS) alongside the frame's first
 * byte; the sender keeps its own copy of passfd.  Returns 0 or -errno. */
int cd_ipc_send_fd(int fd, unsigned type, const void *payload, size_t len, int passfd);
/* Like cd_ipc_read, and also takes the fds that came with the bytes read
 * (O_CLOEXEC): up to max of them into fds, their count in *nfds; any beyond
 * max are closed.  A unix stream socket hands over one sendmsg's fds with
 * its first byte and never merges two such messages in one read, so fds
 * come in the order of the frames that carried them. */
long cd_ipc_read_fds(cd_ipc_decoder *d, int fd, int *fds, int max, int *nfds);

#endif
