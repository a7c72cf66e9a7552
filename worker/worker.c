/*
 * worker.c - a worker process from start to exit: boot, run, teardown
 * (worker process).
 *
 * Boot: read the config the master validated from the inherited memfd,
 * build one cd_service per configured service (each pointed at the
 * worker's host table, host.c) and one HTTP route per service, the HTTP
 * context with its limits and hooks (serve.c), connect to the bus when a
 * service uses it, initialise every service, open the access log, start
 * the watchers, tell the master READY.  Before that it raises its soft fd
 * limit to the hard one (one descriptor per connection: the usual soft
 * 1,024 would refuse the 1,025th client) and takes as many connections as
 * that allows (fd_limit).  A boot failure is reported
 * (BOOTFAIL) and the worker exits CD_EXIT_BOOTFAIL, which the master takes
 * as "do not respawn".
 *
 * Run: the loop, until the drain (channel.c) or SIGQUIT breaks it.
 *
 * Teardown: the final counters go to the master (so it loses no request
 * count), connections close, services are destroyed.  When the master is
 * gone there is nobody to report to and no time to wait for the services'
 * threads: the worker flushes its access log and _exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "worker/worker.h"

static void access_log_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_worker *w = t->data;
    cd_accesslog_flush(&w->access_log);
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

/* Descriptors kept for what is not a connection: the listener, the
 * channel, the bus, the access log, the services' own sockets (mongo pools,
 * nanomsg), files being sent. */
#define CD_FD_RESERVE 128

/* Raises the soft RLIMIT_NOFILE to the hard limit, then sets the
 * connections this worker takes: min(max_connections, fd limit -
 * CD_FD_RESERVE), or half the fd limit when it is that small.  Logged
 * once, with what it got. */
static void fd_limit(cd_worker *w)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        cd_log_errno(CD_LOG_WARN, errno, "getrlimit", "RLIMIT_NOFILE; keeping max_connections %d",
                     w->http.max_connections);
        return;
    }
    unsigned long long was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        /* An unlimited hard limit still stops at fs.nr_open (1 << 20 by default). */
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            cd_log_errno(CD_LOG_WARN, errno, "setrlimit", "raising the soft fd limit from %llu to %llu", was,
                         (unsigned long long)rl.rlim_cur);
            rl.rlim_cur = (rlim_t)was;
        }
    }
    unsigned long long fds = rl.rlim_cur;
    unsigned long long room = fds > 2 * CD_FD_RESERVE ? fds - CD_FD_RESERVE : fds / 2;
    int want = w->conf->max_connections;
    if (room < (unsigned long long)want)
        w->http.max_connections = room > 0 ? (int)room : 1;
    cd_info("fd limit %llu (soft limit was %llu); max_connections %d%s", fds, was, w->http.max_connections,
            w->http.max_connections < want ? " (max_connections in the config is more than the fd limit allows)"
                                           : "");
}

static int boot_fail(cd_worker *w, const char *why)
{
    cd_err("boot failed: %s", why);
    cd_ipc_send(w->chan_fd, CD_MSG_BOOTFAIL, why, strlen(why));
    return CD_EXIT_BOOTFAIL;
}

/* One cd_service and one route per configured service; the stats name
 * each service's counters, and one more slot counts what no route took. */
static int build_services(cd_worker *w)
{
    const cd_conf *conf = w->conf;
    w->nservices = conf->nservices;
    w->services = calloc(conf->nservices ? conf->nservices : 1, sizeof *w->services);
    w->route_tab = calloc(conf->nservices ? conf->nservices : 1, sizeof *w->route_tab);
    if (!w->services || !w->route_tab)
        return -ENOMEM;
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
        s->host = &cd_worker_host;
        s->worker = w;
        w->route_tab[i] = cd_service_route(s);
        w->route_tab[i].opts = cs->route_opts; /* CORS, gzip, ETag (http/routeconf.h) */
        if (i < CD_STATS_SERVICES - 1)
            snprintf(w->stats.svc[i].name, sizeof w->stats.svc[i].name, "%s", cs->name);
    }
    w->unrouted_idx = conf->nservices < CD_STATS_SERVICES - 1 ? (int)conf->nservices : CD_STATS_SERVICES - 1;
    snprintf(w->stats.svc[w->unrouted_idx].name, sizeof w->stats.svc[0].name, "-");
    if (cd_router_build(w->route_tab, w->nservices, &w->routes) < 0) {
        w->routes = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* The bus, the services' init and the access log: each may fail the boot
 * (msg says why).  *ninit counts the services initialised. */
static int boot_services(cd_worker *w, size_t *ninit, char *msg, size_t msglen)
{
    const cd_conf *conf = w->conf;
    for (size_t i = 0; i < conf->nservices; i++)
        if (conf->services[i].type->uses_bus && w->bus.in < 0) {
            int rc = cd_worker_bus_open(w);
            if (rc < 0) {
                snprintf(msg, msglen, "cannot connect to the bus in %s: %s", conf->runtime_dir, strerror(-rc));
                return -1;
            }
        }
    for (; *ninit < conf->nservices; (*ninit)++) {
        cd_service *s = &w->services[*ninit];
        char why[256] = "";
        if (s->type->init && s->type->init(s, why, sizeof why) < 0) {
            snprintf(msg, msglen, "service [%s] (%s): %s", s->name, s->type->name, why[0] ? why : "init failed");
            return -1;
        }
    }
    if (conf->access_log[0]) {
        int rc = cd_accesslog_open(&w->access_log, conf->access_log);
        if (rc < 0) {
            snprintf(msg, msglen, "access_log %s: %s", conf->access_log, strerror(-rc));
            return -1;
        }
        w->access_log_open = 1;
        ev_timer_init(&w->access_log_w, access_log_cb, 1.0, 1.0);
        w->access_log_w.data = w;
        ev_timer_start(w->loop, &w->access_log_w);
    }
    return 0;
}

/* The HTTP context (limits already set from the config): the routes and
 * the hooks; then the watchers. */
static void start_serving(cd_worker *w)
{
    w->http.routes = w->routes;
    w->http.nroutes = w->nservices;
    cd_worker_serve_init(w);
    const cd_conf *conf = w->conf;
    if (conf->max_requests) {
        srandom((unsigned)getpid());
        w->recycle_after = (uint64_t)conf->max_requests +
                           (conf->max_requests_jitter ? (uint64_t)random() % (uint64_t)(conf->max_requests_jitter + 1) : 0);
    }
    cd_worker_channel_start(w);
    cd_worker_accept_start(w);
}

static void teardown(cd_worker *w, size_t ninit)
{
    if (w->loop)
        cd_http_close_all(&w->http);
    for (size_t i = 0; i < ninit; i++)
        if (w->services[i].type->destroy)
            w->services[i].type->destroy(&w->services[i]);
    cd_worker_bus_close(w);
    if (w->access_log_open) {
        ev_timer_stop(w->loop, &w->access_log_w);
        cd_accesslog_close(&w->access_log);
    }
    free(w->services);
    free(w->route_tab);
    free(w->routes);
    free(w->snapshot);
    if (w->loop)
        ev_loop_destroy(w->loop);
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
    /* The HTTP context exists (empty) from here on, so teardown may close it. */
    cd_http_init(&w->http, w->loop, conf);
    fd_limit(w);

    int code = CD_EXIT_BOOTFAIL;
    size_t ninit = 0;
    char msg[400];
    if (build_services(w) < 0) {
        code = boot_fail(w, "out of memory");
        goto out;
    }
    if (boot_services(w, &ninit, msg, sizeof msg) < 0) {
        code = boot_fail(w, msg);
        goto out;
    }
    start_serving(w);
    if (cd_ipc_send(w->chan_fd, CD_MSG_READY, NULL, 0) < 0) {
        /* Orphaned while booting: leave as an orphan does, without waiting
         * for the services' threads or their database checks (readmongo's
         * at init can take server_selection_timeout). */
        cd_warn("master is gone before READY; exiting");
        w->orphan = 1;
    } else {
        cd_debug("ready: %zu service(s)", w->nservices);
        ev_run(w->loop, 0);
    }
    code = 0;
    if (w->orphan) {
        /* The master is gone: nobody to report to, and no time to wait for
         * the services' threads (a pool job can run for seconds) or their
         * clients.  The access log keeps
         * its lines; the kernel closes everything else. */
        if (w->access_log_open)
            cd_accesslog_close(&w->access_log);
        _exit(0);
    }
    /* Last words: the final counters, so the master loses no request count. */
    cd_worker_sync_stats(w);
    cd_ipc_send(w->chan_fd, CD_MSG_HEARTBEAT, &w->stats, cd_stats_wire_len(&w->stats));

out:
    teardown(w, ninit);
    cd_conf_free(conf);
    return code;
}
