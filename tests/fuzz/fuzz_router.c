/*
 * fuzz_router.c - the router with parameters (http/router.c) and their
 * decoding (http/request.c): routes a config could hold, and any path.
 *
 * Input: lines.  Every line but the last is a route (kept when the config
 * would take it: cd_router_check passes, it starts with '/', no trailing
 * '/', at most 16 of them), the last line is the path.  Checks:
 *   - no crash, no read outside the path or a route (ASan);
 *   - a match covers a prefix of the path ending on a segment boundary,
 *     and each parameter is a non-empty segment inside it, named by a
 *     ':name' inside the route's prefix;
 *   - the route chosen has the longest literal prefix of those that match
 *     on their own (ties: the longer route): the order is the router's;
 *   - decoding the parameters gives, for each name, a NUL-free value no
 *     longer than the raw segment, or refuses (a bad escape, a NUL).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/conn.h"
#include "http/router.h"

#define MAX_ROUTES 16

static size_t literal(const cd_route *r)
{
    const char *c = memchr(r->prefix, ':', r->len);
    return c ? (size_t)(c - r->prefix) : r->len;
}

static void check_match(const cd_route *best, const cd_route_match *m, const char *path)
{
    size_t plen = strlen(path);
    if (m->matched > plen)
        abort();
    if (!(best->len == 1 && best->prefix[0] == '/') && path[m->matched] != '\0' && path[m->matched] != '/')
        abort();
    if (m->nparams < 0 || m->nparams > CD_ROUTE_MAX_PARAMS)
        abort();
    for (int i = 0; i < m->nparams; i++) {
        if (m->params[i].len == 0 || m->params[i].off + m->params[i].len > m->matched)
            abort();
        if (memchr(path + m->params[i].off, '/', m->params[i].len))
            abort();
        if (m->params[i].name < best->prefix || m->params[i].name + m->params[i].name_len > best->prefix + best->len ||
            m->params[i].name[-1] != ':')
            abort();
    }
}

static void check_decode(const cd_route_match *m, const char *path)
{
    cd_request *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->path = strdup(path);
    if (r->path && cd_http__params(r, m) == 0) {
        for (int i = 0; i < m->nparams; i++) {
            if (strlen(r->pval[i]) > m->params[i].len)
                abort();
            char name[40];
            if (m->params[i].name_len >= sizeof name)
                abort();
            memcpy(name, m->params[i].name, m->params[i].name_len);
            name[m->params[i].name_len] = '\0';
            if (!cd_request_param(r, name)) /* the first of that name */
                abort();
        }
    }
    cd_http__request_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    if (memchr(buf, '\0', size)) { /* a path or route never holds a NUL */
        free(buf);
        return 0;
    }
    cd_route routes[MAX_ROUTES];
    size_t n = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = '\0';
        size_t len = strlen(line);
        if (n < MAX_ROUTES && len > 0 && len < 200 && cd_router_check(line) == 0 && (len == 1 || line[len - 1] != '/'))
            routes[n++] = (cd_route){.prefix = line, .len = len, .name = "r"};
        line = nl + 1;
    }
    const char *path = line;
    const cd_route **sorted;
    if (cd_router_build(routes, n, &sorted) < 0) {
        free(buf);
        return 0;
    }
    cd_route_match m;
    const cd_route *best = cd_router_find(sorted, n, path, &m);
    if (best) {
        check_match(best, &m, path);
        check_decode(&m, path);
    }
    for (size_t i = 0; i < n; i++) { /* each on its own: none better than best */
        const cd_route *one = &routes[i];
        cd_route_match m1;
        if (!cd_router_find(&one, 1, path, &m1))
            continue;
        if (!best)
            abort();
        if (literal(one) > literal(best) || (literal(one) == literal(best) && one->len > best->len))
            abort();
    }
    free(sorted);
    free(buf);
    return 0;
}
