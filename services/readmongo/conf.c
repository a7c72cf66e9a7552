/*
 * conf.c - the [readmongo] section: its keys as a table (clusterd/conf.h), the
 * defaults, and the checks across keys (master and every worker).
 *
 * The master runs these to validate the file; each worker runs them again
 * on the same bytes, so both hold the same read-only cd_readmongo_conf.
 * conf_check resolves what depends on several keys or on the URI (the
 * database, the driver timeouts) so the rest of the service reads final
 * values.
 */
#include <mongoc/mongoc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/readmongo/exec.h"
#include "services/readmongo/readmongo.h"

void *cd_readmongo__conf_new(void)
{
    cd_readmongo_conf *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->concurrency = 2;
    c->queue_size = 64;
    c->queue_timeout_ms = 2000;
    c->default_limit = 20;
    c->max_limit = 1000;
    c->max_skip = 100000;
    c->max_time_ms = 1000;
    c->server_selection_timeout_ms = -1;
    c->connect_timeout_ms = -1;
    c->socket_timeout_ms = -1;
    c->max_filter_size = 16 * 1024;
    c->max_filter_depth = 16;
    c->max_response_size = 8 * 1024 * 1024;
    c->stream_chunk = 64 * 1024;
    return c;
}

void cd_readmongo__conf_free(void *conf)
{
    cd_readmongo_conf *c = conf;

    if (!c)
        return;
    free(c->uri);
    free(c->database);
    for (size_t i = 0; i < c->ncollections; i++)
        free(c->collections[i]);
    free(c->collections);
    free(c);
}

static int set_string(char **dst, const char *value, char *err, size_t errlen)
{
    char *s = strdup(value);

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*dst);
    *dst = s;
    return 0;
}

/* "a, b c" -> the allowlist.  Returns 0 or -1 with err. */
static int set_collections(void *conf, const char *value, char *err, size_t errlen)
{
    cd_readmongo_conf *c = conf;
    char *copy = strdup(value), *save = NULL;
    int rc = -1;

    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < c->ncollections; i++)
        free(c->collections[i]);
    c->ncollections = 0;
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (!cd_readmongo__valid_collection(tok)) {
            snprintf(err, errlen,
                     "'%.64s' is not a collection name this service accepts "
                     "(letters, digits, _ . -; not system.*)",
                     tok);
            goto out;
        }
        char **n = realloc(c->collections, (c->ncollections + 1) * sizeof *n);
        if (!n) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        c->collections = n;
        if (!(c->collections[c->ncollections] = strdup(tok))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        c->ncollections++;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

/* field is the conf's `database`. */
static int set_database(void *field, const char *value, char *err, size_t errlen)
{
    if (!value[0] || strpbrk(value, "/\\. \"$")) {
        snprintf(err, errlen, "'%s' is not a valid database name", value);
        return -1;
    }
    return set_string(field, value, err, errlen);
}

#define MS_MAX 600000 /* ten minutes, for every duration */
const cd_conf_key cd_readmongo__keys[] = {
    CD_CONF_KEY("uri", CD_KEY_STRP, cd_readmongo_conf, uri, 0, 0),
    CD_CONF_KEY_FUNC_AT("database", set_database, cd_readmongo_conf, database),
    CD_CONF_KEY_FUNC("collections", set_collections),
    CD_CONF_KEY("concurrency", CD_KEY_INT, cd_readmongo_conf, concurrency, 1, 64),
    /* Its name until the queries ran in threads (issue 13); still read. */
    CD_CONF_KEY("threads", CD_KEY_INT, cd_readmongo_conf, concurrency, 1, 64),
    CD_CONF_KEY("queue_size", CD_KEY_INT, cd_readmongo_conf, queue_size, 1, 100000),
    CD_CONF_KEY("queue_timeout", CD_KEY_MS, cd_readmongo_conf, queue_timeout_ms, 1, MS_MAX),
    CD_CONF_KEY("default_limit", CD_KEY_INT, cd_readmongo_conf, default_limit, 1, 100000),
    CD_CONF_KEY("max_limit", CD_KEY_INT, cd_readmongo_conf, max_limit, 1, 100000),
    CD_CONF_KEY("max_skip", CD_KEY_INT, cd_readmongo_conf, max_skip, 0, 1000000000),
    CD_CONF_KEY("max_time", CD_KEY_MS, cd_readmongo_conf, max_time_ms, 1, MS_MAX),
    CD_CONF_KEY("server_selection_timeout", CD_KEY_MS, cd_readmongo_conf,
                server_selection_timeout_ms, 1, MS_MAX),
    CD_CONF_KEY("connect_timeout", CD_KEY_MS, cd_readmongo_conf, connect_timeout_ms, 1, MS_MAX),
    CD_CONF_KEY("socket_timeout", CD_KEY_MS, cd_readmongo_conf, socket_timeout_ms, 1, MS_MAX),
    CD_CONF_KEY("max_filter_size", CD_KEY_SIZE, cd_readmongo_conf, max_filter_size, 2, 1024 * 1024),
    CD_CONF_KEY("max_filter_depth", CD_KEY_INT, cd_readmongo_conf, max_filter_depth, 1, 100),
    CD_CONF_KEY("max_response_size", CD_KEY_SIZE, cd_readmongo_conf, max_response_size, 1024,
                1024LL * 1024 * 1024),
    CD_CONF_KEY("stream_chunk", CD_KEY_SIZE, cd_readmongo_conf, stream_chunk, 256,
                64LL * 1024 * 1024),
    {0},
};

/* A timeout: the config key if set, else the URI's option, else dflt. */
static long long pick_timeout(long long configured, const mongoc_uri_t *uri, const char *opt,
                              long long dflt)
{
    if (configured >= 0)
        return configured;
    int32_t v = mongoc_uri_get_option_as_int32(uri, opt, -1);
    return v > 0 ? v : dflt;
}

static void quiet_log_cb(mongoc_log_level_t level, const char *domain, const char *message,
                         void *data)
{
    (void)level;
    (void)domain;
    (void)message;
    (void)data;
}

/* The database and the driver timeouts, from the keys and the URI. */
static int resolve(cd_readmongo_conf *c, const mongoc_uri_t *uri, char *err, size_t errlen)
{
    if (!c->database) {
        const char *db = mongoc_uri_get_database(uri);
        if (set_string(&c->database, db && db[0] ? db : "demo", err, errlen) < 0)
            return -1;
    }
    c->server_selection_timeout_ms =
        pick_timeout(c->server_selection_timeout_ms, uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    c->connect_timeout_ms =
        pick_timeout(c->connect_timeout_ms, uri, MONGOC_URI_CONNECTTIMEOUTMS, 1000);
    /* The socket timeout must leave the server time to report maxTimeMS
     * itself (a clean 504 that keeps the connection) before the driver gives
     * up on the socket (which drops it). */
    c->socket_timeout_ms = pick_timeout(c->socket_timeout_ms, uri, MONGOC_URI_SOCKETTIMEOUTMS,
                                        c->max_time_ms + 1000 > 2000 ? c->max_time_ms + 1000 : 2000);
    if (c->socket_timeout_ms <= c->max_time_ms) {
        snprintf(err, errlen, "socket_timeout (%lldms) must be longer than max_time (%lldms)",
                 c->socket_timeout_ms, c->max_time_ms);
        return -1;
    }
    if (c->server_selection_timeout_ms > INT32_MAX || c->connect_timeout_ms > INT32_MAX ||
        c->socket_timeout_ms > INT32_MAX) {
        snprintf(err, errlen, "a timeout is too long");
        return -1;
    }
    return 0;
}

/* Runs in the master too.  URI parsing is pure string work in libmongoc (no
 * threads, sockets or DNS, even for mongodb+srv), so it is safe before
 * mongoc_init and before the fork/exec of the workers. */
int cd_readmongo__conf_check(void *conf, char *err, size_t errlen)
{
    cd_readmongo_conf *c = conf;
    mongoc_uri_t *uri = NULL;
    bson_error_t berr;
    int rc = -1;

    if (!c->uri && set_string(&c->uri, "mongodb://127.0.0.1:27017", err, errlen) < 0)
        goto out;
    /* libmongoc also logs what is wrong with a URI; our error names
     * file:line already, so keep its own line out of the log meanwhile. */
    mongoc_log_set_handler(quiet_log_cb, NULL);
    uri = mongoc_uri_new_with_error(c->uri, &berr);
    mongoc_log_set_handler(cd_readmongo__log_cb, NULL);
    if (!uri) {
        snprintf(err, errlen, "uri: %s", berr.message);
        goto out;
    }
    if (c->ncollections == 0) {
        snprintf(err, errlen,
                 "collections: list the collections this service may read (none are readable "
                 "by default)");
        goto out;
    }
    if (c->default_limit > c->max_limit) {
        snprintf(err, errlen, "default_limit (%lld) is above max_limit (%lld)", c->default_limit,
                 c->max_limit);
        goto out;
    }
    rc = resolve(c, uri, err, errlen);
out:
    if (uri)
        mongoc_uri_destroy(uri);
    return rc;
}
