/*
 * readmongo.c - the readmongo service: read-only HTTP access to allowlisted
 * MongoDB collections through mongo-c-driver (worker process, loop thread;
 * the vtable's config hooks are in conf.c and run in the master too).
 *
 *   GET /readmongo                      the database and allowlist
 *   GET /readmongo/{coll}?filter=&projection=&sort=&limit=&skip=
 *   GET /readmongo/{coll}/{id}[?projection=]
 *
 * The driver blocks, so the loop never calls it.  handle() has the request
 * checked completely on the loop thread (allowlist, JSON parameters, refused
 * operators, limits: cd_readmongo__check_request in readmongo_query.c, which
 * returns a query or a refusal and never answers) and answers
 * 400/403/404/414 at once; only a valid query becomes a job on the
 * service's bounded thread pool (clusterd/pool.h; 503 when its queue is full).
 * A few threads per worker run the jobs (exec.c) and the pool hands each
 * finished job back to the loop thread, which answers it in job_done.
 * handle() and job_done are the only places that answer a request, and only
 * the loop thread ever touches a cd_request.
 *
 * A result that fits in stream_chunk bytes (64k by default) is answered
 * whole (cd_request_respond), as before: its status is known before a byte
 * leaves, and a whole body is what the HTTP layer's ETag hashes, so a
 * section with `etag = on` answers a repeated query with 304.  A larger one
 * streams (cd_response_begin/write/end): the query thread hands each
 * stream_chunk of rendered JSON to the loop (exec.c), which begins a 200 on
 * the first piece, writes the pieces in order and, in job_done, the rest
 * (the envelope's count and "truncated") and ends it.  The bytes are the
 * whole answer's, cut in pieces; streamed answers carry no ETag.  A query
 * that fails after the stream began cannot turn into a 5xx any more, so
 * the request is dropped (cd_request_drop): the client sees an unfinished
 * chunked body (or a short close-delimited one), never a false complete
 * 200, and the log says so once.  A client that goes away makes writes
 * fail: the job is marked cancelled and its thread stops reading the
 * cursor.  max_response_size still bounds every answer, streamed or not.
 *
 * Answers are rendered into buffers the loop hands out and takes back
 * (st->spare: at most `threads` of them, each 4-16 KiB, kept only once the
 * service has answered): a small answer costs no allocation on the query
 * thread and no free on the loop of a block from another thread's arena
 * (which takes that arena's lock, contended by the thread's own mallocs).
 *
 * Process-wide driver state: mongoc_init is called in init (a worker is a
 * freshly exec'd process with no threads yet) and mongoc_cleanup in the last
 * destroy, after every query thread has been joined.  Several readmongo
 * sections may share one worker, hence the reference count below, which
 * only the loop thread touches.
 */
#include <errno.h>
#include <ev.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/buf.h"
#include "clusterd/json.h"
#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/readmongo/exec.h"
#include "services/readmongo/readmongo.h"

/* Driver library users in this process (loop thread only); see above. */
static int mongoc_users;

/* {"error":"msg","status":N}; msg is at most a refusal's message. */
static void respond_error(cd_request *req, int status, const char *msg)
{
    char body[sizeof ((cd_readmongo_refusal *)0)->msg * 6 + 64];
    int len = cd_json_error(body, sizeof body, status, msg);

    cd_request_respond(req, status, "application/json", body, len < 0 ? 0 : (size_t)len);
}

/* Writes the job's pending pieces (loop thread), beginning its streamed
 * answer on the first.  Once the client is gone the job is cancelled (its
 * thread stops reading the cursor) and pieces are dropped. */
static void write_pieces(cd_readmongo_job *job)
{
    cd_readmongo_piece *pieces = cd_readmongo__take_pieces(job);

    for (cd_readmongo_piece *p = pieces; p && !atomic_load(&job->cancelled); p = p->next) {
        if (!job->begun) {
            cd_response_begin(job->req, 200, "application/json");
            job->begun = 1;
        }
        if (cd_response_write(job->req, p->data, p->len) < 0)
            atomic_store(&job->cancelled, 1);
    }
    cd_readmongo__pieces_free(pieces);
}

/* The query threads have handed pieces over (loop thread). */
static void stream_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    cd_readmongo_state *st = (cd_readmongo_state *)((char *)a - offsetof(cd_readmongo_state, stream_async));
    cd_readmongo_job *job;

    (void)loop;
    (void)revents;
    while ((job = cd_readmongo__next_ready(st)))
        write_pieces(job);
}

/* The end of a streamed answer: the rest of the body (the envelope's
 * close), or, when the query failed after the answer began, an abort (the
 * client sees an unfinished body, never a false complete 200). */
static void finish_stream(cd_readmongo_job *job)
{
    if (job->status != 200 && !atomic_load(&job->cancelled)) {
        cd_warn("%s: streamed answer on collection '%s' aborted: the query failed with %d "
                "after the answer began",
                job->st->svc->name, job->q.coll, job->status);
        cd_request_drop(job->req);
        return;
    }
    if (!atomic_load(&job->cancelled) && job->body_len)
        cd_response_write(job->req, job->body, job->body_len);
    cd_response_end(job->req);
}

/* Keeps *buf (a rendering buffer of cap bytes, 0 when it is none) for a
 * later job when there is room; *buf is NULL if kept.  Loop thread. */
static void keep_spare(cd_readmongo_state *st, char **buf, size_t cap)
{
    if (!*buf || cap < CD_RM_SPARE_INITIAL || cap > CD_RM_SPARE_MAX ||
        st->nspare >= (size_t)st->conf->threads)
        return;
    st->spare[st->nspare] = *buf;
    st->spare_cap[st->nspare++] = cap;
    *buf = NULL;
}

/* A rendering buffer for a new job: a spare, or a new one made here on the
 * loop thread (so the block comes back to the arena that frees it). */
static void give_buffer(cd_readmongo_state *st, cd_readmongo_job *job)
{
    if (st->nspare) {
        st->nspare--;
        job->buf = st->spare[st->nspare];
        job->buf_cap = st->spare_cap[st->nspare];
    } else if ((job->buf = malloc(CD_RM_SPARE_INITIAL))) {
        job->buf_cap = CD_RM_SPARE_INITIAL;
    }
}

/* The pool's done function: answers the job (loop thread), or drops its
 * request when the pool is being destroyed (see rm_destroy).  A job that
 * streamed has its last pieces written, then its rest; any other is
 * answered whole, as one body (and so gets an ETag where the route has
 * them). */
static void job_done(cd_pool_work *work, int status)
{
    cd_readmongo_job *job = (cd_readmongo_job *)((char *)work - offsetof(cd_readmongo_job, work));

    if (status != 0) {
        cd_readmongo__pieces_free(cd_readmongo__take_pieces(job));
        cd_request_drop(job->req);
    } else if (job->streamed) {
        write_pieces(job);
        finish_stream(job);
    } else {
        cd_request_respond(job->req, job->status, "application/json", job->body, job->body_len);
    }
    keep_spare(job->st, &job->body, job->body_cap);
    keep_spare(job->st, &job->buf, job->buf_cap);
    cd_readmongo__job_free(job);
}

static void respond_index(cd_readmongo_state *st, cd_request *req)
{
    cd_buf b = {0};

    cd_buf_append(&b, "{\"database\":", 12);
    cd_json_str(&b, st->conf->database, strlen(st->conf->database));
    cd_buf_append(&b, ",\"collections\":[", 16);
    for (size_t i = 0; i < st->conf->ncollections; i++) {
        if (i)
            cd_buf_append(&b, ",", 1);
        cd_json_str(&b, st->conf->collections[i], strlen(st->conf->collections[i]));
    }
    cd_buf_append(&b, "]}", 2);
    if (b.oom)
        respond_error(req, 503, "out of memory");
    else
        cd_request_respond(req, 200, "application/json", b.p, b.len);
    cd_buf_free(&b);
}

/* The only place a request is answered on the loop thread at once: the
 * checks (readmongo_query.c) return a query or a refusal and never answer,
 * so nothing can use a request after its answer has freed it. */
static void rm_handle(cd_service *svc, cd_request *req)
{
    cd_readmongo_state *st = svc->state;
    cd_readmongo_refusal refusal;
    cd_readmongo_job *job = calloc(1, sizeof *job);

    if (!job) {
        respond_error(req, 503, "out of memory");
        return;
    }
    if (cd_readmongo__check_request(st->conf, cd_request_subpath(req), cd_request_query(req),
                                    &job->q, &refusal) < 0) {
        cd_readmongo__job_free(job);
        respond_error(req, refusal.status, refusal.msg);
        return;
    }
    if (job->q.kind == CD_RM_INDEX) {
        cd_readmongo__job_free(job);
        respond_index(st, req);
        return;
    }
    job->st = st;
    job->req = req;
    job->queued_at_ms = cd_readmongo__now_ms();
    give_buffer(st, job);
    if (cd_pool_submit(st->pool, &job->work, cd_readmongo__run, job_done) < 0) {
        cd_readmongo__job_free(job);
        respond_error(req, 503, "the service is overloaded: its query queue is full");
    }
}

void cd_readmongo__log_cb(mongoc_log_level_t level, const char *domain, const char *message,
                          void *data)
{
    (void)data;
    if (level <= MONGOC_LOG_LEVEL_CRITICAL)
        cd_warn("mongoc %s: %s", domain, message);
    else if (level == MONGOC_LOG_LEVEL_WARNING)
        cd_debug("mongoc %s: %s", domain, message); /* e.g. endSessions at exit */
}

/* Frees everything init built; the pool (its threads joined) first.  What
 * the loop<->thread handoff cost over the worker's life goes to the log
 * (issue 13: bench/readmongo_ctx.py reads it). */
static void state_free(cd_readmongo_state *st)
{
    cd_pool_counts n;

    if (st->pool) {
        cd_pool_get_counts(st->pool, &n);
        if (n.submitted)
            cd_info("%s: handoff: %llu jobs in %llu batches, %llu threads woken by the loop and "
                    "%llu by threads, %llu completion wake-ups for %llu completion runs",
                    st->svc->name, n.submitted, n.batches, n.loop_wakeups, n.chain_wakeups,
                    n.done_wakeups, n.done_batches);
    }
    cd_pool_destroy(st->pool); /* the threads' clients go back as they end */
    if (st->conn_key_made)
        pthread_key_delete(st->conn_key);
    for (size_t i = 0; i < st->nspare; i++)
        free(st->spare[i]);
    free(st->spare);
    free(st->spare_cap);
    if (st->stream_started) {
        ev_ref(st->svc->loop); /* undo init's unref before stopping */
        ev_async_stop(st->svc->loop, &st->stream_async);
    }
    pthread_mutex_destroy(&st->stream_lock);
    if (st->clients)
        mongoc_client_pool_destroy(st->clients);
    if (st->uri)
        mongoc_uri_destroy(st->uri);
    pthread_mutex_destroy(&st->client_lock);
    free(st);
}

/* The config's URI with the resolved timeouts on top.  NULL with err. */
static mongoc_uri_t *make_uri(const cd_readmongo_conf *c, char *err, size_t errlen)
{
    bson_error_t berr;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(c->uri, &berr);

    if (!uri) {
        snprintf(err, errlen, "uri: %s", berr.message);
        return NULL;
    }
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                   (int32_t)c->server_selection_timeout_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, (int32_t)c->connect_timeout_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, (int32_t)c->socket_timeout_ms);
    if (!mongoc_uri_get_appname(uri))
        mongoc_uri_set_appname(uri, "clusterd");
    return uri;
}

/* The check at start leaves its finding in st->unreachable_at: nothing to
 * do on the loop (nor when the pool is destroyed first). */
static void probe_done(cd_pool_work *work, int status)
{
    (void)work;
    (void)status;
}

static int rm_init(cd_service *svc, char *err, size_t errlen)
{
    const cd_readmongo_conf *c = svc->conf;
    cd_readmongo_state *st = NULL;
    int rc;

    if (mongoc_users++ == 0) {
        mongoc_init();
        mongoc_log_set_handler(cd_readmongo__log_cb, NULL);
    }
    if (!(st = calloc(1, sizeof *st))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    st->svc = svc;
    st->conf = c;
    pthread_mutex_init(&st->client_lock, NULL);
    pthread_mutex_init(&st->stream_lock, NULL);
    /* Pieces of streamed answers; the pool keeps the loop alive while
     * jobs are out, so this watcher does not. */
    ev_async_init(&st->stream_async, stream_cb);
    ev_async_start(svc->loop, &st->stream_async);
    ev_unref(svc->loop);
    st->stream_started = 1;
    if (!(st->uri = make_uri(c, err, errlen)))
        goto fail;
    st->spare = calloc((size_t)c->threads, sizeof *st->spare);
    st->spare_cap = calloc((size_t)c->threads, sizeof *st->spare_cap);
    if (!st->spare || !st->spare_cap || pthread_key_create(&st->conn_key, cd_readmongo__conn_free)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    st->conn_key_made = 1;
    rc = cd_pool_new(svc->loop, (size_t)c->threads, (size_t)c->queue_size, &st->pool);
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    } else if (rc < 0) {
        snprintf(err, errlen, "pthread_create() failed: %s (errno %d)", strerror(-rc), -rc);
        goto fail;
    }
    svc->state = st;
    /* Readiness knows about a database that is down from the start; the
     * check runs on a query thread, init does not wait for it. */
    if (cd_pool_submit(st->pool, &st->probe, cd_readmongo__probe, probe_done) < 0)
        cd_debug("%s: no check of the database at start (queue full)", svc->name);
    cd_info("%s: %lld query threads, database '%s', %zu collections, server selection %lldms, "
            "socket %lldms, maxTimeMS %lld",
            svc->name, c->threads, c->database, c->ncollections,
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
    cd_readmongo_state *st = svc->state;
    size_t out = cd_pool_outstanding(st->pool);

    if (out)
        cd_debug("%s: stopping with %zu queries in flight", svc->name, out);
}

/* The loop has stopped: the query threads finish the job in hand (bounded
 * by the timeouts) and are joined; jobs not answered are freed without
 * answering (cd_request_drop).  Their connections are closed already (the
 * worker closes all before destroy), so nobody would read an answer. */
static void rm_destroy(cd_service *svc)
{
    cd_readmongo_state *st = svc->state;

    if (!st)
        return;
    state_free(st);
    svc->state = NULL;
    if (--mongoc_users == 0)
        mongoc_cleanup();
}

static const char *rm_degraded(cd_service *svc)
{
    cd_readmongo_state *st = svc->state;

    return st && atomic_load(&st->unreachable_at) ? "database unreachable" : NULL;
}

const cd_service_type cd_service_readmongo = {
    .abi = CLUSTERD_ABI_VERSION,
    .name = "readmongo",
    .methods = CD_M_GET | CD_M_HEAD,
    .conf_new = cd_readmongo__conf_new,
    .keys = cd_readmongo__keys,
    .conf_check = cd_readmongo__conf_check,
    .conf_free = cd_readmongo__conf_free,
    .init = rm_init,
    .handle = rm_handle,
    .stop = rm_stop,
    .destroy = rm_destroy,
    .degraded = rm_degraded,
};
