/*
 * exec.h - the readmongo service's per-worker state and its jobs, shared by
 * readmongo.c (the loop thread: checks, queues and answers) and exec.c (the
 * query threads: runs a job against MongoDB and renders its answer).  Worker
 * process only; unlike readmongo.h, this touches the driver and threads.
 */
#ifndef CD_READMONGO_EXEC_H
#define CD_READMONGO_EXEC_H

#include <ev.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "clusterd/pool.h"
#include "clusterd/service.h"
#include "services/readmongo/readmongo.h"

/* One query on its way: checked on the loop thread, run by a query thread
 * (clusterd/pool.h), answered back on the loop thread. */
typedef struct cd_readmongo_job {
    cd_pool_work work;
    struct cd_readmongo_state *st;
    cd_request *req;      /* loop thread only */
    cd_readmongo_query q; /* checked on the loop thread, read-only after */
    long long queued_at_ms;
    /* The result, written by the query thread.  When the job streamed,
     * body is the rest of the answer after the pieces (see exec.c). */
    int status;
    char *body; /* malloc'd JSON */
    size_t body_len;
    size_t body_cap; /* body's size when it is a rendering buffer, else 0 */
    /* A buffer kept from an earlier answer (st->spare), for the query
     * thread to render into: no allocation per answer, and no free of a
     * thread's block on the loop (see readmongo.c).  NULL when none. */
    char *buf;
    size_t buf_cap;
    /* Streaming: pieces handed to the loop, under st->stream_lock. */
    struct cd_readmongo_piece *pieces, **pieces_tail;
    struct cd_readmongo_job *next_ready; /* in st->ready: has pieces */
    int in_ready;
    int streamed;        /* query thread: a piece was handed over */
    size_t handed;       /* query thread: bytes handed over */
    int begun;           /* loop thread: the stream has begun */
    atomic_int cancelled; /* set by the loop: the client is gone */
} cd_readmongo_job;

/* A rendered piece of a streamed answer, on its way to the loop. */
typedef struct cd_readmongo_piece {
    struct cd_readmongo_piece *next;
    size_t len;
    char *data;
} cd_readmongo_piece;

/* A readmongo service in one worker, built by init. */
typedef struct cd_readmongo_state {
    cd_service *svc;
    const cd_readmongo_conf *conf;
    mongoc_uri_t *uri; /* the config's URI with our timeouts applied */
    cd_pool *pool;     /* the query threads */

    pthread_mutex_t client_lock; /* only the query threads take it */
    mongoc_client_pool_t *clients; /* created on first use: see exec.c */

    /* When the last query (or the check at start) failed to reach the
     * database (monotonic ms), or 0 when it succeeded. */
    atomic_llong unreachable_at;
    cd_pool_work probe; /* the check at start (cd_readmongo__probe) */

    /* Rendering buffers of answered jobs, for the next jobs (loop thread
     * only; at most conf->threads, each at most CD_RM_SPARE_MAX bytes). */
    char **spare;
    size_t *spare_cap;
    size_t nspare;

    /* Each query thread's own client, popped once and kept, and its
     * collection handles (exec.c, thread_conn); given back when the thread
     * ends (the key's destructor). */
    pthread_key_t conn_key;
    int conn_key_made;

    /* Streamed answers: jobs with pieces for the loop, and the watcher
     * the query threads wake it with. */
    pthread_mutex_t stream_lock;
    cd_readmongo_job *ready;
    ev_async stream_async;
    int stream_started;
} cd_readmongo_state;

/* The pool's work function: runs job (a cd_pool_work inside a
 * cd_readmongo_job) and leaves its status and body in it.  Query threads. */
void cd_readmongo__run(cd_pool_work *work);
/* The pool's work function for st->probe, submitted once by init: pings the
 * database so that degraded() names an outage before any query has met it.
 * Query threads. */
void cd_readmongo__probe(cd_pool_work *work);

/* Takes the job's pending pieces (loop thread; any pieces handed since are
 * taken by the next call).  The caller frees them with
 * cd_readmongo__pieces_free. */
cd_readmongo_piece *cd_readmongo__take_pieces(cd_readmongo_job *job);
/* Takes one job with pending pieces off st's ready list, or NULL. */
cd_readmongo_job *cd_readmongo__next_ready(cd_readmongo_state *st);
void cd_readmongo__pieces_free(cd_readmongo_piece *p);

/* Rendering buffers kept for reuse: made this big, kept up to this big. */
#define CD_RM_SPARE_INITIAL 4096
#define CD_RM_SPARE_MAX 16384

/* The destructor of st->conn_key: gives a query thread's client back to the
 * client pool when the thread ends (any thread). */
void cd_readmongo__conn_free(void *conn);

/* Sets the job's answer to the error body for status and msg. */
void cd_readmongo__job_fail(cd_readmongo_job *job, int status, const char *msg);

/* Frees the job and what it holds (not its request). */
void cd_readmongo__job_free(cd_readmongo_job *job);

/* Monotonic milliseconds. */
long long cd_readmongo__now_ms(void);

/* mongoc's log lines go through ours (installed by init; conf_check puts it
 * back after silencing the driver).  Any thread. */
void cd_readmongo__log_cb(mongoc_log_level_t level, const char *domain, const char *message,
                          void *data);

#endif
