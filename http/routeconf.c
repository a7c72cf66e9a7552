/*
 * routeconf.c - the HTTP options of a service section as a key table (see
 * routeconf.h).  Parsed in the master with the rest of the config, read
 * by the workers through their route (cd_route.opts).  Only the values are
 * checked here; what they do happens per request in cors.c, gzip.c and
 * etag.c.
 */
#include "http/routeconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An origin list: "*" alone, or serialized origins (scheme://host[:port])
 * separated by spaces or commas. */
static int set_origins(void *field, const char *value, char *err, size_t errlen)
{
    char **dst = field;
    size_t n = strlen(value);
    if (n == 0 || strspn(value, " ,") == n) {
        snprintf(err, errlen, "empty origin list");
        return -1;
    }
    for (const char *p = value; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, " ,");
        if (len == 0)
            break;
        if (!(len == 1 && *p == '*') && !(len > 7 && strncmp(p, "http://", 7) == 0) &&
            !(len > 8 && strncmp(p, "https://", 8) == 0)) {
            snprintf(err, errlen, "bad origin '%.*s' (expected * or e.g. https://example.com)", (int)len, p);
            return -1;
        }
        p += len;
    }
    char *copy = strdup(value);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*dst);
    *dst = copy;
    return 0;
}

const cd_conf_key cd_route_keys[] = {
    CD_CONF_KEY_FUNC_AT("cors_origins", set_origins, cd_route_opts, cors_origins),
    CD_CONF_KEY("cors_methods", CD_KEY_STRP, cd_route_opts, cors_methods, 1, 0),
    CD_CONF_KEY("cors_headers", CD_KEY_STRP, cd_route_opts, cors_headers, 1, 0),
    CD_CONF_KEY("cors_credentials", CD_KEY_BOOL, cd_route_opts, cors_credentials, 0, 0),
    CD_CONF_KEY("cors_max_age", CD_KEY_INT, cd_route_opts, cors_max_age, 0, 7 * 86400),
    CD_CONF_KEY("gzip", CD_KEY_BOOL, cd_route_opts, gzip, 0, 0),
    CD_CONF_KEY("gzip_min_size", CD_KEY_SIZE, cd_route_opts, gzip_min_size, 0, 64 << 20),
    CD_CONF_KEY("etag", CD_KEY_BOOL, cd_route_opts, etag, 0, 0),
    {0},
};

int cd_route_opts_set(void **opts, const char *key, const char *value, char *err, size_t errlen)
{
    if (!cd_conf_key_find(cd_route_keys, key))
        return -2;
    if (!*opts) {
        cd_route_opts *o = calloc(1, sizeof *o);
        if (!o) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        o->gzip_min_size = 1024;
        *opts = o;
    }
    return cd_conf_key_set(cd_route_keys, *opts, key, value, err, errlen);
}

void cd_route_opts_free(void *opts)
{
    cd_route_opts *o = opts;
    if (!o)
        return;
    free(o->cors_origins);
    free(o->cors_methods);
    free(o->cors_headers);
    free(o);
}
