/*
 * request.c - the request API of request.h: what a handler reads of its
 * request (worker process, loop thread).
 *
 * parse.c copies a request out of the connection's input buffer as llhttp
 * reports it: the URL, then each header name and value, NUL-terminated one
 * after the other in one arena bounded by max_header_size; at the end of
 * the headers the path and query get NUL-terminated copies (one buffer),
 * and the body its own buffer bounded by max_body_size.  So a request
 * needs nothing of its connection and can outlive it.  Route parameters
 * are decoded at dispatch into one buffer of their own.  The last request
 * freed is kept, with its arena, for the next (cd_http__request_new).
 * Answering it is response.c's, handing its connection over upgrade.c's.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "http/conn.h"

/* The last request freed on this thread, with its arena, kept for the
 * next one: the request (4 KiB, past malloc's per-thread cache) and its
 * arena cost no allocation on a busy connection.  Sanitizer builds free
 * every request, so a use after free is still seen there. */
#if defined(__SANITIZE_ADDRESS__)
#define CD_REQ_SPARE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CD_REQ_SPARE 0
#endif
#endif
#ifndef CD_REQ_SPARE
#define CD_REQ_SPARE 1
#endif
static _Thread_local cd_request *spare;

cd_request *cd_http__request_new(void)
{
    cd_request *r = spare;
    char *arena = NULL;
    size_t cap = 0;
    if (r) {
        spare = NULL;
        arena = r->arena;
        cap = r->arena_cap;
    } else if (!(r = malloc(sizeof *r))) {
        return NULL;
    }
    /* Header slots are filled as headers come (parse.c): only what comes
     * before them is cleared, not 3 KiB per request. */
    memset(r, 0, offsetof(cd_request, hdrs));
    r->arena = arena; /* empty: arena_len is 0 */
    r->arena_cap = cap;
    if (arena)
        arena[0] = '\0';
    return r;
}

void cd_http__request_free(cd_request *r)
{
    if (!r)
        return;
    free(r->path); /* and the query, in the same allocation */
    free(r->body);
    free(r->rh);
    free(r->rh_ctype);
    free(r->pbuf);
    if (CD_REQ_SPARE && !spare && r->arena_cap <= 4096) {
        spare = r;
        return;
    }
    free(r->arena);
    free(r);
}

int cd_http__arena_append(cd_request *r, const char *at, size_t len, size_t limit)
{
    if (r->arena_len + len + 1 > limit)
        return -1;
    if (r->arena_len + len + 1 > r->arena_cap) {
        size_t cap = r->arena_cap ? r->arena_cap : 512;
        while (cap < r->arena_len + len + 1)
            cap *= 2;
        if (cap > limit + 1)
            cap = limit + 1;
        char *n = realloc(r->arena, cap);
        if (!n)
            return -1;
        r->arena = n;
        r->arena_cap = cap;
    }
    memcpy(r->arena + r->arena_len, at, len);
    r->arena_len += len;
    r->arena[r->arena_len] = '\0';
    return 0;
}

unsigned cd_request_method(const cd_request *r) { return r->method; }
const char *cd_request_path(const cd_request *r) { return r->path; }
const char *cd_request_subpath(const cd_request *r) { return r->subpath; }
const char *cd_request_query(const cd_request *r) { return r->query ? r->query : ""; }
void cd_request_set_data(cd_request *r, void *data) { r->data = data; }

void cd_request_on_gone(cd_request *r, void (*cb)(void *arg), void *arg)
{
    r->gone_cb = cb;
    r->gone_arg = arg;
}

int cd_http__gone(cd_request *r)
{
    void (*cb)(void *) = r ? r->gone_cb : NULL;
    if (!cb)
        return 0;
    r->gone_cb = NULL;
    cb(r->gone_arg);
    return 1;
}
void *cd_request_data(const cd_request *r) { return r->data; }

const char *cd_request_body(const cd_request *r, size_t *len)
{
    *len = r->body_len;
    return r->body ? r->body : "";
}

const char *cd_request_header(const cd_request *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->nhdrs; i++)
        if (r->hdrs[i].name_len == n && strncasecmp(r->arena + r->hdrs[i].name, name, n) == 0)
            return r->arena + r->hdrs[i].value;
    return NULL;
}

int cd_request_query_param(const cd_request *r, const char *key, char *out, size_t outlen)
{
    return cd_query_param(cd_request_query(r), key, out, outlen);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int cd_http__params(cd_request *r, const cd_route_match *m)
{
    r->nparams = 0;
    if (m->nparams == 0)
        return 0;
    size_t total = 0;
    for (int i = 0; i < m->nparams; i++)
        total += m->params[i].len + 1;
    char *w = r->pbuf = malloc(total);
    if (!w)
        return -2;
    for (int i = 0; i < m->nparams; i++) {
        const char *v = r->path + m->params[i].off;
        r->pname[i] = m->params[i].name;
        r->pname_len[i] = m->params[i].name_len;
        r->pval[i] = w;
        for (size_t k = 0; k < m->params[i].len; k++) {
            char ch = v[k];
            if (ch == '%') {
                int hi = k + 2 < m->params[i].len ? hexval(v[k + 1]) : -1;
                int lo = hi >= 0 ? hexval(v[k + 2]) : -1;
                if (lo < 0 || (hi == 0 && lo == 0))
                    return -1;
                ch = (char)(hi * 16 + lo);
                k += 2;
            }
            *w++ = ch;
        }
        *w++ = '\0';
        r->nparams = i + 1;
    }
    return 0;
}

const char *cd_request_param(const cd_request *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->nparams; i++)
        if (r->pname_len[i] == n && memcmp(r->pname[i], name, n) == 0)
            return r->pval[i];
    return NULL;
}
