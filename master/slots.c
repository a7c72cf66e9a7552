/*
 * slots.c - the slot and worker table: listeners, who serves which slot,
 * steering and the hand-off of queued connections (master process).
 *
 * This file is the only writer of ownership: the list of workers
 * (m->procs), each slot's current worker, which worker replaces which, and
 * which slots are wanted or retiring.  master.c, reload and upgrade say
 * what should happen (start a replacement, give the slots back, scale);
 * the table changes here, so its invariants live in one place:
 *   - a slot's current worker is alive (in m->procs) or NULL;
 *   - a worker that replaces another keeps a pointer to it only while that
 *     one is alive (cleared when it is freed);
 *   - a slot's listener, once open, stays open while the master runs.
 *
 * Readiness.  A slot is serving when one of its workers is READY with its
 * channel open (a closed channel means the worker is gone or going).  New
 * connections are steered only to serving slots among 0..active-1
 * (steer.c); when none is serving, to all of them, so the kernel queues
 * connections for the replacements instead of refusing them.
 *
 * Connections already queued on a slot that is not serving (its worker died
 * or is backing off, is still starting, or the slot is being retired) and
 * those whose handshake completes there after steering moved away: the
 * master accepts them itself and hands each one to a ready worker over its
 * channel (SCM_RIGHTS, CD_MSG_CONN), which serves it as if it had accepted
 * it.  Of the ways to serve such a queue this is the simplest robust one:
 * nothing waits for a respawn or its backoff (spawning at once would defeat
 * the backoff), no worker ever holds a second listener it must later give
 * back, and it costs the master work only while a slot is down.  A retired
 * slot's listener is never closed while the master runs (finish_retired
 * says why): it stays steered away from, and what lands on it is handed
 * over, so a connection queued on it is served, never reset.
 *
 * Draining (clusterctl drain, a stop's drain_delay) changes nothing here
 * but what workers are told (cd_slots_tell_drain): every one, and each one
 * that enters the table while it lasts, so /healthz/ready answers 503
 * while the listeners keep accepting and the hand-off keeps working.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "ipc/proto.h"
#include "master/master.h"

static void handoff_cb(struct ev_loop *loop, ev_io *io, int revents);

int cd_slots_init(cd_master *m)
{
    m->slots = calloc(CD_MAX_SLOTS, sizeof *m->slots);
    if (!m->slots)
        return -ENOMEM;
    m->nslots = CD_MAX_SLOTS;
    for (int i = 0; i < CD_MAX_SLOTS; i++) {
        cd_slot *s = &m->slots[i];
        s->index = i;
        s->fd = -1;
        s->m = m;
        ev_init(&s->handoff_w, handoff_cb);
        s->handoff_w.data = s;
    }
    return 0;
}

/* ---- workers ---- */

cd_proc *cd_slots_find(cd_master *m, pid_t pid)
{
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

cd_proc *cd_slots_start(cd_master *m, cd_slot *s, int take_over)
{
    cd_spawn_args a = {.listen_fd = s->fd, .conf_memfd = m->conf_memfd, .slot = s->index,
                       .generation = m->generation, .conf_path = m->conf->path, .drop_privs = m->drop_privs,
                       .uid = m->uid, .gid = m->gid};
    cd_spawned out;
    int rc = cd_spawn_worker(&a, &out);
    if (rc < 0) {
        cd_log_errno(CD_LOG_ERR, -rc, out.failed_call, "spawning a worker for slot %d", s->index);
        return NULL;
    }
    cd_proc *p = cd_slots_add(m, s, out.pid, m->generation, out.chan_fd);
    if (!p) {
        cd_err("out of memory tracking worker pid %d for slot %d; killing it", (int)out.pid, s->index);
        kill(out.pid, SIGKILL);
        close(out.chan_fd);
        return NULL;
    }
    if (take_over)
        cd_slots_serve_after(m, s, p);
    else
        cd_slots_serve(m, s, p);
    cd_info("started worker pid %d for slot %d (generation %u)", (int)out.pid, s->index, m->generation);
    cd_master_event(m, "{\"event\":\"worker_started\",\"slot\":%d,\"pid\":%d,\"generation\":%u}", s->index,
                    (int)out.pid, m->generation);
    return p;
}

cd_proc *cd_slots_add(cd_master *m, cd_slot *s, pid_t pid, unsigned generation, int chan)
{
    cd_proc *p = calloc(1, sizeof *p);
    cd_ipc_decoder *dec = calloc(1, sizeof *dec);
    if (!p || !dec) {
        free(p);
        free(dec);
        return NULL;
    }
    cd_set_cloexec(chan, 1);
    cd_set_nonblock(chan, 1);
    p->m = m;
    p->pid = pid;
    p->slot = s->index;
    p->generation = generation;
    p->chan_fd = chan;
    p->dec = dec;
    p->state = PROC_STARTING;
    p->started = p->last_heartbeat = ev_now(m->loop);
    ev_io_init(&p->chan_w, m->chan_cb, chan, EV_READ);
    p->chan_w.data = p;
    ev_io_start(m->loop, &p->chan_w);
    p->next = m->procs;
    m->procs = p;
    if (cd_master_draining(m))
        cd_slots_tell_drain(m, p); /* before it accepts anything: its first readiness answer is 503 */
    return p;
}

void cd_slots_tell_drain(cd_master *m, cd_proc *p)
{
    unsigned type = cd_master_draining(m) ? CD_MSG_DRAIN : CD_MSG_UNDRAIN;
    for (cd_proc *q = p ? p : m->procs; q; q = p ? NULL : q->next)
        if (q->chan_fd >= 0 && cd_ipc_send(q->chan_fd, type, NULL, 0) < 0)
            cd_warn("cannot tell worker pid %d to %s (its channel is gone or full)", (int)q->pid,
                    type == CD_MSG_DRAIN ? "drain" : "undrain");
}

void cd_slots_remove(cd_master *m, cd_proc *p)
{
    cd_proc **pp = &m->procs;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    cd_slots_close_channel(m, p);
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].current == p)
            m->slots[i].current = NULL;
    for (cd_proc *q = m->procs; q; q = q->next)
        if (q->replaces == p)
            q->replaces = NULL;
    if (m->recycling == p)
        m->recycling = NULL;
    free(p->dec);
    free(p);
}

void cd_slots_close_channel(cd_master *m, cd_proc *p)
{
    if (p->chan_fd < 0)
        return;
    ev_io_stop(m->loop, &p->chan_w);
    close(p->chan_fd);
    p->chan_fd = -1;
    cd_sticky_drop(p);
}

void cd_slots_serve(cd_master *m, cd_slot *s, cd_proc *p)
{
    (void)m;
    s->current = p;
}

void cd_slots_serve_after(cd_master *m, cd_slot *s, cd_proc *p)
{
    (void)m;
    p->replaces = s->current;
    s->current = p;
}

void cd_slots_adopt(cd_master *m, cd_slot *s, pid_t pid, unsigned generation, int chan, int ready)
{
    cd_proc *p = cd_slots_add(m, s, pid, generation, chan);
    if (!p)
        return;
    cd_info("adopted worker pid %d of slot %d (generation %u)", (int)pid, s->index, generation);
    if (ready)
        p->state = PROC_READY;
    if (!s->current)
        s->current = p;
}

cd_proc *cd_slots_took_over(cd_master *m, cd_proc *p)
{
    (void)m;
    cd_proc *old = p->replaces;
    p->replaces = NULL;
    return old;
}

int cd_slots_keep_replaced(cd_master *m, cd_slot *s, cd_proc *replaced)
{
    if (!s || !replaced || replaced->state == PROC_DRAINING)
        return 0;
    for (cd_proc *q = m->procs; q; q = q->next)
        if (q == replaced) {
            s->current = q;
            return 1;
        }
    return 0;
}

void cd_slots_cancel_replacements(cd_master *m)
{
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->state == PROC_STARTING && p->replaces) {
            cd_slot *s = &m->slots[p->slot];
            if (s->current == p)
                s->current = p->replaces;
            p->replaces = NULL;
            cd_slots_stop(m, p);
        }
}

void cd_slots_give_back(cd_master *m, unsigned old_generation)
{
    for (int i = 0; i < m->nslots; i++)
        m->slots[i].current = NULL;
    for (cd_proc *p = m->procs; p; p = p->next) {
        if (p->generation > old_generation) {
            cd_slots_stop(m, p);
            kill(p->pid, SIGTERM);
        } else if (p->state != PROC_DRAINING && !m->slots[p->slot].current) {
            m->slots[p->slot].current = p;
        }
    }
}

void cd_slots_stop(cd_master *m, cd_proc *p)
{
    if (p->state == PROC_DRAINING)
        return;
    p->state = PROC_DRAINING;
    cd_slots_changed(m); /* it stops accepting: its slot is steered away, its queue handed over */
    p->drain_deadline = ev_now(m->loop) + (double)m->conf->graceful_timeout_ms / 1000.0 + 1.0;
    int rc = p->chan_fd >= 0 ? cd_ipc_send(p->chan_fd, CD_MSG_STOP, NULL, 0) : -EPIPE;
    if (rc < 0) {
        /* The channel is gone or stuck: the signal says the same thing. */
        kill(p->pid, SIGTERM);
    }
}

int cd_slots_count_ready(cd_master *m)
{
    int n = 0;
    for (int i = 0; i < m->active; i++)
        if (m->slots[i].current && m->slots[i].current->state == PROC_READY)
            n++;
    return n;
}

/* ---- listeners and scaling ---- */

int cd_slots_open(cd_master *m, int i)
{
    if (i >= CD_MAX_SLOTS) {
        cd_err("cannot add slot %d: at most %d workers", i, CD_MAX_SLOTS);
        return -1;
    }
    cd_slot *s = &m->slots[i];
    if (s->fd >= 0)
        return 0;
    int fd = cd_listen_reuseport((struct sockaddr *)&m->conf->addr, m->conf->addrlen, m->conf->backlog);
    if (fd < 0) {
        cd_log_errno(CD_LOG_ERR, -fd, "bind/listen", "cannot listen on %s for slot %d", m->conf->listen, i);
        return -1;
    }
    /* A connection becomes acceptable only once its request has arrived
     * (or after about a second of silence): until then it waits in the
     * listener, which outlives workers, so a worker that crashes loses only
     * the requests it was handling, not the connections it had just taken.
     * Best effort: without it we only lose more on a crash. */
    int defer = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer) < 0)
        cd_log_errno(CD_LOG_WARN, errno, "setsockopt(TCP_DEFER_ACCEPT)", "slot %d", i);
    s->fd = fd;
    return 0;
}

void cd_slots_activate(cd_master *m, int n)
{
    m->active = n;
    for (int i = 0; i < n; i++)
        m->slots[i].wanted = 1;
}

void cd_slots_take_listener(cd_master *m, int i, int fd, int activated)
{
    m->slots[i].fd = fd;
    m->slots[i].activated = activated;
}

static void scale_up(cd_master *m)
{
    int i = m->active;
    cd_slot *s = &m->slots[i];
    if (s->retiring) {
        /* Not closed yet: take the slot back, with a new worker if the old
         * one is still draining. */
        s->retiring = 0;
        if (s->current && s->current->state == PROC_DRAINING)
            s->current = NULL;
    }
    s->wanted = 1;
    s->fails = 0;
    m->active++;
    ev_timer_stop(m->loop, &s->respawn_w); /* its worker starts now (master.c's reconcile) */
}

static void scale_down(cd_master *m)
{
    cd_slot *s = &m->slots[m->active - 1];
    m->active--;
    s->wanted = 0;
    s->retiring = 1;
    ev_timer_stop(m->loop, &s->respawn_w);
    /* No new connections for this slot from now on; its worker drains and
     * the master hands over what the listener still holds. */
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->slot == s->index)
            cd_slots_stop(m, p);
}

void cd_slots_scale(cd_master *m, int target)
{
    if (target < 1)
        target = 1;
    while (m->active < target) {
        if (cd_slots_open(m, m->active) < 0)
            break;
        scale_up(m);
        cd_slots_changed(m);
        cd_info("scaled up to %d workers", m->active);
        cd_master_event(m, "{\"event\":\"scaled\",\"workers\":%d}", m->active);
    }
    while (m->active > target) {
        scale_down(m);
        cd_slots_changed(m);
        cd_info("scaled down to %d workers", m->active);
        cd_master_event(m, "{\"event\":\"scaled\",\"workers\":%d}", m->active);
    }
}

/* ---- readiness: steering and hand-off ---- */

static void mark_serving(cd_master *m, char *serving)
{
    memset(serving, 0, (size_t)m->nslots);
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->state == PROC_READY && p->chan_fd >= 0 && p->slot >= 0 && p->slot < m->nslots)
            serving[p->slot] = 1;
}

static void steer(cd_master *m, const char *serving)
{
    if (m->activated)
        return; /* systemd bound the group in its own order: indices are not slots */
    int any = 0;
    for (int i = 0; i < m->active; i++)
        any |= serving[i];
    int idx[CD_MAX_SLOTS], n = 0, changed = !m->steer_valid, fd = -1;
    for (int i = 0; i < m->nslots; i++) {
        cd_slot *s = &m->slots[i];
        if (s->fd >= 0 && fd < 0)
            fd = s->fd; /* one socket carries the group's program */
        int on = i < m->active && s->fd >= 0 && (!any || serving[i]);
        changed |= on != s->steered;
        s->steered = on;
        if (on)
            idx[n++] = i;
    }
    if (!changed || n == 0 || fd < 0)
        return;
    int rc = cd_steer_set(fd, idx, n);
    m->steer_valid = rc == 0;
    if (rc < 0 && !m->steer_warned) {
        m->steer_warned = 1;
        cd_log_errno(CD_LOG_WARN, -rc, "setsockopt(SO_ATTACH_REUSEPORT_CBPF)",
                     "cannot steer connections; the kernel will spread them over all listeners");
    }
}

/* Hands one accepted connection to a ready worker, round-robin.  Returns 0,
 * or -1 when no worker took it. */
static int handoff(cd_master *m, int fd)
{
    int nready = 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        nready += p->state == PROC_READY && p->chan_fd >= 0;
    for (int tries = 0; tries < nready; tries++) {
        int k = (int)(m->handoff_rr++ % (unsigned)nready);
        for (cd_proc *p = m->procs; p; p = p->next) {
            if (p->state != PROC_READY || p->chan_fd < 0 || k--)
                continue;
            if (cd_ipc_send_fd(p->chan_fd, CD_MSG_CONN, NULL, 0, fd) == 0)
                return 0;
            break;
        }
    }
    return -1;
}

/* Connections queued on a slot without a ready worker: accepts them in a
 * bounded batch (the loop comes back for more) and hands each one over.
 * A relay, not a decision: it changes nothing in the table. */
static void handoff_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    cd_slot *s = io->data;
    cd_master *m = s->m;
    int lost = 0;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* EMFILE and the like: pause; the next tick starts us again. */
                cd_log_errno(CD_LOG_WARN, errno, "accept4", "handing over slot %d's queued connections", s->index);
                ev_io_stop(loop, io);
            }
            break;
        }
        if (handoff(m, fd) < 0)
            lost++;
        close(fd); /* the worker has its own copy */
    }
    if (lost)
        cd_warn("slot %d: %d queued connection(s) closed: no ready worker took them", s->index, lost);
}

/* A retiring slot is retired once no worker of its own is left.  Its
 * listener stays open, steered away from (so index == slot stays true, see
 * steer.c) and watched by handoff_w, until the master stops or a scale-up
 * takes the slot back.  Closing it while clients connect would reset some:
 * the kernel unhooks a closing listener from the SO_REUSEPORT group before
 * it leaves the lookup table and before it stops listening, so a SYN looked
 * up in that window lands on it whatever the steering program says; the
 * handshake then completes on a socket that is gone, and the client's
 * request is answered with a RST (or its SYN is dropped and retried a
 * second later).  Kept open, anything that still lands there is handed to
 * a live worker. */
static void finish_retired(cd_master *m)
{
    if (m->stop != CD_RUNNING)
        return;
    for (int i = 0; i < m->nslots; i++) {
        cd_slot *s = &m->slots[i];
        if (!s->retiring)
            continue;
        int left = 0;
        for (cd_proc *p = m->procs; p && !left; p = p->next)
            left = p->slot == s->index; /* its worker is still draining */
        if (left)
            continue;
        s->retiring = 0;
        cd_info("slot %d retired", s->index);
    }
}

void cd_slots_changed(cd_master *m)
{
    char serving[CD_MAX_SLOTS];
    mark_serving(m, serving);
    int any_ready = 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        any_ready |= p->state == PROC_READY && p->chan_fd >= 0;
    steer(m, serving);
    for (int i = 0; i < m->nslots; i++) {
        cd_slot *s = &m->slots[i];
        int want = s->fd >= 0 && !serving[i] && any_ready && m->stop <= CD_STOP_DELAYED;
        if (want && !ev_is_active(&s->handoff_w)) {
            ev_io_set(&s->handoff_w, s->fd, EV_READ);
            ev_io_start(m->loop, &s->handoff_w);
        } else if (!want && ev_is_active(&s->handoff_w)) {
            ev_io_stop(m->loop, &s->handoff_w);
        }
    }
    finish_retired(m);
}

void cd_slots_close_all(cd_master *m)
{
    for (int i = 0; m->slots && i < m->nslots; i++) {
        ev_timer_stop(m->loop, &m->slots[i].respawn_w);
        ev_io_stop(m->loop, &m->slots[i].handoff_w);
        if (m->slots[i].fd >= 0)
            close(m->slots[i].fd);
    }
    while (m->procs)
        cd_slots_remove(m, m->procs);
    free(m->slots);
    m->slots = NULL;
}
