/*
 * exec.c - what a readmongo query fiber does with a job (worker process,
 * loop thread): run one checked query against MongoDB and answer it.  The
 * fibers and their queue are fibers.c's.
 *
 * Each worker has `concurrency` query fibers (clusterd/fiber.h), each with its
 * own single-threaded mongoc_client_t whose sockets are stream.c's: the
 * driver's blocking calls run on the loop thread and every wait in them
 * (connect, the reply, the driver's own monitoring) parks the fiber on the
 * loop's epoll instead of blocking.  So the loop never waits on the
 * database, and a query costs no thread hand-off: no futex wake of a query
 * thread, no eventfd back to the loop, no second thread's caches (issue
 * 13: a query cost 3.6-4.0 context switches through the old thread pool,
 * the raw mongoc loop 1.0).  A fiber answers its request itself, on the
 * loop thread where the HTTP layer lives; rendering (BSON to JSON) runs on
 * the loop too, as a Node.js handler's would, and a large answer gives the
 * loop a turn after each stream_chunk it writes.  A job that waited longer
 * than queue_timeout gets 503 without touching the database.
 *
 * Time is bounded everywhere, so a down or frozen database is reported in
 * about two seconds and a graceful stop never waits on the database for
 * long: server selection (503), connect, socket reads (504) and the
 * server's own maxTimeMS (504) have short timeouts from the config; and
 * jobs that queued up behind a query which then failed to reach the
 * database get 503 at once instead of each waiting out the same timeout.
 * The single-threaded driver rescans a failed server after its 5 s
 * cooldown, on the next query, so the service recovers by itself.  One
 * ping at start (the first job) marks a database that is down before any
 * query meets it, so readiness says so from the start.  Error bodies give
 * a generic reason ("database unreachable", "query over the time
 * budget"...); the driver's message, which names hosts and ports, goes to
 * the log only.
 *
 * A client is made on its fiber's first job.  For a mongodb+srv:// URI the
 * driver resolves DNS SRV and TXT records while making it, which the loop
 * must not wait on, so that one is made in a short-lived thread the fiber
 * awaits (make_client_srv, cd_fiber_run_blocking).
 */
#include "services/readmongo/exec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clusterd/buf.h"
#include "clusterd/json.h"
#include "clusterd/log.h"

long long cd_readmongo__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cd_readmongo__job_fail(cd_readmongo_job *job, int status, const char *msg)
{
    size_t cap = strlen(msg) * 6 + 64; /* every byte escaped, and the envelope */
    char *body = malloc(cap);

    free(job->body);
    job->body = NULL;
    job->body_len = 0;
    job->status = status;
    if (body) {
        job->body = body;
        job->body_len = (size_t)cd_json_error(body, cap, status, msg);
    }
}

void cd_readmongo__job_free(cd_readmongo_job *job)
{
    cd_readmongo__query_free(&job->q);
    free(job->body);
    free(job);
}

/* ---- the driver client, made off the loop ---- */

/* A client made in a thread (a mongodb+srv:// URI: see the top).  The
 * thread has its own copy of the URI: a fiber whose wait is cut short by a
 * stop leaves it running, and the service's URI is freed. */
typedef struct client_make {
    mongoc_uri_t *uri;
    mongoc_client_t *client;
    bson_error_t err;
} client_make;

static void client_make_run(void *arg)
{
    client_make *m = arg;

    m->client = mongoc_client_new_from_uri_with_error(m->uri, &m->err);
}

static void client_make_free(void *arg)
{
    client_make *m = arg;

    if (m->client)
        mongoc_client_destroy(m->client);
    mongoc_uri_destroy(m->uri);
    free(m);
}

/* Makes a client for a mongodb+srv:// URI in a thread the fiber awaits
 * (cd_fiber_run_blocking; server_selection_timeout bounds the wait).  NULL
 * with *berr. */
static mongoc_client_t *make_client_srv(cd_readmongo_state *st, bson_error_t *berr)
{
    client_make *m = calloc(1, sizeof *m);
    mongoc_client_t *client = NULL;
    int rc;

    if (!m || !(m->uri = mongoc_uri_copy(st->uri))) {
        free(m);
        bson_set_error(berr, MONGOC_ERROR_CLIENT, 0, "out of memory");
        return NULL;
    }
    rc = cd_fiber_run_blocking(client_make_run, client_make_free, m,
                               st->conf->server_selection_timeout_ms);
    if (rc < 0) {
        client_make_free(m);
        bson_set_error(berr, MONGOC_ERROR_CLIENT, 0, "no thread to make the client");
        return NULL;
    }
    if (rc == 0) { /* m is the thread's now */
        bson_set_error(berr, MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE,
                       "resolving the mongodb+srv URI timed out");
        return NULL;
    }
    if (!(client = m->client))
        *berr = m->err;
    m->client = NULL;
    client_make_free(m);
    return client;
}

/* A single-threaded client for the fiber, with stream.c's sockets; NULL
 * with *berr.  For a mongodb:// URI making it does no I/O. */
static mongoc_client_t *make_client(cd_readmongo_state *st, bson_error_t *berr)
{
    mongoc_client_t *client;

    memset(berr, 0, sizeof *berr);
    if (mongoc_uri_get_srv_hostname(st->uri))
        client = make_client_srv(st, berr);
    else
        client = mongoc_client_new_from_uri_with_error(st->uri, berr);
    if (client) {
        mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
        mongoc_client_set_stream_initiator(client, cd_readmongo__stream_initiator, NULL);
    }
    return client;
}

/* The handle of an allowlisted collection, made once per fiber; *temp is
 * set when it is not kept (a name off the list, which the checks refuse
 * before a job exists) and the caller destroys it. */
static mongoc_collection_t *collection(cd_readmongo_fiber *fb, const char *name, int *temp)
{
    const cd_readmongo_conf *c = fb->st->conf;

    *temp = 0;
    for (size_t i = 0; i < c->ncollections; i++) {
        if (strcmp(c->collections[i], name) == 0) {
            if (!fb->colls[i])
                fb->colls[i] = mongoc_client_get_collection(fb->client, c->database, name);
            return fb->colls[i];
        }
    }
    *temp = 1;
    return mongoc_client_get_collection(fb->client, c->database, name);
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

/* Marks the database unreachable from now; whether it was already. */
static int mark_unreachable(cd_readmongo_state *st)
{
    long long was = st->unreachable_at;

    st->unreachable_at = cd_readmongo__now_ms();
    return was != 0;
}

/* Fails the job with the generic reason for status and logs the driver's
 * detail. */
static void job_fail_driver(cd_readmongo_job *job, int status, const char *what,
                            const bson_error_t *berr)
{
    cd_readmongo_state *st = job->st;
    int level = CD_LOG_WARN;

    if (status == 503 || (status == 504 && berr->domain == MONGOC_ERROR_STREAM)) {
        /* An outage is reported when it starts, not by every query during
         * it (those go to the debug level). */
        if (mark_unreachable(st))
            level = CD_LOG_DEBUG;
    } else if (status == 400) {
        level = CD_LOG_INFO; /* the client's query, not our trouble */
    }
    cd_log(level, "%s: %s on collection '%s': %s: %s (domain %u, code %u)", st->svc->name, what,
           job->q.coll, failure_reason(status), berr->message, berr->domain, berr->code);
    cd_readmongo__job_fail(job, status, failure_reason(status));
}

/* Writes out's bytes as the next piece of job's streamed answer, beginning
 * it on the first, and empties out; then gives the loop a turn, so one
 * large answer does not hold up the worker's other clients.  A failed
 * write means the client is gone: the job is cancelled. */
static void write_piece(cd_readmongo_job *job, cd_buf *out)
{
    if (!job->begun) {
        cd_response_begin(job->req, 200, "application/json");
        job->begun = 1;
    }
    if (cd_response_write(job->req, out->p, out->len) < 0)
        job->cancelled = 1;
    job->handed += out->len;
    out->len = 0;
    cd_fiber_sleep(0);
}

/* Appends the cursor's documents, comma-separated, to out, writing out as
 * a piece of a streamed answer whenever it passes stream_chunk (finds
 * only: a by-id answer is one document).  Returns the count; sets *truncated when the next
 * document would pass max_response_size (counting what was handed); fails
 * the job and returns -1 on a document it cannot render; stops early when
 * the loop cancelled the job. */
static long long render_docs(cd_readmongo_job *job, mongoc_cursor_t *cur, cd_buf *out,
                             int *truncated)
{
    const bson_t *doc;
    long long n = 0;

    const cd_readmongo_conf *c = job->st->conf;

    while (!job->cancelled && mongoc_cursor_next(cur, &doc)) {
        size_t before = out->len;
        if (n > 0)
            cd_buf_append(out, ",", 1);
        if (cd_readmongo__json(doc, out) < 0) {
            cd_warn("%s: a document of collection '%s' could not be converted to JSON "
                    "(invalid BSON, nested deeper than %d, or out of memory)",
                    job->st->svc->name, job->q.coll, CD_READMONGO_JSON_MAX_DEPTH);
            cd_readmongo__job_fail(job, 502, "a document could not be converted to JSON");
            return -1;
        }
        if ((long long)(job->handed + out->len) + 2 > c->max_response_size) {
            out->len = before; /* leave it out */
            out->p[before] = '\0';
            *truncated = 1;
            break;
        }
        n++;
        if (job->q.kind != CD_RM_GET && job->req && (long long)out->len >= c->stream_chunk &&
            !out->oom)
            write_piece(job, out); /* out of memory: it stays in out, whole */
    }
    return n;
}

/* Whether the job should be answered 503 without trying the database. */
static int refuse_early(cd_readmongo_job *job, long long started)
{
    if (started - job->queued_at_ms > job->st->conf->queue_timeout_ms) {
        cd_readmongo__job_fail(job, 503,
                               "the service is overloaded: the query waited too long in the queue");
        return 1;
    }
    /* A job queued before a query found the database unreachable would only
     * wait out the same timeout again: answer it now.  Jobs queued after
     * that failure still try, so the service notices when it is back. */
    long long down_at = job->st->unreachable_at;
    if (down_at && job->queued_at_ms < down_at) {
        cd_readmongo__job_fail(job, 503, failure_reason(503));
        return 1;
    }
    return 0;
}

/* Appends key (a literal) and v in decimal: the envelope's numbers without
 * printf's format parsing (a few microseconds a request, issue 13). */
static void append_num(cd_buf *out, const char *key, long long v)
{
    char d[24], *e = d + sizeof d, *p = e;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    cd_buf_append(out, key, strlen(key));
    cd_buf_append(out, p, (size_t)(e - p));
}

/* Runs the find and renders its answer into out: status 200 with the body
 * in out, or the job failed (job_fail). */
static void find(cd_readmongo_job *job, mongoc_collection_t *coll, long long started, cd_buf *out)
{
    const cd_readmongo_conf *c = job->st->conf;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &job->q.filter, &job->q.opts, NULL);
    bson_error_t berr;
    int truncated = 0;

    /* The envelope is written around the documents in the same buffer; the
     * count and "truncated" go last, once known. */
    if (job->q.kind != CD_RM_GET) {
        cd_buf_append(out, "{\"collection\":", 14);
        cd_json_str(out, job->q.coll, strlen(job->q.coll));
        append_num(out, ",\"limit\":", job->q.limit);
        append_num(out, ",\"skip\":", job->q.skip);
        cd_buf_append(out, ",\"documents\":[", 14);
    }
    long long n = render_docs(job, cur, out, &truncated);
    if (n < 0)
        goto out;
    if (mongoc_cursor_error(cur, &berr)) {
        int timed_out = cd_readmongo__now_ms() - started >= c->socket_timeout_ms * 9 / 10;
        job_fail_driver(job, cd_readmongo__error_status(&berr, timed_out), "find", &berr);
        goto out;
    }
    if (job->st->unreachable_at) {
        job->st->unreachable_at = 0;
        cd_notice("%s: database reachable again", job->st->svc->name);
    }
    if (job->q.kind == CD_RM_GET) {
        if (n == 0) {
            cd_readmongo__job_fail(job, 404, "no document with this _id");
            goto out;
        }
    } else {
        append_num(out, "],\"count\":", n);
        cd_buf_append(out, truncated ? ",\"truncated\":true}" : ",\"truncated\":false}",
                      truncated ? 18 : 19);
        if (out->oom) {
            cd_readmongo__job_fail(job, 503, "out of memory rendering the answer");
            goto out;
        }
    }
    job->status = 200;
out:
    mongoc_cursor_destroy(cur);
}

/* Answers job's request: a 200 with out's bytes, or the job's error body.
 * A streamed answer gets the rest of its body and its end, or, when the
 * query failed after it began, is dropped (the client sees an unfinished
 * body, never a false complete 200).  While the service is being
 * destroyed, requests are dropped: their connections are closed. */
static void answer(cd_readmongo_job *job, cd_buf *out)
{
    cd_request *req = job->req;

    if (!req)
        return;
    job->req = NULL;
    if (job->st->closing) {
        cd_request_drop(req);
    } else if (job->begun) {
        if (job->status != 200 && !job->cancelled) {
            cd_warn("%s: streamed answer on collection '%s' aborted: the query failed with %d "
                    "after the answer began",
                    job->st->svc->name, job->q.coll, job->status);
            cd_request_drop(req);
            return;
        }
        if (!job->cancelled && out->len)
            cd_response_write(req, out->p, out->len);
        cd_response_end(req);
    } else if (job->status == 200) {
        cd_request_respond(req, 200, "application/json", out->p, out->len);
    } else {
        cd_request_respond(req, job->status, "application/json", job->body, job->body_len);
    }
}

/* The check at start: a ping.  A database that is down marks the outage
 * (readiness says so) and logs it once, as a failed query does; a success
 * changes nothing (the mark is 0 at start). */
static void probe(cd_readmongo_fiber *fb)
{
    cd_readmongo_state *st = fb->st;
    bson_error_t berr;
    int status = 503;

    if (fb->client || (fb->client = make_client(st, &berr))) {
        bson_t ping = BSON_INITIALIZER;
        BSON_APPEND_INT32(&ping, "ping", 1);
        if (mongoc_client_command_simple(fb->client, "admin", &ping, NULL, NULL, &berr))
            status = 0;
        else
            status = cd_readmongo__error_status(&berr, 0);
        bson_destroy(&ping);
    }
    if (status == 503 && !st->closing && !mark_unreachable(st))
        cd_warn("%s: database unreachable at start: %s (domain %u, code %u)", st->svc->name,
                berr.message, berr.domain, berr.code);
}

/* Rendering buffers are kept between answers up to this size. */
#define CD_RM_KEEP_MAX (64 * 1024)

void cd_readmongo__run_job(cd_readmongo_fiber *fb, cd_readmongo_job *job)
{
    cd_readmongo_state *st = fb->st;
    long long started = cd_readmongo__now_ms();
    bson_error_t berr;
    int temp;

    fb->out.len = 0;
    fb->out.oom = 0;
    if (!job->req) {
        probe(fb);
        return;
    }
    if (refuse_early(job, started))
        goto done;
    if (!fb->client && !(fb->client = make_client(st, &berr))) {
        job_fail_driver(job, 503, "creating the client", &berr);
        goto done;
    }
    mongoc_collection_t *coll = collection(fb, job->q.coll, &temp);
    find(job, coll, started, &fb->out);
    if (temp)
        mongoc_collection_destroy(coll);
done:
    answer(job, &fb->out);
    if (fb->out.cap > CD_RM_KEEP_MAX)
        cd_buf_free(&fb->out);
}

void cd_readmongo__fiber_release(cd_readmongo_fiber *fb)
{
    for (size_t i = 0; fb->colls && i < fb->st->conf->ncollections; i++)
        if (fb->colls[i])
            mongoc_collection_destroy(fb->colls[i]);
    if (fb->client)
        mongoc_client_destroy(fb->client);
    fb->client = NULL;
    free(fb->colls);
    fb->colls = NULL;
    cd_buf_free(&fb->out);
}
