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
};

#define CD_STATS_SERVICES 16 /* per-worker service counters (one is "-": no route) */
#define CD_SNAP_SERVICES 32  /* cluster-wide, merged by name */
#define CD_LAT_BUCKETS 12    /* latency histogram: 11 bounds + overflow */

/* Upper bounds of the latency buckets, in seconds (Prometheus `le`). */
extern const double cd_lat_bounds[CD_LAT_BUCKETS - 1];

typedef struct cd_svc_stats {
    char name[32];      /* service (section) name; "" = unused */
    uint64_t status[6]; /* answered by class: [1]=1xx .. [5]=5xx */
} cd_svc_stats;

/* Counters a worker reports with each heartbeat. */
typedef struct cd_stats {
    uint64_t requests;    /* answered since start */
    uint64_t in_flight;   /* requests being handled now */
    uint64_t connections; /* open now */
    uint64_t accepted;    /* since start */
    uint64_t status[6];   /* answered by class: [1]=1xx .. [5]=5xx */
    uint64_t rss_bytes;
    uint64_t lat_bucket[CD_LAT_BUCKETS]; /* routed requests by latency (not cumulative) */
    uint64_t lat_sum_us;
    cd_svc_stats svc[CD_STATS_SERVICES];
} cd_stats;

/* One worker as the master sees it. */
typedef struct cd_snap_worker {
    int32_t slot, pid;
    uint32_t generation, state; /* state: 0 starting, 1 ready, 2 draining */
    double uptime, heartbeat_age;
    uint64_t requests, in_flight, connections, accepted, rss_bytes;
} cd_snap_worker;

/* The whole cluster, as the master sends it to every worker each heartbeat
 * interval so that any worker can answer /metrics for all.  Counters include
 * the workers that have exited, so they never go down. */
typedef struct cd_snapshot {
    uint32_t nworkers, nsvc;
    uint64_t respawns;
    uint64_t requests, accepted;
    uint64_t status[6];
    uint64_t lat_bucket[CD_LAT_BUCKETS];
    uint64_t lat_sum_us;
    cd_svc_stats svc[CD_SNAP_SERVICES];
    cd_snap_worker workers[]; /* nworkers of them */
} cd_snapshot;

/* Adds a worker's counters into a snapshot's totals (merging services by
 * name).  Used by the master. */
void cd_snapshot_add(cd_snapshot *snap, const cd_stats *st);

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
