/*
 * master.c - the master's loop (master process).
 *
 * Everything the master does is a reaction on its libev default loop, in
 * two halves, as in gunicorn's arbiter:
 *
 *   handlers   record facts and nothing more:
 *                signals     TERM/INT stop (after drain_delay; a second
 *                            one skips the rest), QUIT stop now, HUP reload,
 *                            TTIN/TTOU one worker more/fewer, USR1 reopen
 *                            logs, USR2 upgrade (the same commands as
 *                            clusterctl's: cd_master_execute, commands.c)
 *                SIGCHLD     a worker exited (p->exited)
 *                channels    READY, HEARTBEAT, BOOTFAIL, RECYCLE, DRAINING,
 *                            EOF (fields of the worker's cd_proc)
 *                commands    clusterctl (control.c parses, commands.c
 *                            checks, records and answers)
 *                timers      the 250 ms tick, a slot's backoff, a stop's
 *                            drain_delay and its deadline, the upgrade check
 *   reconcile  one step, run after every handler, decides what to do:
 *                reap        exited workers: what their exit means
 *                            (supervise.c), respawn with backoff
 *                murder      workers whose heartbeat stopped or whose drain
 *                            overran: SIGKILL
 *                manage      what READY implies, recycling, starting the
 *                            workers that wanted slots lack, steering, the
 *                            reload and upgrade state machines, the end of
 *                            a stop
 * Signal handlers only queue (libev's ev_signal); the work happens here.
 * The table is written by slots.c only; the policies are supervise.c,
 * reload.c and upgrade.c, whose transitions are pure.
 */
#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "ipc/proto.h"

#define TICK 0.25

static double now(cd_master *m) { return ev_now(m->loop); }

static void reap(cd_master *m);
static void murder(cd_master *m);
static void manage(cd_master *m);

/* The one place that decides, after every handler: the exited first (their
 * slots may need workers), then the hung (they are killed, and reaped in a
 * later step), then everything else.  The loop ends once a stop has no
 * worker left. */
static void reconcile(cd_master *m)
{
    reap(m);
    murder(m);
    manage(m);
    if (m->stop != CD_RUNNING && !m->procs)
        ev_break(m->loop, EVBREAK_ALL);
}

/* ---- reconcile: reap ---- */

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
            if (msg.type == CD_MSG_HEARTBEAT)
                cd_stats_from_wire(&p->stats, msg.payload, msg.len);
            else if (msg.type == CD_MSG_BOOTFAIL)
                snprintf(p->bootfail, sizeof p->bootfail, "%.*s", (int)msg.len, (const char *)msg.payload);
        }
    }
}

static void schedule_respawn(cd_master *m, cd_slot *s, double uptime)
{
    int others_up = 0;
    for (cd_proc *q = m->procs; q; q = q->next)
        others_up |= q->state != PROC_DRAINING;
    cd_respawn r = cd_supervise_respawn(s->fails, uptime, m->active, others_up, (double)random() / (double)RAND_MAX);
    s->fails = r.fails;
    if (r.delay > 0)
        cd_warn("respawning slot %d in %.0f ms (crash %u in a row%s)", s->index, r.delay * 1000, r.fails,
                r.last_up ? "; no other worker is up" : "");
    m->respawns++;
    cd_master_event(m, "{\"event\":\"respawn_scheduled\",\"slot\":%d,\"delay_ms\":%.0f,\"crashes\":%u}", s->index,
                    r.delay * 1000, r.fails);
    ev_timer_stop(m->loop, &s->respawn_w);
    ev_timer_set(&s->respawn_w, r.delay, 0.);
    ev_timer_start(m->loop, &s->respawn_w); /* when it fires, manage() starts the worker */
}

/* Acts on one exit as supervise.c classifies it. */
static void reap_one(cd_master *m, cd_proc *p)
{
    read_last_words(p);
    cd_snapshot_retire(m->retired, &p->stats); /* counters never go down; its gauges go with it */
    cd_slot *s = p->slot < m->nslots ? &m->slots[p->slot] : NULL;
    cd_exit_facts f = {.status = p->status, .starting = p->state == PROC_STARTING,
                       .draining = p->state == PROC_DRAINING, .generation = p->generation,
                       .replaces_alive = s && p->replaces && p->replaces->state != PROC_DRAINING,
                       .recycling = m->recycling == p, .stopping = m->stop != CD_RUNNING,
                       .reloading = m->reload.state != CD_RELOAD_IDLE,
                       .upgrading = m->upgrade.state == CD_UPGRADE_STARTING, .upgrade_from = m->upgrade.from};
    cd_exit_verdict v = cd_supervise_exit(&f);
    char how[128], reason[256], why[512];
    describe_status(p->status, how, sizeof how);
    snprintf(reason, sizeof reason, "%s", p->bootfail[0] ? p->bootfail : "no reason given");
    int was_current = s && s->current == p, slot = s ? s->index : -1;
    pid_t pid = p->pid;
    unsigned gen = p->generation;
    double uptime = now(m) - p->started;
    cd_proc *replaced = p->replaces;
    cd_slots_remove(m, p);
    cd_master_event(m, "{\"event\":\"worker_exited\",\"slot\":%d,\"pid\":%d,\"generation\":%u,\"status\":\"%s\"}",
                    slot, (int)pid, gen, how);
    switch (v.kind) {
    case CD_EXITED_UPGRADE_FAILED:
        snprintf(why, sizeof why, "a new worker %s%s%s", how, v.bootfail ? ": " : "", v.bootfail ? reason : "");
        cd_upgrade_rollback(m, why); /* execs the old binary; returns only if that fails */
        return;
    case CD_EXITED_EXPECTED:
        cd_log(v.clean ? CD_LOG_INFO : CD_LOG_WARN, "worker pid %d (slot %d, generation %u) %s", (int)pid, slot, gen,
               how);
        break;
    case CD_EXITED_REPLACEMENT_FAILED:
        cd_slots_keep_replaced(m, s, replaced);
        cd_err("the new worker for slot %d %s before READY (%s); the old one keeps serving", slot, how,
               v.bootfail ? reason : "no boot failure reported");
        if (v.postpone_recycle)
            cd_warn("recycling slot %d postponed", slot);
        if (v.abort_reload)
            cd_reload_failed(m, v.bootfail ? reason : "a new worker died before READY");
        break;
    case CD_EXITED_RELOAD_BOOTFAIL:
        cd_reload_failed(m, reason);
        break;
    case CD_EXITED_BOOTFAIL:
        cd_err("worker for slot %d failed to boot: %s; stopping (not respawning a worker that cannot start)", slot,
               reason);
        cd_master_stop(m, 0, 1);
        break;
    case CD_EXITED_CRASH:
        cd_warn("worker pid %d (slot %d) %s after %.1fs", (int)pid, slot, how, uptime);
        if (v.abort_reload)
            cd_reload_failed(m, "a new worker died before READY");
        break;
    }
    if (was_current && !s->current && s->wanted && m->stop == CD_RUNNING)
        schedule_respawn(m, s, uptime);
}

static void reap(cd_master *m)
{
    for (cd_proc *p = m->procs; p;) {
        if (!p->exited) {
            p = p->next;
            continue;
        }
        reap_one(m, p);
        p = m->procs; /* the table changed: start over */
    }
}

/* ---- reconcile: murder ---- */

static void murder(cd_master *m)
{
    double n = now(m), hb_timeout = (double)m->conf->heartbeat_timeout_ms / 1000.0;
    for (cd_proc *p = m->procs; p; p = p->next) {
        cd_hung_facts f = {.starting = p->state == PROC_STARTING, .draining = p->state == PROC_DRAINING,
                           .killed = p->hung, .now = n, .last_heartbeat = p->last_heartbeat,
                           .drain_deadline = p->drain_deadline, .heartbeat_timeout = hb_timeout};
        cd_hung_kind k = cd_supervise_hung(&f);
        if (k == CD_HUNG_NO)
            continue;
        if (k == CD_HUNG_DRAIN_OVERRUN)
            cd_warn("worker pid %d (slot %d) still draining past its deadline; killing it", (int)p->pid, p->slot);
        else
            cd_err("worker pid %d (slot %d) %s for %.1fs; killing it", (int)p->pid, p->slot,
                   k == CD_HUNG_NOT_READY ? "has not become ready" : "missed its heartbeats", n - p->last_heartbeat);
        kill(p->pid, SIGKILL);
        p->hung = 1;
    }
}

/* ---- reconcile: manage ---- */

/* What a READY implies: the worker it replaces drains; during a stop, it
 * drains too.  Returns how many became READY. */
static int after_ready(cd_master *m)
{
    int n = 0;
    for (cd_proc *p = m->procs; p; p = p->next) {
        if (!p->just_ready)
            continue;
        p->just_ready = 0;
        n++;
        cd_proc *old = cd_slots_took_over(m, p);
        if (old)
            cd_slots_stop(m, old);
        if (m->recycling == p)
            m->recycling = NULL;
        cd_master_event(m, "{\"event\":\"worker_ready\",\"slot\":%d,\"pid\":%d,\"generation\":%u}", p->slot,
                        (int)p->pid, p->generation);
        if (m->stop > CD_STOP_DELAYED) /* started before the stop: stop it too */
            cd_slots_stop(m, p);
    }
    return n;
}

/* Worker recycling: replaces at most one worker at a time that asked for it
 * (max_requests) or grew past max_rss, never during a reload, an upgrade
 * or a stop.  The next one waits until the worker replaced last has exited
 * (no worker draining), so there is never more than one extra worker. */
static void recycle(cd_master *m)
{
    if (m->recycling || m->reload.state != CD_RELOAD_IDLE || m->stop != CD_RUNNING ||
        m->upgrade.state == CD_UPGRADE_STARTING)
        return;
    for (const cd_proc *p = m->procs; p; p = p->next)
        if (p->state == PROC_DRAINING)
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
        m->recycling = cd_slots_start(m, s, 1);
        if (m->recycling) {
            p->recycle = 0;
            cd_master_event(m, "{\"event\":\"recycle\",\"slot\":%d,\"pid\":%d}", p->slot, (int)p->pid);
        }
        return;
    }
}

/* Every wanted slot without a worker whose backoff is over gets one; a
 * failed spawn backs off. */
static void start_missing(cd_master *m)
{
    if (m->stop != CD_RUNNING)
        return;
    for (int i = 0; i < m->nslots; i++) {
        cd_slot *s = &m->slots[i];
        if (!s->wanted || s->current || ev_is_active(&s->respawn_w))
            continue;
        if (!cd_slots_start(m, s, 0)) {
            s->fails++;
            ev_timer_set(&s->respawn_w, cd_supervise_backoff(s->fails, (double)random() / (double)RAND_MAX), 0.);
            ev_timer_start(m->loop, &s->respawn_w);
        }
    }
}

/* Every slot has a READY worker again (after a READY, outside a reload):
 * say so, and tell systemd the first time. */
static void all_ready_check(cd_master *m)
{
    int ready = cd_slots_count_ready(m);
    if (ready != m->active || m->ready_seen >= m->active || m->reload.state != CD_RELOAD_IDLE)
        return;
    cd_notice("all %d workers ready on %s", m->active, m->conf->listen);
    if (!m->notified_ready) {
        m->notified_ready = 1;
        char buf[64];
        snprintf(buf, sizeof buf, "READY=1\nMAINPID=%d", (int)getpid());
        cd_systemd_notify(buf);
    }
    cd_systemd_status(m, NULL);
}

static void manage(cd_master *m)
{
    int readied = after_ready(m);
    recycle(m);
    start_missing(m);
    cd_slots_changed(m); /* steer to serving slots; hand over what others queue; retire empty slots */
    cd_reload_step(m);
    cd_upgrade_step(m);
    if (readied)
        all_ready_check(m);
    m->ready_seen = cd_slots_count_ready(m);
}


/* ---- handlers ---- */

static void ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = w->data;
    for (int i = 0; i < 16 && m->ctl_rep >= 0; i++) {
        cd_ctl_request req;
        int rc = cd_control_next(m, &req);
        if (rc == 0)
            break;
        if (rc < 0)
            continue;
        cd_buf o = {0};
        char err[512] = "";
        cd_master_execute(m, &req, &o, err, sizeof err);
        cd_control_answer(m, &o);
        cd_buf_free(&o);
    }
    reconcile(m);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = w->data;
    cd_ctl_request req = {0};
    switch (w->signum) {
    case SIGTERM:
    case SIGINT: req.op = CD_CTL_STOP; break;
    case SIGQUIT: req.op = CD_CTL_STOP_NOW; break;
    case SIGHUP: req.op = CD_CTL_RELOAD; break; /* a refusal is logged by reload.c */
    case SIGUSR1: req.op = CD_CTL_REOPEN_LOGS; break;
    case SIGUSR2: req.op = CD_CTL_UPGRADE; break;
    case SIGTTIN:
        if (m->stop == CD_RUNNING && m->active < CD_MAX_SLOTS)
            cd_slots_scale(m, m->active + 1);
        break;
    case SIGTTOU:
        if (m->stop == CD_RUNNING && m->active <= m->activated)
            cd_notice("SIGTTOU ignored: slot %d's socket comes from systemd", m->active - 1);
        else if (m->stop == CD_RUNNING && m->active > 1)
            cd_slots_scale(m, m->active - 1);
        else if (m->stop == CD_RUNNING)
            cd_notice("SIGTTOU ignored: already at one worker");
        break;
    default: break;
    }
    if (req.op) {
        cd_buf o = {0};
        char err[512] = "";
        if (cd_master_execute(m, &req, &o, err, sizeof err) < 0 && req.op == CD_CTL_UPGRADE)
            cd_err("upgrade refused: %s", err);
        cd_buf_free(&o);
    }
    reconcile(m);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = w->data;
    cd_proc *p = cd_slots_find(m, w->rpid);
    if (!p) {
        cd_debug("reaped unknown child %d", w->rpid);
        return;
    }
    p->exited = 1;
    p->status = w->rstatus;
    reconcile(m);
}

static void chan_message(cd_master *m, cd_proc *p, const cd_ipc_msg *msg)
{
    switch (msg->type) {
    case CD_MSG_READY:
        if (p->state == PROC_STARTING)
            p->state = PROC_READY;
        p->last_heartbeat = now(m);
        p->just_ready = 1;
        cd_info("worker pid %d for slot %d is ready", (int)p->pid, p->slot);
        break;
    case CD_MSG_HEARTBEAT:
        p->last_heartbeat = now(m);
        cd_stats_from_wire(&p->stats, msg->payload, msg->len); /* a malformed one: ignored */
        break;
    case CD_MSG_BOOTFAIL:
        snprintf(p->bootfail, sizeof p->bootfail, "%.*s", (int)msg->len, (const char *)msg->payload);
        break;
    case CD_MSG_RECYCLE:
        p->recycle = 1;
        break;
    case CD_MSG_DRAINING:
        p->not_accepting = 1; /* a roll may have been waiting for this */
        break;
    case CD_MSG_HANDOFF:
        cd_sticky_forward(m, p, msg); /* a relay: changes nothing in the table */
        return;
    default:
        cd_warn("worker pid %d sent unknown message type %u", (int)p->pid, msg->type);
    }
}

static void chan_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    cd_proc *p = io->data;
    cd_master *m = p->m;
    int room = (int)(sizeof p->passed / sizeof p->passed[0]) - p->npassed, got = 0;
    long n = cd_ipc_read_fds(p->dec, p->chan_fd, p->passed + p->npassed, room, &got);
    p->npassed += got; /* connections moved by the worker (HANDOFF) */
    if (n == -EAGAIN)
        return;
    if (n <= 0) {
        /* EOF: the worker is gone or going; its exit status comes via SIGCHLD.
         * Its slot stops getting connections now, not only then. */
        cd_slots_close_channel(m, p);
        reconcile(m);
        return;
    }
    cd_ipc_msg msg;
    int rc;
    while ((rc = cd_ipc_next(p->dec, &msg)) > 0)
        chan_message(m, p, &msg);
    if (rc < 0) {
        cd_err("garbage on the channel of worker pid %d (%s); killing it", (int)p->pid, strerror(-rc));
        ev_io_stop(loop, io);
        kill(p->pid, SIGKILL);
    }
    reconcile(m);
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
    if (m->watchdog_usec && n - m->last_watchdog >= (double)m->watchdog_usec / 2e6 && healthy(m) &&
        m->stop == CD_RUNNING) {
        cd_systemd_notify("WATCHDOG=1");
        m->last_watchdog = n;
    }
    if (n - m->last_snapshot >= (double)m->conf->heartbeat_interval_ms / 1000.0) {
        cd_snapshot_send(m);
        m->last_snapshot = n;
    }
    if (n - m->last_status >= 10.0) {
        cd_systemd_status(m, NULL);
        m->last_status = n;
    }
    reconcile(m); /* time passed: drains overrun, heartbeats missed, backoffs and deadlines expired */
}

static void respawn_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_slot *s = t->data;
    reconcile(s->m); /* the backoff is over: manage() starts its worker */
}

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

/* A graceful stop's drain_delay is over: the listeners stop accepting now. */
static void drain_delay_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = t->data;
    cd_master_stop(m, 0, 0);
    reconcile(m);
}

static void upgrade_checked_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)revents;
    cd_master *m = w->data;
    ev_child_stop(loop, w);
    ev_timer_stop(loop, &m->upgrade.check_timeout_w);
    cd_upgrade_check_result(m, w->rstatus); /* execs the new binary, or refuses */
    reconcile(m);
}

static void upgrade_check_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = t->data;
    cd_err("upgrade: the new binary's `-V` did not finish in 5s; killing it");
    kill(m->upgrade.check_w.pid, SIGKILL); /* upgrade_checked_cb reports the refusal */
}

/* ---- start and end ---- */

/* The loop's own watchers get their callbacks (started later, or by
 * whoever opens what they watch). */
static void init_watchers(cd_master *m)
{
    m->chan_cb = chan_cb;
    for (int i = 0; i < m->nslots; i++) {
        ev_init(&m->slots[i].respawn_w, respawn_cb);
        m->slots[i].respawn_w.data = &m->slots[i];
    }
    ev_init(&m->ctl_w, ctl_cb);
    m->ctl_w.data = m;
    ev_init(&m->stop_deadline_w, stop_deadline_cb);
    m->stop_deadline_w.data = m;
    ev_init(&m->drain_delay_w, drain_delay_cb);
    m->drain_delay_w.data = m;
    ev_init(&m->upgrade.check_w, upgrade_checked_cb);
    m->upgrade.check_w.data = m;
    ev_init(&m->upgrade.check_timeout_w, upgrade_check_timeout_cb);
    m->upgrade.check_timeout_w.data = m;
}

static void watch(cd_master *m)
{
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
}

int cd_master_main(cd_conf *conf, const char *conf_path, int cli_workers, char **argv)
{
    cd_master master = {.conf = conf, .conf_path = conf_path, .cli_workers = cli_workers, .generation = 1,
                        .argv = argv, .conf_memfd = -1, .pidfile_fd = -1, .bus = {.in = -1, .out = -1},
                        .ctl_rep = -1, .ctl_pub = -1, .reload = {.prev_memfd = -1},
                        .upgrade = {.prev_exe_fd = -1}};
    cd_master *m = &master;
    cd_log_role(-1, 0);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)getpid() ^ (unsigned)time(NULL));
    m->exit_code = 1; /* until the loop runs */
    int adopted = 0, n = -1;
    m->loop = ev_default_loop(EVFLAG_AUTO);
    if (!m->loop || cd_slots_init(m) < 0) {
        cd_err("cannot create the event loop");
    } else {
        init_watchers(m);
        n = cd_master_setup(m, &adopted);
    }
    if (n > 0) {
        watch(m);
        cd_notice("clusterd starting: %d workers on %s, config %s", n, conf->listen, conf_path);
        m->exit_code = 0;
        if (adopted == 2)
            cd_upgrade_start_generation(m);
        reconcile(m); /* starts the workers */
        ev_run(m->loop, 0);
    }
    cd_master_teardown(m);
    return m->exit_code;
}
