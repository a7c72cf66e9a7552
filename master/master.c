/*
 * master.c - the master's loop (master process).
 *
 * Everything the master does is a reaction on its libev default loop:
 *   signals   TERM/INT graceful stop, QUIT immediate stop, HUP reload,
 *             TTIN/TTOU one worker more/fewer, USR1 reopen logs
 *   children  a worker exited: respawn with backoff, or stop on boot failure
 *   channels  READY, HEARTBEAT, BOOTFAIL from workers
 *   tick      every 250 ms: kill workers whose heartbeat stopped or whose
 *             drain overran, and notice when a stop is complete
 *   slots     whenever a slot's readiness changes: steer new connections to
 *             slots with a READY worker only, accept what is queued on the
 *             others (retired slots included: their listeners stay open)
 *             and hand it to a live worker (see "readiness" below for why)
 * Signal handlers only queue (libev's ev_signal); the work happens here.
 *
 * Reload (HUP) is a rolling restart: the new config is validated first (a bad
 * one changes nothing); then, one slot at a time, a worker of the new
 * generation starts on the slot's listener, and only when it is READY is the
 * old one told to drain.  The listener never closes, so nothing is refused.
 */
#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "core/stats.h"
#include "ipc/proto.h"

#define TICK 0.25
#define BACKOFF_BASE 0.1  /* first respawn delay, seconds */
#define BACKOFF_MAX 30.0  /* cap on the respawn delay */
#define STABLE_AFTER 10.0 /* a worker up this long resets its slot's backoff */
#define LAST_UP_DELAY 0.5 /* the longest respawn delay of the last slot that was up */
#define QUIT_GRACE 1.0    /* SIGQUIT: workers get this long before SIGKILL */

static void spawn_slot(cd_master *m, cd_slot *s);
static void reload_step(cd_master *m);
static double backoff(unsigned fails);
static void respawn_cb(struct ev_loop *loop, ev_timer *t, int revents);
static int ensure_bus(cd_master *m);
static void reload_finished(cd_master *m, int ok, const char *why);
static void send_stop(cd_master *m, cd_proc *p);

static double now(cd_master *m) { return ev_now(m->loop); }

static cd_proc *find_proc(cd_master *m, pid_t pid)
{
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

static void proc_free(cd_master *m, cd_proc *p)
{
    cd_proc **pp = &m->procs;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    if (p->chan_fd >= 0) {
        ev_io_stop(m->loop, &p->chan_w);
        close(p->chan_fd);
    }
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

/* Starts a worker that takes slot s over from its current one once READY
 * (reload, rollback, recycling).  Returns it, or NULL (logged). */
static cd_proc *replace_slot(cd_master *m, cd_slot *s)
{
    cd_proc *old = s->current;
    cd_proc *p = cd_spawn_worker(m, s);
    if (!p)
        return NULL;
    p->replaces = old;
    s->current = p;
    return p;
}

/* A replacement died before READY: the worker it was to replace keeps the
 * slot.  Returns 1 when that happened. */
static int keep_replaced(cd_master *m, cd_slot *s, cd_proc *dead_replaces)
{
    if (!s || !dead_replaces || dead_replaces->state == PROC_DRAINING)
        return 0;
    for (cd_proc *q = m->procs; q; q = q->next)
        if (q == dead_replaces) {
            s->current = q;
            return 1;
        }
    return 0;
}

static int count_ready(cd_master *m)
{
    int n = 0;
    for (int i = 0; i < m->active; i++)
        if (m->slots[i].current && m->slots[i].current->state == PROC_READY)
            n++;
    return n;
}

/* ---- listeners ---- */

static int open_slot(cd_master *m, int i)
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

/* ---- readiness: steering and hand-off ----
 *
 * A slot is serving when one of its workers is READY with its channel open
 * (a closed channel means the worker is gone or going).  New connections are
 * steered only to serving slots among 0..active-1 (steer.c); when none is
 * serving, to all of them, so the kernel queues connections for the
 * replacements instead of refusing them.
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
 * over, so a connection queued on it is served, never reset. */

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
 * bounded batch (the loop comes back for more) and hands each one over. */
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
    if (m->stopping)
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

/* Called whenever a slot's readiness may have changed (READY, a channel's
 * EOF, a worker's exit, STOP, scaling) and on every tick. */
static void slots_changed(cd_master *m)
{
    char serving[CD_MAX_SLOTS];
    mark_serving(m, serving);
    int any_ready = 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        any_ready |= p->state == PROC_READY && p->chan_fd >= 0;
    steer(m, serving);
    for (int i = 0; i < m->nslots; i++) {
        cd_slot *s = &m->slots[i];
        int want = s->fd >= 0 && !serving[i] && any_ready && !m->stopping;
        if (want && !ev_is_active(&s->handoff_w)) {
            ev_io_set(&s->handoff_w, s->fd, EV_READ);
            ev_io_start(m->loop, &s->handoff_w);
        } else if (!want && ev_is_active(&s->handoff_w)) {
            ev_io_stop(m->loop, &s->handoff_w);
        }
    }
    finish_retired(m);
}

/* ---- workers ---- */

static void respawn_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_slot *s = t->data;
    cd_master *m = s->m;
    if (!m->stopping && s->wanted && !s->current)
        spawn_slot(m, s);
}

static void spawn_slot(cd_master *m, cd_slot *s)
{
    s->current = cd_spawn_worker(m, s);
    if (!s->current) {
        /* fork failed (logged): try again after a backoff */
        s->fails++;
        ev_timer_stop(m->loop, &s->respawn_w);
        ev_timer_set(&s->respawn_w, backoff(s->fails), 0.);
        ev_timer_start(m->loop, &s->respawn_w);
    }
}

static double backoff(unsigned fails)
{
    double d = BACKOFF_BASE;
    for (unsigned i = 1; i < fails && d < BACKOFF_MAX; i++)
        d *= 2;
    if (d > BACKOFF_MAX)
        d = BACKOFF_MAX;
    /* Full jitter in [d/2, d]: slots crashing together do not respawn together. */
    return d / 2 + (d / 2) * ((double)random() / (double)RAND_MAX);
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "status 0x%x", status);
}

static void begin_stop(cd_master *m, int immediate, int code);

static void maybe_done(cd_master *m)
{
    if (m->stopping && !m->procs)
        ev_break(m->loop, EVBREAK_ALL);
}

/* A worker's last words may still sit in its channel when SIGCHLD comes
 * first: its final heartbeat (so no request goes uncounted) and the reason
 * for a boot failure. */
static void read_last_words(cd_proc *p)
{
    if (p->chan_fd < 0)
        return;
    for (int i = 0; i < 64 && cd_ipc_read(p->dec, p->chan_fd) > 0; i++) {
        cd_ipc_msg msg;
        while (cd_ipc_next(p->dec, &msg) > 0) {
            if (msg.type == CD_MSG_HEARTBEAT && msg.len == sizeof p->stats)
                memcpy(&p->stats, msg.payload, sizeof p->stats);
            else if (msg.type == CD_MSG_BOOTFAIL)
                snprintf(p->bootfail, sizeof p->bootfail, "%.*s", (int)msg.len, (const char *)msg.payload);
        }
    }
}

static void proc_exited(cd_master *m, cd_proc *p, int status)
{
    read_last_words(p);
    cd_snapshot_add(m->retired, &p->stats); /* counters never go down */
    char how[128];
    describe_status(status, how, sizeof how);
    cd_slot *s = p->slot < m->nslots ? &m->slots[p->slot] : NULL;
    int was_current = s && s->current == p;
    proc_state state = p->state;
    pid_t pid = p->pid;
    cd_proc *replaced = p->replaces;
    int was_recycling = m->recycling == p;
    int bootfail = WIFEXITED(status) && WEXITSTATUS(status) == CD_EXIT_BOOTFAIL;
    double uptime = now(m) - p->started;
    unsigned gen = p->generation;
    char reason[256];
    snprintf(reason, sizeof reason, "%s", p->bootfail[0] ? p->bootfail : "no reason given");
    proc_free(m, p);
    cd_master_event(m, "{\"event\":\"worker_exited\",\"slot\":%d,\"pid\":%d,\"generation\":%u,\"status\":\"%s\"}",
                    s ? s->index : -1, (int)pid, gen, how);

    if (m->upgrading && gen > m->upgrade_from && state == PROC_STARTING) {
        char why[512];
        snprintf(why, sizeof why, "a new worker %s%s%s", how, bootfail ? ": " : "", bootfail ? reason : "");
        cd_upgrade_fail(m, why); /* execs the old binary; returns only if that fails */
        maybe_done(m);
        return;
    }
    if (m->stopping || state == PROC_DRAINING) {
        int level = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? CD_LOG_INFO : CD_LOG_WARN;
        cd_log(level, "worker pid %d (slot %d, generation %u) %s", (int)pid, s ? s->index : -1, gen, how);
    } else if (state == PROC_STARTING && keep_replaced(m, s, replaced)) {
        /* A replacement (reload, rollback, recycling) failed: the old worker stays. */
        cd_err("the new worker for slot %d %s before READY (%s); the old one keeps serving", s->index, how,
               bootfail ? reason : "no boot failure reported");
        if (m->reloading)
            reload_finished(m, 0, bootfail ? reason : "a new worker died before READY");
        else if (was_recycling)
            cd_warn("recycling slot %d postponed", s->index);
    } else if (bootfail && state == PROC_STARTING && m->reloading) {
        reload_finished(m, 0, reason);
    } else if (bootfail && state == PROC_STARTING) {
        cd_err("worker for slot %d failed to boot: %s; stopping (not respawning a worker that cannot start)",
               s ? s->index : -1, reason);
        begin_stop(m, 0, 1);
    } else {
        cd_warn("worker pid %d (slot %d) %s after %.1fs", (int)pid, s ? s->index : -1, how, uptime);
        if (m->reloading && state == PROC_STARTING)
            reload_finished(m, 0, "a new worker died before READY");
    }
    if (s && was_current && !s->current && s->wanted && !m->stopping) {
        if (uptime >= STABLE_AFTER)
            s->fails = 0;
        s->fails++;
        double delay = s->fails == 1 ? 0.0 : backoff(s->fails);
        /* Several slots backing off together must not leave the cluster with
         * no worker at all for seconds: when the last one up dies, its slot
         * comes back within LAST_UP_DELAY.  Its crash count still grows, so
         * the long backoff returns as soon as another slot is up, and a
         * crash loop of every slot costs at most a spawn per LAST_UP_DELAY.
         * A single slot keeps its backoff: there it is the only brake. */
        int last = delay > LAST_UP_DELAY && m->active > 1;
        for (cd_proc *q = m->procs; last && q; q = q->next)
            last = q->state == PROC_DRAINING;
        if (last)
            delay = LAST_UP_DELAY;
        if (delay > 0)
            cd_warn("respawning slot %d in %.0f ms (crash %u in a row%s)", s->index, delay * 1000, s->fails,
                    last ? "; no other worker is up" : "");
        m->respawns++;
        cd_master_event(m, "{\"event\":\"respawn_scheduled\",\"slot\":%d,\"delay_ms\":%.0f,\"crashes\":%u}",
                        s->index, delay * 1000, s->fails);
        ev_timer_stop(m->loop, &s->respawn_w);
        ev_timer_set(&s->respawn_w, delay, 0.);
        ev_timer_start(m->loop, &s->respawn_w);
    }
    slots_changed(m); /* steer away from it; hand over what it had queued; a retired slot may close */
    if (m->reloading)
        reload_step(m);
    maybe_done(m);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = w->data;
    cd_proc *p = find_proc(m, w->rpid);
    if (!p) {
        cd_debug("reaped unknown child %d", w->rpid);
        return;
    }
    proc_exited(m, p, w->rstatus);
}

void cd_master_send_stop(cd_master *m, cd_proc *p) { send_stop(m, p); }

static void send_stop(cd_master *m, cd_proc *p)
{
    if (p->state == PROC_DRAINING)
        return;
    p->state = PROC_DRAINING;
    slots_changed(m); /* it stops accepting: its slot is steered away, its queue handed over */
    p->drain_deadline = now(m) + (double)m->conf->graceful_timeout_ms / 1000.0 + 1.0;
    int rc = p->chan_fd >= 0 ? cd_ipc_send(p->chan_fd, CD_MSG_STOP, NULL, 0) : -EPIPE;
    if (rc < 0) {
        /* The channel is gone or stuck: the signal says the same thing. */
        kill(p->pid, SIGTERM);
    }
}

static void all_ready_check(cd_master *m, int was)
{
    int ready = count_ready(m);
    if (ready == m->active && was < m->active && !m->reloading) {
        cd_notice("all %d workers ready on %s", m->active, m->conf->listen);
        if (!m->notified_ready) {
            m->notified_ready = 1;
            char buf[64];
            snprintf(buf, sizeof buf, "READY=1\nMAINPID=%d", (int)getpid());
            cd_systemd_notify(buf);
        }
        cd_systemd_status(m, NULL);
    }
}

void cd_master_chan_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    cd_proc *p = io->data;
    cd_master *m = p->m;
    long n = cd_ipc_read(p->dec, p->chan_fd);
    if (n == -EAGAIN)
        return;
    if (n <= 0) {
        /* EOF: the worker is gone or going; its exit status comes via SIGCHLD.
         * Its slot stops getting connections now, not only then. */
        ev_io_stop(loop, io);
        close(p->chan_fd);
        p->chan_fd = -1;
        slots_changed(m);
        if (m->reloading)
            reload_step(m); /* it can no longer take connections */
        return;
    }
    cd_ipc_msg msg;
    int rc;
    while ((rc = cd_ipc_next(p->dec, &msg)) > 0) {
        switch (msg.type) {
        case CD_MSG_READY: {
            int was = count_ready(m);
            if (p->state == PROC_STARTING)
                p->state = PROC_READY;
            p->last_heartbeat = now(m);
            cd_info("worker pid %d for slot %d is ready", (int)p->pid, p->slot);
            if (p->replaces) { /* it takes over: the one it replaces drains */
                send_stop(m, p->replaces);
                p->replaces = NULL;
            }
            slots_changed(m);
            if (m->recycling == p)
                m->recycling = NULL;
            cd_master_event(m, "{\"event\":\"worker_ready\",\"slot\":%d,\"pid\":%d,\"generation\":%u}", p->slot,
                            (int)p->pid, p->generation);
            if (m->reloading)
                reload_step(m);
            cd_upgrade_check(m);
            all_ready_check(m, was);
            if (m->stopping) /* started before the stop: stop it too */
                send_stop(m, p);
            break;
        }
        case CD_MSG_HEARTBEAT:
            p->last_heartbeat = now(m);
            if (msg.len == sizeof p->stats)
                memcpy(&p->stats, msg.payload, sizeof p->stats);
            break;
        case CD_MSG_BOOTFAIL:
            snprintf(p->bootfail, sizeof p->bootfail, "%.*s", (int)msg.len, (const char *)msg.payload);
            break;
        case CD_MSG_RECYCLE:
            p->recycle = 1;
            break;
        case CD_MSG_DRAINING:
            p->not_accepting = 1;
            if (m->reloading)
                reload_step(m); /* the roll may have been waiting for this */
            break;
        default:
            cd_warn("worker pid %d sent unknown message type %u", (int)p->pid, msg.type);
        }
    }
    if (rc < 0) {
        cd_err("garbage on the channel of worker pid %d (%s); killing it", (int)p->pid, strerror(-rc));
        ev_io_stop(loop, io);
        kill(p->pid, SIGKILL);
    }
}

/* ---- tick: hung workers and overdue drains ---- */

/* Worker recycling: replaces at most one worker at a time that asked for it
 * (max_requests) or grew past max_rss, never during a reload or a stop. */
static void recycle_step(cd_master *m)
{
    if (m->recycling || m->reloading || m->stopping || m->upgrading)
        return;
    for (int i = 0; i < m->active; i++) {
        cd_slot *s = &m->slots[i];
        cd_proc *p = s->current;
        if (!p || p->state != PROC_READY)
            continue;
        if (m->conf->max_rss && p->stats.rss_bytes > m->conf->max_rss && !p->recycle) {
            cd_notice("worker pid %d (slot %d) uses %llu bytes, over max_rss: recycling it", (int)p->pid, p->slot,
                      (unsigned long long)p->stats.rss_bytes);
            p->recycle = 1;
        }
        if (!p->recycle)
            continue;
        cd_info("recycling worker pid %d (slot %d) after %llu requests", (int)p->pid, p->slot,
                (unsigned long long)p->stats.requests);
        m->recycling = replace_slot(m, s);
        if (m->recycling) {
            p->recycle = 0;
            cd_master_event(m, "{\"event\":\"recycle\",\"slot\":%d,\"pid\":%d}", p->slot, (int)p->pid);
        }
        return;
    }
}

/* Sends every worker the whole cluster's counters, so any of them can answer
 * /metrics for all. */
static void send_snapshots(cd_master *m)
{
    int nw = 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        nw++;
    size_t len = sizeof(cd_snapshot) + (size_t)nw * sizeof(cd_snap_worker);
    if (len > CD_IPC_MAX_PAYLOAD) {
        nw = (int)((CD_IPC_MAX_PAYLOAD - sizeof(cd_snapshot)) / sizeof(cd_snap_worker));
        len = sizeof(cd_snapshot) + (size_t)nw * sizeof(cd_snap_worker);
    }
    cd_snapshot *snap = malloc(len);
    if (!snap)
        return;
    memcpy(snap, m->retired, sizeof *snap);
    snap->respawns = m->respawns;
    snap->nworkers = (uint32_t)nw;
    int i = 0;
    double t = now(m);
    for (cd_proc *p = m->procs; p; p = p->next) {
        cd_snapshot_add(snap, &p->stats);
        if (i >= nw)
            continue;
        cd_snap_worker *sw = &snap->workers[i++];
        memset(sw, 0, sizeof *sw);
        sw->slot = p->slot;
        sw->pid = p->pid;
        sw->generation = p->generation;
        sw->state = (uint32_t)p->state;
        sw->uptime = t - p->started;
        sw->heartbeat_age = t - p->last_heartbeat;
        sw->requests = p->stats.requests;
        sw->in_flight = p->stats.in_flight;
        sw->connections = p->stats.connections;
        sw->accepted = p->stats.accepted;
        sw->rss_bytes = p->stats.rss_bytes;
    }
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->chan_fd >= 0 && p->state != PROC_STARTING)
            cd_ipc_send(p->chan_fd, CD_MSG_CLUSTER, snap, len);
    free(snap);
}

/* Healthy: every active slot has a READY worker whose heartbeat is fresh. */
static int healthy(cd_master *m)
{
    double hb_timeout = (double)m->conf->heartbeat_timeout_ms / 1000.0;
    for (int i = 0; i < m->active; i++) {
        cd_proc *p = m->slots[i].current;
        if (!p || p->state != PROC_READY || now(m) - p->last_heartbeat > hb_timeout)
            return 0;
    }
    return 1;
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = t->data;
    double n = now(m);
    double hb_timeout = (double)m->conf->heartbeat_timeout_ms / 1000.0;
    if (m->watchdog_usec && n - m->last_watchdog >= (double)m->watchdog_usec / 2e6 && healthy(m) &&
        !m->stopping) {
        cd_systemd_notify("WATCHDOG=1");
        m->last_watchdog = n;
    }
    recycle_step(m);
    cd_upgrade_check(m);
    slots_changed(m);
    if (m->reloading)
        reload_step(m); /* a roll waiting for an old worker's DRAINING */
    if (n - m->last_snapshot >= (double)m->conf->heartbeat_interval_ms / 1000.0) {
        send_snapshots(m);
        m->last_snapshot = n;
    }
    if (n - m->last_status >= 10.0) {
        cd_systemd_status(m, NULL);
        m->last_status = n;
    }
    for (cd_proc *p = m->procs; p; p = p->next) {
        if (p->hung)
            continue;
        if (p->state == PROC_DRAINING) {
            if (n > p->drain_deadline) {
                cd_warn("worker pid %d (slot %d) still draining past its deadline; killing it", (int)p->pid,
                        p->slot);
                kill(p->pid, SIGKILL);
                p->hung = 1;
            }
            continue;
        }
        if (n - p->last_heartbeat > hb_timeout) {
            cd_err("worker pid %d (slot %d) %s for %.1fs; killing it", (int)p->pid, p->slot,
                   p->state == PROC_STARTING ? "has not become ready" : "missed its heartbeats",
                   n - p->last_heartbeat);
            kill(p->pid, SIGKILL);
            p->hung = 1;
        }
    }
}

/* ---- stop ---- */

static void stop_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = t->data;
    for (cd_proc *p = m->procs; p; p = p->next) {
        cd_warn("stop deadline: killing worker pid %d (slot %d)", (int)p->pid, p->slot);
        kill(p->pid, SIGKILL);
    }
}

static void begin_stop(cd_master *m, int immediate, int code)
{
    if (code > m->exit_code)
        m->exit_code = code;
    if (m->stopping && !immediate)
        return;
    m->stopping = 1;
    m->reloading = 0;
    for (int i = 0; i < m->nslots; i++)
        ev_timer_stop(m->loop, &m->slots[i].respawn_w);
    double grace = immediate ? QUIT_GRACE : (double)m->conf->graceful_timeout_ms / 1000.0 + 0.5;
    cd_systemd_notify("STOPPING=1");
    cd_master_event(m, "{\"event\":\"stopping\",\"immediate\":%s}", immediate ? "true" : "false");
    cd_notice("%s stop: %s", immediate ? "immediate" : "graceful",
              immediate ? "workers exit now" : "finishing in-flight requests");
    for (cd_proc *p = m->procs; p; p = p->next) {
        if (immediate)
            kill(p->pid, SIGQUIT);
        else
            send_stop(m, p);
    }
    ev_timer_stop(m->loop, &m->stop_deadline_w);
    ev_timer_set(&m->stop_deadline_w, grace, 0.);
    ev_timer_start(m->loop, &m->stop_deadline_w);
    maybe_done(m);
}

/* ---- reload ---- */

/* Ends a rolling restart, done or aborted: tells systemd and operators. */
static void reload_finished(cd_master *m, int ok, const char *why)
{
    if (!ok && !m->rolling_back && m->prev_conf) {
        /* Back to the previous config: slots already on the new one get
         * workers of the old one again, the rest never changed. */
        cd_err("reload failed (%s); rolling back to the previous configuration", why);
        snprintf(m->reload_why, sizeof m->reload_why, "%s", why);
        cd_conf_free(m->conf);
        m->conf = m->prev_conf;
        m->prev_conf = NULL;
        close(m->conf_memfd);
        m->conf_memfd = m->prev_memfd;
        m->prev_memfd = -1;
        m->generation--;
        for (cd_proc *p = m->procs; p; p = p->next)
            if (p->state == PROC_STARTING && p->replaces) { /* a replacement under way: cancel it */
                cd_slot *s = &m->slots[p->slot];
                if (s->current == p)
                    s->current = p->replaces;
                p->replaces = NULL;
                send_stop(m, p);
            }
        m->rolling_back = 1;
        m->reload_next = 0;
        reload_step(m);
        return;
    }
    if (!ok && m->rolling_back)
        cd_err("rolling back failed too (%s); slots may run different configurations", why);
    if (m->rolling_back) {
        why = m->reload_why;
        ok = 0;
    }
    m->reloading = 0;
    m->rolling_back = 0;
    m->reload_failed = !ok;
    if (m->prev_conf) {
        cd_conf_free(m->prev_conf);
        m->prev_conf = NULL;
        close(m->prev_memfd);
        m->prev_memfd = -1;
    }
    char when[32];
    cd_now_string(when, sizeof when);
    snprintf(m->last_reload, sizeof m->last_reload, "%s at %s (generation %u)%s%.60s",
             ok ? "done" : "FAILED, rolled back", when, m->generation, why ? ": " : "", why ? why : "");
    cd_systemd_notify("READY=1");
    cd_systemd_status(m, ok ? "reload done" : "reload failed");
    if (ok)
        cd_notice("reload done: %d workers on generation %u", m->active, m->generation);
    else
        cd_notice("rolled back: %d workers on generation %u", m->active, m->generation);
    cd_master_event(m, "{\"event\":\"reload_%s\",\"generation\":%u}", ok ? "done" : "failed", m->generation);
    if (m->reload_pending) {
        m->reload_pending = 0;
        raise(SIGHUP);
    }
}

static void reload_step(cd_master *m)
{
    while (m->reloading && m->reload_next < m->active) {
        cd_slot *s = &m->slots[m->reload_next];
        cd_proc *cur = s->current;
        if (!s->wanted) {
            m->reload_next++;
            continue;
        }
        if (!cur)
            return; /* a respawn is pending; it starts with the new config */
        if (cur->generation == m->generation) {
            if (cur->state != PROC_READY)
                return; /* wait for READY (or its death, which aborts) */
            for (cd_proc *p = m->procs; p; p = p->next)
                if (p->slot == s->index && p != cur)
                    send_stop(m, p);
            m->reload_next++;
            continue;
        }
        /* The new one starts on the same listener; the old one serves until
         * the new one is READY. */
        if (!replace_slot(m, s))
            reload_finished(m, 0, "cannot start a worker");
        return;
    }
    /* Every slot runs the new generation; the roll is done once no worker
     * of an older one can still take a new connection (its DRAINING answer
     * to STOP, or its channel gone): until then a client could still get the
     * old config right after "reload done".  Called again on DRAINING, on
     * a channel's EOF and on every tick (slots_changed). */
    for (cd_proc *p = m->procs; p && m->reloading; p = p->next)
        if (p->generation != m->generation && p->chan_fd >= 0 && !p->not_accepting)
            return;
    if (m->reloading)
        reload_finished(m, 1, NULL);
}

static void apply_scale(cd_master *m, int target);

int cd_master_reload(cd_master *m, char *err, size_t errlen)
{
    if (m->stopping) {
        snprintf(err, errlen, "stopping");
        return -1;
    }
    if (m->upgrading || m->upgrade_checking) {
        snprintf(err, errlen, "a binary upgrade is in progress");
        return -1;
    }
    if (m->reloading) {
        cd_notice("reload requested during a reload: it will follow");
        m->reload_pending = 1;
        return 0;
    }
    cd_conf *nc = NULL;
    cd_notice("reloading %s", m->conf_path);
    if (cd_conf_load_file(m->conf_path, &nc, err, errlen) < 0)
        goto fail;
    if (strcmp(nc->listen, m->conf->listen) != 0 || nc->backlog != m->conf->backlog ||
        strcmp(nc->runtime_dir, m->conf->runtime_dir) != 0 || strcmp(nc->pidfile, m->conf->pidfile) != 0 ||
        strcmp(nc->user, m->conf->user) != 0 || strcmp(nc->group, m->conf->group) != 0) {
        snprintf(err, errlen, "%s: listen, backlog, runtime_dir, pidfile, user or group changed; that needs a restart",
                 m->conf_path);
        goto fail;
    }
    int fd = cd_conf_memfd(nc->text, nc->text_len);
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create() failed: %s", strerror(-fd));
        goto fail;
    }
    /* Keep the running config until the reload is done: a failure rolls back to it. */
    m->prev_conf = m->conf;
    m->prev_memfd = m->conf_memfd;
    m->conf_memfd = fd;
    m->conf = nc;
    if (ensure_bus(m) < 0)
        cd_err("reload: the new configuration's bus could not open; its broadcasts stay local");
    m->generation++;
    m->reloading = 1;
    cd_systemd_notify("RELOADING=1");
    cd_master_event(m, "{\"event\":\"reload_begun\",\"generation\":%u}", m->generation);
    m->reload_failed = 0;
    m->reload_next = 0;
    int target = m->cli_workers ? m->cli_workers : cd_conf_workers(nc);
    if (target != m->active)
        apply_scale(m, target);
    reload_step(m);
    return 0;
fail:
    cd_conf_free(nc);
    cd_err("reload failed, keeping the current configuration: %s", err);
    snprintf(m->last_reload, sizeof m->last_reload, "REJECTED: %.80s", err);
    cd_master_event(m, "{\"event\":\"reload_rejected\"}");
    return -1;
}

/* ---- scaling ---- */

static void apply_scale(cd_master *m, int target)
{
    if (target < 1)
        target = 1;
    while (m->active < target) {
        int i = m->active;
        cd_slot *s = &m->slots[i];
        if (s->retiring) {
            /* Not closed yet: take the slot back, with a new worker if
             * the old one is still draining. */
            s->retiring = 0;
            if (s->current && s->current->state == PROC_DRAINING)
                s->current = NULL;
        }
        if (open_slot(m, i) < 0)
            break;
        s->wanted = 1;
        s->fails = 0;
        m->active++;
        if (!s->current)
            spawn_slot(m, s);
        slots_changed(m);
        cd_info("scaled up to %d workers", m->active);
        cd_master_event(m, "{\"event\":\"scaled\",\"workers\":%d}", m->active);
    }
    while (m->active > target) {
        cd_slot *s = &m->slots[m->active - 1];
        m->active--;
        s->wanted = 0;
        s->retiring = 1;
        ev_timer_stop(m->loop, &s->respawn_w);
        /* No new connections for this slot from now on; its worker drains
         * and the master hands over what the listener still holds. */
        for (cd_proc *p = m->procs; p; p = p->next)
            if (p->slot == s->index)
                send_stop(m, p);
        slots_changed(m);
        cd_info("scaled down to %d workers", m->active);
        cd_master_event(m, "{\"event\":\"scaled\",\"workers\":%d}", m->active);
    }
}

/* ---- runtime dir and bus ---- */

static void bus_relay_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = w->data;
    cd_bus_master_relay(&m->bus);
}

/* Creates the runtime dir (mode 0700) when missing.  One that exists must be
 * a directory (not a symlink) of ours that neither group nor others can
 * write: whoever can write it can replace our sockets (clusterctl would then
 * talk to theirs) or squat their names.  We refuse to start rather than
 * chmod it, like sshd's StrictModes: its mode is the admin's choice
 * (systemd's RuntimeDirectoryMode=, a dir shared on purpose), and fixing it
 * silently would hide that it was open, perhaps already used.  Read and
 * search for others, as systemd's default 0755, are fine: the sockets in it
 * are 0600.  With workers under another user, the dir is given to them and
 * stays acceptable to us.  Returns 0 or -1 (logged). */
static int ensure_runtime_dir(cd_master *m)
{
    const char *dir = m->conf->runtime_dir;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        cd_log_errno(CD_LOG_ERR, errno, "mkdir", "cannot create runtime_dir %s", dir);
        return -1;
    }
    struct stat st;
    if (lstat(dir, &st) < 0) {
        cd_log_errno(CD_LOG_ERR, errno, "lstat", "runtime_dir %s", dir);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        cd_err("runtime_dir %s is not a directory%s; not starting", dir,
               S_ISLNK(st.st_mode) ? " but a symbolic link (name the real directory)" : "");
        return -1;
    }
    if (st.st_uid != geteuid() && !(m->drop_privs && st.st_uid == m->uid)) {
        cd_err("runtime_dir %s is owned by uid %d, not by us (uid %d): another user could replace our sockets; "
               "not starting", dir, (int)st.st_uid, (int)geteuid());
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        cd_err("runtime_dir %s has mode %04o: writable by %s, who could replace our sockets; not starting "
               "(chmod go-w it, or let clusterd create it)", dir, (unsigned)(st.st_mode & 07777),
               st.st_mode & S_IWOTH ? "every user" : "its group");
        return -1;
    }
    /* Workers that run as another user must reach the sockets in it. */
    if (m->drop_privs && chown(dir, m->uid, m->gid) < 0)
        cd_log_errno(CD_LOG_WARN, errno, "chown", "runtime_dir %s", dir);
    snprintf(m->runtime_dir, sizeof m->runtime_dir, "%s", dir);
    return 0;
}

/* Opens the bus relay when a configured service needs it. */
static int ensure_bus(cd_master *m)
{
    int needed = 0;
    for (size_t i = 0; i < m->conf->nservices; i++)
        needed |= m->conf->services[i].uses_bus;
    if (!needed || m->bus.in >= 0)
        return 0;
    if (ensure_runtime_dir(m) < 0)
        return -1;
    int rc = cd_bus_master_open(&m->bus, m->conf->runtime_dir);
    if (rc < 0) {
        cd_log_errno(CD_LOG_ERR, -rc, "nn_bind", "cannot open the bus in %s", m->conf->runtime_dir);
        return -1;
    }
    m->bus_bound = 1;
    ev_io_init(&m->bus_w, bus_relay_cb, m->bus.rcvfd, EV_READ);
    m->bus_w.data = m;
    ev_io_start(m->loop, &m->bus_w);
    cd_info("bus relay on ipc://%s/bus-{in,out}", m->conf->runtime_dir);
    return 0;
}

/* Removes the sockets we bound (only those: a second clusterd that failed to
 * start must not delete the first one's), then the dir if it is empty. */
static void remove_runtime_dir(cd_master *m)
{
    if (!m->runtime_dir[0])
        return;
    char path[300];
    if (m->ctl_bound) {
        static const char *const ctl[] = {"control", "events"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%s", m->runtime_dir, ctl[i]);
            unlink(path);
        }
    }
    if (m->bus_bound) {
        static const char *const bus[] = {"bus-in", "bus-out"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%s", m->runtime_dir, bus[i]);
            unlink(path);
        }
    }
    rmdir(m->runtime_dir);
}

int cd_master_scale(cd_master *m, int target, char *err, size_t errlen)
{
    if (m->stopping) {
        snprintf(err, errlen, "stopping");
        return -1;
    }
    if (target < 1 || target > CD_MAX_SLOTS) {
        snprintf(err, errlen, "the worker count must be from 1 to %d", CD_MAX_SLOTS);
        return -1;
    }
    if (target < m->activated) {
        snprintf(err, errlen, "slots 0..%d have sockets from systemd; cannot go below %d", m->activated - 1,
                 m->activated);
        return -1;
    }
    apply_scale(m, target);
    return 0;
}

void cd_master_stop(cd_master *m, int immediate) { begin_stop(m, immediate, 0); }

void cd_master_reopen_bus(cd_master *m)
{
    if (ensure_bus(m) < 0)
        cd_err("the bus could not be reopened; broadcasts stay local");
}

void cd_master_reopen_logs(cd_master *m)
{
    /* The master logs to stderr (journald); workers own the access log. */
    int n = 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->chan_fd >= 0 && cd_ipc_send(p->chan_fd, CD_MSG_REOPEN, NULL, 0) == 0)
            n++;
    cd_notice("reopening log files: told %d worker(s)", n);
}

/* ---- signals ---- */

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = w->data;
    switch (w->signum) {
    case SIGTERM:
    case SIGINT:
        begin_stop(m, 0, 0);
        break;
    case SIGQUIT:
        begin_stop(m, 1, 0);
        break;
    case SIGHUP: {
        char err[512];
        cd_master_reload(m, err, sizeof err); /* logged inside */
        break;
    }
    case SIGTTIN:
        if (!m->stopping && m->active < CD_MAX_SLOTS)
            apply_scale(m, m->active + 1);
        break;
    case SIGTTOU:
        if (!m->stopping && m->active <= m->activated)
            cd_notice("SIGTTOU ignored: slot %d's socket comes from systemd", m->active - 1);
        else if (!m->stopping && m->active > 1)
            apply_scale(m, m->active - 1);
        else if (!m->stopping)
            cd_notice("SIGTTOU ignored: already at one worker");
        break;
    case SIGUSR1:
        cd_master_reopen_logs(m);
        break;
    case SIGUSR2: {
        char err[512];
        if (cd_upgrade_begin(m, err, sizeof err) < 0)
            cd_err("upgrade refused: %s", err);
        break;
    }
    default:
        break;
    }
}

/* The process-wide settings of [cluster]: pidfile, rlimit_nofile, user/group.
 * Returns 0 or -1 (logged). */
static int prepare_process(cd_master *m, int adopted)
{
    const cd_conf *c = m->conf;
    if (c->rlimit_nofile) {
        struct rlimit rl = {(rlim_t)c->rlimit_nofile, (rlim_t)c->rlimit_nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            cd_log_errno(CD_LOG_ERR, errno, "setrlimit", "rlimit_nofile = %lld", c->rlimit_nofile);
            return -1;
        }
    }
    if (c->user[0] || c->group[0]) {
        struct passwd *pw = c->user[0] ? getpwnam(c->user) : NULL;
        struct group *gr = c->group[0] ? getgrnam(c->group) : NULL;
        if (c->user[0] && !pw) {
            cd_err("user '%s' does not exist", c->user);
            return -1;
        }
        if (c->group[0] && !gr) {
            cd_err("group '%s' does not exist", c->group);
            return -1;
        }
        m->uid = pw ? pw->pw_uid : geteuid();
        m->gid = gr ? gr->gr_gid : pw ? pw->pw_gid : getegid();
        if (geteuid() != 0 && (m->uid != geteuid() || m->gid != getegid())) {
            cd_err("user/group need clusterd to start as root (it runs as uid %d)", (int)geteuid());
            return -1;
        }
        m->drop_privs = geteuid() == 0;
    }
    if (c->pidfile[0] && !adopted) { /* after an upgrade we hold it already */
        pid_t holder;
        m->pidfile_fd = cd_pidfile_open(c->pidfile, &holder);
        if (m->pidfile_fd == -EEXIST) {
            cd_err("another clusterd (pid %d) holds the pidfile %s; not starting", (int)holder, c->pidfile);
            m->pidfile_fd = -1;
            return -1;
        }
        if (m->pidfile_fd < 0) {
            cd_log_errno(CD_LOG_ERR, -m->pidfile_fd, "open/flock", "pidfile %s", c->pidfile);
            m->pidfile_fd = -1;
            return -1;
        }
    }
    uint64_t usec = 0;
    if (cd_systemd_watchdog_usec(&usec) > 0)
        m->watchdog_usec = usec;
    return 0;
}

int cd_master_main(cd_conf *conf, const char *conf_path, int cli_workers, char **argv)
{
    cd_master master = {.conf = conf, .conf_path = conf_path, .cli_workers = cli_workers, .generation = 1,
                        .argv = argv, .prev_exe_fd = -1,
                        .conf_memfd = -1, .pidfile_fd = -1, .bus = {.in = -1, .out = -1},
                        .ctl_rep = -1, .ctl_pub = -1, .prev_memfd = -1};
    cd_master *m = &master;
    cd_log_role(-1, 0);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)getpid() ^ (unsigned)time(NULL));
    m->exit_code = 1; /* until the loop runs */
    m->loop = ev_default_loop(EVFLAG_AUTO);
    m->slots = calloc(CD_MAX_SLOTS, sizeof *m->slots);
    if (!m->loop || !m->slots) {
        cd_err("cannot create the event loop");
        goto out;
    }
    m->nslots = CD_MAX_SLOTS;
    for (int i = 0; i < CD_MAX_SLOTS; i++) {
        m->slots[i].index = i;
        m->slots[i].fd = -1;
        m->slots[i].m = m;
        ev_init(&m->slots[i].respawn_w, respawn_cb);
        m->slots[i].respawn_w.data = &m->slots[i];
        ev_init(&m->slots[i].handoff_w, handoff_cb);
        m->slots[i].handoff_w.data = &m->slots[i];
    }
    m->conf_memfd = cd_conf_memfd(conf->text, conf->text_len);
    if (m->conf_memfd < 0) {
        cd_log_errno(CD_LOG_ERR, -m->conf_memfd, "memfd_create", "cannot pass the config to workers");
        goto out;
    }
    ssize_t el = readlink("/proc/self/exe", m->exe_path, sizeof m->exe_path - 1);
    if (el > 0) {
        m->exe_path[el] = '\0';
        char *del = strstr(m->exe_path, " (deleted)");
        if (del)
            *del = '\0';
    }
    int adopted = cd_upgrade_adopt(m);
    if (prepare_process(m, adopted) < 0)
        goto out;
    int fds[CD_MAX_SLOTS];
    int act = adopted ? 0 : cd_systemd_listeners(fds, CD_MAX_SLOTS);
    if (act < 0)
        goto out;
    for (int i = 0; i < act; i++) {
        m->slots[i].fd = fds[i];
        m->slots[i].activated = 1;
    }
    m->activated = act;
    /* With sockets from systemd, their number is the default worker count. */
    int n = adopted ? m->active : cli_workers ? cli_workers : (act > 0 && conf->workers == 0) ? act : cd_conf_workers(conf);
    if (act > 0)
        cd_notice("socket activation: %d listener(s) from systemd%s", act,
                  n > act ? "; binding the rest ourselves" : "");
    /* The control socket first: if another clusterd runs with the same
     * runtime_dir, we must not join its listeners' reuseport group even
     * briefly.  Then all listeners and the bus: an error stops us before any
     * worker starts. */
    m->started = ev_now(m->loop);
    if (ensure_runtime_dir(m) < 0)
        goto out;
    if (cd_control_open(m) < 0) {
        cd_err("is another clusterd running with runtime_dir %s? (set runtime_dir, or stop it)", m->conf->runtime_dir);
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (open_slot(m, i) < 0)
            goto out;
    m->active = n;
    slots_changed(m);
    m->retired = calloc(1, sizeof *m->retired);
    if (!m->retired || ensure_bus(m) < 0)
        goto out;

    static const int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        ev_signal_init(&m->sig_w[i], signal_cb, sigs[i]);
        m->sig_w[i].data = m;
        ev_signal_start(m->loop, &m->sig_w[i]);
    }
    ev_child_init(&m->child_w, child_cb, 0, 0);
    m->child_w.data = m;
    ev_child_start(m->loop, &m->child_w);
    ev_timer_init(&m->tick_w, tick_cb, TICK, TICK);
    m->tick_w.data = m;
    ev_timer_start(m->loop, &m->tick_w);
    ev_init(&m->stop_deadline_w, stop_deadline_cb);
    m->stop_deadline_w.data = m;

    cd_notice("clusterd starting: %d workers on %s, config %s", n, conf->listen, conf_path);
    m->exit_code = 0;
    if (adopted == 2)
        cd_upgrade_start_generation(m);
    for (int i = 0; i < n; i++) {
        m->slots[i].wanted = 1;
        if (!m->slots[i].current)
            spawn_slot(m, &m->slots[i]);
    }
    ev_run(m->loop, 0);

out:
    for (int i = 0; m->slots && i < m->nslots; i++) {
        ev_timer_stop(m->loop, &m->slots[i].respawn_w);
        ev_io_stop(m->loop, &m->slots[i].handoff_w);
        if (m->slots[i].fd >= 0)
            close(m->slots[i].fd);
    }
    while (m->procs)
        proc_free(m, m->procs);
    if (m->bus.in >= 0) {
        ev_io_stop(m->loop, &m->bus_w);
        cd_bus_close(&m->bus);
    }
    cd_control_close(m);
    remove_runtime_dir(m);
    free(m->retired);
    if (m->pidfile_fd >= 0)
        cd_pidfile_close(m->conf->pidfile, m->pidfile_fd);
    free(m->slots);
    if (m->conf_memfd >= 0)
        close(m->conf_memfd);
    if (m->prev_exe_fd >= 0)
        close(m->prev_exe_fd);
    cd_notice("stopped (exit code %d)", m->exit_code);
    cd_conf_free(m->prev_conf);
    if (m->prev_memfd >= 0)
        close(m->prev_memfd);
    cd_conf_free(m->conf);
    if (m->loop)
        ev_loop_destroy(m->loop);
    return m->exit_code;
}
