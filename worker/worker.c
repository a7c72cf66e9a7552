/*
 * worker.c - a worker process: boot, accept loop, channel, drain (worker).
 *
 * Boot: read the config the master validated from the inherited memfd,
 * initialise every service, tell the master READY.  A boot failure is
 * reported (BOOTFAIL) and the worker exits CD_EXIT_BOOTFAIL, which the
 * master takes as "do not respawn".
 *
 * Stop: STOP on the channel or SIGTERM drains (stop accepting; the listener
 * stays open in the master for the next worker of this slot; finish what is
 * in flight; close idle keep-alives after a grace; exit 0), bounded by
 * graceful_timeout.  The master's death (EOF on the channel, or SIGTERM
 * from PR_SET_PDEATHSIG while our parent is no longer the master) drains
 * with a deadline of half a second and then exits at once, without waiting
 * for the services' threads, so no worker outlives its master by more than
 * a second.  SIGQUIT exits at once.
 *
 * The master may hand us a connection it accepted on a listener whose own
 * worker is dead, backing off or retiring (CD_MSG_CONN, the fd passed with
 * SCM_RIGHTS); we serve it like one of ours.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "worker/worker.h"

#define DRAIN_TICK 0.05      /* how often a draining worker checks its connections */
#define DRAIN_IDLE_GRACE 1.0 /* idle keep-alives close after this long once draining */
#define ORPHAN_DEADLINE 0.5

static void begin_drain(cd_worker *w, double deadline);
static void take_snapshot(cd_worker *w, const uint8_t *data, size_t len);

static void stop_accepting(cd_worker *w)
{
    ev_io_stop(w->loop, &w->accept_w);
    ev_timer_stop(w->loop, &w->accept_retry_w);
    w->accepting = 0;
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    cd_worker *w = io->data;
    /* Take a bounded batch so one busy listener cannot starve the rest of the loop. */
    for (int i = 0; i < 64 && w->accepting; i++) {
        if (w->nconns >= w->conf->max_connections) {
            stop_accepting(w); /* conn close restarts us */
            cd_debug("max_connections (%d) reached; not accepting", w->conf->max_connections);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t peerlen = sizeof peer;
        int fd = accept4(w->listen_fd, (struct sockaddr *)&peer, &peerlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                cd_log_errno(CD_LOG_WARN, errno, "accept4", "out of descriptors; pausing accept for 100ms");
                stop_accepting(w);
                ev_timer_set(&w->accept_retry_w, 0.1, 0.);
                ev_timer_start(loop, &w->accept_retry_w);
                return;
            }
            cd_log_errno(CD_LOG_ERR, errno, "accept4", "accepting on slot %d", w->slot);
            return;
        }
        cd_http_conn_new(w, fd, (struct sockaddr *)&peer, peerlen);
    }
}

static void accept_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_worker *w = t->data;
    if (!w->draining && !w->accepting) {
        ev_io_start(loop, &w->accept_w);
        w->accepting = 1;
    }
}

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

static void heartbeat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_worker *w = t->data;
    read_rss(&w->stats);
    /* Checked here, not per request: the request path stays free of it, and
     * one interval of slack is nothing next to max_requests. */
    if (w->recycle_after && !w->recycle_asked && !w->draining && w->stats.requests >= w->recycle_after) {
        cd_info("served %llu requests (max_requests): asking to be replaced", (unsigned long long)w->stats.requests);
        w->recycle_asked = cd_ipc_send(w->chan_fd, CD_MSG_RECYCLE, NULL, 0) == 0;
    }
    int rc = cd_ipc_send(w->chan_fd, CD_MSG_HEARTBEAT, &w->stats, sizeof w->stats);
    if (rc == -EPIPE || rc == -ECONNRESET) {
        w->orphan = 1;
        begin_drain(w, ORPHAN_DEADLINE);
    }
}

/* A connection the master accepted on a listener with no ready worker of
 * its own, handed over with CD_MSG_CONN: served as if we had accepted it. */
static void take_conn(cd_worker *w)
{
    if (w->npassed == 0) {
        cd_warn("CD_MSG_CONN without a descriptor; ignored");
        return;
    }
    int fd = w->passed[0];
    memmove(w->passed, w->passed + 1, (size_t)--w->npassed * sizeof *w->passed);
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) < 0)
        peerlen = 0; /* already reset by the client: the connection code finds out */
    cd_http_conn_new(w, fd, peerlen ? (struct sockaddr *)&peer : NULL, peerlen);
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
        begin_drain(w, ORPHAN_DEADLINE);
        return;
    }
    cd_ipc_msg m;
    int rc;
    while ((rc = cd_ipc_next(&w->dec, &m)) > 0) {
        if (m.type == CD_MSG_STOP) {
            begin_drain(w, (double)w->conf->graceful_timeout_ms / 1000.0);
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
            take_conn(w);
        else
            cd_debug("ignoring channel message type %u", m.type);
    }
    if (rc < 0) {
        cd_err("garbage on the channel from the master (%s); exiting", strerror(-rc));
        ev_io_stop(loop, io);
        w->orphan = 1;
        begin_drain(w, ORPHAN_DEADLINE);
    }
}

static void take_snapshot(cd_worker *w, const uint8_t *data, size_t len)
{
    cd_snapshot head;
    if (len < sizeof head)
        return;
    memcpy(&head, data, sizeof head);
    if (head.nsvc > CD_SNAP_SERVICES || len != sizeof head + (size_t)head.nworkers * sizeof(cd_snap_worker))
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

const cd_snapshot *cd_service_cluster(cd_service *svc)
{
    cd_worker *w = svc->worker;
    return w->snapshot;
}

cd_service *cd_service_all(cd_service *svc, size_t *n)
{
    cd_worker *w = svc->worker;
    *n = w->nservices;
    return w->services;
}

static void access_log_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_worker *w = t->data;
    cd_accesslog_flush(&w->access_log);
}

static void drain_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_worker *w = t->data;
    cd_http_drain(w, w->orphan ? 0.0 : DRAIN_IDLE_GRACE);
    if (w->nconns == 0 && w->stats.in_flight == 0) {
        cd_info("drained; exiting");
        ev_break(loop, EVBREAK_ALL);
    }
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_worker *w = t->data;
    cd_warn("drain deadline reached with %d connection(s) and %llu request(s) in flight; closing them",
            w->nconns, (unsigned long long)w->stats.in_flight);
    ev_break(loop, EVBREAK_ALL);
}

static void begin_drain(cd_worker *w, double deadline)
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
    cd_info("draining: %d connection(s), %llu request(s) in flight", w->nconns,
            (unsigned long long)w->stats.in_flight);
    w->draining = 1;
    w->drain_started = ev_now(w->loop);
    stop_accepting(w);
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
        begin_drain(w, ORPHAN_DEADLINE);
    } else {
        begin_drain(w, (double)w->conf->graceful_timeout_ms / 1000.0);
    }
}

/* ---- the cross-worker bus: "name\0payload" messages ---- */

int cd_service_publish(cd_service *svc, const void *msg, size_t len)
{
    cd_worker *w = svc->worker;
    if (!svc->type->uses_bus || w->bus.in < 0)
        return -ENOTSUP;
    size_t need = strlen(svc->name) + 1 + len;
    char stackbuf[4096];
    char *buf = need <= sizeof stackbuf ? stackbuf : malloc(need);
    if (!buf)
        return -ENOMEM;
    long n = cd_bus_wrap(buf, need, svc->name, msg, len);
    int rc = n < 0 ? (int)n : cd_bus_send(&w->bus, buf, (size_t)n);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

void cd_service_subscribe(cd_service *svc, cd_bus_cb cb) { svc->bus_cb = cb; }

static void bus_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    cd_worker *w = io->data;
    void *msg;
    long len;
    for (int i = 0; i < 256 && (len = cd_bus_recv(&w->bus, &msg)) >= 0; i++) {
        const char *name;
        const void *payload;
        size_t plen;
        if (cd_bus_unwrap(msg, (size_t)len, &name, &payload, &plen) == 0) {
            for (size_t k = 0; k < w->nservices; k++) {
                cd_service *s = &w->services[k];
                if (s->bus_cb && strcmp(s->name, name) == 0)
                    s->bus_cb(s, payload, plen);
            }
        }
        cd_bus_free(msg);
    }
}

/* Reads the config text the master validated from the inherited memfd. */
static int load_conf(cd_conf **out, char *err, size_t errlen)
{
    const char *path = getenv("CLUSTERD_CONF_PATH");
    int rc = cd_conf_load_fd(CD_WORKER_FD_CONF, path ? path : "(config)", out, err, errlen);
    close(CD_WORKER_FD_CONF);
    return rc;
}

static void signals_reset(void)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* Terminal keys reach the whole process group; the master decides. */
    int ignored[] = {SIGPIPE, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGWINCH};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_IGN);
}

static int boot_fail(cd_worker *w, const char *why)
{
    cd_err("boot failed: %s", why);
    cd_ipc_send(w->chan_fd, CD_MSG_BOOTFAIL, why, strlen(why));
    return CD_EXIT_BOOTFAIL;
}

int cd_worker_main(int slot, unsigned generation)
{
    cd_worker wk = {.slot = slot, .generation = generation, .bus = {.in = -1, .out = -1}};
    cd_worker *w = &wk;
    cd_log_role(slot, generation);
    signals_reset();
    w->master_pid = getppid();
    w->listen_fd = CD_WORKER_FD_LISTEN;
    w->chan_fd = CD_WORKER_FD_CHANNEL;
    cd_set_nonblock(w->chan_fd, 1);
    cd_set_cloexec(w->chan_fd, 1);
    cd_set_nonblock(w->listen_fd, 1);
    cd_set_cloexec(w->listen_fd, 1);

    char err[512];
    cd_conf *conf = NULL;
    if (load_conf(&conf, err, sizeof err) < 0)
        return boot_fail(w, err);
    w->conf = conf;
    w->loop = ev_default_loop(EVFLAG_AUTO);
    if (!w->loop) {
        cd_conf_free(conf);
        return boot_fail(w, "cannot create the event loop");
    }

    int code = CD_EXIT_BOOTFAIL;
    size_t ninit = 0;
    w->nservices = conf->nservices;
    w->services = calloc(conf->nservices, sizeof *w->services);
    if (!w->services) {
        code = boot_fail(w, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < conf->nservices; i++) {
        cd_service *s = &w->services[i];
        const cd_conf_service *cs = &conf->services[i];
        s->type = cs->type;
        s->name = cs->name;
        s->route = cs->route;
        s->route_len = cs->route_len;
        s->conf = cs->conf;
        s->loop = w->loop;
        s->slot = w->slot;
        s->worker = w;
        if (i < CD_STATS_SERVICES - 1)
            snprintf(w->stats.svc[i].name, sizeof w->stats.svc[i].name, "%s", cs->name);
    }
    w->unrouted_idx = conf->nservices < CD_STATS_SERVICES - 1 ? (int)conf->nservices : CD_STATS_SERVICES - 1;
    snprintf(w->stats.svc[w->unrouted_idx].name, sizeof w->stats.svc[0].name, "-");
    for (size_t i = 0; i < conf->nservices; i++)
        if (conf->services[i].type->uses_bus && w->bus.in < 0) {
            int rc = cd_bus_worker_open(&w->bus, conf->runtime_dir);
            if (rc < 0) {
                char msg[400];
                snprintf(msg, sizeof msg, "cannot connect to the bus in %s: %s", conf->runtime_dir, strerror(-rc));
                code = boot_fail(w, msg);
                goto out;
            }
            ev_io_init(&w->bus_w, bus_cb, w->bus.rcvfd, EV_READ);
            w->bus_w.data = w;
            ev_io_start(w->loop, &w->bus_w);
        }
    if (cd_router_build(w->services, w->nservices, &w->routes) < 0) {
        w->routes = NULL;
        code = boot_fail(w, "out of memory");
        goto out;
    }
    for (; ninit < conf->nservices; ninit++) {
        cd_service *s = &w->services[ninit];
        char why[256] = "";
        if (s->type->init && s->type->init(s, why, sizeof why) < 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "service [%s] (%s): %s", s->name, s->type->name, why[0] ? why : "init failed");
            code = boot_fail(w, msg);
            goto out;
        }
    }

    if (conf->access_log[0]) {
        int rc = cd_accesslog_open(&w->access_log, conf->access_log);
        if (rc < 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "access_log %s: %s", conf->access_log, strerror(-rc));
            code = boot_fail(w, msg);
            goto out;
        }
        w->access_log_open = 1;
        ev_timer_init(&w->access_log_w, access_log_cb, 1.0, 1.0);
        w->access_log_w.data = w;
        ev_timer_start(w->loop, &w->access_log_w);
    }
    if (conf->max_requests) {
        srandom((unsigned)getpid());
        w->recycle_after = (uint64_t)conf->max_requests +
                           (conf->max_requests_jitter ? (uint64_t)random() % (uint64_t)(conf->max_requests_jitter + 1) : 0);
    }
    ev_io_init(&w->accept_w, accept_cb, w->listen_fd, EV_READ);
    w->accept_w.data = w;
    ev_init(&w->accept_retry_w, accept_retry_cb);
    w->accept_retry_w.data = w;
    ev_io_init(&w->chan_w, chan_cb, w->chan_fd, EV_READ);
    w->chan_w.data = w;
    double hb = (double)conf->heartbeat_interval_ms / 1000.0;
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
    ev_io_start(w->loop, &w->accept_w);
    w->accepting = 1;
    if (cd_ipc_send(w->chan_fd, CD_MSG_READY, NULL, 0) < 0) {
        cd_warn("master is gone before READY; exiting");
        code = 0;
        goto out;
    }
    cd_debug("ready: %zu service(s)", w->nservices);
    ev_run(w->loop, 0);
    code = 0;
    if (w->orphan) {
        /* The master is gone: nobody to report to, and no time to wait for
         * the services' threads (a readmongo query can sit in server
         * selection for seconds) or their clients.  The access log keeps
         * its lines; the kernel closes everything else. */
        if (w->access_log_open)
            cd_accesslog_close(&w->access_log);
        _exit(0);
    }
    /* Last words: the final counters, so the master loses no request count. */
    read_rss(&w->stats);
    cd_ipc_send(w->chan_fd, CD_MSG_HEARTBEAT, &w->stats, sizeof w->stats);

out:
    if (w->loop)
        cd_http_close_all(w);
    for (size_t i = 0; i < ninit; i++)
        if (w->services[i].type->destroy)
            w->services[i].type->destroy(&w->services[i]);
    if (w->bus.in >= 0) {
        ev_io_stop(w->loop, &w->bus_w);
        cd_bus_close(&w->bus);
    }
    if (w->access_log_open) {
        ev_timer_stop(w->loop, &w->access_log_w);
        cd_accesslog_close(&w->access_log);
    }
    free(w->services);
    free(w->routes);
    free(w->snapshot);
    if (w->loop)
        ev_loop_destroy(w->loop);
    cd_conf_free(conf);
    return code;
}
