/*
 * router.c - routing (worker process, loop thread).  Routes are few, so a
 * sorted array scanned in order beats any trie: longest literal prefix
 * first (the bytes before a route's first ':'), then longest route, and a
 * route matches "/route", "/route/..." but not "/routex".  A route without
 * ':' costs one strncmp, as before parameters existed; one with parameters
 * is walked segment by segment.
 */
#include "http/router.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t literal_len(const cd_route *r)
{
    const char *colon = memchr(r->prefix, ':', r->len);
    return colon ? (size_t)(colon - r->prefix) : r->len;
}

static int by_rank(const void *a, const void *b)
{
    const cd_route *x = *(const cd_route *const *)a, *y = *(const cd_route *const *)b;
    size_t lx = literal_len(x), ly = literal_len(y);
    if (lx != ly)
        return lx < ly ? 1 : -1;
    if (x->len != y->len)
        return x->len < y->len ? 1 : -1;
    return strcmp(x->prefix, y->prefix);
}

int cd_router_build(const cd_route *routes, size_t n, const cd_route ***sorted)
{
    const cd_route **r = calloc(n ? n : 1, sizeof *r);
    if (!r)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        r[i] = &routes[i];
    qsort(r, n, sizeof *r, by_rank);
    *sorted = r;
    return 0;
}

/* Matches a route with parameters segment by segment. */
static int match_params(const cd_route *s, const char *path, cd_route_match *m)
{
    const char *rp = s->prefix, *rend = s->prefix + s->len, *pp = path;
    int np = 0;
    while (rp < rend) {
        if (*rp != ':') {
            if (*pp != *rp)
                return 0;
            rp++, pp++;
            continue;
        }
        const char *name = ++rp;
        while (rp < rend && *rp != '/')
            rp++;
        size_t vlen = strcspn(pp, "/");
        if (vlen == 0 || np == CD_ROUTE_MAX_PARAMS)
            return 0;
        if (m) {
            m->params[np].name = name;
            m->params[np].name_len = (size_t)(rp - name);
            m->params[np].off = (size_t)(pp - path);
            m->params[np].len = vlen;
        }
        np++;
        pp += vlen;
    }
    if (*pp != '\0' && *pp != '/' && rend[-1] != '/')
        return 0;
    if (m) {
        m->matched = (size_t)(pp - path);
        m->nparams = np;
    }
    return 1;
}

const cd_route *cd_router_find(const cd_route *const *sorted, size_t n, const char *path, cd_route_match *m)
{
    for (size_t i = 0; i < n; i++) {
        const cd_route *s = sorted[i];
        if (s->len == 1 && s->prefix[0] == '/') { /* "/" catches everything */
            if (m)
                m->matched = m->nparams = 0;
            return s;
        }
        if (memchr(s->prefix, ':', s->len)) {
            if (match_params(s, path, m))
                return s;
            continue;
        }
        if (strncmp(path, s->prefix, s->len) == 0 && (path[s->len] == '\0' || path[s->len] == '/')) {
            if (m) {
                m->matched = s->len;
                m->nparams = 0;
            }
            return s;
        }
    }
    return NULL;
}

const cd_route *cd_router_match(const cd_route *const *sorted, size_t n, const char *path)
{
    return cd_router_find(sorted, n, path, NULL);
}

int cd_router_check(const char *prefix)
{
    if (prefix[0] != '/')
        return -EINVAL;
    int np = 0;
    for (const char *p = prefix; *p; p++) {
        if (*p != ':')
            continue;
        if (p[-1] != '/' || ++np > CD_ROUTE_MAX_PARAMS)
            return -EINVAL;
        size_t n = strspn(p + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
        if (n == 0 || n > 32 || (p[1 + n] != '\0' && p[1 + n] != '/'))
            return -EINVAL;
        p += n;
    }
    return 0;
}
