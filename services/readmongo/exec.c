/*
 * exec.c - what the readmongo service's query threads do (worker process,
 * the threads of its clusterd/pool.h pool): run one checked query against
 * MongoDB through the worker's mongoc_client_pool and render the answer
 * (JSON body and status) into the job, for the loop thread to send.
 *
 * Time is bounded everywhere, so a down or frozen database is reported in
 * about two seconds and a graceful stop never waits on the database for
 * long: a job that waited longer than queue_timeout in the queue gets 503
 * without touching the database; server selection (503), connect, socket
 * reads (504) and the server's own maxTimeMS (504) have short timeouts from
 * the config; and jobs that queued up behind a query which then failed to
 * reach the database get 503 at once instead of each waiting out the same
 * timeout (a burst during an outage costs one timeout, not one per queue
 * position).  The driver's monitor threads notice when the database comes
 * back, so the service recovers by itself.  One ping at start
 * (cd_readmongo__probe) marks a database that is down before any query
 * meets it, so readiness says so from the start.  Error bodies give a generic
 * reason ("database unreachable", "query over the time budget"...); the
 * driver's message, which names hosts and ports, goes to the log only.
 *
 * Each query thread pops one client from the worker's client pool on its
 * first query and keeps it, with its collection handles, until the thread
 * ends (thread_conn): the client pool holds one client per thread, so a
 * query costs no pop/push and no handle made and destroyed, as in the raw
 * mongoc loop the benchmark compares with.  A thread renders into the
 * buffer the loop gave the job (a spare from an earlier answer), so a small
 * answer allocates nothing and the loop frees no block of the thread's.
 *
 * The client pool is created by the first query thread that needs it, not
 * in init: for a mongodb+srv:// URI the driver resolves DNS SRV records
 * while creating the pool, and init must never wait on the network (the
 * worker must come up and serve other routes while MongoDB or DNS is
 * down).  For a plain mongodb:// URI creating the pool does no I/O; the
 * driver connects lazily from its own monitor threads.
 *
 * Large results stream: once a find's rendered answer passes stream_chunk
 * bytes, the buffer so far is handed to the loop as a piece (the job's
 * piece list under st->stream_lock, then ev_async_send on st->stream_async)
 * and rendering goes on in a fresh buffer; the loop begins the answer on
 * the first piece and writes pieces in order (readmongo.c).  The bytes are
 * those of the whole answer, cut in pieces, and max_response_size still
 * counts all of them.  When the loop finds the client gone it sets the
 * job's cancelled flag and the thread stops reading the cursor.
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
    job->body_cap = 0;
    job->status = status;
    if (body) {
        job->body = body;
        job->body_len = (size_t)cd_json_error(body, cap, status, msg);
    }
}

void cd_readmongo__pieces_free(cd_readmongo_piece *p)
{
    while (p) {
        cd_readmongo_piece *next = p->next;
        free(p->data);
        free(p);
        p = next;
    }
}

cd_readmongo_piece *cd_readmongo__take_pieces(cd_readmongo_job *job)
{
    cd_readmongo_state *st = job->st;

    pthread_mutex_lock(&st->stream_lock);
    cd_readmongo_piece *p = job->pieces;
    job->pieces = NULL;
    job->pieces_tail = NULL;
    if (job->in_ready) { /* off the ready list: nothing left to write */
        cd_readmongo_job **j = &st->ready;
        while (*j != job)
            j = &(*j)->next_ready;
        *j = job->next_ready;
        job->in_ready = 0;
    }
    pthread_mutex_unlock(&st->stream_lock);
    return p;
}

cd_readmongo_job *cd_readmongo__next_ready(cd_readmongo_state *st)
{
    pthread_mutex_lock(&st->stream_lock);
    cd_readmongo_job *job = st->ready;
    pthread_mutex_unlock(&st->stream_lock);
    return job;
}

/* Hands out's bytes to the loop as the job's next piece (query thread);
 * out is left empty.  -ENOMEM leaves out as it was. */
static int hand_piece(cd_readmongo_job *job, cd_buf *out)
{
    cd_readmongo_state *st = job->st;
    cd_readmongo_piece *p = malloc(sizeof *p);

    if (!p)
        return -ENOMEM;
    p->next = NULL;
    p->len = out->len;
    p->data = out->p;
    memset(out, 0, sizeof *out);
    job->handed += p->len;
    job->streamed = 1;
    pthread_mutex_lock(&st->stream_lock);
    if (job->pieces_tail)
        *job->pieces_tail = p;
    else
        job->pieces = p;
    job->pieces_tail = &p->next;
    if (!job->in_ready) {
        job->next_ready = st->ready;
        st->ready = job;
        job->in_ready = 1;
    }
    pthread_mutex_unlock(&st->stream_lock);
    ev_async_send(st->svc->loop, &st->stream_async);
    return 0;
}

void cd_readmongo__job_free(cd_readmongo_job *job)
{
    cd_readmongo__pieces_free(job->pieces);
    cd_readmongo__query_free(&job->q);
    free(job->body);
    free(job->buf);
    free(job);
}

/* The client pool, created on first use (see the top of the file).  A
 * failed creation is retried by the next job; NULL with the driver's reason
 * in *berr. */
static mongoc_client_pool_t *get_clients(cd_readmongo_state *st, bson_error_t *berr)
{
    mongoc_client_pool_t *clients;

    pthread_mutex_lock(&st->client_lock);
    if (!st->clients) {
        st->clients = mongoc_client_pool_new_with_error(st->uri, berr);
        if (st->clients) {
            mongoc_client_pool_set_error_api(st->clients, MONGOC_ERROR_API_VERSION_2);
            mongoc_client_pool_max_size(st->clients, (uint32_t)st->conf->threads);
        }
    }
    clients = st->clients;
    pthread_mutex_unlock(&st->client_lock);
    return clients;
}

/* A query thread's own client and collection handles (st->conn_key). */
typedef struct conn {
    mongoc_client_pool_t *clients;
    mongoc_client_t *client;
    size_t ncolls;
    mongoc_collection_t *colls[]; /* by the allowlist's index, made on use */
} conn;

void cd_readmongo__conn_free(void *arg)
{
    conn *c = arg;

    for (size_t i = 0; i < c->ncolls; i++)
        if (c->colls[i])
            mongoc_collection_destroy(c->colls[i]);
    mongoc_client_pool_push(c->clients, c->client);
    free(c);
}

/* This thread's client, popped from the client pool on the thread's first
 * query and kept until the thread ends: the pool has one client per query
 * thread (max_size = threads), so nobody waits for one, and a query costs
 * no pop/push (a lock shared by every thread) and no collection handle
 * made and destroyed (the raw loop's shape, bench/mongoc_loop.c).  NULL
 * only when there is no memory, or no client pool (*berr says why). */
static conn *thread_conn(cd_readmongo_state *st, bson_error_t *berr)
{
    conn *c = pthread_getspecific(st->conn_key);
    mongoc_client_pool_t *clients;

    if (c)
        return c;
    if (!(clients = get_clients(st, berr)))
        return NULL;
    if (!(c = calloc(1, sizeof *c + st->conf->ncollections * sizeof c->colls[0]))) {
        bson_set_error(berr, MONGOC_ERROR_CLIENT, 0, "out of memory");
        return NULL;
    }
    c->clients = clients;
    c->ncolls = st->conf->ncollections;
    c->client = mongoc_client_pool_pop(clients);
    if (pthread_setspecific(st->conn_key, c) != 0) { /* else the next pop would wait forever */
        cd_readmongo__conn_free(c);
        bson_set_error(berr, MONGOC_ERROR_CLIENT, 0, "out of memory");
        return NULL;
    }
    return c;
}

/* The handle of an allowlisted collection, made once per thread; *temp is
 * set when it is not kept (a name off the list, which the checks refuse
 * before a job exists) and the caller destroys it. */
static mongoc_collection_t *collection(cd_readmongo_state *st, conn *c, const char *name, int *temp)
{
    *temp = 0;
    for (size_t i = 0; i < c->ncolls; i++) {
        if (strcmp(st->conf->collections[i], name) == 0) {
            if (!c->colls[i])
                c->colls[i] = mongoc_client_get_collection(c->client, st->conf->database, name);
            return c->colls[i];
        }
    }
    *temp = 1;
    return mongoc_client_get_collection(c->client, st->conf->database, name);
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
 * detail. */
static void job_fail_driver(cd_readmongo_job *job, int status, const char *what,
                            const bson_error_t *berr)
{
    cd_readmongo_state *st = job->st;
    int level = CD_LOG_WARN;

    if (status == 503 || (status == 504 && berr->domain == MONGOC_ERROR_STREAM)) {
        /* An outage is reported when it starts, not by every query during
         * it (those go to the debug level). */
        if (atomic_exchange(&st->unreachable_at, cd_readmongo__now_ms()) != 0)
            level = CD_LOG_DEBUG;
    } else if (status == 400) {
        level = CD_LOG_INFO; /* the client's query, not our trouble */
    }
    cd_log(level, "%s: %s on collection '%s': %s: %s (domain %u, code %u)", st->svc->name, what,
           job->q.coll, failure_reason(status), berr->message, berr->domain, berr->code);
    cd_readmongo__job_fail(job, status, failure_reason(status));
}

/* Appends the cursor's documents, comma-separated, to out, handing out to
 * the loop whenever it passes stream_chunk (finds only: a by-id answer is
 * one document).  Returns the count; sets *truncated when the next
 * document would pass max_response_size (counting what was handed); fails
 * the job and returns -1 on a document it cannot render; stops early when
 * the loop cancelled the job. */
static long long render_docs(cd_readmongo_job *job, mongoc_cursor_t *cur, cd_buf *out,
                             int *truncated)
{
    const bson_t *doc;
    long long n = 0;

    const cd_readmongo_conf *c = job->st->conf;

    while (!atomic_load(&job->cancelled) && mongoc_cursor_next(cur, &doc)) {
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
        if (job->q.kind != CD_RM_GET && (long long)out->len >= c->stream_chunk && !out->oom)
            hand_piece(job, out); /* out of memory: it stays in out, whole */
    }
    return n;
}

/* Whether the job should be answered 503 without trying the database. */
static int refuse_early(cd_readmongo_job *job, long long started)
{
    if (started - job->queued_at_ms > job->st->conf->queue_timeout_ms) {
        cd_readmongo__job_fail(job, 503,
                               "the service is overloaded: the query waited too long for a thread");
        return 1;
    }
    /* A job queued before a query found the database unreachable would only
     * wait out the same timeout again: answer it now.  Jobs queued after
     * that failure still try, so the service notices when it is back. */
    long long down_at = atomic_load(&job->st->unreachable_at);
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

/* Runs the find and renders the answer into job.  out is the caller's. */
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
    if (atomic_exchange(&job->st->unreachable_at, 0) != 0)
        cd_notice("%s: database reachable again", job->st->svc->name);

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
    free(job->body);
    job->body_len = out->len;
    job->body = out->p;
    job->body_cap = out->cap;
    out->p = NULL;
out:
    mongoc_cursor_destroy(cur);
}

void cd_readmongo__run(cd_pool_work *work)
{
    cd_readmongo_job *job = (cd_readmongo_job *)((char *)work - offsetof(cd_readmongo_job, work));
    cd_readmongo_state *st = job->st;
    bson_error_t berr;
    /* The loop's spare buffer, when it gave one: rendered into, it comes
     * back as the body and goes back to the spares (readmongo.c). */
    cd_buf out = {.p = job->buf, .cap = job->buf_cap};
    long long started = cd_readmongo__now_ms();
    conn *c;
    int temp;

    job->buf = NULL;
    job->buf_cap = 0;
    if (refuse_early(job, started) || !(c = thread_conn(st, &berr))) {
        if (!job->body)
            job_fail_driver(job, 503, "creating the client pool", &berr);
        cd_buf_free(&out);
        return;
    }
    mongoc_collection_t *coll = collection(st, c, job->q.coll, &temp);
    find(job, coll, started, &out);
    cd_buf_free(&out);
    if (temp)
        mongoc_collection_destroy(coll);
}

/* A worker that starts while the database is down reports itself degraded
 * (readiness) from the start, not from its first query: one ping, marking
 * the outage and logging it once, as a failed query does.  A success
 * changes nothing (the mark is 0 at start). */
void cd_readmongo__probe(cd_pool_work *work)
{
    cd_readmongo_state *st = (cd_readmongo_state *)((char *)work - offsetof(cd_readmongo_state, probe));
    bson_error_t berr;
    conn *c = thread_conn(st, &berr);
    int status = 503;

    if (c) {
        bson_t ping = BSON_INITIALIZER;
        BSON_APPEND_INT32(&ping, "ping", 1);
        if (mongoc_client_command_simple(c->client, "admin", &ping, NULL, NULL, &berr))
            status = 0;
        else
            status = cd_readmongo__error_status(&berr, 0);
        bson_destroy(&ping);
    }
    if (status == 503 && atomic_exchange(&st->unreachable_at, cd_readmongo__now_ms()) == 0)
        cd_warn("%s: database unreachable at start: %s (domain %u, code %u)", st->svc->name,
                berr.message, berr.domain, berr.code);
}
