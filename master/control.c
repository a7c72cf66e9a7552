/*
 * control.c - the control plane clusterctl talks to (master).
 *
 * Two nanomsg sockets in the runtime dir, both mode 0600, in a dir no one
 * else can write (rundir.c refuses one that group or others can); the
 * protocol (commands, answer fields, limits) is ipc/control_proto.h:
 *   ipc://RUNDIR/control  REP: one text command per request, one JSON reply
 *   ipc://RUNDIR/events   PUB: one JSON object per lifecycle event
 * A request is parsed whole by cd_control_parse (pure;
 * tests/fuzz/fuzz_control.c) into a cd_ctl_request; the loop (master.c)
 * has it executed (commands.c) and this file sends the answer.  Every command answers at
 * once, saying whether the action began (or why not, e.g. an invalid config
 * with file:line); clusterctl then follows `status` to wait for the
 * outcome, so the master never holds a request open and stays responsive
 * whatever its workers are doing.
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
#include "core/stats.h"
#include "core/util.h"
#include "ipc/bus.h"
#include "ipc/control_proto.h"
#include "master/master.h"

/* "key": of a JSON answer */
#define K(name) "\"" name "\":"

/* ---- the request ---- */

int cd_control_parse(const void *req, size_t len, cd_ctl_request *out, const char **why)
{
    /* The whole request is the command: never a prefix of it (a longer
     * request cut to size, or one with a NUL inside, could otherwise read
     * as another command, e.g. "stop"). */
    if (len > CD_CTL_MAX_REQUEST) {
        *why = "request too long (commands: " CD_CTL_USAGE ")";
        return -1;
    }
    char buf[CD_CTL_MAX_REQUEST + 1];
    if (len)
        memcpy(buf, req, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x20 && !isspace(c)) {
            *why = "a request is one line of text (commands: " CD_CTL_USAGE ")";
            return -1;
        }
    }
    char *cmd = cd_trim(buf);
    static const struct {
        const char *name;
        cd_ctl_op op;
    } plain[] = {{CD_CTL_CMD_STATUS, CD_CTL_STATUS},     {CD_CTL_CMD_RELOAD, CD_CTL_RELOAD},
                 {CD_CTL_CMD_STOP, CD_CTL_STOP},         {CD_CTL_CMD_STOP_NOW, CD_CTL_STOP_NOW},
                 {CD_CTL_CMD_UPGRADE, CD_CTL_UPGRADE},   {CD_CTL_CMD_REOPEN_LOGS, CD_CTL_REOPEN_LOGS},
                 {CD_CTL_CMD_DRAIN, CD_CTL_DRAIN},       {CD_CTL_CMD_UNDRAIN, CD_CTL_UNDRAIN}};
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        if (strcmp(cmd, plain[i].name) == 0) {
            out->op = plain[i].op;
            return 0;
        }
    }
    long long n;
    size_t sl = strlen(CD_CTL_CMD_SCALE);
    if (strncmp(cmd, CD_CTL_CMD_SCALE, sl) == 0 && (cmd[sl] == '\0' || isspace((unsigned char)cmd[sl]))) {
        if (cd_parse_int(cd_trim(cmd + sl), 1, CD_CTL_MAX_WORKERS, &n) < 0) {
            *why = "scale needs a worker count";
            return -1;
        }
        out->op = CD_CTL_SCALE;
        out->workers = (int)n;
        return 0;
    }
    *why = "unknown command (" CD_CTL_USAGE ")";
    return -1;
}

/* ---- the answers ---- */

static const char *state_name(proc_state s)
{
    switch (s) {
    case PROC_STARTING: return CD_CTL_STATE_STARTING;
    case PROC_READY: return CD_CTL_STATE_READY;
    default: return CD_CTL_STATE_DRAINING;
    }
}

static const char *yes(int b) { return b ? "true" : "false"; }

static void status_worker(cd_buf *o, const cd_proc *p, ev_tstamp now, int first)
{
    cd_buf_printf(o,
        "%s{" K(CD_CTL_W_SLOT) "%d," K(CD_CTL_W_PID) "%d," K(CD_CTL_W_GENERATION) "%u," K(CD_CTL_W_STATE) "\"%s\","
        K(CD_CTL_W_UPTIME) "%.1f," K(CD_CTL_W_REQUESTS) "%llu," K(CD_CTL_W_IN_FLIGHT) "%llu,"
        K(CD_CTL_W_CONNECTIONS) "%llu," K(CD_CTL_W_RSS) "%llu," K(CD_CTL_W_HEARTBEAT_AGE) "%.3f,",
        first ? "" : ",", p->slot, (int)p->pid, p->generation, state_name(p->state), now - p->started,
        (unsigned long long)p->stats.requests, (unsigned long long)p->stats.in_flight,
        (unsigned long long)p->stats.connections, (unsigned long long)p->stats.rss_bytes, now - p->last_heartbeat);
    /* The histogram as of the last heartbeat, for clusterctl top's p50/p99. */
    cd_buf_printf(o, K(CD_CTL_W_LATENCY) "[");
    for (int i = 0; i < CD_LAT_BUCKETS; i++)
        cd_buf_printf(o, "%s%llu", i ? "," : "", (unsigned long long)p->stats.lat_bucket[i]);
    cd_buf_printf(o, "]}");
}

void cd_control_status(cd_master *m, cd_buf *o)
{
    ev_tstamp now = ev_now(m->loop);
    cd_buf_printf(o, "{" K(CD_CTL_F_OK) "true," K(CD_CTL_F_PID) "%d," K(CD_CTL_F_UPTIME) "%.3f,"
                  K(CD_CTL_F_GENERATION) "%u," K(CD_CTL_F_WORKERS_WANTED) "%d," K(CD_CTL_F_RELOADING) "%s,",
                  (int)getpid(), now - m->started, m->generation, m->active, yes(m->reload.state != CD_RELOAD_IDLE));
    cd_buf_printf(o, K(CD_CTL_F_RELOAD_FAILED) "%s," K(CD_CTL_F_STOPPING) "%s," K(CD_CTL_F_DRAINING) "%s,"
                  K(CD_CTL_F_LAST_RELOAD), yes(m->reload.failed), yes(m->stop != CD_RUNNING), yes(cd_master_draining(m)));
    cd_json_str(o, m->reload.last, strlen(m->reload.last));
    cd_buf_printf(o, "," K(CD_CTL_F_UPGRADING) "%s," K(CD_CTL_F_LAST_UPGRADE),
                  yes(m->upgrade.state != CD_UPGRADE_IDLE));
    cd_json_str(o, m->upgrade.last, strlen(m->upgrade.last));
    cd_buf_printf(o, "," K(CD_CTL_F_LISTEN));
    cd_json_str(o, m->conf->listen, strlen(m->conf->listen));
    cd_buf_printf(o, "," K(CD_CTL_F_LATENCY_LE) "[");
    for (int i = 0; i < CD_LAT_BUCKETS - 1; i++)
        cd_buf_printf(o, "%s%g", i ? "," : "", cd_lat_bounds[i]);
    cd_buf_printf(o, "]," K(CD_CTL_F_WORKERS) "[");
    /* Slot order: a stable table for humans. */
    int last = -1;
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->slot > last)
            last = p->slot;
    int first = 1;
    for (int slot = 0; slot <= last; slot++)
        for (cd_proc *p = m->procs; p; p = p->next)
            if (p->slot == slot) {
                status_worker(o, p, now, first);
                first = 0;
            }
    cd_buf_printf(o, "]}");
}

void cd_control_error(cd_buf *o, const char *msg)
{
    cd_buf_printf(o, "{" K(CD_CTL_F_OK) "false," K(CD_CTL_F_ERROR));
    cd_json_str(o, msg, strlen(msg));
    cd_buf_printf(o, "}");
}

void cd_control_ok(cd_buf *o, const char *field, long long value)
{
    if (field)
        cd_buf_printf(o, "{" K(CD_CTL_F_OK) "true,\"%s\":%lld}", field, value);
    else
        cd_buf_printf(o, "{" K(CD_CTL_F_OK) "true}");
}

/* ---- the sockets ---- */

int cd_control_next(cd_master *m, cd_ctl_request *req)
{
    if (m->ctl_rep < 0)
        return 0;
    char *msg = NULL;
    int len = nn_recv(m->ctl_rep, &msg, NN_MSG, NN_DONTWAIT);
    if (len < 0)
        return 0;
    const char *why = NULL;
    int rc = cd_control_parse(msg, (size_t)len, req, &why);
    nn_freemsg(msg);
    if (rc == 0)
        return 1;
    cd_warn("control: refused a request of %d bytes: %s", len, why);
    cd_buf o = {0};
    cd_control_error(&o, why);
    cd_control_answer(m, &o);
    cd_buf_free(&o);
    return -1;
}

void cd_control_answer(cd_master *m, const cd_buf *o)
{
    if (m->ctl_rep >= 0 && o->p && !o->oom && nn_send(m->ctl_rep, o->p, o->len, NN_DONTWAIT) < 0)
        cd_warn("control: cannot reply: nn_send() failed: %s", nn_strerror(nn_errno()));
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
    int l = snprintf(line, sizeof line, "{" K(CD_CTL_EV_TIME) "%.3f,%s", ev_now(m->loop), buf + 1);
    nn_send(m->ctl_pub, line, (size_t)l, NN_DONTWAIT);
}

int cd_control_open(cd_master *m)
{
    m->ctl_rep = nn_socket(AF_SP, NN_REP);
    m->ctl_pub = nn_socket(AF_SP, NN_PUB);
    int rc = 0;
    if (m->ctl_rep < 0 || m->ctl_pub < 0)
        rc = -nn_errno();
    if (rc == 0 && (rc = cd_ipc_bind_0600(m->ctl_rep, m->conf->runtime_dir, CD_CTL_SOCK_CONTROL)) == 0)
        rc = cd_ipc_bind_0600(m->ctl_pub, m->conf->runtime_dir, CD_CTL_SOCK_EVENTS);
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
    ev_io_set(&m->ctl_w, fd, EV_READ); /* its callback is the loop's (master.c) */
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
