/*
 * readmongo.h - internals of the readmongo service shared between its files
 * and its unit tests: the parsed config, and the pure helpers of
 * readmongo_query.c that turn request parts into BSON and driver errors into
 * HTTP statuses.  Nothing here touches the network, a thread or the loop, so
 * all of it runs (and is tested) in any process; in production it runs in a
 * worker, on the loop thread (request checks) or on the service's query
 * threads (error mapping).
 *
 * The double-underscore names are internal to services/readmongo*.c.
 */
#ifndef CD_READMONGO_H
#define CD_READMONGO_H

#include <bson/bson.h>
#include <stddef.h>

/* The [section] of a readmongo service, built by conf_set/conf_check in the
 * master and in each worker, read-only afterwards.  Durations are in ms. */
typedef struct cd_readmongo_conf {
    char *uri;             /* as written; timeouts below are applied on top */
    char *database;        /* NULL until conf_check: then `database`, the
                            * URI's database, or "demo" */
    char **collections;    /* the allowlist, ncollections names */
    size_t ncollections;
    long long threads;     /* query threads per worker */
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
} cd_readmongo_conf;

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
 * and refused operators).  Same returns. */
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

/* Appends s to b as a JSON string literal (quotes included). */
void cd_readmongo__json_string(bson_string_t *b, const char *s);

/* readmongo_json.c: appends doc as compact relaxed Extended JSON v2.
 * Returns 0, or -1 for BSON it cannot walk (or out of memory). */
struct cd_buf;
int cd_readmongo__json(const bson_t *doc, struct cd_buf *out);

#endif
