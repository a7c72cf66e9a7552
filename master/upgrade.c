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
 * The states and their pure transitions are drawn in upgrade.h; master.c
 * drives them.  Slot ownership changes (adopting workers, giving the old
 * ones their slots back) go through slots.c, the table's only writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "master/master.h"
#include "ipc/control_proto.h"

extern char **environ;

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

/* ---- the state string ---- */

static int keep_fd(int fd) { return fd >= 0 ? cd_set_cloexec(fd, 0) : 0; }

/* CLUSTERD_UPGRADE=g=G;a=ACTIVE;c=CONFFD;x=EXEFD;p=PIDFD;s=slot:fd,..;w=pid:slot:gen:chan:state,.. */
static char *encode_state(cd_master *m, int exe_fd)
{
    size_t cap = 4096 + (size_t)m->active * 32;
    for (cd_proc *p = m->procs; p; p = p->next)
        cap += 64;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = (size_t)snprintf(s, cap, "g=%u;a=%d;c=%d;x=%d;p=%d;s=", m->generation, m->active, m->conf_memfd, exe_fd,
                                m->pidfile_fd);
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].fd >= 0)
            n += (size_t)snprintf(s + n, cap - n, "%d:%d,", i, m->slots[i].fd);
    n += (size_t)snprintf(s + n, cap - n, ";w=");
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->chan_fd >= 0 && p->state != PROC_DRAINING)
            n += (size_t)snprintf(s + n, cap - n, "%d:%d:%u:%d:%d,", (int)p->pid, p->slot, p->generation, p->chan_fd,
                                  (int)p->state);
    return s;
}

static const char *field(const char *state, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = state; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == '=')
            return p + kl + 1;
    return NULL;
}

static int field_int(const char *state, const char *key, int def)
{
    const char *v = field(state, key);
    return v ? atoi(v) : def;
}

/* ---- the old program: check the new binary, then exec it ---- */

static void exec_with_state(cd_master *m, const char *path, int exe_fd, const char *rollback_why)
{
    char *state = encode_state(m, exe_fd);
    if (!state)
        return;
    keep_fd(m->conf_memfd);
    keep_fd(exe_fd);
    keep_fd(m->pidfile_fd);
    for (int i = 0; i < m->nslots; i++)
        keep_fd(m->slots[i].fd);
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->state != PROC_DRAINING)
            keep_fd(p->chan_fd);
    setenv("CLUSTERD_UPGRADE", state, 1);
    if (rollback_why)
        setenv("CLUSTERD_UPGRADE_ROLLBACK", rollback_why, 1);
    else
        unsetenv("CLUSTERD_UPGRADE_ROLLBACK");
    free(state);
    /* nanomsg's threads and sockets do not survive exec; close them cleanly
     * so the new program can bind the same endpoints. */
    cd_control_close(m);
    cd_bus_shut(m);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (path)
        execv(path, m->argv);
    else
        fexecve(exe_fd, m->argv, environ);
    int err = errno;
    cd_log_errno(CD_LOG_ERR, err, path ? "execv" : "fexecve", "upgrade: cannot exec %s", path ? path : "the old binary");
    /* Still us: take everything back. */
    unsetenv("CLUSTERD_UPGRADE");
    unsetenv("CLUSTERD_UPGRADE_ROLLBACK");
    cd_set_cloexec(m->conf_memfd, 1);
    cd_set_cloexec(m->pidfile_fd, 1);
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].fd >= 0)
            cd_set_cloexec(m->slots[i].fd, 1);
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->chan_fd >= 0)
            cd_set_cloexec(p->chan_fd, 1);
    if (cd_control_open(m) < 0)
        cd_err("upgrade: the control plane is gone after a failed exec");
    if (cd_bus_ensure(m) < 0)
        cd_err("the bus could not be reopened; broadcasts stay local");
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
    exec_with_state(m, m->exe_path, exe_fd, NULL);
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

/* ---- the new program ---- */

int cd_upgrade_load_conf(const char *conf_path, cd_conf **out, char *err, size_t errlen)
{
    const char *state = getenv("CLUSTERD_UPGRADE");
    int fd = state ? field_int(state, "c", -1) : -1;
    if (fd < 0) {
        snprintf(err, errlen, "upgrade: no config memfd handed over");
        return -1;
    }
    return cd_conf_load_fd(fd, conf_path, out, err, errlen);
}

void cd_upgrade_rollback_exec(char **argv, const char *why)
{
    const char *state = getenv("CLUSTERD_UPGRADE");
    int exe_fd = state ? field_int(state, "x", -1) : -1;
    if (exe_fd < 0)
        return;
    cd_err("upgrade failed (%s); going back to the previous binary", why);
    setenv("CLUSTERD_UPGRADE_ROLLBACK", why, 1);
    fexecve(exe_fd, argv, environ);
    cd_log_errno(CD_LOG_ERR, errno, "fexecve", "upgrade: cannot go back to the previous binary");
}

int cd_upgrade_adopt(cd_master *m)
{
    const char *state = getenv("CLUSTERD_UPGRADE");
    if (!state)
        return 0;
    const char *why = getenv("CLUSTERD_UPGRADE_ROLLBACK");
    m->generation = (unsigned)field_int(state, "g", 1);
    cd_slots_activate(m, field_int(state, "a", 1));
    int exe_fd = field_int(state, "x", -1);
    int conf_fd = field_int(state, "c", -1);
    int pid_fd = field_int(state, "p", -1);
    if (conf_fd >= 0)
        close(conf_fd); /* the master makes its own memfd */
    if (pid_fd >= 0) {
        m->pidfile_fd = pid_fd; /* the lock (flock) survives exec: still ours */
        cd_set_cloexec(pid_fd, 1);
    }
    for (const char *p = field(state, "s"); p && *p && *p != ';';) {
        int slot, fd;
        if (sscanf(p, "%d:%d", &slot, &fd) == 2 && slot >= 0 && slot < CD_MAX_SLOTS) {
            cd_slots_take_listener(m, slot, fd, 0);
            cd_set_cloexec(fd, 1);
        }
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    for (const char *p = field(state, "w"); p && *p && *p != ';';) {
        int pid, slot, chan, st;
        unsigned gen;
        if (sscanf(p, "%d:%d:%u:%d:%d", &pid, &slot, &gen, &chan, &st) == 5 && slot >= 0 && slot < CD_MAX_SLOTS) {
            cd_slots_adopt(m, &m->slots[slot], pid, gen, chan, st == PROC_READY);
        }
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    unsetenv("CLUSTERD_UPGRADE");
    unsetenv("CLUSTERD_UPGRADE_ROLLBACK");
    if (why) {
        /* We are the old binary again: the old workers never stopped. */
        if (exe_fd >= 0)
            close(exe_fd);
        snprintf(m->upgrade.last, sizeof m->upgrade.last, CD_CTL_OUTCOME_FAILED ", rolled back: %.150s", why);
        cd_err("upgrade rolled back: %s; generation %u keeps serving", why, m->generation);
        m->notified_ready = 1;
        cd_systemd_notify("READY=1");
        return 1;
    }
    m->upgrade.prev_exe_fd = exe_fd;
    if (exe_fd >= 0)
        cd_set_cloexec(exe_fd, 1);
    /* The deadline runs from the start of the new generation (master.c). */
    cd_upgrade_starting(&m->upgrade, m->generation, 0);
    m->notified_ready = 1;
    return 2;
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
    exec_with_state(m, NULL, exe_fd, why);
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
