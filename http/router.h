/*
 * router.h - path-prefix routes (worker process, loop thread).
 *
 * A route is a path prefix, the methods it takes and a handler.  The HTTP
 * server (http/server.c) matches each request's path against the routes
 * of its context and calls the handler of the longest one that matches on
 * a segment boundary; a request for a method the route does not take gets
 * 405 with an Allow header, a path no route matches 404.  The owner of the
 * context builds the routes (the worker: one per configured service, with
 * the service as arg) and keeps them alive as long as the context.
 */
#ifndef CD_HTTP_ROUTER_H
#define CD_HTTP_ROUTER_H

#include <stddef.h>

#include "http/request.h"

typedef struct cd_route {
    const char *prefix; /* e.g. "/dummy"; "/" catches everything */
    size_t len;         /* strlen(prefix) */
    const char *name;   /* the access log's "service" field */
    unsigned methods;   /* CD_M_* bits */
    void (*handle)(void *arg, cd_request *r);
    void *arg; /* the owner's, passed to handle */
} cd_route;

/* Pointers to routes[0..n), longest prefix first, into a new array (the
 * caller frees it).  Returns 0 or -ENOMEM. */
int cd_router_build(const cd_route *routes, size_t n, const cd_route ***sorted);
/* The first route of sorted[0..n) whose prefix matches path on a segment
 * boundary ("/a" matches "/a" and "/a/b", not "/ab"), or NULL. */
const cd_route *cd_router_match(const cd_route *const *sorted, size_t n, const char *path);

#endif
