/*
 * handover.c - what an upgrade hands from one program to the next through
 * exec (master process; the states and their order are upgrade.c's).
 *
 * The old program puts its state in the environment, CLUSTERD_UPGRADE:
 *   g=GENERATION;a=ACTIVE;d=DRAINED;c=CONFFD;x=EXEFD;p=PIDFD;s=slot:fd,..;w=pid:slot:gen:chan:state,..
 * (whether clusterctl drain is in force, listeners per slot, each serving worker's pid, slot, generation, channel
 * fd and state, the config memfd, the pidfile fd, and an fd of the old
 * binary for a rollback), clears FD_CLOEXEC on those fds and execs; a
 * rollback execs the old binary the same way, with CLUSTERD_UPGRADE_ROLLBACK
 * saying why.  The new program (before and at the start of its loop)
 * reads the config from the memfd and adopts listeners and workers into
 * its slot table (slots.c).  nanomsg's threads and sockets do not survive
 * exec: the control plane and the bus are closed first and reopened if the
 * exec fails.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "ipc/control_proto.h"
#include "master/master.h"

extern char **environ;

/* ---- the state string ---- */

static int keep_fd(int fd) { return fd >= 0 ? cd_set_cloexec(fd, 0) : 0; }

/* CLUSTERD_UPGRADE=g=G;a=ACTIVE;d=0|1;c=CONFFD;x=EXEFD;p=PIDFD;s=slot:fd,..;w=pid:slot:gen:chan:state,.. */
static char *encode_state(cd_master *m, int exe_fd)
{
    size_t cap = 4096; /* the fixed fields, then room for every listener (retired slots' too) and worker */
    for (int i = 0; i < m->nslots; i++)
        cap += m->slots[i].fd >= 0 ? 32 : 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        cap += 64;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = (size_t)snprintf(s, cap, "g=%u;a=%d;d=%d;c=%d;x=%d;p=%d;s=", m->generation, m->active, m->drained,
                                m->conf_memfd, exe_fd, m->pidfile_fd);
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

/* ---- the old program: exec with the state ---- */

void cd_handover_exec(cd_master *m, const char *path, int exe_fd, const char *rollback_why)
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
    m->drained = field_int(state, "d", 0) == 1; /* before the workers: an adopted one is told (slots.c) */
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
    m->notified_ready = 1;
    return 2;
}
