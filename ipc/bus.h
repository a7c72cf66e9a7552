/*
 * bus.h - the cross-worker message bus (nanomsg), relayed by the master.
 *
 * Workers PUSH to the master's PULL socket (ipc://RUNDIR/bus-in); the master
 * republishes each message on its PUB socket (ipc://RUNDIR/bus-out), to
 * which every worker is SUBscribed.  So a message reaches every worker,
 * including its sender, whatever the number of workers: scaling and
 * respawns need no re-wiring, and no worker knows another's address.
 * Delivery is best effort, as in Socket.IO: a subscriber that falls behind
 * its buffer loses messages rather than stalling the others.
 *
 * nanomsg is not fork-safe: only the master (before any fork) and exec'd
 * workers open these sockets.  Helpers return 0 or -errno and never log.
 *
 * Every socket file the master binds (bus-in, bus-out, and the control
 * plane's control and events) is mode 0600 in a runtime dir that no one
 * else may write: cd_ipc_bind_0600 is the one place that does it.
 */
#ifndef CD_IPC_BUS_H
#define CD_IPC_BUS_H

#include <stddef.h>

typedef struct cd_bus {
    int in;    /* master: PULL; worker: PUSH */
    int out;   /* master: PUB;  worker: SUB */
    int rcvfd; /* pollable fd: readable when a message can be received */
} cd_bus;

/* Binds nanomsg socket s to ipc://DIR/NAME, the socket file created with
 * mode 0600 (never the umask's mode, not even for a moment: only this user
 * may connect).  For the master's bus and control plane, called from its
 * only thread (it sets the process umask around the bind).  Returns 0 or
 * -errno. */
int cd_ipc_bind_0600(int s, const char *dir, const char *name);

/* Master: binds both endpoints under dir, mode 0600, owned by the dir's
 * owner (the workers' user when the master drops them to one).  Returns 0
 * or -errno. */
int cd_bus_master_open(cd_bus *b, const char *dir);
/* Master: relays the messages waiting on bus-in to bus-out, at most
 * CD_BUS_RELAY_BATCH per call so that a flood cannot hold the master's
 * loop (rcvfd stays readable while more wait).  Returns the number relayed. */
#define CD_BUS_RELAY_BATCH 256
int cd_bus_master_relay(cd_bus *b);

/* Worker: connects to the master's endpoints under dir. */
int cd_bus_worker_open(cd_bus *b, const char *dir);
/* Worker: sends one message (never blocks: -EAGAIN when the pipe is full). */
int cd_bus_send(cd_bus *b, const void *msg, size_t len);
/* Worker: receives one message without blocking.  Returns its length and a
 * buffer to release with cd_bus_free, or -EAGAIN when none is waiting. */
long cd_bus_recv(cd_bus *b, void **msg);
void cd_bus_free(void *msg);

/* A bus message is addressed to a service by name: "name\0payload".  The
 * worker wraps what a service publishes and unwraps what arrives, for the
 * services of that name.  Pure functions (fuzzed by tests/fuzz/fuzz_bus.c). */
/* Wraps payload for the service called name into out (cap bytes).  Returns
 * the message's length, or -EMSGSIZE when it does not fit. */
long cd_bus_wrap(void *out, size_t cap, const char *name, const void *payload, size_t len);
/* Splits a received message: *name (NUL-terminated, inside msg), *payload
 * and *plen.  Returns 0, or -EINVAL when there is no NUL (not one of ours). */
int cd_bus_unwrap(const void *msg, size_t len, const char **name, const void **payload, size_t *plen);

void cd_bus_close(cd_bus *b);

#endif
