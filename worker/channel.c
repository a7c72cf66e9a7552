/*
 * channel.c - a worker and its master (worker process, loop thread): the
 * channel's messages, the heartbeat, the drain and the signals.
 *
 * Heartbeat: every heartbeat_interval the worker sends its counters
 * (core/stats.h) and, past max_requests (plus its jitter), asks once to be
 * replaced.  A failed send means the master is gone.
 *
 * Messages: STOP drains (and answers DRAINING, so a reload is done only
 * once no old worker takes new connections); CLUSTER is the whole-cluster
 * view services read (cd_service_cluster); REOPEN reopens the access log;
 * CONN is a connection the master accepted on a listener whose own worker
 * is dead, backing off or retiring, or one another worker moved here
 * because its request belongs to this worker (sticky sessions,
 * http/steer.c; with the bytes it read of it), the fd passed with
 * SCM_RIGHTS: we serve it like one of ours.  Moving one away is serve.c's
 * (HANDOFF).  DRAIN and UNDRAIN say whether the host is drained
 * (clusterctl drain, a stop's drain_delay): /healthz/ready answers 503
 * then, while this worker accepts and serves as usual; the channel is
 * read before connections in a loop iteration, so a DRAIN sent before a
 * client connected is in force for its request.
 *
 * Stop: STOP or SIGTERM drains (stop accepting; the listener stays open in
 * the master for the next worker of this slot; finish what is in flight;
 * close idle keep-alives after a grace; exit 0), bounded by
 * graceful_timeout.  The master's death (EOF on the channel, a failed
 * heartbeat, or SIGTERM from PR_SET_PDEATHSIG while our parent is no longer
 * the master) drains with a deadline of half a second, so no worker
 * outlives its master by more than a second.  SIGQUIT exits at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "worker/worker.h"

#define DRAIN_TICK 0.05      /* how often a draining worker checks its connections */
#define DRAIN_IDLE_GRACE 1.0 /* idle keep-alives close after this long once draining */
#define ORPHAN_DEADLINE 0.5

static void read_rss(cd_stats *st)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return;
    unsigned long size, resident;
    if (fscanf(f, "%lu %lu", &size, &resident) == 2)
        st->rss_bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
    fclose(f);
}

void cd_worker_sync_stats(cd_worker *w)
{
    read_rss(&w->stats);
    w->stats.connections = (uint64_t)w->http.nconns;
    w->stats.in_flight = w->http.in_flight;
    w->stats.accepted = w->http.accepted;
    w->stats.moved = w->http.moved;
}

static void heartbeat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_worker *w = t->data;
    cd_worker_sync_stats(w);
    /* Checked here, not per request: the request path stays free of it, and
     * one interval of slack is nothing next to max_requests. */
    if (w->recycle_after && !w->recycle_asked && !w->draining && w->stats.requests >= w->recycle_after) {
        cd_info("served %llu requests (max_requests): asking to be replaced", (unsigned long long)w->stats.requests);
        w->recycle_asked = cd_ipc_send(w->chan_fd, CD_MSG_RECYCLE, NULL, 0) == 0;
    }
    int rc = cd_ipc_send(w->chan_fd, CD_MSG_HEARTBEAT, &w->stats, cd_stats_wire_len(&w->stats));
    if (rc == -EPIPE || rc == -ECONNRESET) {
        w->orphan = 1;
        cd_worker_begin_drain(w, ORPHAN_DEADLINE);
    }
}

/* A connection handed over with CD_MSG_CONN: one the master accepted on a
 * listener with no ready worker of its own (no payload), or one another
 * worker moved here because its request belongs to us (the bytes it read,
 * flagged moved): served as if we had accepted it. */
static void take_conn(cd_worker *w, const cd_ipc_msg *m)
{
    if (w->npassed == 0) {
        cd_warn("CD_MSG_CONN without a descriptor; ignored");
        return;
    }
    int fd = w->passed[0];
    memmove(w->passed, w->passed + 1, (size_t)--w->npassed * sizeof *w->passed);
    unsigned flags;
    const uint8_t *bytes;
    size_t n;
    if (cd_ipc_conn_decode(m->payload, m->len, &flags, &bytes, &n) < 0) {
        cd_warn("CD_MSG_CONN with a payload of %zu bytes this worker cannot read; connection closed", m->len);
        close(fd);
        return;
    }
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) < 0)
        peerlen = 0; /* already reset by the client: the connection code finds out */
    int rc = cd_http_conn_adopt(&w->http, fd, peerlen ? (struct sockaddr *)&peer : NULL, peerlen,
                                (const char *)bytes, n, (flags & CD_CONN_MOVED) != 0);
    if (rc < 0)
        cd_warn("a connection moved here with %zu bytes could not be taken (%s); closed", n, strerror(-rc));
}

static void take_snapshot(cd_worker *w, const uint8_t *data, size_t len)
{
    cd_snapshot head;
    if (len < sizeof head)
        return;
    memcpy(&head, data, sizeof head);
    if (head.nsvc > CD_SNAP_SERVICES || head.nmetrics > CD_SNAP_METRICS || len != sizeof head + (size_t)head.nworkers * sizeof(cd_snap_worker))
        return; /* not what this binary would send: ignore */
    if (len > w->snapshot_len) {
        cd_snapshot *n = realloc(w->snapshot, len);
        if (!n)
            return;
        w->snapshot = n;
    }
    memcpy(w->snapshot, data, len);
    w->snapshot_len = len;
}

static void chan_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    cd_worker *w = io->data;
    int room = (int)(sizeof w->passed / sizeof w->passed[0]) - w->npassed, got = 0;
    long n = cd_ipc_read_fds(&w->dec, w->chan_fd, w->passed + w->npassed, room, &got);
    w->npassed += got;
    if (n == -EAGAIN)
        return;
    if (n <= 0) {
        ev_io_stop(loop, io);
        if (!w->orphan)
            cd_warn("master is gone (channel closed); draining and exiting");
        w->orphan = 1;
        cd_worker_begin_drain(w, ORPHAN_DEADLINE);
        return;
    }
    cd_ipc_msg m;
    int rc;
    while ((rc = cd_ipc_next(&w->dec, &m)) > 0) {
        if (m.type == CD_MSG_STOP) {
            cd_worker_begin_drain(w, (double)w->conf->graceful_timeout_ms / 1000.0);
            /* Tells the master no new connection will be taken here, so a
             * reload is "done" only once new connections get the new config. */
            if (cd_ipc_send(w->chan_fd, CD_MSG_DRAINING, NULL, 0) < 0)
                cd_debug("cannot tell the master we are draining");
        }
        else if (m.type == CD_MSG_CLUSTER)
            take_snapshot(w, m.payload, m.len);
        else if (m.type == CD_MSG_REOPEN && w->access_log_open)
            cd_accesslog_reopen(&w->access_log);
        else if (m.type == CD_MSG_CONN)
            take_conn(w, &m);
        else if (m.type == CD_MSG_DRAIN || m.type == CD_MSG_UNDRAIN)
            w->drained = m.type == CD_MSG_DRAIN; /* health.c reads it (host.c) */
        else
            cd_debug("ignoring channel message type %u", m.type);
    }
    if (rc < 0) {
        cd_err("garbage on the channel from the master (%s); exiting", strerror(-rc));
        ev_io_stop(loop, io);
        w->orphan = 1;
        cd_worker_begin_drain(w, ORPHAN_DEADLINE);
    }
}

/* ---- the drain ---- */

static void drain_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_worker *w = t->data;
    cd_http_drain(&w->http, w->orphan ? 0.0 : DRAIN_IDLE_GRACE);
    if (w->http.nconns == 0 && w->http.in_flight == 0) {
        cd_info("drained; exiting");
        ev_break(loop, EVBREAK_ALL);
    }
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_worker *w = t->data;
    cd_warn("drain deadline reached with %d connection(s) and %llu request(s) in flight; closing them",
            w->http.nconns, (unsigned long long)w->http.in_flight);
    ev_break(loop, EVBREAK_ALL);
}

void cd_worker_begin_drain(cd_worker *w, double deadline)
{
    if (w->draining) {
        /* Already draining: only ever shorten the deadline. */
        double left = ev_timer_remaining(w->loop, &w->deadline_w);
        if (deadline < left) {
            ev_timer_stop(w->loop, &w->deadline_w);
            ev_timer_set(&w->deadline_w, deadline, 0.);
            ev_timer_start(w->loop, &w->deadline_w);
        }
        return;
    }
    cd_info("draining: %d connection(s), %llu request(s) in flight", w->http.nconns,
            (unsigned long long)w->http.in_flight);
    w->draining = 1;
    cd_http_begin_drain(&w->http);
    cd_worker_accept_stop(w);
    for (size_t i = 0; i < w->nservices; i++)
        if (w->services[i].type->stop)
            w->services[i].type->stop(&w->services[i]);
    ev_timer_set(&w->drain_w, 0., DRAIN_TICK);
    ev_timer_start(w->loop, &w->drain_w);
    ev_timer_set(&w->deadline_w, deadline, 0.);
    ev_timer_start(w->loop, &w->deadline_w);
}

static void signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)revents;
    cd_worker *w = s->data;
    if (s->signum == SIGQUIT) {
        cd_info("SIGQUIT: exiting now");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    /* SIGTERM: from the master, or from the kernel when the master died
     * (PDEATHSIG); then our parent is init or a subreaper, not the master. */
    if (getppid() != w->master_pid || w->orphan) {
        w->orphan = 1;
        cd_worker_begin_drain(w, ORPHAN_DEADLINE);
    } else {
        cd_worker_begin_drain(w, (double)w->conf->graceful_timeout_ms / 1000.0);
    }
}

void cd_worker_channel_start(cd_worker *w)
{
    ev_io_init(&w->chan_w, chan_cb, w->chan_fd, EV_READ);
    w->chan_w.data = w;
    /* Before connections in the same loop iteration: a DRAIN the master
     * sent before a client connected is seen before its request is served
     * (a busy worker finds both ready at once). */
    ev_set_priority(&w->chan_w, EV_MAXPRI);
    double hb = (double)w->conf->heartbeat_interval_ms / 1000.0;
    ev_timer_init(&w->heartbeat_w, heartbeat_cb, hb, hb);
    w->heartbeat_w.data = w;
    ev_init(&w->drain_w, drain_tick_cb);
    w->drain_w.data = w;
    ev_init(&w->deadline_w, deadline_cb);
    w->deadline_w.data = w;
    ev_signal_init(&w->sigterm_w, signal_cb, SIGTERM);
    w->sigterm_w.data = w;
    ev_signal_init(&w->sigquit_w, signal_cb, SIGQUIT);
    w->sigquit_w.data = w;
    ev_signal_start(w->loop, &w->sigterm_w);
    ev_signal_start(w->loop, &w->sigquit_w);
    ev_io_start(w->loop, &w->chan_w);
    ev_timer_start(w->loop, &w->heartbeat_w);
}
