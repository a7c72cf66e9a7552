/*
 * host.c - what a service gets of its worker (worker process, loop
 * thread): the cd_service_host table every service points at
 * (services/service.c calls through it), i.e. the cross-worker bus, the
 * list of this worker's services, the latest cluster snapshot, the
 * worker's id (ipc/proto.h cd_worker_id, what the steer hook returns),
 * the services' own metrics (kept in the heartbeat's cd_stats) and whether
 * the master drained the host (health's readiness).
 *
 * The bus carries "name\0payload" messages through the master's nanomsg
 * relay (ipc/bus.h): a service publishes to itself on every worker, and
 * each worker hands a message to the services of that name that
 * subscribed.  The worker connects only when a configured service sets
 * uses_bus.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/worker.h"

static int host_publish(cd_service *svc, const void *msg, size_t len)
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

static void host_subscribe(cd_service *svc, cd_bus_cb cb) { svc->bus_cb = cb; }

static cd_service *host_all(cd_service *svc, size_t *n)
{
    cd_worker *w = svc->worker;
    *n = w->nservices;
    return w->services;
}

static const cd_snapshot *host_cluster(cd_service *svc)
{
    cd_worker *w = svc->worker;
    return w->snapshot;
}

/* Computed, not read from w->id: services may ask in init, before
 * serve.c sets it. */
static uint32_t host_worker_id(const cd_service *svc)
{
    const cd_worker *w = svc->worker;
    return cd_worker_id(w->slot, (int)getpid());
}

/* Into the next heartbeat's cd_stats, under the service's index there
 * (worker.c names svc[i] after services[i]; one past the table, there is
 * no slot to keep its figures in). */
static int host_metric(cd_service *svc, const char *name, const char *labels, uint64_t value)
{
    cd_worker *w = svc->worker;
    size_t i = (size_t)(svc - w->services);
    if (i >= w->nservices || i >= CD_STATS_SERVICES - 1)
        return -ENOSPC;
    return cd_stats_metric_set(&w->stats, (uint32_t)i, svc->type->name, name, labels, value, CD_SERVICE_METRICS);
}

static int host_drained(cd_service *svc)
{
    const cd_worker *w = svc->worker;
    return w->drained;
}

const cd_service_host cd_worker_host = {
    .publish = host_publish,
    .subscribe = host_subscribe,
    .all = host_all,
    .cluster = host_cluster,
    .worker_id = host_worker_id,
    .metric = host_metric,
    .drained = host_drained,
};

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

int cd_worker_bus_open(cd_worker *w)
{
    int rc = cd_bus_worker_open(&w->bus, w->conf->runtime_dir);
    if (rc < 0)
        return rc;
    ev_io_init(&w->bus_w, bus_cb, w->bus.rcvfd, EV_READ);
    w->bus_w.data = w;
    ev_io_start(w->loop, &w->bus_w);
    return 0;
}

void cd_worker_bus_close(cd_worker *w)
{
    if (w->bus.in < 0)
        return;
    ev_io_stop(w->loop, &w->bus_w);
    cd_bus_close(&w->bus);
}
