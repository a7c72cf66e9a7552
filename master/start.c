/*
 * start.c - the master's start and end (master process): the config memfd,
 * the binary's path (for an upgrade), what an upgrade handed over, the
 * process settings, listeners (from systemd or our own), the runtime dir,
 * control plane and bus; at the end, all of it closed and removed.  The
 * loop's watchers are master.c's.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "master/master.h"

int cd_master_setup(cd_master *m, int *adopted_out)
{
    m->conf_memfd = cd_conf_memfd(m->conf->text, m->conf->text_len);
    if (m->conf_memfd < 0) {
        cd_log_errno(CD_LOG_ERR, -m->conf_memfd, "memfd_create", "cannot pass the config to workers");
        return -1;
    }
    ssize_t el = readlink("/proc/self/exe", m->exe_path, sizeof m->exe_path - 1);
    if (el > 0) {
        m->exe_path[el] = '\0';
        char *del = strstr(m->exe_path, " (deleted)");
        if (del)
            *del = '\0';
    }
    int adopted = *adopted_out = cd_upgrade_adopt(m);
    /* An upgrade's new program: its deadline runs from the start of the new
     * generation (cd_upgrade_start_generation). */
    if (adopted == 2)
        cd_upgrade_starting(&m->upgrade, m->generation, 0);
    if (cd_privs_prepare(m, adopted) < 0)
        return -1;
    int fds[CD_MAX_SLOTS];
    int act = adopted ? 0 : cd_systemd_listeners(fds, CD_MAX_SLOTS);
    if (act < 0)
        return -1;
    for (int i = 0; i < act; i++)
        cd_slots_take_listener(m, i, fds[i], 1);
    m->activated = act;
    /* With sockets from systemd, their number is the default worker count. */
    int n = adopted ? m->active : m->cli_workers ? m->cli_workers
          : (act > 0 && m->conf->workers == 0) ? act : cd_conf_workers(m->conf);
    if (act > 0)
        cd_notice("socket activation: %d listener(s) from systemd%s", act,
                  n > act ? "; binding the rest ourselves" : "");
    /* The control socket first: if another clusterd runs with the same
     * runtime_dir, we must not join its listeners' reuseport group even
     * briefly.  Then all listeners and the bus: an error stops us before any
     * worker starts. */
    m->started = ev_now(m->loop);
    if (cd_rundir_ensure(m) < 0)
        return -1;
    if (cd_control_open(m) < 0) {
        cd_err("is another clusterd running with runtime_dir %s? (set runtime_dir, or stop it)", m->conf->runtime_dir);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (cd_slots_open(m, i) < 0)
            return -1;
    cd_slots_activate(m, n);
    cd_slots_changed(m);
    m->retired = calloc(1, sizeof *m->retired);
    if (!m->retired || cd_bus_ensure(m) < 0)
        return -1;
    return n;
}

void cd_master_teardown(cd_master *m)
{
    cd_slots_close_all(m);
    cd_bus_shut(m);
    cd_control_close(m);
    cd_rundir_remove(m);
    free(m->retired);
    if (m->pidfile_fd >= 0)
        cd_pidfile_close(m->conf->pidfile, m->pidfile_fd);
    if (m->conf_memfd >= 0)
        close(m->conf_memfd);
    if (m->upgrade.prev_exe_fd >= 0)
        close(m->upgrade.prev_exe_fd);
    cd_notice("stopped (exit code %d)", m->exit_code);
    cd_conf_free(m->reload.prev_conf);
    if (m->reload.prev_memfd >= 0)
        close(m->reload.prev_memfd);
    cd_conf_free(m->conf);
    if (m->loop)
        ev_loop_destroy(m->loop);
}
