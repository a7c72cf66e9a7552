/*
 * readmongo_query.c - the pure parts of the readmongo service: checking
 * what a client sent before anything reaches the database, and mapping
 * driver errors to HTTP statuses.  Runs in worker processes: the request
 * checks on the loop thread (they are cheap and bounded by the size caps),
 * the error mapping in the query fibers.  No I/O, no logging, no globals.
 *
 * cd_readmongo__check_request takes the request's parts (subpath, raw query
 * string), not the request: it returns a query or a refusal (status and
 * message) and never answers anything, so exactly one caller (the
 * service's handle) answers each request, once.  The same function is what
 * the fuzz target tests/fuzz/fuzz_readmongo_query.c drives.
 *
 * "Safe by construction" lives here.  A JSON parameter is refused before it
 * is parsed when it is too long, and after parsing when it nests too deep or
 * names an operator that runs code on the server ($where, $function,
 * $accumulator).  The operator check walks every key at every depth,
 * arrays included, because $function can hide inside $expr, $and, or a
 * projection expression; it does not rely on where MongoDB would accept
 * the operator.  Values are never inspected: the string "$where" as a value
 * is data.
 */
#include "clusterd/text.h"
#include "services/readmongo/readmongo.h"

#include <errno.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const refused_ops[] = {"$where", "$function", "$accumulator", NULL};

int cd_readmongo__valid_collection(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 120 || name[0] == '.' || strncmp(name, "system.", 7) == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Walks one level; depth is that of the document iter belongs to. */
static int check_level(const char *name, bson_iter_t *iter, int depth, int max_depth, char *err,
                       size_t errlen)
{
    if (depth > max_depth) {
        snprintf(err, errlen, "%s is nested deeper than %d levels", name, max_depth);
        return -ELOOP;
    }
    while (bson_iter_next(iter)) {
        const char *key = bson_iter_key(iter);
        if (key[0] == '$') {
            for (size_t i = 0; refused_ops[i]; i++) {
                if (strcmp(key, refused_ops[i]) == 0) {
                    snprintf(err, errlen, "%s: operator %s is not allowed", name, key);
                    return -EPERM;
                }
            }
        }
        bson_iter_t child;
        if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter)) {
            if (!bson_iter_recurse(iter, &child)) {
                snprintf(err, errlen, "%s is not valid BSON", name);
                return -EINVAL;
            }
        } else if (BSON_ITER_HOLDS_CODEWSCOPE(iter)) {
            /* {"$code":..., "$scope":{...}}: the scope is one more level
             * of nesting like any other. */
            uint32_t code_len, scope_len;
            const uint8_t *scope;
            bson_t sdoc;
            bson_iter_codewscope(iter, &code_len, &scope_len, &scope);
            if (!bson_init_static(&sdoc, scope, scope_len) || !bson_iter_init(&child, &sdoc)) {
                snprintf(err, errlen, "%s is not valid BSON", name);
                return -EINVAL;
            }
        } else {
            continue;
        }
        int rc = check_level(name, &child, depth + 1, max_depth, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cd_readmongo__check_doc(const char *name, const bson_t *doc, int max_depth, char *err,
                            size_t errlen)
{
    bson_iter_t iter;

    if (!bson_iter_init(&iter, doc)) {
        snprintf(err, errlen, "%s is not valid BSON", name);
        return -EINVAL;
    }
    return check_level(name, &iter, 1, max_depth, err, errlen);
}

int cd_readmongo__parse_doc(const char *name, const char *json, size_t len, size_t max_size,
                            int max_depth, bson_t *out, char *err, size_t errlen)
{
    bson_json_reader_t *reader = NULL;
    bson_error_t berr;
    bson_t extra = BSON_INITIALIZER;
    size_t i = 0;
    int rc;

    bson_init(out);
    if (len > max_size) {
        snprintf(err, errlen, "%s is larger than %zu bytes", name, max_size);
        rc = -E2BIG;
        goto out;
    }
    /* libbson would take a top-level array as a document with keys "0",
     * "1"...; a filter must be an object. */
    while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\r' || json[i] == '\n'))
        i++;
    if (i == len || json[i] != '{') {
        snprintf(err, errlen, "%s must be a JSON object", name);
        rc = -EINVAL;
        goto out;
    }
    /* A reader rather than bson_init_from_json, which silently ignores
     * anything after the first object ("{}{\"$where\":1}"). */
    reader = bson_json_data_reader_new(false, 0);
    bson_json_data_reader_ingest(reader, (const uint8_t *)json, len);
    int r = bson_json_reader_read(reader, out, &berr);
    if (r == 1)
        r = bson_json_reader_read(reader, &extra, &berr) == 0 ? 1 : -1;
    if (r != 1) {
        snprintf(err, errlen, "%s is not valid JSON: %s", name,
                 r < 0 ? berr.message : "trailing data");
        rc = -EINVAL;
        goto out;
    }
    rc = cd_readmongo__check_doc(name, out, max_depth, err, errlen);

out:
    if (reader)
        bson_json_reader_destroy(reader);
    bson_destroy(&extra);
    if (rc < 0) {
        bson_destroy(out);
        bson_init(out);
    }
    return rc;
}

int cd_readmongo__parse_count(const char *s, long long max, long long *out)
{
    long long v = 0;

    if (!s[0])
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        int d = *p - '0';
        if (v > (LLONG_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}


int cd_readmongo__split_path(const char *subpath, char *coll, size_t collen, char *id,
                             size_t idlen)
{
    const char *p = subpath;

    coll[0] = '\0';
    id[0] = '\0';
    if (*p == '/')
        p++;
    if (!*p)
        return 0;

    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0)
        return -EINVAL;
    if (n >= collen)
        return -ENAMETOOLONG;
    memcpy(coll, p, n);
    coll[n] = '\0';
    if (!slash || !slash[1])
        return 1;

    p = slash + 1;
    if (strchr(p, '/'))
        return -EINVAL;
    long dn = cd_percent_decode(p, strlen(p), id, idlen, 0);
    return dn < 0 ? (int)dn : 2;
}

void cd_readmongo__query_free(cd_readmongo_query *q)
{
    if (q->kind == CD_RM_INDEX)
        return;
    bson_destroy(&q->filter);
    bson_destroy(&q->opts);
    q->kind = CD_RM_INDEX;
}

/* The request checks share one scratch buffer for the decoded parameter. */
typedef struct req_ctx {
    const cd_readmongo_conf *c;
    const char *query;
    char *param; /* max_filter_size + 1 bytes */
    size_t param_len;
    cd_readmongo_refusal *r;
} req_ctx;

static int refuse(cd_readmongo_refusal *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(cd_readmongo_refusal *r, int status, const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads parameter key into x->param.  Returns its length, -1 when absent,
 * or -2 with the refusal filled. */
static int get_param(req_ctx *x, const char *key)
{
    int n = cd_query_param(x->query, key, x->param, x->param_len);

    if (n == -2)
        refuse(x->r, 400, "%s is larger than %lld bytes or badly percent-encoded", key,
               x->c->max_filter_size);
    return n;
}

/* JSON parameter key into doc (empty when absent; initialised either way).
 * Returns 0 or -1 with the refusal filled. */
static int get_doc_param(req_ctx *x, const char *key, bson_t *doc)
{
    int n = get_param(x, key);

    if (n < 0) {
        bson_init(doc);
        return n == -1 ? 0 : -1;
    }
    if (cd_readmongo__parse_doc(key, x->param, (size_t)n, (size_t)x->c->max_filter_size,
                                (int)x->c->max_filter_depth, doc, x->r->msg,
                                sizeof x->r->msg) < 0) {
        x->r->status = 400;
        return -1;
    }
    return 0;
}

/* limit or skip into *out (dflt when absent).  Returns 0 or -1 with the
 * refusal filled. */
static int get_count_param(req_ctx *x, const char *key, long long dflt, long long max,
                           long long *out)
{
    int n = get_param(x, key);

    if (n == -2)
        return -1;
    if (n == -1) {
        *out = dflt;
        return 0;
    }
    int rc = cd_readmongo__parse_count(x->param, max, out);
    if (rc == -EINVAL)
        return refuse(x->r, 400, "%s must be a non-negative integer", key);
    if (rc == -ERANGE)
        return refuse(x->r, 400, "%s must be at most %lld", key, max);
    return 0;
}

static int allowed(const cd_readmongo_conf *c, const char *coll)
{
    for (size_t i = 0; i < c->ncollections; i++)
        if (strcmp(c->collections[i], coll) == 0)
            return 1;
    return 0;
}

int cd_readmongo__check_request(const cd_readmongo_conf *c, const char *subpath, const char *query,
                                cd_readmongo_query *q, cd_readmongo_refusal *r)
{
    char id[1024];
    bson_t projection = BSON_INITIALIZER, sort = BSON_INITIALIZER, filter = BSON_INITIALIZER;
    long long limit = 0, skip = 0;
    req_ctx x = {.c = c, .query = query, .r = r};
    int rc = -1;

    memset(q, 0, sizeof *q);
    q->kind = CD_RM_INDEX;
    r->status = 0;
    r->msg[0] = '\0';

    int kind = cd_readmongo__split_path(subpath, q->coll, sizeof q->coll, id, sizeof id);
    if (kind == 0)
        return 0;
    if (kind == -ENAMETOOLONG)
        return refuse(r, 414, "path segment too long");
    if (kind < 0)
        return refuse(r, 404, "no such resource: use /{collection} or /{collection}/{id}");
    /* The allowlist comes first: nothing about a refused collection reaches
     * the database, not even its name. */
    if (!allowed(c, q->coll)) {
        if (cd_readmongo__valid_collection(q->coll))
            return refuse(r, 403, "collection '%s' is not readable through this service",
                          q->coll);
        return refuse(r, 403, "this collection is not readable through this service");
    }

    x.param_len = (size_t)c->max_filter_size + 1;
    if (!(x.param = malloc(x.param_len)))
        return refuse(r, 503, "out of memory");
    if (get_doc_param(&x, "projection", &projection) < 0)
        goto out;
    if (kind == 2) {
        if (get_param(&x, "filter") != -1 || get_param(&x, "sort") != -1 ||
            get_param(&x, "skip") != -1) {
            refuse(r, 400, "filter, sort and skip do not apply to a lookup by id");
            goto out;
        }
        bson_init(&q->filter);
        bson_init(&q->opts);
        q->kind = CD_RM_GET;
        q->limit = 1;
        cd_readmongo__id_filter(id, &q->filter);
    } else {
        if (get_doc_param(&x, "filter", &filter) < 0 || get_doc_param(&x, "sort", &sort) < 0 ||
            get_count_param(&x, "limit", c->default_limit, LLONG_MAX / 2, &limit) < 0 ||
            get_count_param(&x, "skip", 0, c->max_skip, &skip) < 0)
            goto out;
        if (limit == 0) {
            refuse(r, 400, "limit must be at least 1");
            goto out;
        }
        bson_init(&q->filter);
        bson_init(&q->opts);
        q->kind = CD_RM_FIND;
        q->limit = limit > c->max_limit ? c->max_limit : limit;
        q->skip = skip;
        bson_concat(&q->filter, &filter);
        if (!bson_empty(&sort))
            BSON_APPEND_DOCUMENT(&q->opts, "sort", &sort);
        if (skip)
            BSON_APPEND_INT64(&q->opts, "skip", skip);
    }
    if (!bson_empty(&projection))
        BSON_APPEND_DOCUMENT(&q->opts, "projection", &projection);
    BSON_APPEND_INT64(&q->opts, "limit", q->limit);
    BSON_APPEND_INT64(&q->opts, "maxTimeMS", c->max_time_ms);
    rc = 0;

out:
    free(x.param);
    bson_destroy(&projection);
    bson_destroy(&sort);
    bson_destroy(&filter);
    return rc;
}

void cd_readmongo__id_filter(const char *id, bson_t *filter)
{
    size_t n = strlen(id);

    if (n == 24 && bson_oid_is_valid(id, n)) {
        bson_oid_t oid;
        bson_oid_init_from_string(&oid, id);
        BSON_APPEND_OID(filter, "_id", &oid);
    } else {
        BSON_APPEND_UTF8(filter, "_id", id);
    }
}

/* Server error codes that mean "not reachable right now" rather than "bad
 * query": shutdown, failover, network trouble seen by the server. */
static int server_unavailable(uint32_t code)
{
    switch (code) {
    case 6:     /* HostUnreachable */
    case 7:     /* HostNotFound */
    case 89:    /* NetworkTimeout */
    case 91:    /* ShutdownInProgress */
    case 189:   /* PrimarySteppedDown */
    case 9001:  /* SocketException */
    case 10107: /* NotWritablePrimary */
    case 11600: /* InterruptedAtShutdown */
    case 11602: /* InterruptedDueToReplStateChange */
    case 13435: /* NotPrimaryNoSecondaryOk */
    case 13436: /* NotPrimaryOrSecondary */
        return 1;
    default:
        return 0;
    }
}

int cd_readmongo__error_status(const bson_error_t *e, int timed_out)
{
    switch (e->domain) {
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_QUERY:
        if (e->code == 50) /* MaxTimeMSExpired */
            return 504;
        if (server_unavailable(e->code))
            return 503;
        if (e->code == 13 || e->code == 18) /* Unauthorized, AuthenticationFailed */
            return 502;
        /* Everything else is the server refusing this query: bad operator,
         * bad sort or projection, or a feature it does not implement. */
        return 400;
    case MONGOC_ERROR_SERVER_SELECTION:
        return 503;
    case MONGOC_ERROR_STREAM:
        if (e->code == MONGOC_ERROR_STREAM_SOCKET && timed_out)
            return 504;
        return 503;
    case MONGOC_ERROR_COMMAND:
        /* The driver's own checks of find options (types of limit, sort...). */
        return e->code == MONGOC_ERROR_COMMAND_INVALID_ARG ? 400 : 502;
    case MONGOC_ERROR_CLIENT:
        if (e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
            return 502;
        return 503;
    default:
        return 502;
    }
}
