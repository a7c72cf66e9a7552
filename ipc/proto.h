/*
 * proto.h - the master<->worker protocol: message types on the channel
 * (framed by ipc/channel.h), the fds a worker finds after exec, and the exit
 * codes the master reads.  Both sides include this one header.
 *
 * Payloads: HEARTBEAT carries a cd_stats and CLUSTER a cd_snapshot
 * (core/stats.h); BOOTFAIL a text reason; CONN carries no payload but one fd
 * (SCM_RIGHTS); the others are empty.
 */
#ifndef CD_IPC_PROTO_H
#define CD_IPC_PROTO_H

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

/* Fixed fd numbers a worker finds after exec (master/spawn.c sets them up). */
#define CD_WORKER_FD_LISTEN 3
#define CD_WORKER_FD_CHANNEL 4
#define CD_WORKER_FD_CONF 5

/* Exit codes a worker uses; the master reads them. */
#define CD_EXIT_BOOTFAIL 3 /* init failed: do not respawn, stop the cluster */

#endif
