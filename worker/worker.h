/*
 * worker.h - one worker process: its context and the HTTP connection layer.
 *
 * A worker is clusterd exec'd in worker mode by the master (see
 * master/spawn.c).  It inherits three fds: its slot's listener, its channel
 * to the master, and a sealed memfd holding the config text the master
 * validated.  It runs one libev loop: accept -> HTTP parse (llhttp) ->
 * router -> service handler -> response, never blocking.
 *
 * The request path, in order: worker.c (accept_cb) -> http.c (conn_read_cb,
 * conn_process, dispatch) -> router.c (cd_router_match) -> the service's
 * handle() -> cd_request_respond() -> http.c (conn_flush).
 */
#ifndef CD_WORKER_H
#define CD_WORKER_H

#include <ev.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "http/accesslog.h"
#include "ipc/bus.h"
#include "core/stats.h"
#include "ipc/channel.h"
#include "ipc/proto.h"
#include "services/service.h"

typedef struct cd_conn cd_conn;

typedef struct cd_worker {
    struct ev_loop *loop;
    const cd_conf *conf;
    int slot;
    unsigned generation;
    int listen_fd;
    int chan_fd;

    ev_io accept_w;
    ev_io chan_w;
    ev_timer heartbeat_w;
    ev_timer drain_w;    /* while draining: closes idle keep-alives, checks for done */
    ev_timer deadline_w; /* while draining: gives up at the deadline */
    ev_timer accept_retry_w; /* after EMFILE: try accepting again shortly */
    ev_signal sigterm_w, sigquit_w;
    cd_ipc_decoder dec;
    cd_accesslog access_log; /* open when access_log is set */
    int access_log_open;
    ev_timer access_log_w; /* hands buffered lines to the writer each second */
    cd_bus bus; /* open when a service uses it */
    ev_io bus_w;

    cd_service *services; /* one per configured service, in config order */
    size_t nservices;
    cd_service **routes; /* the same, longest route first (router.c) */

    cd_stats stats;
    uint64_t recycle_after; /* max_requests plus this worker's jitter (0 = never) */
    int recycle_asked;
    int unrouted_idx;      /* stats.svc index counting requests with no route */
    cd_snapshot *snapshot; /* the latest cluster view from the master, or NULL */
    size_t snapshot_len;
    cd_conn *conns; /* all open connections (doubly linked) */
    int nconns;
    int accepting;
    int draining;
    int orphan; /* the master is gone: drain fast and exit */
    pid_t master_pid; /* our parent at start: any other parent means it died */
    int passed[8];    /* connections the master handed over, until their CD_MSG_CONN frame */
    int npassed;
    int exit_code;
    ev_tstamp drain_started;

    char date[40]; /* cached "Date: ..." value, refreshed once a second */
    ev_tstamp date_at;
} cd_worker;

/* Worker entry point (main.c calls it in worker mode).  Returns the exit code. */
int cd_worker_main(int slot, unsigned generation);

/* ---- http.c ---- */
/* Takes over an accepted, non-blocking socket (peer: its address). */
void cd_http_conn_new(cd_worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen);
/* Graceful stop: idle connections close after a grace period, busy ones
 * answer their current request with Connection: close. */
void cd_http_drain(cd_worker *w, ev_tstamp idle_grace);
/* Closes every connection at once (immediate stop). */
void cd_http_close_all(cd_worker *w);

/* ---- router.c ---- */
/* Sorts routes so the longest prefix matches first.  Returns 0 or -ENOMEM. */
int cd_router_build(cd_service *services, size_t n, cd_service ***routes);
/* The service whose route is a prefix of path on a segment boundary, or NULL. */
cd_service *cd_router_match(cd_service *const *routes, size_t n, const char *path);

#endif
