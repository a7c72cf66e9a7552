/*
 * router.h - routes: path prefixes with optional parameters (worker
 * process, loop thread).
 *
 * A route is a path prefix, the methods it takes and a handler.  The HTTP
 * server (http/server.c) matches each request's path against the routes
 * of its context and calls the handler of the best one that matches on a
 * segment boundary; a request for a method the route does not take gets
 * 405 with an Allow header, a path no route matches 404.  The owner of the
 * context builds the routes (the worker: one per configured service, with
 * the service as arg) and keeps them alive as long as the context.
 *
 * A segment of a prefix written ":name" is a parameter: it matches any one
 * non-empty segment of the path ("/users/:id" matches "/users/42" and
 * "/users/42/posts", not "/users" or "/users/"), which the handler reads
 * with cd_request_param.  The route with the longest literal prefix (the
 * bytes before its first ':') wins, then the longest prefix: "/users/me"
 * beats "/users/:id" beats "/users".  Routes without parameters behave as
 * they always did.
 */
#ifndef CD_HTTP_ROUTER_H
#define CD_HTTP_ROUTER_H

#include <stddef.h>

#include "http/request.h"

#define CD_ROUTE_MAX_PARAMS 8

struct cd_route_opts; /* http/routeconf.h: CORS, gzip, ETag (NULL: all off) */

typedef struct cd_route {
    const char *prefix; /* e.g. "/dummy" or "/users/:id"; "/" catches everything */
    size_t len;         /* strlen(prefix) */
    const char *name;   /* the access log's "service" field */
    unsigned methods;   /* CD_M_* bits */
    void (*handle)(void *arg, cd_request *r);
    void *arg; /* the owner's, passed to handle */
    const struct cd_route_opts *opts;
} cd_route;

/* Where a path matched a route: the length of the path it covered (the
 * subpath follows) and each parameter's name (in the route's prefix) and
 * value (offsets into the path, as sent: not percent-decoded). */
typedef struct cd_route_match {
    size_t matched;
    int nparams;
    struct {
        const char *name;
        size_t name_len, off, len;
    } params[CD_ROUTE_MAX_PARAMS];
} cd_route_match;

/* Pointers to routes[0..n), best first, into a new array (the caller frees
 * it).  Returns 0 or -ENOMEM. */
int cd_router_build(const cd_route *routes, size_t n, const cd_route ***sorted);
/* The first route of sorted[0..n) that matches path on a segment boundary
 * ("/a" matches "/a" and "/a/b", not "/ab"), or NULL.  m (may be NULL)
 * receives where it matched. */
const cd_route *cd_router_find(const cd_route *const *sorted, size_t n, const char *path, cd_route_match *m);
/* The same without the match details. */
const cd_route *cd_router_match(const cd_route *const *sorted, size_t n, const char *path);
/* Whether prefix is a route the router takes: starts with '/', and each
 * parameter is ":" and 1..32 of [A-Za-z0-9_] alone in its segment, at most
 * CD_ROUTE_MAX_PARAMS of them.  0 or -EINVAL. */
int cd_router_check(const char *prefix);

#endif
