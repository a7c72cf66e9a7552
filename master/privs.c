/*
 * privs.c - the process-wide settings of [cluster] (master process):
 * rlimit_nofile, the user and group workers switch to (spawn.c drops to
 * them between fork and exec; the master keeps its own), the pidfile, and
 * systemd's watchdog interval.  Applied once at start.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"
#include "master/master.h"

/* The process-wide settings of [cluster]: pidfile, rlimit_nofile, user/group.
 * Returns 0 or -1 (logged). */
int cd_privs_prepare(cd_master *m, int adopted)
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
