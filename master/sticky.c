/*
 * sticky.c - the relay of moved connections (master process, loop).
 *
 * A worker that reads the head of a request belonging to another worker's
 * session (http/steer.c) sends the connection here (CD_MSG_HANDOFF: the
 * target worker's id and the bytes it read, the fd with SCM_RIGHTS), the
 * way @socket.io/sticky routes in Node's primary, without a proxy hop: the
 * master passes the fd and the bytes on as CD_MSG_CONN flagged moved, and
 * is out of the connection from then on.  The target is
 *   1. the live worker with that id (READY, or draining: it still serves
 *      what it has, and a session lives there until it drains);
 *   2. else the current worker of the id's slot (the owner died or was
 *      replaced: its session is gone, but the slot's worker answers for it,
 *      as engine.io answers an unknown sid);
 *   3. else any ready worker, round-robin.
 * The moved flag makes the receiver serve that first request whatever its
 * service says, so a request cannot travel twice.
 *
 * Nothing here waits: the forward is one non-blocking send (ipc/handoff.c).
 * When it cannot go (the target's channel is full, no worker is ready) the
 * connection is closed, logged at info with the count so far; the client
 * sees a closed connection as it would from a dying worker, and retries.
 * A relay, not a decision: it changes nothing in the table (slots.c).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "ipc/proto.h"
#include "master/master.h"

/* The oldest fd p sent: the one that came with this HANDOFF frame. */
static int take_fd(cd_proc *p)
{
    if (p->npassed == 0)
        return -1;
    int fd = p->passed[0];
    memmove(p->passed, p->passed + 1, (size_t)--p->npassed * sizeof *p->passed);
    return fd;
}

void cd_sticky_drop(cd_proc *p)
{
    while (p->npassed > 0)
        close(take_fd(p));
}

static int ready(const cd_proc *p) { return p && p->state == PROC_READY && p->chan_fd >= 0; }

static cd_proc *target(cd_master *m, uint32_t to)
{
    for (cd_proc *p = m->procs; p; p = p->next)
        if (cd_worker_id(p->slot, (int)p->pid) == to && p->chan_fd >= 0 &&
            (p->state == PROC_READY || p->state == PROC_DRAINING))
            return p;
    int slot = cd_worker_id_slot(to);
    if (slot < m->nslots && ready(m->slots[slot].current))
        return m->slots[slot].current;
    int nready = 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        nready += ready(p);
    if (nready == 0)
        return NULL;
    int k = (int)(m->handoff_rr++ % (unsigned)nready);
    for (cd_proc *p = m->procs; p; p = p->next)
        if (ready(p) && k-- == 0)
            return p;
    return NULL;
}

void cd_sticky_forward(cd_master *m, cd_proc *p, const cd_ipc_msg *msg)
{
    int fd = take_fd(p);
    uint32_t to;
    const uint8_t *bytes;
    size_t n;
    if (fd < 0 || cd_ipc_handoff_decode(msg->payload, msg->len, &to, &bytes, &n) < 0) {
        cd_warn("worker pid %d sent a connection hand-off %s; dropped", (int)p->pid,
                fd < 0 ? "without its descriptor" : "this master cannot read");
        if (fd >= 0)
            close(fd);
        m->sticky_lost++;
        return;
    }
    cd_proc *t = target(m, to);
    int rc = t ? cd_ipc_send_conn(t->chan_fd, CD_MSG_CONN, CD_CONN_MOVED, bytes, n, fd) : -ENOENT;
    close(fd); /* the target has its own copy, or the connection is dropped */
    if (rc == 0) {
        m->sticky_moved++;
        return;
    }
    m->sticky_lost++;
    if (t)
        cd_info("dropped a connection moved to worker pid %d: %s (%llu dropped so far)", (int)t->pid,
                rc == -EAGAIN ? "its channel is full" : strerror(-rc), (unsigned long long)m->sticky_lost);
    else
        cd_info("dropped a connection moved to worker %u: no worker is ready (%llu dropped so far)", (unsigned)to,
                (unsigned long long)m->sticky_lost);
}
