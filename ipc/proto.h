/*
 * proto.h - the master<->worker protocol: message types on the channel
 * (framed by ipc/channel.h), the fds a worker finds after exec, and the exit
 * codes the master reads.  Both sides include this one header.
 *
 * Payloads: HEARTBEAT carries a cd_stats and CLUSTER a cd_snapshot
 * (core/stats.h); BOOTFAIL a text reason; the others are empty, but for
 * the two that carry a connection's fd (SCM_RIGHTS, with the frame's first
 * byte):
 *   HANDOFF  uint32 the id of the worker that must serve it, then the bytes
 *            already read from it (the request head re-serialised, then
 *            what was not parsed yet);
 *   CONN     empty (a connection the master accepted), or uint32 flags
 *            (CD_CONN_MOVED) then the bytes read so far, which the worker
 *            parses before anything it reads itself.
 * Both fit CD_IPC_MAX_PAYLOAD (ipc/channel.h): the sender checks.
 * handoff.c encodes and decodes them, and sends them without waiting.
 */
#ifndef CD_IPC_PROTO_H
#define CD_IPC_PROTO_H

#include <stddef.h>
#include <stdint.h>

enum cd_msg_type {
    CD_MSG_READY = 1,     /* worker -> master: services initialised, accepting */
    CD_MSG_HEARTBEAT = 2, /* worker -> master: cd_stats payload */
    CD_MSG_STOP = 3,      /* master -> worker: graceful stop (drain, then exit 0) */
    CD_MSG_BOOTFAIL = 4,  /* worker -> master: text reason, before exiting */
    CD_MSG_REOPEN = 5,    /* master -> worker: reopen log files (USR1) */
    CD_MSG_CLUSTER = 6,   /* master -> worker: cd_snapshot of the whole cluster */
    CD_MSG_RECYCLE = 7,   /* worker -> master: max_requests reached, please replace me */
    CD_MSG_CONN = 8,      /* master -> worker: a connection the master accepted; its fd rides along */
    CD_MSG_DRAINING = 9,  /* worker -> master: answer to STOP, it no longer accepts */
    CD_MSG_HANDOFF = 10,  /* worker -> master: serve this connection in worker <id>; its fd rides along */
    CD_MSG_DRAIN = 11,    /* master -> worker: the host is drained: /healthz/ready answers 503, all else as usual */
    CD_MSG_UNDRAIN = 12,  /* master -> worker: the host is back: readiness as the services say */
};

/* CONN flags. */
#define CD_CONN_MOVED 1u /* moved by a HANDOFF: its first request is served where it lands */

/* A worker's id (clusterd/service.h cd_service_worker_id): its slot in the
 * top 10 bits, its pid in the low 22 (Linux's PID_MAX_LIMIT is 2^22), so
 * the master and the worker compute it alike, an upgrade's adopted workers
 * keep theirs, and the slot is there when the worker is gone. */
#define CD_WORKER_ID_PID_BITS 22
static inline unsigned cd_worker_id(int slot, int pid)
{
    return ((unsigned)slot << CD_WORKER_ID_PID_BITS) | ((unsigned)pid & ((1u << CD_WORKER_ID_PID_BITS) - 1));
}
static inline int cd_worker_id_slot(unsigned id) { return (int)(id >> CD_WORKER_ID_PID_BITS); }

/* ---- handoff.c ---- */

/* Decodes a CONN payload: 0 with *flags and the bytes [*bytes, +*nbytes)
 * (into p), or -EPROTO (a payload of 1 to 3 bytes, or unknown flags). */
int cd_ipc_conn_decode(const uint8_t *p, size_t len, unsigned *flags, const uint8_t **bytes, size_t *nbytes);
/* Decodes a HANDOFF payload: 0 with *to and the bytes, or -EPROTO (shorter
 * than the id, or an id of 0). */
int cd_ipc_handoff_decode(const uint8_t *p, size_t len, uint32_t *to, const uint8_t **bytes, size_t *nbytes);
/* Sends one frame of type whose payload is word (4 bytes, native order)
 * then data, with passfd, on the non-blocking channel fd, WITHOUT waiting
 * for room: 0 (passfd went; the caller still closes its copy), -EAGAIN
 * when the channel is full (nothing was sent), -EMSGSIZE over
 * CD_IPC_MAX_PAYLOAD, or another -errno.  A frame that went out in part is
 * finished as cd_ipc_send does (waiting at most ~100 ms): rare, as a unix
 * stream socket takes a frame of this size whole or not at all. */
int cd_ipc_send_conn(int fd, unsigned type, uint32_t word, const void *data, size_t dlen, int passfd);

/* Fixed fd numbers a worker finds after exec (master/spawn.c sets them up). */
#define CD_WORKER_FD_LISTEN 3
#define CD_WORKER_FD_CHANNEL 4
#define CD_WORKER_FD_CONF 5

/* Exit codes a worker uses; the master reads them. */
#define CD_EXIT_BOOTFAIL 3 /* init failed: do not respawn, stop the cluster */

#endif
