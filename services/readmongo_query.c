/*
 * readmongo_query.c - the pure parts of the readmongo service: checking
 * what a client sent before anything reaches the database, and mapping
 * driver errors to HTTP statuses.  Runs in worker processes: the request
 * checks on the loop thread (they are cheap and bounded by the size caps),
 * the error mapping on the query threads.  No I/O, no logging, no globals.
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
#include "core/util.h"
#include "services/readmongo.h"

#include <errno.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
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
        if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter)) {
            bson_iter_t child;
            if (!bson_iter_recurse(iter, &child)) {
                snprintf(err, errlen, "%s is not valid BSON", name);
                return -EINVAL;
            }
            int rc = check_level(name, &child, depth + 1, max_depth, err, errlen);
            if (rc < 0)
                return rc;
        }
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

void cd_readmongo__json_string(bson_string_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    bson_string_append_c(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            bson_string_append_c(b, '\\');
            bson_string_append_c(b, (char)*p);
        } else if (*p < 0x20) {
            char esc[7] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15], '\0'};
            bson_string_append(b, esc);
        } else {
            bson_string_append_c(b, (char)*p);
        }
    }
    bson_string_append_c(b, '"');
}
