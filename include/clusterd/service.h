/*
 * clusterd/service.h - the service vtable and what a service may see of
 * its worker (public, installed).
 *
 * A service type (dummy, readmongo, your own) is one cd_service_type: a
 * vtable of hooks called in two processes.
 *
 *   master and worker: conf_new builds the defaults, the `keys` table
 *       (clusterd/conf.h) takes the service's own keys of its [section] (all
 *       but `type`, `route` and `module`), conf_check checks them together,
 *       conf_free releases what they own.  The master validates the file
 *       (at -t, start and every reload); each exec'd worker re-parses the
 *       exact bytes the master validated, so both hold identical, read-only
 *       configs.
 *   worker only: init (after exec, before READY; a failure is a boot
 *       failure and stops the cluster), handle (one request), stop
 *       (graceful stop has begun), destroy (the loop has stopped running;
 *       it still exists, so watchers and pools can be stopped).
 *
 * handle() must answer every request exactly once (clusterd/request.h),
 * either before returning or later from a loop callback (a timer, a pool
 * item's done).  Only the loop thread may touch a cd_request or call the
 * functions below; nothing on the loop thread may block (docs/services.md).
 *
 * Versioning: `abi` is the vtable's FIRST field and must be set to
 * CLUSTERD_ABI_VERSION, the single integer this header describes.  It is
 * bumped on any incompatible change to any clusterd/ header (a field
 * added, moved or retyped, a function's contract changed), and clusterd
 * refuses a module whose types carry another number, naming both, at -t
 * and at start.  Because it comes first, it can be read from a type of any
 * version.
 *
 * A module exports each type it provides as a global
 *     const cd_service_type cd_service_<type> = { .abi = CLUSTERD_ABI_VERSION, ... };
 * and a config section loads it with `module = /path/x.so` (or a name
 * searched in the module directory, pkg-config's `moduledir`) and
 * `type = <type>`.  A module resolves the API it calls from the clusterd
 * executable, which exports it: build it with -shared -fPIC and link
 * nothing of clusterd's.
 */
#ifndef CLUSTERD_SERVICE_H
#define CLUSTERD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "clusterd/conf.h"
#include "clusterd/request.h" /* the request API handle() uses, and CD_M_* */

/* The version of the API in include/clusterd/ (see above). */
#define CLUSTERD_ABI_VERSION 2

struct ev_loop;                   /* the worker's libev loop, opaque here */
struct cd_snapshot;               /* the cluster's view (opaque) */
struct cd_service_host;           /* the worker's side (opaque) */
typedef struct cd_service cd_service;
typedef struct cd_service_type cd_service_type;

struct cd_service_type {
    unsigned abi;     /* CLUSTERD_ABI_VERSION; first, always */
    const char *name; /* the `type =` value in the config */
    unsigned methods; /* CD_M_* bits; other methods get 405 */

    /* Config (master and worker).  Return 0, or -1 with a message in err
     * (clusterd adds file:line). */
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
    /* Optional, worker only: called once a request's headers are in,
     * before its body is read (method, path, query and headers are
     * readable; the body is not).  Returns the id of the worker that
     * must serve it (cd_service_worker_id there), or 0 to serve it here.
     * Never called for the first request of a connection that was moved
     * here, so a session whose worker is gone cannot loop. */
    uint32_t (*steer)(cd_service *svc, const cd_request *req);
};

typedef void (*cd_bus_cb)(cd_service *svc, const void *msg, size_t len);

/* One configured instance of a service type, in one worker.  A service
 * reads the fields above `state`, owns `state`, and leaves the rest to
 * clusterd. */
struct cd_service {
    const cd_service_type *type;
    const char *name;  /* the section name */
    const char *route; /* path prefix, e.g. "/dummy" */
    size_t route_len;
    const void *conf;     /* what conf_new and keys built; read-only */
    struct ev_loop *loop; /* the worker's loop (NULL in the master): for clusterd/pool.h, timer.h */
    void *state;          /* the service's per-worker state, set by init */
    int slot;             /* the worker's slot (0..workers-1) */
    cd_bus_cb bus_cb;     /* set by cd_service_subscribe */
    const struct cd_service_host *host; /* the worker's functions (NULL: none, e.g. in the master) */
    void *worker;         /* the host's context */
};

/* ---- What a service may see of its worker ---- */

/* All services of this worker (for health checks). */
cd_service *cd_service_all(cd_service *svc, size_t *n);
/* The latest whole-cluster view the master sent, or NULL before the first
 * one arrives (within one heartbeat interval).  Opaque to modules. */
const struct cd_snapshot *cd_service_cluster(cd_service *svc);
/* This worker's id: nonzero, different for every worker process the
 * master has started since it began: made of its slot and its pid (a pid
 * comes back in the same slot only after the kernel's whole pid space
 * went round; a request steered to such an id is served there all the
 * same).  Steer a request to it with the type's steer hook.  0 when there
 * is no worker (in the master). */
uint32_t cd_service_worker_id(const cd_service *svc);

/* ---- Metrics of a service's own ---- */

/* Distinct (name, labels) one service may set in one worker. */
#define CD_SERVICE_METRICS 128
/* Sets one of this service's metrics, summed over workers in /metrics as
 * clusterd_<type>_<name>{service="<section>",<labels>} (a name ending in
 * _total is a counter, else a gauge).  labels: "" or `k="v",...`.
 * At most CD_SERVICE_METRICS distinct (name, labels) per service per
 * worker; 0 or -ENOSPC / -EINVAL.  name: [A-Za-z_][A-Za-z0-9_]*, and
 * "<type>_<name>" at most 47 bytes; labels at most 103 bytes, keys as
 * names but not "service", values with \\, \" and \n escaped.  Loop
 * thread; -ENOTSUP outside a worker.  A counter's value is the worker's
 * total since it started (clusterd keeps the sum going after a worker
 * exits); a gauge's is its figure now. */
int cd_service_metric(cd_service *svc, const char *name, const char *labels, uint64_t value);

/* ---- Cross-worker messages ---- */

/* Sends msg to this service (the same section) on every worker, this one
 * included (through the master's relay; best effort, never blocks).
 * Returns 0 or -errno (-EAGAIN when the bus is backed up, -ENOTSUP
 * without uses_bus). */
int cd_service_publish(cd_service *svc, const void *msg, size_t len);
/* Registers the callback that receives this service's bus messages (on
 * the loop thread). */
void cd_service_subscribe(cd_service *svc, cd_bus_cb cb);

#endif
