/*
 * upgrade.c - binary upgrade in place (master).
 *
 * USR2 (or `clusterctl upgrade`) replaces the running master's program with
 * the binary now at its path, keeping its PID (systemd's MAINPID), its
 * listeners and its workers:
 *
 *  1. The new binary is checked first, in a child: `clusterd -V` must run
 *     and exit 0 (a binary that cannot even start would otherwise take the
 *     master down with it).  The master keeps serving meanwhile.
 *  2. The master hands its state to the new program through the environment
 *     (CLUSTERD_UPGRADE: generation, listener fds per slot, each worker's
 *     pid/slot/generation/channel fd, the config memfd, the pidfile fd and an
 *     fd of its own binary for rollback), clears FD_CLOEXEC on those fds and
 *     execs.  The config is the text it was running, from the memfd: an
 *     upgrade changes the program, a reload changes the config.
 *  3. The new program adopts all of it and starts a new generation of
 *     workers on the same listeners.  When every one is READY, the old ones
 *     drain.  If the new program cannot take the config, or a new worker
 *     fails, or they are not all READY within upgrade_timeout, it stops the
 *     new workers and execs the old binary again (from the saved fd) with
 *     the old workers, which never stopped serving.
 *
 * The states and their pure transitions are drawn in upgrade.h; the loop
 * drives them (cd_upgrade_step).  What crosses exec, and adopting it, is
 * handover.c.  Slot ownership changes (adopting workers, giving the old
 * ones their slots back) go through slots.c, the table's only writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "master/master.h"
#include "ipc/control_proto.h"

/* ---- the state machine (pure) ---- */

const char *cd_upgrade_refusal(const cd_upgrade *u, int stopping, int reloading)
{
    if (stopping)
        return "busy: stopping";
    if (reloading)
        return "busy: reloading";
    if (u->state != CD_UPGRADE_IDLE)
        return "busy: upgrading";
    return NULL;
}

void cd_upgrade_checking(cd_upgrade *u) { u->state = CD_UPGRADE_CHECKING; }

int cd_upgrade_checked(cd_upgrade *u, int status)
{
    u->state = CD_UPGRADE_IDLE;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void cd_upgrade_starting(cd_upgrade *u, unsigned from, double deadline)
{
    u->state = CD_UPGRADE_STARTING;
    u->from = from;
    u->deadline = deadline;
}

cd_upgrade_action cd_upgrade_next(const cd_upgrade *u, int new_ready, int active, double now)
{
    if (u->state != CD_UPGRADE_STARTING)
        return CD_UPGRADE_NONE;
    if (new_ready == active)
        return CD_UPGRADE_DONE;
    return now > u->deadline ? CD_UPGRADE_TIMEOUT : CD_UPGRADE_WAIT;
}

int cd_upgrade_end(cd_upgrade *u)
{
    if (u->state != CD_UPGRADE_STARTING)
        return 0;
    u->state = CD_UPGRADE_IDLE;
    return 1;
}

/* ---- the old program: check the new binary, then exec it ---- */

static void exec_new(cd_master *m)
{
    int exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (exe_fd < 0) {
        cd_log_errno(CD_LOG_ERR, errno, "open", "upgrade: cannot keep the running binary for a rollback");
        cd_systemd_notify("READY=1");
        return;
    }
    cd_notice("upgrade: executing %s (pid stays %d)", m->exe_path, (int)getpid());
    cd_handover_exec(m, m->exe_path, exe_fd, NULL);
    close(exe_fd); /* exec failed: logged, and we carry on */
    snprintf(m->upgrade.last, sizeof m->upgrade.last, CD_CTL_OUTCOME_FAILED ": cannot exec %.150s", m->exe_path);
    cd_systemd_notify("READY=1");
}

int cd_upgrade_begin(cd_master *m, char *err, size_t errlen)
{
    const char *busy = cd_upgrade_refusal(&m->upgrade, m->stop != CD_RUNNING, m->reload.state != CD_RELOAD_IDLE);
    if (busy) {
        snprintf(err, errlen, "%s", busy);
        return -1;
    }
    if (access(m->exe_path, X_OK) < 0) {
        snprintf(err, errlen, "%s: %s", m->exe_path, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork() failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(m->exe_path, m->exe_path, "-V", (char *)NULL);
        _exit(127);
    }
    cd_notice("upgrade: checking the new binary %s", m->exe_path);
    cd_systemd_notify("RELOADING=1");
    cd_upgrade_checking(&m->upgrade);
    ev_child_set(&m->upgrade.check_w, pid, 0);
    ev_child_start(m->loop, &m->upgrade.check_w);
    ev_timer_set(&m->upgrade.check_timeout_w, 5.0, 0.);
    ev_timer_start(m->loop, &m->upgrade.check_timeout_w);
    return 0;
}

void cd_upgrade_finish(cd_master *m)
{
    cd_upgrade *u = &m->upgrade;
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->generation <= u->from)
            cd_slots_stop(m, p);
    cd_upgrade_end(u);
    if (u->prev_exe_fd >= 0)
        close(u->prev_exe_fd);
    u->prev_exe_fd = -1;
    char when[32];
    cd_now_string(when, sizeof when);
    snprintf(u->last, sizeof u->last, CD_CTL_OUTCOME_DONE " at %s (generation %u)", when, m->generation);
    cd_notice("upgrade done: %d workers on generation %u", m->active, m->generation);
    cd_master_event(m, "{\"event\":\"upgrade_done\",\"generation\":%u}", m->generation);
    cd_systemd_notify("READY=1");
}

void cd_upgrade_rollback(cd_master *m, const char *why)
{
    cd_upgrade *u = &m->upgrade;
    if (!cd_upgrade_end(u))
        return;
    /* The old workers are still serving: they get their slots back, the
     * new ones stop (the old program reaps them as unknown children once
     * they have drained: they are not in the state), and we become the old
     * binary again. */
    cd_slots_give_back(m, u->from);
    m->generation = u->from;
    cd_master_event(m, "{\"event\":\"upgrade_failed\"}");
    int exe_fd = u->prev_exe_fd;
    u->prev_exe_fd = -1;
    cd_err("upgrade failed: %s; going back to the previous binary", why);
    cd_handover_exec(m, NULL, exe_fd, why);
    /* Could not exec the old binary: stay the new one, with the old workers. */
    snprintf(u->last, sizeof u->last, CD_CTL_OUTCOME_FAILED " (%s); running the new binary with the old workers", why);
    cd_systemd_notify("READY=1");
}

void cd_upgrade_check_result(cd_master *m, int status)
{
    if (cd_upgrade_checked(&m->upgrade, status)) {
        exec_new(m);
        return;
    }
    snprintf(m->upgrade.last, sizeof m->upgrade.last, CD_CTL_OUTCOME_FAILED ": %.120s -V did not run (status 0x%x)",
             m->exe_path, status);
    cd_err("upgrade refused: the new binary %s does not run (`-V` status 0x%x); nothing changed", m->exe_path, status);
    cd_systemd_notify("READY=1");
}

/* ---- driving it (the loop calls these) ---- */

/* The new program of an upgrade: a new generation on every slot, each
 * worker serving its slot at once (the old ones serve until it is READY). */
void cd_upgrade_start_generation(cd_master *m)
{
    m->generation++;
    cd_notice("upgrade: new binary running; starting generation %u on %d slot(s)", m->generation, m->active);
    m->upgrade.deadline = ev_now(m->loop) + (double)m->conf->upgrade_timeout_ms / 1000.0;
    for (int i = 0; i < m->active; i++)
        if (!cd_slots_start(m, &m->slots[i], 0)) {
            cd_upgrade_rollback(m, "cannot start a worker");
            return;
        }
}

void cd_upgrade_step(cd_master *m)
{
    int ready = 0;
    for (int i = 0; i < m->active; i++) {
        cd_proc *p = m->slots[i].current;
        ready += p && p->generation == m->generation && p->state == PROC_READY;
    }
    switch (cd_upgrade_next(&m->upgrade, ready, m->active, ev_now(m->loop))) {
    case CD_UPGRADE_DONE:
        cd_upgrade_finish(m);
        break;
    case CD_UPGRADE_TIMEOUT:
        cd_upgrade_rollback(m, "the new workers were not all READY within upgrade_timeout");
        break;
    default:
        break;
    }
}
