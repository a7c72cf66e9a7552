/*
 * router.c - path-prefix routing (worker).  Routes are few, so a sorted
 * array scanned in order beats any trie: longest route first, and a route
 * matches "/route", "/route/..." but not "/routex".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker.h"

static int by_length_desc(const void *a, const void *b)
{
    const cd_service *x = *(cd_service *const *)a, *y = *(cd_service *const *)b;
    if (x->route_len != y->route_len)
        return x->route_len < y->route_len ? 1 : -1;
    return strcmp(x->route, y->route);
}

int cd_router_build(cd_service *services, size_t n, cd_service ***routes)
{
    cd_service **r = calloc(n ? n : 1, sizeof *r);
    if (!r)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        r[i] = &services[i];
    qsort(r, n, sizeof *r, by_length_desc);
    *routes = r;
    return 0;
}

cd_service *cd_router_match(cd_service *const *routes, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        const cd_service *s = routes[i];
        if (s->route_len == 1 && s->route[0] == '/')
            return routes[i]; /* "/" catches everything */
        if (strncmp(path, s->route, s->route_len) == 0 &&
            (path[s->route_len] == '\0' || path[s->route_len] == '/'))
            return routes[i];
    }
    return NULL;
}
