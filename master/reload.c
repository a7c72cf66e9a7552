/*
 * reload.c - the rolling restart's state machine and its effects (master).
 *
 * HUP (or `clusterctl reload`) validates the new config first: a bad one
 * changes nothing.  Then, one slot at a time, a worker of the new
 * generation starts on the slot's listener, and only when it is READY is
 * the old one told to drain.  The listener never closes, so nothing is
 * refused.  A new worker that dies or cannot boot rolls every slot back to
 * the previous config the same way.  The roll is done only once no worker
 * of an older generation can still take a new connection (it answered STOP
 * with DRAINING, or its channel is gone): until then a client could get the
 * old config right after "reload done".
 *
 * The transitions are pure (reload.h draws them); the effects follow them,
 * and cd_reload_step, run by the loop's reconcile step, builds the view of
 * the slots from the table and carries out each action through slots.c.
 */
#include "master/reload.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "ipc/control_proto.h"
#include "master/master.h"

int cd_reload_begin(cd_reload *r)
{
    if (r->state != CD_RELOAD_IDLE) {
        r->pending = 1;
        return 1;
    }
    r->state = CD_RELOAD_ROLLING;
    r->next = 0;
    r->failed = 0;
    r->why[0] = '\0';
    return 0;
}

cd_reload_action cd_reload_next(cd_reload *r, const cd_reload_slot *slots, int active, int old_accepting, int *slot)
{
    if (r->state == CD_RELOAD_IDLE)
        return CD_RELOAD_NOTHING;
    while (r->next < active) {
        const cd_reload_slot *s = &slots[r->next];
        *slot = r->next;
        if (!s->wanted) {
            r->next++;
            continue;
        }
        if (!s->has_worker)
            return CD_RELOAD_WAIT; /* a respawn is pending; it starts with the new config */
        if (!s->worker_new)
            return CD_RELOAD_REPLACE;
        if (!s->worker_ready)
            return CD_RELOAD_WAIT; /* for READY, or its death, which fails the reload */
        r->next++;
        return CD_RELOAD_STOP_OLD;
    }
    return old_accepting ? CD_RELOAD_WAIT : CD_RELOAD_DONE;
}

int cd_reload_fail(cd_reload *r, const char *why)
{
    if (r->state == CD_RELOAD_IDLE)
        return -1;
    if (r->state == CD_RELOAD_ROLLING) {
        snprintf(r->why, sizeof r->why, "%s", why);
        r->state = CD_RELOAD_ROLLING_BACK;
        r->next = 0;
        return 1;
    }
    return 0;
}

int cd_reload_finish(cd_reload *r, int ok, const char **why)
{
    if (r->state == CD_RELOAD_ROLLING_BACK) {
        *why = r->why;
        ok = 0;
    }
    r->state = CD_RELOAD_IDLE;
    r->failed = !ok;
    return ok;
}

void cd_reload_abandon(cd_reload *r) { r->state = CD_RELOAD_IDLE; }

/* ---- effects ---- */

static void rejected(cd_master *m, cd_conf *nc, const char *err)
{
    cd_conf_free(nc);
    cd_err("reload failed, keeping the current configuration: %s", err);
    snprintf(m->reload.last, sizeof m->reload.last, CD_CTL_OUTCOME_REJECTED ": %.80s", err);
    cd_master_event(m, "{\"event\":\"reload_rejected\"}");
}

int cd_reload_load(cd_master *m, char *err, size_t errlen)
{
    cd_conf *nc = NULL;
    cd_notice("reloading %s", m->conf_path);
    if (cd_conf_load_file(m->conf_path, &nc, err, errlen) < 0) {
        rejected(m, nc, err);
        return -1;
    }
    if (strcmp(nc->listen, m->conf->listen) != 0 || nc->backlog != m->conf->backlog ||
        strcmp(nc->runtime_dir, m->conf->runtime_dir) != 0 || strcmp(nc->pidfile, m->conf->pidfile) != 0 ||
        strcmp(nc->user, m->conf->user) != 0 || strcmp(nc->group, m->conf->group) != 0) {
        snprintf(err, errlen, "%s: listen, backlog, runtime_dir, pidfile, user or group changed; that needs a restart",
                 m->conf_path);
        rejected(m, nc, err);
        return -1;
    }
    int fd = cd_conf_memfd(nc->text, nc->text_len);
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create() failed: %s", strerror(-fd));
        rejected(m, nc, err);
        return -1;
    }
    /* Keep the running config until the reload is done: a failure rolls back to it. */
    m->reload.prev_conf = m->conf;
    m->reload.prev_memfd = m->conf_memfd;
    m->conf_memfd = fd;
    m->conf = nc;
    if (cd_bus_ensure(m) < 0)
        cd_err("reload: the new configuration's bus could not open; its broadcasts stay local");
    m->generation++;
    cd_reload_begin(&m->reload);
    cd_systemd_notify("RELOADING=1");
    cd_master_event(m, "{\"event\":\"reload_begun\",\"generation\":%u}", m->generation);
    return 0;
}

void cd_reload_restore(cd_master *m)
{
    cd_reload *r = &m->reload;
    cd_err("reload failed (%s); rolling back to the previous configuration", r->why);
    cd_conf_free(m->conf);
    m->conf = r->prev_conf;
    r->prev_conf = NULL;
    close(m->conf_memfd);
    m->conf_memfd = r->prev_memfd;
    r->prev_memfd = -1;
    m->generation--;
}

void cd_reload_report(cd_master *m, int ok, const char *why)
{
    cd_reload *r = &m->reload;
    if (r->prev_conf) {
        cd_conf_free(r->prev_conf);
        r->prev_conf = NULL;
        close(r->prev_memfd);
        r->prev_memfd = -1;
    }
    char when[32];
    cd_now_string(when, sizeof when);
    snprintf(r->last, sizeof r->last, "%s at %s (generation %u)%s%.60s",
             ok ? CD_CTL_OUTCOME_DONE : CD_CTL_OUTCOME_FAILED ", rolled back", when, m->generation, why ? ": " : "",
             why ? why : "");
    cd_systemd_notify("READY=1");
    cd_systemd_status(m, ok ? "reload done" : "reload failed");
    if (ok)
        cd_notice("reload done: %d workers on generation %u", m->active, m->generation);
    else
        cd_notice("rolled back: %d workers on generation %u", m->active, m->generation);
    cd_master_event(m, "{\"event\":\"reload_%s\",\"generation\":%u}", ok ? "done" : "failed", m->generation);
}

/* ---- driving the roll (the loop calls these) ---- */

/* Ends a rolling restart (reload.c reports it); a reload asked for during
 * it follows. */
static void reload_end(cd_master *m, int ok, const char *why)
{
    ok = cd_reload_finish(&m->reload, ok, &why);
    cd_reload_report(m, ok, why);
    if (m->reload.pending) {
        m->reload.pending = 0;
        raise(SIGHUP);
    }
}

/* A new worker of the roll failed: roll back, or give up if that was the
 * roll-back. */
void cd_reload_failed(cd_master *m, const char *why)
{
    int rc = cd_reload_fail(&m->reload, why);
    if (rc == 1) {
        cd_reload_restore(m);
        cd_slots_cancel_replacements(m); /* slots already rolled get workers of the old config in the step */
    } else if (rc == 0) {
        cd_err("rolling back failed too (%s); slots may run different configurations", why);
        reload_end(m, 0, why);
    }
}

void cd_reload_step(cd_master *m)
{
    cd_reload_slot view[CD_MAX_SLOTS];
    for (;;) {
        for (int i = 0; i < m->active; i++) {
            cd_proc *cur = m->slots[i].current;
            view[i] = (cd_reload_slot){.wanted = m->slots[i].wanted, .has_worker = cur != NULL,
                                       .worker_new = cur && cur->generation == m->generation,
                                       .worker_ready = cur && cur->state == PROC_READY};
        }
        int old_accepting = 0, slot = 0;
        for (cd_proc *p = m->procs; p; p = p->next)
            old_accepting += p->generation != m->generation && p->chan_fd >= 0 && !p->not_accepting;
        switch (cd_reload_next(&m->reload, view, m->active, old_accepting, &slot)) {
        case CD_RELOAD_NOTHING:
        case CD_RELOAD_WAIT:
            return;
        case CD_RELOAD_STOP_OLD:
            for (cd_proc *p = m->procs; p; p = p->next)
                if (p->slot == slot && p != m->slots[slot].current)
                    cd_slots_stop(m, p);
            break;
        case CD_RELOAD_REPLACE:
            if (cd_slots_start(m, &m->slots[slot], 1))
                return;
            cd_reload_failed(m, "cannot start a worker"); /* then the roll-back's first step */
            break;
        case CD_RELOAD_DONE:
            reload_end(m, 1, NULL);
            return;
        }
    }
}
