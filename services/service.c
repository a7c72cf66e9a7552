/*
 * service.c - what services/service.h promises a service of its host, by
 * calling through the cd_service_host table the worker gave it (worker
 * process, loop thread), and the service's HTTP route.
 *
 * This indirection is what keeps the layers one-way: a service links
 * against these functions, the worker (above services) fills the table.
 * Without a host (a service built by hand in a test, or in the master)
 * each call answers as "not available": -ENOTSUP, no services, no cluster
 * view, worker id 0, no metrics.
 */
#include <errno.h>

#include "services/service.h"

int cd_service_publish(cd_service *svc, const void *msg, size_t len)
{
    if (!svc->host || !svc->host->publish)
        return -ENOTSUP;
    return svc->host->publish(svc, msg, len);
}

void cd_service_subscribe(cd_service *svc, cd_bus_cb cb)
{
    if (svc->host && svc->host->subscribe)
        svc->host->subscribe(svc, cb);
    else
        svc->bus_cb = cb;
}

cd_service *cd_service_all(cd_service *svc, size_t *n)
{
    if (!svc->host || !svc->host->all) {
        *n = 0;
        return NULL;
    }
    return svc->host->all(svc, n);
}

const struct cd_snapshot *cd_service_cluster(cd_service *svc)
{
    if (!svc->host || !svc->host->cluster)
        return NULL;
    return svc->host->cluster(svc);
}

uint32_t cd_service_worker_id(const cd_service *svc)
{
    if (!svc->host || !svc->host->worker_id)
        return 0;
    return svc->host->worker_id(svc);
}

int cd_service_metric(cd_service *svc, const char *name, const char *labels, uint64_t value)
{
    if (!svc->host || !svc->host->metric)
        return -ENOTSUP;
    return svc->host->metric(svc, name, labels, value);
}

static void route_handle(void *arg, cd_request *r)
{
    cd_service *svc = arg;
    svc->type->handle(svc, r);
}

cd_route cd_service_route(cd_service *svc)
{
    return (cd_route){.prefix = svc->route, .len = svc->route_len, .name = svc->name,
                      .methods = svc->type->methods, .handle = route_handle, .arg = svc};
}
