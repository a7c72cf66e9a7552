/*
 * routeconf.h - the HTTP options of a service section (master parses,
 * workers read): CORS, gzip and ETag, each off unless its keys are set.
 *
 *     [api]
 *     type = dummy
 *     cors_origins = https://a.example https://b.example   (or *)
 *     cors_methods = GET, POST        (default: the route's methods)
 *     cors_headers = Content-Type     (Access-Control-Allow-Headers)
 *     cors_credentials = on           (then the origin is echoed, never *)
 *     cors_max_age = 600              (seconds a preflight is cached)
 *     gzip = on
 *     gzip_min_size = 1k              (smaller bodies go as they are)
 *     etag = on                       (If-None-Match -> 304)
 *
 * The keys are a cd_conf_key table like a service type's own; the service
 * registry's binder (services/registry.c) tries a section's keys against
 * it when the type's table has no such key, so every type gets them.  A
 * section with none of them has no cd_route_opts at all (NULL), and the
 * HTTP layer then does nothing more per request than test that pointer.
 */
#ifndef CD_HTTP_ROUTECONF_H
#define CD_HTTP_ROUTECONF_H

#include <stddef.h>

#include "conf/keys.h"

typedef struct cd_route_opts {
    char *cors_origins; /* NULL: CORS off; "*" or origins separated by spaces or commas */
    char *cors_methods; /* NULL: the route's methods */
    char *cors_headers; /* NULL: none beyond the CORS-safelisted ones */
    int cors_credentials;
    int cors_max_age; /* seconds; 0: no Access-Control-Max-Age */
    int gzip;
    size_t gzip_min_size;
    int etag;
} cd_route_opts;

/* The key table (cd_conf_key_set on a cd_route_opts). */
extern const cd_conf_key cd_route_keys[];

/* Sets key in *opts, allocating it with the defaults on first use.
 * Returns 0, -1 with the reason in err, or -2 when key is not one of these
 * (*opts untouched). */
int cd_route_opts_set(void **opts, const char *key, const char *value, char *err, size_t errlen);
/* Frees what cd_route_opts_set allocated (NULL is fine). */
void cd_route_opts_free(void *opts);

#endif
