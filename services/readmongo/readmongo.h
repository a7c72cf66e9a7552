/*
 * readmongo.h - internals of the readmongo service shared between its files,
 * its unit tests and its fuzz targets.  The service (clusterd-readmongo.so)
 * is seven files, one job each:
 *
 *   readmongo.c       the service vtable: init/handle/stop/destroy; handle
 *                     checks a request and answers a refusal or queues a job
 *   conf.c            the [readmongo] keys as a table, defaults, cross-key
 *                     checks (master and workers)
 *   readmongo_query.c pure checks: a request (subpath and query string) into
 *                     a checked query or a refusal; driver errors into
 *                     HTTP statuses
 *   fibers.c          the query fibers on the worker's loop and their queue
 *   exec.c            what a fiber does with a job: the find, rendering its
 *                     answer, answering (exec.h: the per-worker state and
 *                     the job)
 *   stream.c          the driver's sockets, whose waits are the loop's
 *   readmongo_json.c  BSON into compact relaxed Extended JSON
 *
 * Nothing declared here touches the network or the loop, so all of it runs
 * (and is tested) in any process; in production it runs in a worker, on
 * the loop thread (request checks, and the query fibers: error mapping,
 * JSON).
 *
 * The double-underscore names are internal to services/readmongo/.
 */
#ifndef CD_READMONGO_H
#define CD_READMONGO_H

#include <bson/bson.h>
#include <stddef.h>

#include "clusterd/conf.h"

/* The [section] of a readmongo service, built from cd_readmongo__keys and
 * conf_check (conf.c) in the master and in each worker, read-only
 * afterwards.  Durations are in ms. */
typedef struct cd_readmongo_conf {
    char *uri;             /* as written; timeouts below are applied on top */
    char *database;        /* NULL until conf_check: then `database`, the
                            * URI's database, or "demo" */
    char **collections;    /* the allowlist, ncollections names */
    size_t ncollections;
    long long concurrency; /* queries in flight per worker: its query fibers */
    long long queue_size;  /* jobs waiting for a thread, at most */
    long long queue_timeout_ms; /* a job that waited longer gets 503 */
    long long default_limit;
    long long max_limit;
    long long max_skip;
    long long max_time_ms; /* maxTimeMS of every query */
    /* -1 until conf_check: then the config key, else the URI's option,
     * else a short default. */
    long long server_selection_timeout_ms;
    long long connect_timeout_ms;
    long long socket_timeout_ms;
    long long max_filter_size;  /* bytes of each JSON parameter */
    long long max_filter_depth; /* nesting of each JSON parameter */
    long long max_response_size; /* documents beyond this are cut off */
    long long stream_chunk; /* a result past this many bytes is streamed */
} cd_readmongo_conf;

/* conf.c: the section's keys (clusterd/conf.h) and the vtable's config hooks
 * (clusterd/service.h: conf_new, conf_check, conf_free). */
extern const cd_conf_key cd_readmongo__keys[];
void *cd_readmongo__conf_new(void);
int cd_readmongo__conf_check(void *conf, char *err, size_t errlen);
void cd_readmongo__conf_free(void *conf);

/* What a checked request asks for. */
enum { CD_RM_INDEX, CD_RM_FIND, CD_RM_GET };

/* A checked request: a query ready for mongoc_collection_find_with_opts.
 * cd_readmongo__check_request fills it; release with
 * cd_readmongo__query_free. */
typedef struct cd_readmongo_query {
    int kind;       /* CD_RM_INDEX (nothing else is set), CD_RM_FIND, CD_RM_GET */
    char coll[128]; /* an allowlisted collection */
    bson_t filter;  /* {"_id": id} for CD_RM_GET */
    bson_t opts;    /* projection, sort, skip, limit, maxTimeMS */
    long long limit, skip;
} cd_readmongo_query;

/* Why a request is refused: the status and the message for the client. */
typedef struct cd_readmongo_refusal {
    int status; /* 400, 403, 404 or 414 (503 when out of memory) */
    char msg[512];
} cd_readmongo_refusal;

/* Checks one request completely, with no I/O and without the request
 * itself: subpath is what follows the route ("", "/coll", "/coll/id"), as
 * sent; query the raw query string after '?' ("" when none).  Returns 0 with
 * *q filled (the caller frees it with cd_readmongo__query_free), or -1 with
 * *r filled and nothing in *q to free.  Answering is the caller's job: this
 * never answers, so a refusal cannot leave a request half answered. */
int cd_readmongo__check_request(const cd_readmongo_conf *c, const char *subpath, const char *query,
                                cd_readmongo_query *q, cd_readmongo_refusal *r);
void cd_readmongo__query_free(cd_readmongo_query *q);


/* Whether name may be used as an allowlisted collection name: 1..120 bytes
 * of [A-Za-z0-9_.-], not starting with "system." or a dot.  The restricted
 * alphabet means names never need escaping in JSON or URLs. */
int cd_readmongo__valid_collection(const char *name);

/* Parses one JSON parameter (filter, projection or sort) of len bytes into
 * *out (which the caller has bson_init'ed or not: it is initialised here on
 * success and must then be bson_destroy'ed by the caller).  The text must be
 * one JSON object in MongoDB extended JSON (relaxed or canonical).
 * Returns 0, or with a message for the client in err:
 *   -E2BIG  longer than max_size bytes
 *   -EINVAL not one JSON object
 *   -ELOOP  documents/arrays nested deeper than max_depth (top level = 1)
 *   -EPERM  a refused operator ($where, $function, $accumulator) as a key
 *           at any depth, including inside arrays. */
int cd_readmongo__parse_doc(const char *name, const char *json, size_t len, size_t max_size,
                            int max_depth, bson_t *out, char *err, size_t errlen);

/* Checks an already parsed document as cd_readmongo__parse_doc does (depth
 * and refused operators, inside CodeWScope scopes too).  Same returns. */
int cd_readmongo__check_doc(const char *name, const bson_t *doc, int max_depth, char *err,
                            size_t errlen);

/* Parses a non-negative decimal integer (digits only, no sign or spaces) no
 * larger than max.  Returns 0, -EINVAL (syntax) or -ERANGE (above max). */
int cd_readmongo__parse_count(const char *s, long long max, long long *out);

/* Splits the subpath after the route ("", "/", "/coll", "/coll/", "/coll/id")
 * into the collection (copied raw) and the id (percent-decoded).  Returns
 *   0  no collection (the index)
 *   1  a collection only
 *   2  a collection and an id
 *   -EINVAL malformed (more segments, empty id, bad escape, NUL in id)
 *   -ENAMETOOLONG a part does not fit its buffer. */
int cd_readmongo__split_path(const char *subpath, char *coll, size_t collen, char *id,
                             size_t idlen);

/* Appends {"_id": <id>} to filter: an ObjectId when id is 24 hex digits,
 * else the string. */
void cd_readmongo__id_filter(const char *id, bson_t *filter);

/* The HTTP status for a failed query: 400 for a query the server rejected,
 * 503 when the database cannot be reached, 504 when the query ran out of
 * time (maxTimeMS on the server, or socketTimeoutMS in the driver, which
 * timed_out says: the caller measured the call against the socket
 * timeout), 502 for anything else the driver reports. */
int cd_readmongo__error_status(const bson_error_t *e, int timed_out);

/* readmongo_json.c: appends doc as compact relaxed Extended JSON v2.
 * Returns 0, or -1 for BSON it cannot walk, nesting deeper than
 * CD_READMONGO_JSON_MAX_DEPTH (documents, arrays and CodeWScope scopes all
 * count; the top level is 1), or out of memory. */
#define CD_READMONGO_JSON_MAX_DEPTH 100
struct cd_buf;
int cd_readmongo__json(const bson_t *doc, struct cd_buf *out);

#endif
