/*
 * fuzz_readmongo_query.c - readmongo's request checks through the real
 * code: cd_readmongo__check_request (services/readmongo/readmongo_query.c), the very
 * function the service's handle() calls with the request's subpath and raw
 * query string.  It splits the path (collection, percent-decoded id),
 * applies the allowlist, decodes the parameters, parses filter, projection
 * and sort (MongoDB extended JSON -> BSON, with size, depth and refused
 * operator checks), limit and skip, and builds the by-id lookup.
 *
 * Input: byte 0 chooses the shape, the rest is split at the first '\n'
 * into A and B.
 *   bits 0-1  subpath: A as is | "/users" | "/users/" + A | "" (the index)
 *   bits 2-3  query: Q as is | filter=, projection= or sort= with Q
 *             percent-encoded (so the JSON reaches the parser intact),
 *             where Q is B when the subpath used A, else all the rest
 *   bit 4     which config (small or roomy limits)
 * NUL bytes end a part, as they never reach a service through HTTP.
 *
 * Invariants: a refusal has a status among 400/403/404/414 and a message;
 * an accepted query names an allowlisted collection, has limit and skip
 * within the config's bounds, nests no deeper than max_filter_depth, and
 * holds no $where/$function/$accumulator key at any depth (checked by a
 * walk written here, independent of the one under test, that also enters
 * CodeWScope scopes); a lookup by id filters on _id alone.  Any violation
 * aborts.
 */
#include <bson/bson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/readmongo/readmongo.h"

static char *colls[] = {"users", "items", "a.b-c_D9"};

static const cd_readmongo_conf confs[2] = {
    {
        .database = "demo",
        .collections = colls,
        .ncollections = 3,
        .default_limit = 5,
        .max_limit = 8,
        .max_skip = 50,
        .max_time_ms = 1000,
        .max_filter_size = 64,
        .max_filter_depth = 3,
    },
    {
        .database = "demo",
        .collections = colls,
        .ncollections = 3,
        .default_limit = 20,
        .max_limit = 1000,
        .max_skip = 100000,
        .max_time_ms = 1000,
        .max_filter_size = 16 * 1024,
        .max_filter_depth = 16,
    },
};

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz_readmongo_query: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* The deepest level under iter (iter's own level is depth); aborts on a
 * refused operator. */
static int walk(bson_iter_t *iter, int depth)
{
    int deepest = depth;

    while (bson_iter_next(iter)) {
        const char *k = bson_iter_key(iter);
        CHECK(strcmp(k, "$where") != 0 && strcmp(k, "$function") != 0 &&
              strcmp(k, "$accumulator") != 0);
        bson_iter_t child;
        int has_child = 0;
        if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter)) {
            CHECK(bson_iter_recurse(iter, &child));
            has_child = 1;
        } else if (BSON_ITER_HOLDS_CODEWSCOPE(iter)) {
            uint32_t clen, slen;
            const uint8_t *scope;
            bson_t sdoc;
            bson_iter_codewscope(iter, &clen, &slen, &scope);
            CHECK(bson_init_static(&sdoc, scope, slen) && bson_iter_init(&child, &sdoc));
            has_child = 1;
        }
        if (has_child) {
            int d = walk(&child, depth + 1);
            if (d > deepest)
                deepest = d;
        }
    }
    return deepest;
}

static int depth_of(const bson_t *doc)
{
    bson_iter_t it;
    CHECK(bson_validate(doc, BSON_VALIDATE_NONE, NULL));
    CHECK(bson_iter_init(&it, doc));
    return walk(&it, 1);
}

/* The document value of key in opts (depth-checked), if any. */
static void check_opt_doc(const bson_t *opts, const char *key, int max_depth)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, opts, key))
        return;
    CHECK(BSON_ITER_HOLDS_DOCUMENT(&it));
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(&it, &len, &data);
    bson_t sub;
    CHECK(bson_init_static(&sub, data, len));
    CHECK(depth_of(&sub) <= max_depth);
}

/* Copies up to n bytes of s, stopping at a NUL. */
static char *part(const uint8_t *s, size_t n, const char *prefix)
{
    size_t plen = strlen(prefix), len = strnlen((const char *)s, n);
    char *out = malloc(plen + len + 1);
    CHECK(out);
    memcpy(out, prefix, plen);
    memcpy(out + plen, s, len);
    out[plen + len] = '\0';
    return out;
}

/* key=<s percent-encoded> (every byte but unreserved ones). */
static char *encoded(const char *key, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t klen = strlen(key);
    char *out = malloc(klen + 1 + 3 * n + 1), *o = out;
    CHECK(out);
    memcpy(o, key, klen);
    o += klen;
    *o++ = '=';
    for (size_t i = 0; i < n && s[i]; i++) {
        unsigned char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t alen = nl ? (size_t)(nl - data) : size;
    const uint8_t *b = nl ? nl + 1 : data + size;
    size_t blen = nl ? size - alen - 1 : 0;

    char *subpath;
    switch (mode & 3) {
    case 0: subpath = part(data, alen, ""); break;
    case 1: subpath = part(data, 0, "/users"); break;
    case 2: subpath = part(data, alen, "/users/"); break;
    default: subpath = part(data, 0, ""); break;
    }
    /* The query comes from B when the path used A, else from all the rest. */
    int uses_a = (mode & 3) == 0 || (mode & 3) == 2;
    const uint8_t *qs = uses_a ? b : data;
    size_t qn = uses_a ? blen : size;
    static const char *const keys[] = {NULL, "filter", "projection", "sort"};
    const char *key = keys[(mode >> 2) & 3];
    char *query = key ? encoded(key, qs, qn) : part(qs, qn, "");
    const cd_readmongo_conf *c = &confs[(mode >> 4) & 1];

    cd_readmongo_query q;
    cd_readmongo_refusal r;
    int rc = cd_readmongo__check_request(c, subpath, query, &q, &r);
    if (rc < 0) {
        CHECK(rc == -1);
        CHECK(r.status == 400 || r.status == 403 || r.status == 404 || r.status == 414);
        CHECK(r.msg[0] != '\0' && memchr(r.msg, '\0', sizeof r.msg));
        CHECK(q.kind == CD_RM_INDEX); /* nothing to free */
    } else {
        CHECK(rc == 0);
        if (q.kind == CD_RM_INDEX) {
            CHECK(strcmp(subpath, "") == 0 || strcmp(subpath, "/") == 0);
        } else {
            CHECK(q.kind == CD_RM_FIND || q.kind == CD_RM_GET);
            int listed = 0;
            for (size_t i = 0; i < c->ncollections; i++)
                listed |= strcmp(q.coll, c->collections[i]) == 0;
            CHECK(listed);
            CHECK(q.limit >= 1 && q.limit <= c->max_limit);
            CHECK(q.skip >= 0 && q.skip <= c->max_skip);
            int max = (int)c->max_filter_depth;
            CHECK(depth_of(&q.filter) <= max);
            /* opts wraps projection and sort one level down. */
            CHECK(depth_of(&q.opts) <= max + 1);
            check_opt_doc(&q.opts, "projection", max);
            check_opt_doc(&q.opts, "sort", max);
            bson_iter_t it;
            CHECK(bson_iter_init_find(&it, &q.opts, "limit") && bson_iter_as_int64(&it) == q.limit);
            CHECK(bson_iter_init_find(&it, &q.opts, "maxTimeMS") &&
                  bson_iter_as_int64(&it) == c->max_time_ms);
            if (q.kind == CD_RM_GET) {
                CHECK(bson_count_keys(&q.filter) == 1);
                CHECK(bson_iter_init_find(&it, &q.filter, "_id"));
                CHECK(BSON_ITER_HOLDS_OID(&it) || BSON_ITER_HOLDS_UTF8(&it));
                CHECK(!bson_has_field(&q.opts, "sort") && !bson_has_field(&q.opts, "skip"));
            }
        }
    }
    cd_readmongo__query_free(&q);
    free(subpath);
    free(query);
    return 0;
}
