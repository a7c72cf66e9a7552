/*
 * service.h - the service vtable, and what a service may see of its worker.
 *
 * A service type (dummy, readmongo, ...) is one cd_service_type: a vtable of
 * hooks called in two processes.
 *
 *   master and worker: conf_new builds the defaults, the `keys` table
 *       (conf/keys.h) takes the service's own keys of its [section] (all but
 *       `type` and `route`), conf_check checks them together, conf_free
 *       releases what they own.  services/registry.c applies them for conf/.
 *       The master validates the file; each exec'd worker re-parses the
 *       exact bytes the master validated (handed over in a sealed memfd), so
 *       both hold identical, read-only configs.
 *   worker only: init (after exec, before READY; a failure is a boot failure
 *       and stops the cluster), handle (one request), stop (graceful stop has
 *       begun), destroy (loop is gone).
 *
 * handle() must answer every request exactly once with cd_request_respond(),
 * either before returning or later from a loop callback (a timer, an
 * ev_async from a thread).  Only the loop thread may touch a cd_request.
 * If the client went away meanwhile, cd_request_respond() just frees the
 * request, so services never need a cancellation path.
 *
 * Adding a service: write services/NAME.c exporting a cd_service_type and
 * add one line to the registry in services/registry.c.
 */
#ifndef CD_SERVICE_H
#define CD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "conf/keys.h"
#include "http/request.h" /* the request API handle() uses, and CD_M_* */
#include "http/router.h"

struct ev_loop;
typedef struct cd_service cd_service;
typedef struct cd_service_type cd_service_type;

struct cd_service_type {
    const char *name; /* the `type =` value in the config */
    unsigned methods; /* CD_M_* bits (http/request.h); others get 405 from the router */

    /* Config (master and worker).  Return 0, or -1 with a message in err
     * (the caller adds file:line). */
    void *(*conf_new)(void);
    const cd_conf_key *keys; /* the section's keys, into conf_new's struct; may be NULL */
    int (*conf_check)(void *conf, char *err, size_t errlen); /* after the section; may be NULL */
    void (*conf_free)(void *conf);

    /* Worker only. init: 0 or -1 with err (boot failure); a failed init frees
     * what it allocated, destroy is only called after a successful one.
     * May be NULL. */
    int (*init)(cd_service *svc, char *err, size_t errlen);
    void (*handle)(cd_service *svc, cd_request *req);
    void (*stop)(cd_service *svc);    /* may be NULL */
    void (*destroy)(cd_service *svc); /* may be NULL */
    /* Readiness: NULL or returns a reason string when degraded. May be NULL. */
    const char *(*degraded)(cd_service *svc);
    /* Set when the service talks across workers (cd_service_publish): the
     * master then runs the bus and workers connect before init. */
    int uses_bus;
};

typedef void (*cd_bus_cb)(cd_service *svc, const void *msg, size_t len);

/* What the process running a service gives it: the worker fills one table
 * (worker/host.c) and points every service at it; services/service.c
 * calls through it, so services never depend on worker/.  The functions
 * are those below, cd_service_<name>, with the same contracts. */
typedef struct cd_service_host {
    int (*publish)(cd_service *svc, const void *msg, size_t len);
    void (*subscribe)(cd_service *svc, cd_bus_cb cb);
    cd_service *(*all)(cd_service *svc, size_t *n);
    const struct cd_snapshot *(*cluster)(cd_service *svc);
} cd_service_host;

/* One configured instance of a service type, in one worker. */
struct cd_service {
    const cd_service_type *type;
    const char *name;  /* the section name */
    const char *route; /* path prefix, e.g. "/dummy" */
    size_t route_len;
    const void *conf;    /* what conf_new and keys built; read-only */
    struct ev_loop *loop; /* the worker's loop (NULL in the master) */
    void *state;          /* the service's per-worker state, set by init */
    int slot;             /* the worker's slot */
    cd_bus_cb bus_cb;     /* set by cd_service_subscribe */
    const cd_service_host *host; /* the worker's functions (NULL: none, e.g. in the master) */
    void *worker;         /* the host's context (opaque to services) */
};

/* The HTTP route (http/router.h) of svc: its route prefix and the type's
 * methods, handled by the type's handle() (services/service.c). */
cd_route cd_service_route(cd_service *svc);

/* ---- What a service may see of its worker (through svc->host) ---- */

/* All services of this worker (for health checks). */
cd_service *cd_service_all(cd_service *svc, size_t *n);
/* The latest whole-cluster view the master sent (core/stats.h), or NULL
 * before the first one arrives (within one heartbeat interval). */
const struct cd_snapshot *cd_service_cluster(cd_service *svc);

/* ---- Cross-worker messages (through svc->host) ---- */

/* Sends msg to this service on every worker, this one included (through
 * the master's nanomsg relay; best effort, never blocks).  Returns 0 or
 * -errno (-EAGAIN when the bus is backed up, -ENOTSUP without uses_bus). */
int cd_service_publish(cd_service *svc, const void *msg, size_t len);
/* Registers the callback that receives this service's bus messages. */
void cd_service_subscribe(cd_service *svc, cd_bus_cb cb);

/* Registry (services/registry.c): the type named `type`, loading its module
 * if it is one.  NULL with err "" when there is no such type, or with the
 * reason in err when its module cannot be loaded. */
const cd_service_type *cd_service_lookup(const char *type, char *err, size_t errlen);

#endif
