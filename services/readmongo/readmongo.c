/*
 * readmongo.c - the readmongo service: read-only HTTP access to allowlisted
 * MongoDB collections through mongo-c-driver.  The config hooks run in the
 * master and in every worker; everything else runs in a worker process, on
 * its loop thread and on the service's own query threads.
 *
 *   GET /readmongo                      the database and allowlist
 *   GET /readmongo/{coll}?filter=&projection=&sort=&limit=&skip=
 *   GET /readmongo/{coll}/{id}[?projection=]
 *
 * The driver blocks, so the loop never calls it.  handle() has the request
 * checked completely on the loop thread (allowlist, JSON parameters, refused
 * operators, limits: cd_readmongo__check_request in readmongo_query.c, which
 * returns a query or a refusal and never answers) and answers
 * 400/403/404/414 at once; only a valid query becomes a job on a bounded
 * queue (503 when full).  handle() and done_cb are the only places that
 * answer a request.  A
 * few threads per worker take jobs, run them with a client from the
 * worker's mongoc_client_pool, render the JSON response body, and put the
 * job on a done list; an ev_async wakes the loop, which answers the
 * requests.  Only the loop thread ever touches a cd_request.
 *
 * Time is bounded everywhere, so a down or frozen database is reported in
 * about two seconds and a graceful stop never waits on the database for
 * long: a job that waited longer than queue_timeout in the queue gets 503
 * without touching the database; server selection (503), connect, socket
 * reads (504) and the server's own maxTimeMS (504) have short timeouts from
 * the config; and jobs that queued up behind a query which then failed to
 * reach the database get 503 at once instead of each waiting out the same
 * timeout (a burst during an outage costs one timeout, not one per
 * queue position).  The driver's monitor threads notice when the database comes
 * back, so the service recovers by itself.  Error bodies give a generic reason
 * ("database unreachable", "query over the time budget"...); the driver's
 * message, which names hosts and ports, goes to the log only.
 *
 * Process-wide driver state: mongoc_init is called in init (a worker is a
 * freshly exec'd process with no threads yet) and mongoc_cleanup in the last
 * destroy, after every query thread has been joined.  Several readmongo
 * sections may share one worker, hence the reference count below, which
 * only the loop thread touches.
 *
 * The client pool is created by the first query thread that needs it, not
 * in init: for a mongodb+srv:// URI the driver resolves DNS SRV records
 * while creating the pool, and init must never wait on the network (the
 * worker must come up and serve other routes while MongoDB or DNS is
 * down).  For a plain mongodb:// URI creating the pool does no I/O; the
 * driver connects lazily from its own monitor threads.
 */
#include "services/readmongo/readmongo.h"

#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "services/service.h"

/* Driver library users in this process (loop thread only); see above. */
static int mongoc_users;

typedef struct rm_job rm_job;
typedef struct rm_state rm_state;

struct rm_job {
    rm_job *next;
    cd_request *req; /* loop thread only */
    cd_readmongo_query q; /* checked on the loop thread, read-only after */
    long long queued_at_ms;
    /* The result, written by the query thread. */
    int status;
    char *body; /* bson_malloc'd JSON */
    size_t body_len;
};

struct rm_state {
    cd_service *svc;
    const cd_readmongo_conf *conf;
    mongoc_uri_t *uri; /* the config's URI with our timeouts applied */

    pthread_mutex_t pool_lock; /* only the query threads take it */
    mongoc_client_pool_t *pool;
    char pool_error[256];

    pthread_mutex_t lock; /* queue, done list, shutdown */
    pthread_cond_t cond;
    rm_job *head, *tail; /* waiting for a thread */
    size_t queued;
    rm_job *done; /* answered by the loop, any order */
    int shutdown;

    pthread_t *threads;
    size_t nthreads;
    ev_async done_w;
    size_t in_flight; /* loop thread only: jobs not yet answered */
    int stopping;     /* loop thread only */
    /* When the last query failed to reach the database (monotonic ms), or 0
     * when it succeeded. */
    atomic_llong unreachable_at;
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- JSON bodies ---- */

/* {"error":"msg","status":N}, bson_malloc'd. */
static char *error_body(int status, const char *msg, size_t *len)
{
    bson_string_t *b = bson_string_new("{\"error\":");

    cd_readmongo__json_string(b, msg);
    bson_string_append_printf(b, ",\"status\":%d}", status);
    *len = b->len;
    return bson_string_free(b, false);
}

static void respond_error(cd_request *req, int status, const char *msg)
{
    size_t len;
    char *body = error_body(status, msg, &len);

    cd_request_respond(req, status, "application/json", body, len);
    bson_free(body);
}

static void job_fail(rm_job *job, int status, const char *msg)
{
    bson_free(job->body);
    job->status = status;
    job->body = error_body(status, msg, &job->body_len);
}

static void job_free(rm_job *job)
{
    cd_readmongo__query_free(&job->q);
    bson_free(job->body);
    free(job);
}

/* ---- config (master and worker) ---- */

static void *rm_conf_new(void)
{
    cd_readmongo_conf *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->threads = 2;
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
    return c;
}

static void rm_conf_free(void *conf)
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

/* "a, b c" -> the allowlist.  Returns 0 or -1 with err. */
static int set_collections(cd_readmongo_conf *c, const char *value, char *err, size_t errlen)
{
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

static int set_duration(long long *dst, const char *value, long long min,
                        long long max, char *err, size_t errlen)
{
    long long v;

    if (cd_parse_duration_ms(value, &v) < 0 || v < min || v > max) {
        snprintf(err, errlen, "expected a duration from %lldms to %llds (e.g. 500ms, 2s), got '%s'",
                 min, max / 1000, value);
        return -1;
    }
    *dst = v;
    return 0;
}

static int set_size(long long *dst, const char *value, long long min,
                    long long max, char *err, size_t errlen)
{
    long long v;

    if (cd_parse_size(value, &v) < 0 || v < min || v > max) {
        snprintf(err, errlen, "expected a size from %lld to %lld bytes (e.g. 16k, 8m), got '%s'",
                 min, max, value);
        return -1;
    }
    *dst = v;
    return 0;
}

static int set_int(long long *dst, const char *value, long long min,
                   long long max, char *err, size_t errlen)
{
    if (cd_parse_int(value, min, max, dst) < 0) {
        snprintf(err, errlen, "expected an integer from %lld to %lld, got '%s'", min, max, value);
        return -1;
    }
    return 0;
}

static int rm_conf_set(void *conf, const char *key, const char *value, char *err, size_t errlen)
{
    cd_readmongo_conf *c = conf;

    if (strcmp(key, "uri") == 0)
        return set_string(&c->uri, value, err, errlen);
    if (strcmp(key, "database") == 0) {
        if (!value[0] || strpbrk(value, "/\\. \"$")) {
            snprintf(err, errlen, "'%s' is not a valid database name", value);
            return -1;
        }
        return set_string(&c->database, value, err, errlen);
    }
    if (strcmp(key, "collections") == 0)
        return set_collections(c, value, err, errlen);
    if (strcmp(key, "threads") == 0)
        return set_int(&c->threads, value, 1, 64, err, errlen);
    if (strcmp(key, "queue_size") == 0)
        return set_int(&c->queue_size, value, 1, 100000, err, errlen);
    if (strcmp(key, "queue_timeout") == 0)
        return set_duration(&c->queue_timeout_ms, value, 1, 600000, err, errlen);
    if (strcmp(key, "default_limit") == 0)
        return set_int(&c->default_limit, value, 1, 100000, err, errlen);
    if (strcmp(key, "max_limit") == 0)
        return set_int(&c->max_limit, value, 1, 100000, err, errlen);
    if (strcmp(key, "max_skip") == 0)
        return set_int(&c->max_skip, value, 0, 1000000000, err, errlen);
    if (strcmp(key, "max_time") == 0)
        return set_duration(&c->max_time_ms, value, 1, 600000, err, errlen);
    if (strcmp(key, "server_selection_timeout") == 0)
        return set_duration(&c->server_selection_timeout_ms, value, 1, 600000, err, errlen);
    if (strcmp(key, "connect_timeout") == 0)
        return set_duration(&c->connect_timeout_ms, value, 1, 600000, err, errlen);
    if (strcmp(key, "socket_timeout") == 0)
        return set_duration(&c->socket_timeout_ms, value, 1, 600000, err, errlen);
    if (strcmp(key, "max_filter_size") == 0)
        return set_size(&c->max_filter_size, value, 2, 1024 * 1024, err, errlen);
    if (strcmp(key, "max_filter_depth") == 0)
        return set_int(&c->max_filter_depth, value, 1, 100, err, errlen);
    if (strcmp(key, "max_response_size") == 0)
        return set_size(&c->max_response_size, value, 1024, 1024LL * 1024 * 1024, err,
                        errlen);
    return -2;
}

/* A timeout: the config key if set, else the URI's option, else dflt. */
static long long pick_timeout(long long configured, const mongoc_uri_t *uri, const char *opt,
                              long long dflt)
{
    if (configured >= 0)
        return configured;
    int32_t v = mongoc_uri_get_option_as_int32(uri, opt, -1);
    return v > 0 ? v : dflt;
}

static void quiet_log_cb(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    (void)level;
    (void)domain;
    (void)message;
    (void)data;
}

static void mongoc_log_cb(mongoc_log_level_t level, const char *domain, const char *message, void *data);

/* Runs in the master too.  URI parsing is pure string work in libmongoc (no
 * threads, sockets or DNS, even for mongodb+srv), so it is safe before
 * mongoc_init and before the fork/exec of the workers. */
static int rm_conf_check(void *conf, char *err, size_t errlen)
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
    mongoc_log_set_handler(mongoc_log_cb, NULL);
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
    if (!c->database) {
        const char *db = mongoc_uri_get_database(uri);
        if (set_string(&c->database, db && db[0] ? db : "demo", err, errlen) < 0)
            goto out;
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
        goto out;
    }
    if (c->server_selection_timeout_ms > INT32_MAX || c->connect_timeout_ms > INT32_MAX ||
        c->socket_timeout_ms > INT32_MAX) {
        snprintf(err, errlen, "a timeout is too long");
        goto out;
    }
    rc = 0;
out:
    if (uri)
        mongoc_uri_destroy(uri);
    return rc;
}

/* ---- query threads ---- */

/* The pool, created on first use (see the top of the file).  A failed
 * creation is retried by the next job; NULL with the driver's reason in
 * *berr. */
static mongoc_client_pool_t *get_pool(rm_state *st, bson_error_t *berr)
{
    mongoc_client_pool_t *pool;

    pthread_mutex_lock(&st->pool_lock);
    if (!st->pool) {
        st->pool = mongoc_client_pool_new_with_error(st->uri, berr);
        if (st->pool) {
            mongoc_client_pool_set_error_api(st->pool, MONGOC_ERROR_API_VERSION_2);
            mongoc_client_pool_max_size(st->pool, (uint32_t)st->nthreads);
        }
    }
    pool = st->pool;
    pthread_mutex_unlock(&st->pool_lock);
    return pool;
}

/* Error bodies name the kind of failure, never the driver's words (which
 * carry hosts, ports and server internals); the log gets those, once per
 * failure, and once per outage for "unreachable". */
static const char *failure_reason(int status)
{
    switch (status) {
    case 503: return "database unreachable";
    case 504: return "query over the time budget";
    case 400: return "query rejected by the database";
    default: return "database error";
    }
}

/* Fails the job with the generic reason for status and logs the driver's
 * detail.  Query threads. */
static void job_fail_driver(rm_state *st, rm_job *job, int status, const char *what,
                            const bson_error_t *berr)
{
    const char *name = st->svc->name;
    int level = CD_LOG_WARN;

    if (status == 503 || (status == 504 && berr->domain == MONGOC_ERROR_STREAM)) {
        /* An outage is reported when it starts, not by every query during
         * it (those go to the debug level). */
        if (atomic_exchange(&st->unreachable_at, now_ms()) != 0)
            level = CD_LOG_DEBUG;
    } else if (status == 400) {
        level = CD_LOG_INFO; /* the client's query, not our trouble */
    }
    cd_log(level, "%s: %s on collection '%s': %s: %s (domain %u, code %u)", name, what,
           job->q.coll, failure_reason(status), berr->message, berr->domain, berr->code);
    job_fail(job, status, failure_reason(status));
}

/* Appends the cursor's documents, comma-separated, to out.  Returns the
 * count; sets *truncated when the next document would pass
 * max_response_size, and fails the job on a document it cannot render. */
static long long render_docs(rm_state *st, rm_job *job, mongoc_cursor_t *cur, cd_buf *out, int *truncated)
{
    const bson_t *doc;
    long long n = 0;

    while (mongoc_cursor_next(cur, &doc)) {
        size_t before = out->len;
        if (n > 0)
            cd_buf_append(out, ",", 1);
        if (cd_readmongo__json(doc, out) < 0) {
            cd_warn("%s: a document of collection '%s' could not be converted to JSON "
                    "(invalid BSON, nested deeper than %d, or out of memory)",
                    st->svc->name, job->q.coll, CD_READMONGO_JSON_MAX_DEPTH);
            job_fail(job, 502, "a document could not be converted to JSON");
            return n;
        }
        if ((long long)out->len + 2 > st->conf->max_response_size) {
            out->len = before; /* leave it out */
            out->p[before] = '\0';
            *truncated = 1;
            break;
        }
        n++;
    }
    return n;
}

static void run_job(rm_state *st, rm_job *job)
{
    const cd_readmongo_conf *c = st->conf;
    mongoc_client_pool_t *pool;
    mongoc_client_t *client = NULL;
    mongoc_collection_t *coll = NULL;
    mongoc_cursor_t *cur = NULL;
    cd_buf out = {0};
    bson_error_t berr;
    long long started = now_ms();

    if (started - job->queued_at_ms > c->queue_timeout_ms) {
        job_fail(job, 503, "the service is overloaded: the query waited too long for a thread");
        goto out;
    }
    /* A job queued before a query found the database unreachable would only
     * wait out the same timeout again: answer it now.  Jobs queued after
     * that failure still try, so the service notices when it is back. */
    long long down_at = atomic_load(&st->unreachable_at);
    if (down_at && job->queued_at_ms < down_at) {
        job_fail(job, 503, failure_reason(503));
        goto out;
    }
    if (!(pool = get_pool(st, &berr))) {
        job_fail_driver(st, job, 503, "creating the client pool", &berr);
        goto out;
    }
    client = mongoc_client_pool_pop(pool);
    coll = mongoc_client_get_collection(client, c->database, job->q.coll);
    cur = mongoc_collection_find_with_opts(coll, &job->q.filter, &job->q.opts, NULL);
    /* The envelope is written around the documents in the same buffer; the
     * count and "truncated" go last, once known. */
    if (job->q.kind != CD_RM_GET) {
        bson_string_t *head = bson_string_new("{\"collection\":");
        cd_readmongo__json_string(head, job->q.coll);
        bson_string_append_printf(head, ",\"limit\":%lld,\"skip\":%lld,\"documents\":[",
                                  job->q.limit, job->q.skip);
        cd_buf_append(&out, head->str, head->len);
        bson_string_free(head, true);
    }
    int truncated = 0;
    long long n = render_docs(st, job, cur, &out, &truncated);
    if (job->body) /* render_docs failed the job */
        goto out;
    if (mongoc_cursor_error(cur, &berr)) {
        int timed_out = now_ms() - started >= c->socket_timeout_ms * 9 / 10;
        job_fail_driver(st, job, cd_readmongo__error_status(&berr, timed_out), "find", &berr);
        goto out;
    }
    if (atomic_exchange(&st->unreachable_at, 0) != 0)
        cd_notice("%s: database reachable again", st->svc->name);

    if (job->q.kind == CD_RM_GET) {
        if (n == 0) {
            job_fail(job, 404, "no document with this _id");
            goto out;
        }
        job->status = 200;
        job->body_len = out.len;
        job->body = out.p;
        out.p = NULL;
        goto out;
    }
    cd_buf_printf(&out, "],\"count\":%lld,\"truncated\":%s}", n, truncated ? "true" : "false");
    if (out.oom) {
        job_fail(job, 503, "out of memory rendering the answer");
        goto out;
    }
    job->status = 200;
    job->body_len = out.len;
    job->body = out.p;
    out.p = NULL;

out:
    cd_buf_free(&out);
    if (cur)
        mongoc_cursor_destroy(cur);
    if (coll)
        mongoc_collection_destroy(coll);
    if (client)
        mongoc_client_pool_push(pool, client);
}

static void *query_thread(void *arg)
{
    rm_state *st = arg;

    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->head && !st->shutdown)
            pthread_cond_wait(&st->cond, &st->lock);
        /* At shutdown the loop is gone: jobs left are freed by destroy. */
        if (st->shutdown)
            break;
        rm_job *job = st->head;
        st->head = job->next;
        if (!st->head)
            st->tail = NULL;
        st->queued--;
        pthread_mutex_unlock(&st->lock);

        run_job(st, job);

        pthread_mutex_lock(&st->lock);
        job->next = st->done;
        st->done = job;
        /* Under the lock, so destroy (which sets shutdown under it) knows
         * no thread touches the loop afterwards. */
        if (!st->shutdown)
            ev_async_send(st->svc->loop, &st->done_w);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* ---- loop thread ---- */

static void done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    rm_state *st = (rm_state *)((char *)w - offsetof(rm_state, done_w));
    rm_job *list;

    (void)revents;
    pthread_mutex_lock(&st->lock);
    list = st->done;
    st->done = NULL;
    pthread_mutex_unlock(&st->lock);

    while (list) {
        rm_job *job = list;
        list = job->next;
        cd_request_respond(job->req, job->status, "application/json", job->body, job->body_len);
        job_free(job);
        /* While jobs are out, the watcher keeps the loop alive. */
        if (--st->in_flight == 0)
            ev_unref(loop);
    }
}

static void respond_index(rm_state *st, cd_request *req)
{
    bson_string_t *b = bson_string_new("{\"database\":");

    cd_readmongo__json_string(b, st->conf->database);
    bson_string_append(b, ",\"collections\":[");
    for (size_t i = 0; i < st->conf->ncollections; i++) {
        if (i)
            bson_string_append_c(b, ',');
        cd_readmongo__json_string(b, st->conf->collections[i]);
    }
    bson_string_append(b, "]}");
    cd_request_respond(req, 200, "application/json", b->str, b->len);
    bson_string_free(b, true);
}

/* The only place a request is answered on the loop thread at once: the
 * checks (readmongo_query.c) return a query or a refusal and never answer,
 * so nothing can use a request after its answer has freed it. */
static void rm_handle(cd_service *svc, cd_request *req)
{
    rm_state *st = svc->state;
    cd_readmongo_refusal refusal;
    rm_job *job = calloc(1, sizeof *job);

    if (!job) {
        respond_error(req, 503, "out of memory");
        return;
    }
    if (cd_readmongo__check_request(st->conf, cd_request_subpath(req), cd_request_query(req),
                                    &job->q, &refusal) < 0) {
        job_free(job);
        respond_error(req, refusal.status, refusal.msg);
        return;
    }
    if (job->q.kind == CD_RM_INDEX) {
        job_free(job);
        respond_index(st, req);
        return;
    }
    job->queued_at_ms = now_ms();
    pthread_mutex_lock(&st->lock);
    if (st->queued >= (size_t)st->conf->queue_size) {
        pthread_mutex_unlock(&st->lock);
        job_free(job);
        respond_error(req, 503, "the service is overloaded: its query queue is full");
        return;
    }
    job->req = req;
    if (st->tail)
        st->tail->next = job;
    else
        st->head = job;
    st->tail = job;
    st->queued++;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    if (st->in_flight++ == 0)
        ev_ref(svc->loop);
}

/* mongoc's log lines go through ours.  Called from any thread. */
static void mongoc_log_cb(mongoc_log_level_t level, const char *domain, const char *message,
                          void *data)
{
    (void)data;
    if (level <= MONGOC_LOG_LEVEL_CRITICAL)
        cd_warn("mongoc %s: %s", domain, message);
    else if (level == MONGOC_LOG_LEVEL_WARNING)
        cd_debug("mongoc %s: %s", domain, message); /* e.g. endSessions at exit */
}

/* Frees everything init built.  The query threads must be joined. */
static void state_free(rm_state *st)
{
    rm_job *lists[2] = {st->head, st->done};

    for (int i = 0; i < 2; i++) {
        while (lists[i]) {
            rm_job *job = lists[i];
            lists[i] = job->next;
            job_free(job); /* its request died with the loop */
        }
    }
    if (st->pool)
        mongoc_client_pool_destroy(st->pool);
    if (st->uri)
        mongoc_uri_destroy(st->uri);
    pthread_mutex_destroy(&st->pool_lock);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    free(st->threads);
    free(st);
}

/* Joins the first n query threads after telling them to stop. */
static void join_threads(rm_state *st, size_t n)
{
    pthread_mutex_lock(&st->lock);
    st->shutdown = 1;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(st->threads[i], NULL);
}

static int rm_init(cd_service *svc, char *err, size_t errlen)
{
    const cd_readmongo_conf *c = svc->conf;
    rm_state *st = NULL;
    bson_error_t berr;
    sigset_t all, old;
    size_t started = 0;
    int rc = 0;

    if (mongoc_users++ == 0) {
        mongoc_init();
        mongoc_log_set_handler(mongoc_log_cb, NULL);
    }
    if (!(st = calloc(1, sizeof *st))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    st->svc = svc;
    st->conf = c;
    pthread_mutex_init(&st->pool_lock, NULL);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    st->nthreads = (size_t)c->threads;
    if (!(st->threads = calloc(st->nthreads, sizeof *st->threads))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(st->uri = mongoc_uri_new_with_error(c->uri, &berr))) {
        snprintf(err, errlen, "uri: %s", berr.message);
        goto fail;
    }
    mongoc_uri_set_option_as_int32(st->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                   (int32_t)c->server_selection_timeout_ms);
    mongoc_uri_set_option_as_int32(st->uri, MONGOC_URI_CONNECTTIMEOUTMS,
                                   (int32_t)c->connect_timeout_ms);
    mongoc_uri_set_option_as_int32(st->uri, MONGOC_URI_SOCKETTIMEOUTMS,
                                   (int32_t)c->socket_timeout_ms);
    if (!mongoc_uri_get_appname(st->uri))
        mongoc_uri_set_appname(st->uri, "clusterd");

    ev_async_init(&st->done_w, done_cb);
    ev_async_start(svc->loop, &st->done_w);
    ev_unref(svc->loop); /* idle, it must not keep the loop alive */

    /* Signals belong to the loop thread; the query threads (and the driver
     * threads they start) inherit a full mask. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; started < st->nthreads; started++) {
        rc = pthread_create(&st->threads[started], NULL, query_thread, st);
        if (rc != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < st->nthreads) {
        snprintf(err, errlen, "pthread_create() failed: %s (errno %d)", strerror(rc), rc);
        join_threads(st, started);
        ev_ref(svc->loop);
        ev_async_stop(svc->loop, &st->done_w);
        goto fail;
    }
    svc->state = st;
    cd_info("%s: %zu query threads, database '%s', %zu collections, server selection %lldms, "
            "socket %lldms, maxTimeMS %lld",
            svc->name, st->nthreads, c->database, c->ncollections,
            c->server_selection_timeout_ms, c->socket_timeout_ms, c->max_time_ms);
    return 0;

fail:
    if (st)
        state_free(st);
    if (--mongoc_users == 0)
        mongoc_cleanup();
    return -1;
}

/* Graceful stop has begun.  Nothing needs cutting short: every queued job
 * finishes or fails within queue_timeout plus its query budget, so the
 * worker's drain completes on its own; requests arriving meanwhile (the
 * last ones on keep-alive connections) are still served, so a rolling
 * restart fails none of them. */
static void rm_stop(cd_service *svc)
{
    rm_state *st = svc->state;

    st->stopping = 1;
    if (st->in_flight)
        cd_debug("%s: stopping with %zu queries in flight", svc->name, st->in_flight);
}

/* The loop is gone: the threads are told to stop, finish the job in hand
 * (bounded by the timeouts) and are joined; no request is answered, the
 * worker has freed them with their connections.  The loop is not touched. */
static void rm_destroy(cd_service *svc)
{
    rm_state *st = svc->state;

    if (!st)
        return;
    join_threads(st, st->nthreads);
    state_free(st);
    svc->state = NULL;
    if (--mongoc_users == 0)
        mongoc_cleanup();
}

static const char *rm_degraded(cd_service *svc)
{
    rm_state *st = svc->state;

    return st && atomic_load(&st->unreachable_at) ? "database unreachable" : NULL;
}

const cd_service_type cd_service_readmongo = {
    .name = "readmongo",
    .methods = CD_M_GET | CD_M_HEAD,
    .conf_new = rm_conf_new,
    .conf_set = rm_conf_set,
    .conf_check = rm_conf_check,
    .conf_free = rm_conf_free,
    .init = rm_init,
    .handle = rm_handle,
    .stop = rm_stop,
    .destroy = rm_destroy,
    .degraded = rm_degraded,
};
