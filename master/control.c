/*
 * control.c - the control plane clusterctl talks to (master).
 *
 * Two nanomsg sockets in the runtime dir, both mode 0600, in a dir no one
 * else can write (master.c refuses one that group or others can):
 *   ipc://RUNDIR/control  REP: one text command per request, one JSON reply
 *   ipc://RUNDIR/events   PUB: one JSON object per lifecycle event
 * Commands: status, reload, scale N, stop, stop now, reopen-logs, upgrade,
 * parsed whole by cd_control_parse (pure; tests/fuzz/fuzz_control.c).  Every
 * command answers at once, saying whether the action began (or why not, e.g.
 * an invalid config with file:line); clusterctl then follows `status` to wait
 * for the outcome, so the master never holds a request open and stays
 * responsive whatever its workers are doing.
 */
#include <ctype.h>
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
#include "core/json.h"
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
    cd_json_str(o, m->last_reload, strlen(m->last_reload));
    cd_buf_printf(o, ",\"upgrading\":%s,\"last_upgrade\":", m->upgrading || m->upgrade_checking ? "true" : "false");
    cd_json_str(o, m->last_upgrade, strlen(m->last_upgrade));
    cd_buf_printf(o, ",\"listen\":");
    cd_json_str(o, m->conf->listen, strlen(m->conf->listen));
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
    cd_json_str(o, msg, strlen(msg));
    cd_buf_printf(o, "}");
}

#define USAGE "status, reload, scale N, stop, stop now, reopen-logs, upgrade"

int cd_control_parse(const void *req, size_t len, cd_ctl_request *out, const char **why)
{
    /* The whole request is the command: never a prefix of it (a longer
     * request cut to size, or one with a NUL inside, could otherwise read
     * as another command, e.g. "stop"). */
    if (len > CD_CTL_MAX_REQUEST) {
        *why = "request too long (commands: " USAGE ")";
        return -1;
    }
    char buf[CD_CTL_MAX_REQUEST + 1];
    if (len)
        memcpy(buf, req, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x20 && !isspace(c)) {
            *why = "a request is one line of text (commands: " USAGE ")";
            return -1;
        }
    }
    char *cmd = cd_trim(buf);
    static const struct {
        const char *name;
        cd_ctl_op op;
    } plain[] = {{"status", CD_CTL_STATUS},   {"reload", CD_CTL_RELOAD},   {"stop", CD_CTL_STOP},
                 {"stop now", CD_CTL_STOP_NOW}, {"upgrade", CD_CTL_UPGRADE}, {"reopen-logs", CD_CTL_REOPEN_LOGS}};
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        if (strcmp(cmd, plain[i].name) == 0) {
            out->op = plain[i].op;
            return 0;
        }
    }
    long long n;
    if (strncmp(cmd, "scale", 5) == 0 && (cmd[5] == '\0' || isspace((unsigned char)cmd[5]))) {
        if (cd_parse_int(cd_trim(cmd + 5), 1, CD_MAX_SLOTS, &n) < 0) {
            *why = "scale needs a worker count";
            return -1;
        }
        out->op = CD_CTL_SCALE;
        out->workers = (int)n;
        return 0;
    }
    *why = "unknown command (" USAGE ")";
    return -1;
}

static void handle(cd_master *m, const cd_ctl_request *req, cd_buf *o)
{
    char err[512] = "";
    switch (req->op) {
    case CD_CTL_STATUS:
        status(m, o);
        break;
    case CD_CTL_RELOAD:
        if (cd_master_reload(m, err, sizeof err) < 0)
            error_reply(o, err);
        else
            cd_buf_printf(o, "{\"ok\":true,\"generation\":%u}", m->generation);
        break;
    case CD_CTL_SCALE:
        if (cd_master_scale(m, req->workers, err, sizeof err) < 0)
            error_reply(o, err);
        else
            cd_buf_printf(o, "{\"ok\":true,\"workers\":%d}", m->active);
        break;
    case CD_CTL_STOP:
    case CD_CTL_STOP_NOW:
        cd_buf_printf(o, "{\"ok\":true,\"pid\":%d}", (int)getpid());
        cd_master_stop(m, req->op == CD_CTL_STOP_NOW);
        break;
    case CD_CTL_UPGRADE:
        if (cd_upgrade_begin(m, err, sizeof err) < 0)
            error_reply(o, err);
        else
            cd_buf_printf(o, "{\"ok\":true,\"generation\":%u}", m->generation);
        break;
    case CD_CTL_REOPEN_LOGS:
        cd_master_reopen_logs(m);
        cd_buf_printf(o, "{\"ok\":true}");
        break;
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
        cd_ctl_request req;
        const char *why = NULL;
        int rc = cd_control_parse(msg, (size_t)len, &req, &why);
        nn_freemsg(msg);
        cd_buf o = {0};
        if (rc < 0) {
            cd_warn("control: refused a request of %d bytes: %s", len, why);
            error_reply(&o, why);
        } else {
            handle(m, &req, &o);
        }
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
