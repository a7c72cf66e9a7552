/*
 * rundir.c - the runtime dir and the bus relay in it (master process).
 *
 * The runtime dir holds the master's sockets: the control plane's
 * (control.c) and, when a configured service uses the bus, the relay's
 * (ipc://RUNDIR/bus-in, bus-out): workers publish to bus-in, the master
 * forwards every message to bus-out, which every worker subscribes to.
 * The relay is a pure forwarder; it decides nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "ipc/control_proto.h"
#include "master/master.h"

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
int cd_rundir_ensure(cd_master *m)
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

static void bus_relay_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = w->data;
    cd_bus_master_relay(&m->bus);
}

/* Opens the bus relay when a configured service needs it. */
int cd_bus_ensure(cd_master *m)
{
    int needed = 0;
    for (size_t i = 0; i < m->conf->nservices; i++)
        needed |= m->conf->services[i].uses_bus;
    if (!needed || m->bus.in >= 0)
        return 0;
    if (cd_rundir_ensure(m) < 0)
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

void cd_bus_shut(cd_master *m)
{
    if (m->bus.in < 0)
        return;
    ev_io_stop(m->loop, &m->bus_w);
    cd_bus_close(&m->bus);
}

/* Removes the sockets we bound (only those: a second clusterd that failed to
 * start must not delete the first one's), then the dir if it is empty. */
void cd_rundir_remove(cd_master *m)
{
    if (!m->runtime_dir[0])
        return;
    char path[300];
    if (m->ctl_bound) {
        static const char *const ctl[] = {CD_CTL_SOCK_CONTROL, CD_CTL_SOCK_EVENTS};
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
