/*
 * control.c - the control plane clusterctl talks to (master).
 *
 * Two nanomsg sockets in the runtime dir, both mode 0600 (the dir is 0700):
 *   ipc://RUNDIR/control  REP: one text command per request, one JSON reply
 *   ipc://RUNDIR/events   PUB: one JSON object per lifecycle event
 * Commands: status, reload, scale N, stop, stop now, reopen-logs, upgrade.  Every
 * command answers at once, saying whether the action began (or why not, e.g.
 * an invalid config with file:line); clusterctl then follows `status` to wait
 * for the outcome, so the master never holds a request open and stays
 * responsive whatever its workers are doing.
 */
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "ipc/bus.h"
#include "master/master.h"

static const char *state_name(proc_state s)
{
    switch (s) {
    case PROC_STARTING: return "starting";
    case PROC_READY: return "ready";
    default: return "draining";
    }
}

static void status(cd_master *m, cd_buf *o)
{
    ev_tstamp now = ev_now(m->loop);
    cd_buf_printf(o, "{\"ok\":true,\"pid\":%d,\"uptime\":%.1f,\"generation\":%u,\"workers_wanted\":%d,\"reloading\":%s,",
        (int)getpid(), now - m->started, m->generation, m->active, m->reloading ? "true" : "false");
    cd_buf_printf(o, "\"reload_failed\":%s,\"stopping\":%s,\"last_reload\":", m->reload_failed ? "true" : "false",
        m->stopping ? "true" : "false");
    cd_buf_json_str(o, m->last_reload);
    cd_buf_printf(o, ",\"upgrading\":%s,\"last_upgrade\":", m->upgrading || m->upgrade_checking ? "true" : "false");
    cd_buf_json_str(o, m->last_upgrade);
    cd_buf_printf(o, ",\"listen\":");
    cd_buf_json_str(o, m->conf->listen);
    cd_buf_printf(o, ",\"workers\":[");
    /* Slot order: a stable table for humans. */
    int last = -1;
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->slot > last)
            last = p->slot;
    int first = 1;
    for (int slot = 0; slot <= last; slot++) {
        for (cd_proc *p = m->procs; p; p = p->next) {
            if (p->slot != slot)
                continue;
            cd_buf_printf(o,
                "%s{\"slot\":%d,\"pid\":%d,\"generation\":%u,\"state\":\"%s\",\"uptime\":%.1f,\"requests\":%llu,"
                "\"in_flight\":%llu,\"connections\":%llu,\"rss\":%llu,\"heartbeat_age\":%.2f}",
                first ? "" : ",", p->slot, (int)p->pid, p->generation, state_name(p->state), now - p->started,
                (unsigned long long)p->stats.requests, (unsigned long long)p->stats.in_flight,
                (unsigned long long)p->stats.connections, (unsigned long long)p->stats.rss_bytes,
                now - p->last_heartbeat);
            first = 0;
        }
    }
    cd_buf_printf(o, "]}");
}

static void error_reply(cd_buf *o, const char *msg)
{
    cd_buf_printf(o, "{\"ok\":false,\"error\":");
    cd_buf_json_str(o, msg);
    cd_buf_printf(o, "}");
}

static void handle(cd_master *m, const char *cmd, cd_buf *o)
{
    char err[512] = "";
    long long n;
    if (strcmp(cmd, "status") == 0) {
        status(m, o);
    } else if (strcmp(cmd, "reload") == 0) {
        if (cd_master_reload(m, err, sizeof err) < 0)
            error_reply(o, err);
        else
            cd_buf_printf(o, "{\"ok\":true,\"generation\":%u}", m->generation);
    } else if (strncmp(cmd, "scale ", 6) == 0) {
        if (cd_parse_int(cmd + 6, 1, CD_MAX_SLOTS, &n) < 0)
            error_reply(o, "scale needs a worker count");
        else if (cd_master_scale(m, (int)n, err, sizeof err) < 0)
            error_reply(o, err);
        else
            cd_buf_printf(o, "{\"ok\":true,\"workers\":%d}", m->active);
    } else if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "stop now") == 0) {
        cd_buf_printf(o, "{\"ok\":true,\"pid\":%d}", (int)getpid());
        cd_master_stop(m, cmd[4] != '\0');
    } else if (strcmp(cmd, "upgrade") == 0) {
        if (cd_upgrade_begin(m, err, sizeof err) < 0)
            error_reply(o, err);
        else
            cd_buf_printf(o, "{\"ok\":true,\"generation\":%u}", m->generation);
    } else if (strcmp(cmd, "reopen-logs") == 0) {
        cd_master_reopen_logs(m);
        cd_buf_printf(o, "{\"ok\":true}");
    } else {
        error_reply(o, "unknown command (status, reload, scale N, stop, stop now, reopen-logs, upgrade)");
    }
}

static void ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_master *m = w->data;
    for (int i = 0; i < 16; i++) {
        char *msg = NULL;
        int len = nn_recv(m->ctl_rep, &msg, NN_MSG, NN_DONTWAIT);
        if (len < 0)
            return;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "%.*s", len, msg);
        nn_freemsg(msg);
        cd_buf o = {0};
        handle(m, cd_trim(cmd), &o);
        if (o.p && !o.oom && nn_send(m->ctl_rep, o.p, o.len, NN_DONTWAIT) < 0)
            cd_warn("control: cannot reply: nn_send() failed: %s", nn_strerror(nn_errno()));
        cd_buf_free(&o);
        if (m->ctl_rep < 0)
            return;
    }
}

void cd_master_event(cd_master *m, const char *fmt, ...)
{
    if (m->ctl_pub < 0)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof buf)
        return;
    /* Add the time so followers can order what they see. */
    char line[1100];
    int l = snprintf(line, sizeof line, "{\"time\":%.3f,%s", ev_now(m->loop), buf + 1);
    nn_send(m->ctl_pub, line, (size_t)l, NN_DONTWAIT);
}

int cd_control_open(cd_master *m)
{
    m->ctl_rep = nn_socket(AF_SP, NN_REP);
    m->ctl_pub = nn_socket(AF_SP, NN_PUB);
    int rc = 0;
    if (m->ctl_rep < 0 || m->ctl_pub < 0)
        rc = -nn_errno();
    if (rc == 0 && (rc = cd_ipc_bind_0600(m->ctl_rep, m->conf->runtime_dir, "control")) == 0)
        rc = cd_ipc_bind_0600(m->ctl_pub, m->conf->runtime_dir, "events");
    int fd = -1;
    size_t sz = sizeof fd;
    if (rc == 0 && nn_getsockopt(m->ctl_rep, NN_SOL_SOCKET, NN_RCVFD, &fd, &sz) < 0)
        rc = -nn_errno();
    if (rc < 0) {
        cd_log_errno(CD_LOG_ERR, -rc, "nn_bind", "cannot open the control plane in %s", m->conf->runtime_dir);
        cd_control_close(m);
        return -1;
    }
    m->ctl_bound = 1;
    ev_io_init(&m->ctl_w, ctl_cb, fd, EV_READ);
    m->ctl_w.data = m;
    ev_io_start(m->loop, &m->ctl_w);
    return 0;
}

void cd_control_close(cd_master *m)
{
    if (m->ctl_rep >= 0) {
        ev_io_stop(m->loop, &m->ctl_w);
        nn_close(m->ctl_rep);
    }
    if (m->ctl_pub >= 0)
        nn_close(m->ctl_pub);
    m->ctl_rep = m->ctl_pub = -1;
}
