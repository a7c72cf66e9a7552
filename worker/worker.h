/*
 * worker.h - one worker process: its context, and the calls between the
 * files of worker/.
 *
 * A worker is clusterd exec'd in worker mode by the master (see
 * master/spawn.c).  It inherits three fds: its slot's listener, its channel
 * to the master, and a sealed memfd holding the config text the master
 * validated.  It runs one libev loop: accept -> HTTP (http/: parse with
 * llhttp, route, answer) -> service handler -> response, never blocking.
 * The worker owns the process: boot, the channel, heartbeat, drain, and
 * what services and the HTTP layer ask of it; HTTP itself is http/'s.
 *
 *   worker.c   boot (config, services, routes, HTTP context), run, teardown
 *   serve.c    accepting connections for the HTTP context, and the hooks it
 *              reports back through (counting, access log, capacity freed,
 *              sticky sessions: which worker, moving a connection there)
 *   channel.c  the master: its channel, the heartbeat, the drain, signals
 *   host.c     what services get of their worker (cd_service_host): the
 *              cross-worker bus, the service list, the cluster snapshot
 *
 * The request path, in order: serve.c (accept_cb) -> http/server.c
 * (cd_http_conn_new, conn_io_cb, cd_http__process, conn_parse with
 * http/parse.c's llhttp callbacks, dispatch) -> http/router.c
 * (cd_router_match) -> services/service.c (the route's handler) -> the
 * service's handle() -> cd_request_respond() in http/response.c (queues
 * the answer; the on_done hook counts it in serve.c) -> http/server.c
 * (cd_http__process writes it with conn_flush, then parses what is next).
 */
#ifndef CD_WORKER_H
#define CD_WORKER_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "core/stats.h"
#include "http/accesslog.h"
#include "http/router.h"
#include "http/server.h"
#include "ipc/bus.h"
#include "ipc/channel.h"
#include "ipc/proto.h"
#include "services/service.h"

typedef struct cd_worker {
    struct ev_loop *loop;
    const cd_conf *conf;
    int slot;
    unsigned generation;
    uint32_t id; /* cd_worker_id(slot, pid): what cd_service_worker_id says, steer hooks return */
    int listen_fd;
    int chan_fd;

    cd_http_ctx http;        /* the HTTP server and its connections */
    cd_route *route_tab;     /* one route per service, in config order */
    const cd_route **routes; /* the same, longest first (http.routes) */

    ev_io accept_w;
    ev_io chan_w;
    ev_timer heartbeat_w;
    ev_timer drain_w;        /* while draining: closes idle keep-alives, checks for done */
    ev_timer deadline_w;     /* while draining: gives up at the deadline */
    ev_timer accept_retry_w; /* after EMFILE: try accepting again shortly */
    ev_signal sigterm_w, sigquit_w;
    cd_ipc_decoder dec;
    cd_accesslog access_log; /* open when access_log is set */
    int access_log_open;
    ev_timer access_log_w; /* hands buffered lines to the writer each second */
    cd_bus bus;            /* open when a service uses it */
    ev_io bus_w;

    cd_service *services; /* one per configured service, in config order */
    size_t nservices;

    cd_stats stats; /* connections, in_flight, accepted: copied from http at each heartbeat */
    uint64_t recycle_after; /* max_requests plus this worker's jitter (0 = never) */
    int recycle_asked;
    int unrouted_idx;      /* stats.svc index counting requests with no route */
    cd_snapshot *snapshot; /* the latest cluster view from the master, or NULL */
    size_t snapshot_len;
    int accepting;
    int draining;
    int drained;      /* the master said DRAIN (until UNDRAIN): /healthz/ready answers 503 */
    int orphan;       /* the master is gone: drain fast and exit */
    pid_t master_pid; /* our parent at start: any other parent means it died */
    int passed[8];    /* connections the master handed over, until their CD_MSG_CONN frame */
    int npassed;
} cd_worker;

/* Worker entry point (clusterd.c calls it in worker mode).  Returns the exit code. */
int cd_worker_main(int slot, unsigned generation);

/* ---- serve.c ---- */
/* Sets w->id, the HTTP context's hooks (count into w->stats, write w's
 * access log when it is open, resume accepting, steer a request to the
 * worker its service names and move its connection there) and the accept
 * watchers (not started). */
void cd_worker_serve_init(cd_worker *w);
/* Starts (or stops) accepting on the slot's listener. */
void cd_worker_accept_start(cd_worker *w);
void cd_worker_accept_stop(cd_worker *w);

/* ---- channel.c ---- */
/* Starts the channel, heartbeat and signal watchers. */
void cd_worker_channel_start(cd_worker *w);
/* Graceful stop (deadline in seconds; a second call only shortens it). */
void cd_worker_begin_drain(cd_worker *w, double deadline);
/* Brings w->stats up to date (memory, and the HTTP context's counters). */
void cd_worker_sync_stats(cd_worker *w);

/* ---- host.c ---- */
/* The functions services reach their worker through (svc->host). */
extern const cd_service_host cd_worker_host;
/* Connects to the master's bus (when a service uses it).  Returns 0 or -errno. */
int cd_worker_bus_open(cd_worker *w);
void cd_worker_bus_close(cd_worker *w);

#endif
