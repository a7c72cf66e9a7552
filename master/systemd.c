/*
 * systemd.c - what the master says to systemd and takes from it (master).
 *
 * sd_notify: READY=1 once every slot has a READY worker; RELOADING=1 ...
 * READY=1 around a reload; STOPPING=1; STATUS= lines for humans; WATCHDOG=1
 * only while every slot's worker is READY and heartbeating.  All of these are
 * no-ops when NOTIFY_SOCKET is unset.
 *
 * Socket activation: with LISTEN_FDS from systemd (one socket per slot,
 * named slot0..slotN-1 by FileDescriptorName=), the master uses those
 * sockets as its slots' listeners instead of binding its own.
 *
 * libsystemd is loaded with dlopen, by the master only: workers (the same
 * executable) never talk to systemd, and not linking it keeps libsystemd
 * and what it pulls in (libgcrypt, liblz4, libzstd, ...) out of every
 * worker's memory.  Without libsystemd installed, all of this is a no-op.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "master/master.h"

static struct {
    int tried;
    __typeof__(sd_notify) *notify;
    __typeof__(sd_listen_fds_with_names) *listen_fds_with_names;
    __typeof__(sd_is_socket) *is_socket;
    __typeof__(sd_watchdog_enabled) *watchdog_enabled;
} sd;

/* Loads libsystemd once; returns 0 when its functions are there. */
static int load(void)
{
    if (!sd.tried) {
        sd.tried = 1;
        void *h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            cd_debug("libsystemd not loaded (%s): no sd_notify, no socket activation", dlerror());
            return -1;
        }
        sd.notify = (__typeof__(sd.notify))dlsym(h, "sd_notify");
        sd.listen_fds_with_names = (__typeof__(sd.listen_fds_with_names))dlsym(h, "sd_listen_fds_with_names");
        sd.is_socket = (__typeof__(sd.is_socket))dlsym(h, "sd_is_socket");
        sd.watchdog_enabled = (__typeof__(sd.watchdog_enabled))dlsym(h, "sd_watchdog_enabled");
        if (!sd.notify || !sd.listen_fds_with_names || !sd.is_socket || !sd.watchdog_enabled)
            sd.notify = NULL;
    }
    return sd.notify ? 0 : -1;
}

void cd_systemd_notify(const char *state)
{
    if (!getenv("NOTIFY_SOCKET") || load() < 0)
        return;
    int rc = sd.notify(0, state);
    if (rc < 0)
        cd_log_errno(CD_LOG_WARN, -rc, "sd_notify", "telling systemd '%s'", state);
}

void cd_systemd_status(cd_master *m, const char *what)
{
    uint64_t requests = 0;
    int ready = 0;
    for (cd_proc *p = m->procs; p; p = p->next) {
        requests += p->stats.requests;
        ready += p->state == PROC_READY;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "STATUS=%s%s%d/%d workers ready, %llu requests served by current workers%s%s", what ? what : "",
             what ? "; " : "", ready, m->active, (unsigned long long)requests, m->reload.last[0] ? ", last reload: " : "",
             m->reload.last);
    cd_systemd_notify(buf);
}

int cd_systemd_listeners(int *fds, int max)
{
    if (!getenv("LISTEN_FDS") || load() < 0)
        return 0;
    char **names = NULL;
    int n = sd.listen_fds_with_names(1, &names);
    if (n <= 0) {
        free(names);
        return n;
    }
    int count = 0;
    for (int i = 0; i < max; i++)
        fds[i] = -1;
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        long long slot = i;
        const char *name = names ? names[i] : NULL;
        if (name && strncmp(name, "slot", 4) == 0 && cd_parse_int(name + 4, 0, max - 1, &slot) == 0) {
            /* named: slotK */
        } else {
            slot = i; /* unnamed or otherwise named: in order */
        }
        if (slot >= max || fds[slot] >= 0 || sd.is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
            cd_warn("ignoring passed fd %d (%s): not a listening stream socket for a free slot", fd,
                    name ? name : "unnamed");
            close(fd);
            continue;
        }
        cd_set_cloexec(fd, 1); /* workers get it as fd 3 through spawn, not by inheritance */
        cd_set_nonblock(fd, 1);
        fds[slot] = fd;
        count++;
    }
    for (int i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
    /* Slots must be 0..count-1 with no hole. */
    for (int i = 0; i < count; i++)
        if (fds[i] < 0) {
            cd_err("socket activation: %d sockets passed but slot%d is missing", count, i);
            for (int k = 0; k < max; k++)
                if (fds[k] >= 0)
                    close(fds[k]);
            return -EINVAL;
        }
    return count;
}

int cd_systemd_watchdog_usec(uint64_t *usec)
{
    if (!getenv("WATCHDOG_USEC") || load() < 0)
        return 0;
    return sd.watchdog_enabled(0, usec);
}
