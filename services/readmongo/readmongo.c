/*
 * readmongo.c - the readmongo service: read-only HTTP access to allowlisted
 * MongoDB collections through mongo-c-driver (worker process, loop thread;
 * the vtable's config hooks are in conf.c and run in the master too).
 *
 *   GET /readmongo                      the database and allowlist
 *   GET /readmongo/{coll}?filter=&projection=&sort=&limit=&skip=
 *   GET /readmongo/{coll}/{id}[?projection=]
 *
 * handle() has the request checked completely (allowlist, JSON parameters,
 * refused operators, limits: cd_readmongo__check_request in
 * readmongo_query.c, which returns a query or a refusal and never answers)
 * and answers 400/403/404/414 at once; only a valid query becomes a job,
 * queued for the service's query fibers (exec.c: 503 when the queue is
 * full).  A fiber runs the query through mongo-c-driver on the loop thread,
 * the driver's sockets waiting on the loop (stream.c), and answers the
 * request itself.  handle() and the fibers are the only places that answer
 * a request.
 *
 * A result that fits in stream_chunk bytes (64k by default) is answered
 * whole (cd_request_respond): its status is known before a byte leaves, and
 * a whole body is what the HTTP layer's ETag hashes, so a section with
 * `etag = on` answers a repeated query with 304.  A larger one streams
 * (cd_response_begin/write/end): the fiber writes each stream_chunk of
 * rendered JSON as it goes, then the rest (the envelope's count and
 * "truncated") and ends it.  The bytes are the whole answer's, cut in
 * pieces; streamed answers carry no ETag.  A query that fails after the
 * stream began cannot turn into a 5xx any more, so the request is dropped
 * (cd_request_drop): the client sees an unfinished chunked body (or a short
 * close-delimited one), never a false complete 200, and the log says so
 * once.  A client that goes away makes writes fail and the fiber stops
 * reading the cursor.  max_response_size still bounds every answer,
 * streamed or not.
 *
 * Process-wide driver state: mongoc_init is called in init (a worker is a
 * freshly exec'd process with no threads yet) and mongoc_cleanup in the last
 * destroy, after every query fiber has ended.  Several readmongo
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
    if (cd_readmongo__submit(st, job) < 0) {
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

/* Frees everything init built: the fibers end first (their clients with
 * them), then what they used. */
static void state_free(cd_readmongo_state *st)
{
    cd_readmongo__fibers_stop(st);
    if (st->uri)
        mongoc_uri_destroy(st->uri);
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

static int rm_init(cd_service *svc, char *err, size_t errlen)
{
    const cd_readmongo_conf *c = svc->conf;
    cd_readmongo_state *st = NULL;

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
    if (!(st->uri = make_uri(c, err, errlen)))
        goto fail;
    /* The fibers start on the loop's first turn, the check at start
     * (a ping: readiness knows about a database that is down from the
     * start) being their first job; init does not wait for it. */
    if (cd_readmongo__fibers_start(st) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    svc->state = st;
    cd_info("%s: %lld query fibers, database '%s', %zu collections, server selection %lldms, "
            "socket %lldms, maxTimeMS %lld",
            svc->name, c->concurrency, c->database, c->ncollections,
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
    size_t out = cd_readmongo__outstanding(st);

    if (out)
        cd_debug("%s: stopping with %zu queries in flight", svc->name, out);
}

/* The loop has stopped: queued jobs are dropped, and a fiber with a job in
 * hand has its waits cut short, so the driver fails at once and the
 * request is dropped (cd_request_drop).  Their connections are closed
 * already (the worker closes all before destroy), so nobody would read an
 * answer. */
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

    return st && st->unreachable_at ? "database unreachable" : NULL;
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
