/*
 * router.c - path-prefix routing (worker process, loop thread).  Routes are
 * few, so a sorted array scanned in order beats any trie: longest route
 * first, and a route matches "/route", "/route/..." but not "/routex".
 */
#include "http/router.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int by_length_desc(const void *a, const void *b)
{
    const cd_route *x = *(const cd_route *const *)a, *y = *(const cd_route *const *)b;
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
    qsort(r, n, sizeof *r, by_length_desc);
    *sorted = r;
    return 0;
}

const cd_route *cd_router_match(const cd_route *const *sorted, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        const cd_route *s = sorted[i];
        if (s->len == 1 && s->prefix[0] == '/')
            return s; /* "/" catches everything */
        if (strncmp(path, s->prefix, s->len) == 0 && (path[s->len] == '\0' || path[s->len] == '/'))
            return s;
    }
    return NULL;
}
