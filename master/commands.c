/*
 * commands.c - what clusterctl and signals ask of the master (master
 * process): status, reload, scale, stop, stop now, reopen-logs, upgrade,
 * drain, undrain.
 *
 * master.c's handlers turn a request (control.c parses clusterctl's; a
 * signal maps to the same command) into a call of cd_master_execute, which
 * checks it, records it (a new config and generation, the slots wanted, a
 * stop) and answers at once; the loop's reconcile step then carries it
 * out: the roll of a reload, the workers of new slots, the end of a stop.
 *
 * Draining is for the balancer in front: drain tells every worker to
 * answer GET /healthz/ready with 503 {"ready":false,"draining":true,...}
 * while the listeners keep accepting and every other route serves as
 * usual, so health checks take the host out before anything is refused;
 * undrain reverts.  A graceful stop does the same for drain_delay
 * (longer than the balancer's check interval times its fall count) and
 * only then stops the listeners and drains connections; a second stop, or stop now, skips
 * what is left of the delay.  The master's own stops (a worker that cannot
 * boot) do not wait.
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "core/log.h"
#include "ipc/proto.h"
#include "master/master.h"

#define QUIT_GRACE 1.0 /* stop now: workers get this long before SIGKILL */

void cd_master_stop(cd_master *m, int immediate, int code)
{
    if (code > m->exit_code)
        m->exit_code = code;
    if (m->stop != CD_RUNNING && m->stop != CD_STOP_DELAYED && !immediate)
        return;
    ev_timer_stop(m->loop, &m->drain_delay_w);
    int was_delayed = m->stop == CD_STOP_DELAYED;
    m->stop = immediate ? CD_STOPPING_NOW : CD_STOPPING;
    cd_reload_abandon(&m->reload);
    for (int i = 0; i < m->nslots; i++)
        ev_timer_stop(m->loop, &m->slots[i].respawn_w);
    double grace = immediate ? QUIT_GRACE : (double)m->conf->graceful_timeout_ms / 1000.0 + 0.5;
    if (!was_delayed)
        cd_systemd_notify("STOPPING=1");
    cd_master_event(m, "{\"event\":\"stopping\",\"immediate\":%s}", immediate ? "true" : "false");
    cd_notice("%s stop: %s", immediate ? "immediate" : "graceful",
              immediate ? "workers exit now" : "finishing in-flight requests");
    for (cd_proc *p = m->procs; p; p = p->next) {
        if (immediate)
            kill(p->pid, SIGQUIT);
        else
            cd_slots_stop(m, p);
    }
    ev_timer_stop(m->loop, &m->stop_deadline_w);
    ev_timer_set(&m->stop_deadline_w, grace, 0.);
    ev_timer_start(m->loop, &m->stop_deadline_w);
}

/* A graceful stop asked for by clusterctl or a signal: readiness says 503
 * for drain_delay first, while everything serves; then cd_master_stop
 * (drain_delay_cb in master.c, or a second request here). */
static void stop_after_delay(cd_master *m)
{
    double delay = (double)m->conf->drain_delay_ms / 1000.0;
    if (m->stop == CD_STOP_DELAYED)
        cd_notice("stop requested again: skipping the rest of drain_delay");
    if (m->stop != CD_RUNNING || delay <= 0) {
        cd_master_stop(m, 0, 0);
        return;
    }
    m->stop = CD_STOP_DELAYED;
    cd_reload_abandon(&m->reload);
    cd_systemd_notify("STOPPING=1");
    cd_master_event(m, "{\"event\":\"draining\",\"on\":true,\"stop\":true,\"delay_ms\":%lld}",
                    m->conf->drain_delay_ms);
    cd_notice("graceful stop: /healthz/ready answers 503 for drain_delay (%.1fs), then the listeners stop accepting",
              delay);
    cd_slots_tell_drain(m, NULL);
    ev_timer_set(&m->drain_delay_w, delay, 0.);
    ev_timer_start(m->loop, &m->drain_delay_w);
}

static int do_drain(cd_master *m, int on, char *err, size_t errlen)
{
    if (!on && m->stop != CD_RUNNING) {
        snprintf(err, errlen, "stopping");
        return -1;
    }
    if (m->drained == on)
        return 0; /* already so: nothing to tell anyone */
    int was = cd_master_draining(m);
    m->drained = on;
    cd_notice("%s: /healthz/ready answers %s", on ? "drained" : "undrained",
              on ? "503 (draining); listeners keep accepting" : "as the services say");
    cd_master_event(m, "{\"event\":\"draining\",\"on\":%s,\"stop\":false}", on ? "true" : "false");
    if (cd_master_draining(m) != was)
        cd_slots_tell_drain(m, NULL);
    return 0;
}

static int do_reload(cd_master *m, char *err, size_t errlen)
{
    if (m->stop != CD_RUNNING) {
        snprintf(err, errlen, "stopping");
        return -1;
    }
    if (m->upgrade.state != CD_UPGRADE_IDLE) {
        snprintf(err, errlen, "a binary upgrade is in progress");
        return -1;
    }
    if (m->reload.state != CD_RELOAD_IDLE) {
        cd_notice("reload requested during a reload: it will follow");
        cd_reload_begin(&m->reload); /* kept as pending */
        return 0;
    }
    if (cd_reload_load(m, err, errlen) < 0)
        return -1;
    int target = m->cli_workers ? m->cli_workers : cd_conf_workers(m->conf);
    if (target != m->active)
        cd_slots_scale(m, target);
    return 0; /* the roll itself: reconcile */
}

static int do_scale(cd_master *m, int target, char *err, size_t errlen)
{
    if (m->stop != CD_RUNNING) {
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
    cd_slots_scale(m, target);
    return 0;
}

static void reopen_logs(cd_master *m)
{
    /* The master logs to stderr (journald); workers own the access log. */
    int n = 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->chan_fd >= 0 && cd_ipc_send(p->chan_fd, CD_MSG_REOPEN, NULL, 0) == 0)
            n++;
    cd_notice("reopening log files: told %d worker(s)", n);
}

/* Runs one command; its answer goes to o.  Returns 0, or -1 with the
 * reason in err (the answer says it too). */
int cd_master_execute(cd_master *m, const cd_ctl_request *req, cd_buf *o, char *err, size_t errlen)
{
    int rc = 0;
    const char *field = NULL; /* the answer's field, besides "ok" */
    long long value = 0;
    switch (req->op) {
    case CD_CTL_STATUS:
        cd_control_status(m, o);
        return 0;
    case CD_CTL_RELOAD:
        rc = do_reload(m, err, errlen);
        field = CD_CTL_F_GENERATION, value = m->generation;
        break;
    case CD_CTL_SCALE:
        rc = do_scale(m, req->workers, err, errlen);
        field = CD_CTL_F_WORKERS, value = m->active;
        break;
    case CD_CTL_STOP:
        stop_after_delay(m);
        field = CD_CTL_F_PID, value = getpid();
        break;
    case CD_CTL_STOP_NOW:
        cd_master_stop(m, 1, 0);
        field = CD_CTL_F_PID, value = getpid();
        break;
    case CD_CTL_DRAIN:
    case CD_CTL_UNDRAIN:
        rc = do_drain(m, req->op == CD_CTL_DRAIN, err, errlen);
        field = CD_CTL_F_DRAINING, value = cd_master_draining(m);
        break;
    case CD_CTL_UPGRADE:
        rc = cd_upgrade_begin(m, err, errlen);
        field = CD_CTL_F_GENERATION, value = m->generation;
        break;
    case CD_CTL_REOPEN_LOGS:
        reopen_logs(m);
        break;
    }
    if (rc < 0)
        cd_control_error(o, err);
    else
        cd_control_ok(o, field, value);
    return rc;
}
