/*
 * service.h - the service vtable and what a service may see of its worker
 * (public: include/clusterd/service.h), plus what stays private to
 * clusterd: the host table the worker fills, a service's HTTP route, and
 * the registry's lookup.
 *
 * Adding a built-in service: write services/NAME.c exporting a
 * cd_service_type and add one line to the registry in services/registry.c.
 * A service of your own needs neither: see docs/services.md.
 */
#ifndef CD_SERVICE_H
#define CD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "clusterd/service.h"
#include "conf/keys.h"
#include "http/request.h"
#include "http/router.h"

/* What the process running a service gives it: the worker fills one table
 * (worker/host.c) and points every service at it; services/service.c
 * calls through it, so services never depend on worker/.  The functions
 * are those of clusterd/service.h, cd_service_<name>, with the same
 * contracts. */
typedef struct cd_service_host {
    int (*publish)(cd_service *svc, const void *msg, size_t len);
    void (*subscribe)(cd_service *svc, cd_bus_cb cb);
    cd_service *(*all)(cd_service *svc, size_t *n);
    const struct cd_snapshot *(*cluster)(cd_service *svc);
    uint32_t (*worker_id)(const cd_service *svc);
    int (*metric)(cd_service *svc, const char *name, const char *labels, uint64_t value);
    /* 1 while the master has the host drained (clusterctl drain, a stop's
     * drain_delay): health's readiness answers 503.  Private to clusterd
     * (no cd_service_ function); NULL counts as 0. */
    int (*drained)(cd_service *svc);
} cd_service_host;

/* The HTTP route (http/router.h) of svc: its route prefix and the type's
 * methods, handled by the type's handle() (services/service.c). */
cd_route cd_service_route(cd_service *svc);

/* Registry (services/registry.c): the type named `type`, loading its module
 * if it is one.  NULL with err "" when there is no such type, or with the
 * reason in err when its module cannot be loaded. */
const cd_service_type *cd_service_lookup(const char *type, char *err, size_t errlen);

#endif
