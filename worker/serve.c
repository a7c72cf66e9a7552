/*
 * serve.c - the worker's side of serving HTTP (worker process, loop
 * thread): accepting connections on the slot's listener and handing them
 * to the HTTP context (http/server.h), and the hooks through which the
 * context reports back: a finished request is counted into the stats the
 * heartbeat sends (by status class, by service, by latency), written to
 * the access log, and a closed connection below max_connections resumes
 * accepting.
 *
 * Sticky sessions: when a service has a steer hook, each request's
 * headers are shown to it (http/steer.c); a request it says belongs to
 * another worker leaves with its connection in a HANDOFF to the master,
 * which passes it on; the HTTP context counts them (http.moved, sent in
 * the heartbeat's stats, summed in /metrics as
 * clusterd_moved_connections_total).
 *
 * Accepting stops at max_connections (a closing connection restarts it),
 * while draining, and for 100 ms after running out of descriptors (EMFILE
 * and friends), so a full process sheds load instead of spinning.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "worker/worker.h"

void cd_worker_accept_stop(cd_worker *w)
{
    ev_io_stop(w->loop, &w->accept_w);
    ev_timer_stop(w->loop, &w->accept_retry_w);
    w->accepting = 0;
}

void cd_worker_accept_start(cd_worker *w)
{
    if (!w->draining && !w->accepting) {
        ev_io_start(w->loop, &w->accept_w);
        w->accepting = 1;
    }
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    cd_worker *w = io->data;
    /* Take a bounded batch so one busy listener cannot starve the rest of the loop. */
    for (int i = 0; i < 64 && w->accepting; i++) {
        if (w->http.nconns >= w->http.max_connections) { /* the config's, or what the fd limit allows */
            cd_worker_accept_stop(w); /* a connection closing restarts us (on_capacity) */
            cd_debug("max_connections (%d) reached; not accepting", w->http.max_connections);
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
                cd_worker_accept_stop(w);
                ev_timer_set(&w->accept_retry_w, 0.1, 0.);
                ev_timer_start(loop, &w->accept_retry_w);
                return;
            }
            cd_log_errno(CD_LOG_ERR, errno, "accept4", "accepting on slot %d", w->slot);
            return;
        }
        cd_http_conn_new(&w->http, fd, (struct sockaddr *)&peer, peerlen);
    }
}

static void accept_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_worker_accept_start(t->data);
}

/* ---- the HTTP context's hooks ---- */

/* Counts an answer: by class, by service (route NULL: none took it), by
 * latency (seconds < 0: refused before dispatch, not timed). */
static void on_done(void *owner, const cd_route *route, int status, double seconds)
{
    cd_worker *w = owner;
    w->stats.requests++;
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        return;
    w->stats.status[cls]++;
    size_t idx = route ? (size_t)((const cd_service *)route->arg - w->services) : (size_t)w->unrouted_idx;
    if (idx < CD_STATS_SERVICES)
        w->stats.svc[idx].status[cls]++;
    if (seconds >= 0) {
        int b = 0;
        while (b < CD_LAT_BUCKETS - 1 && seconds > cd_lat_bounds[b])
            b++;
        w->stats.lat_bucket[b]++;
        w->stats.lat_sum_us += (uint64_t)(seconds * 1e6);
    }
}

static void on_log(void *owner, const cd_access_entry *e)
{
    cd_worker *w = owner;
    char line[2048];
    size_t n = cd_accesslog_format(line, sizeof line, e, w->conf->access_log_json, w->slot);
    if (n > 0)
        cd_accesslog_append(&w->access_log, line, n);
}

static void on_capacity(void *owner) { cd_worker_accept_start(owner); }

/* Sticky sessions: the route's service says which worker owns the request
 * (its steer hook; every route is a service's); ours means here. */
static uint32_t on_steer(void *owner, const cd_route *route, const cd_request *r)
{
    cd_worker *w = owner;
    cd_service *svc = route->arg;
    if (!svc->type->steer)
        return 0;
    uint32_t to = svc->type->steer(svc, r);
    return to == w->id ? 0 : to;
}

/* ...and the connection goes to the master, which forwards it to that
 * worker (master/sticky.c).  Never waits: a full channel serves it here. */
static int on_move(void *owner, uint32_t to, int fd, const char *bytes, size_t len)
{
    cd_worker *w = owner;
    return cd_ipc_send_conn(w->chan_fd, CD_MSG_HANDOFF, to, bytes, len, fd);
}

void cd_worker_serve_init(cd_worker *w)
{
    w->id = cd_worker_id(w->slot, (int)getpid());
    w->http.owner = w;
    w->http.on_done = on_done;
    w->http.on_log = w->access_log_open ? on_log : NULL;
    w->http.on_capacity = on_capacity;
    for (size_t i = 0; i < w->nservices; i++)
        if (w->services[i].type->steer) { /* only then is a request asked where it belongs */
            w->http.on_steer = on_steer;
            w->http.on_move = on_move;
        }
    ev_io_init(&w->accept_w, accept_cb, w->listen_fd, EV_READ);
    w->accept_w.data = w;
    ev_init(&w->accept_retry_w, accept_retry_cb);
    w->accept_retry_w.data = w;
}
