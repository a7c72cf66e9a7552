/*
 * cors.c - Cross-Origin Resource Sharing for the routes that enable it
 * (worker process, loop thread; cors_* keys, routeconf.h).
 *
 * A browser asks before a cross-origin request that is not "simple" with
 * a preflight: OPTIONS with Origin and Access-Control-Request-Method.  The
 * server answers it here, 204, without calling the service (which need not
 * take OPTIONS at all): the allowed methods, headers, credentials and how
 * long the browser may cache the answer.  An origin not in the list gets
 * the 204 without them, so the browser refuses the request itself.  Every
 * other request from an allowed origin gets Access-Control-Allow-Origin
 * (and -Credentials) on its answer, whatever the service answers: they
 * are added to the request's headers (headers.c) before the service runs.
 * "*" allows any origin; with credentials the origin is echoed instead,
 * as browsers require, and Vary: Origin tells caches the answer depends
 * on it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/conn.h"
#include "http/routeconf.h"

/* Whether origin is in the list (exact, case-insensitive), or the list is "*". */
static int origin_allowed(const char *list, const char *origin, int *any)
{
    size_t olen = strlen(origin);
    *any = 0;
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, " ,");
        if (len == 1 && *p == '*')
            *any = 1;
        else if (len && len == olen && strncasecmp(p, origin, len) == 0)
            return 1;
        p += len;
    }
    return *any;
}

/* Access-Control-Allow-Origin (and its companions) when origin is allowed. */
static int allow_origin(cd_request *r, const cd_route_opts *o, const char *origin)
{
    int any;
    if (!origin_allowed(o->cors_origins, origin, &any))
        return 0;
    int echo = !any || o->cors_credentials;
    cd_response_header(r, "Access-Control-Allow-Origin", echo ? origin : "*");
    if (o->cors_credentials)
        cd_response_header(r, "Access-Control-Allow-Credentials", "true");
    if (echo)
        cd_response_header(r, "Vary", "Origin");
    return 1;
}

static void method_list(unsigned methods, char *out, size_t cap)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    out[0] = '\0';
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (methods & (1u << i))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? ", " : "", names[i]);
}

int cd_http__cors_preflight(cd_request *r)
{
    const cd_route_opts *o = r->route->opts;
    const char *origin = cd_request_header(r, "Origin");
    if (r->method != CD_M_OPTIONS || !origin || !cd_request_header(r, "Access-Control-Request-Method"))
        return 0;
    if (allow_origin(r, o, origin)) {
        char methods[96];
        if (!o->cors_methods)
            method_list(r->route->methods, methods, sizeof methods);
        cd_response_header(r, "Access-Control-Allow-Methods", o->cors_methods ? o->cors_methods : methods);
        if (o->cors_headers)
            cd_response_header(r, "Access-Control-Allow-Headers", o->cors_headers);
        if (o->cors_max_age > 0) {
            char age[16];
            snprintf(age, sizeof age, "%d", o->cors_max_age);
            cd_response_header(r, "Access-Control-Max-Age", age);
        }
    }
    cd_http__respond(r, 204, NULL, "", 0, NULL);
    return 1;
}

void cd_http__cors_simple(cd_request *r)
{
    const char *origin = cd_request_header(r, "Origin");
    if (origin)
        allow_origin(r, r->route->opts, origin);
}
