/*
 * exec.h - the readmongo service's per-worker state and its jobs, shared by
 * readmongo.c (handle: checks a request and queues its job) and exec.c (the
 * query fibers: run a job against MongoDB and answer it) and stream.c (the
 * driver's sockets on the loop).  Worker process, loop thread only; unlike
 * readmongo.h, this touches the driver and the loop.
 */
#ifndef CD_READMONGO_EXEC_H
#define CD_READMONGO_EXEC_H

#include <ev.h>
#include <mongoc/mongoc.h>

#include "clusterd/buf.h"
#include "clusterd/fiber.h"
#include "clusterd/service.h"
#include "services/readmongo/readmongo.h"

/* One query on its way: checked by handle, queued, run and answered by a
 * query fiber (exec.c). */
typedef struct cd_readmongo_job {
    struct cd_readmongo_job *next; /* in st's queue */
    struct cd_readmongo_state *st;
    cd_request *req;      /* NULL for the check at start */
    cd_readmongo_query q;
    long long queued_at_ms;
    /* An answer given whole: status and body (an error's, from job_fail). */
    int status;
    char *body;
    size_t body_len;
    /* A streamed answer: bytes written so far, whether it has begun, and
     * whether the client is gone (a write failed). */
    size_t handed;
    int begun;
    int cancelled;
} cd_readmongo_job;

/* A query fiber: its own driver client (single-threaded, its sockets
 * stream.c's), the collection handles it made, and the buffer it renders
 * answers into, kept from one answer to the next. */
typedef struct cd_readmongo_fiber {
    struct cd_readmongo_state *st;
    cd_fiber *f;
    mongoc_client_t *client; /* made on the fiber's first job */
    mongoc_collection_t **colls; /* by the allowlist's index, made on use */
    cd_buf out;
    cd_readmongo_job *job; /* in hand, or NULL */
    int parked;            /* waiting in cd_fiber_yield for a job */
} cd_readmongo_fiber;

/* A readmongo service in one worker, built by init. */
typedef struct cd_readmongo_state {
    cd_service *svc;
    const cd_readmongo_conf *conf;
    mongoc_uri_t *uri; /* the config's URI with our timeouts applied */

    cd_readmongo_fiber *fibers; /* conf->concurrency of them */
    size_t nfibers;
    /* Jobs waiting for a fiber, oldest first; at most conf->queue_size. */
    cd_readmongo_job *head, *tail;
    size_t queued;
    size_t busy;     /* fibers with a job in hand */
    ev_prepare kick; /* hands queued jobs to parked fibers (exec.c) */
    int closing;     /* destroy: fibers finish and end */

    /* When the last query (or the check at start) failed to reach the
     * database (monotonic ms), or 0 when it succeeded. */
    long long unreachable_at;
} cd_readmongo_state;

/* fibers.c.  Makes the query fibers and queues the check at start (a ping, so that
 * degraded() names an outage before any query has met it).  0 or -ENOMEM. */
int cd_readmongo__fibers_start(cd_readmongo_state *st);
/* Queues job for a fiber: 0, or -EAGAIN when queue_size jobs wait already
 * (the caller answers 503 and frees the job). */
int cd_readmongo__submit(cd_readmongo_state *st, cd_readmongo_job *job);
/* Jobs queued or in a fiber's hands. */
size_t cd_readmongo__outstanding(const cd_readmongo_state *st);
/* Ends every fiber: jobs still out fail at once and their requests are
 * dropped (destroy: the loop no longer runs). */
void cd_readmongo__fibers_stop(cd_readmongo_state *st);

/* exec.c: runs job on fb (its client made on the first) and answers its
 * request; and what a fiber made, released when it ends. */
void cd_readmongo__run_job(cd_readmongo_fiber *fb, cd_readmongo_job *job);
void cd_readmongo__fiber_release(cd_readmongo_fiber *fb);

/* stream.c: the driver's sockets, waiting on the loop (for
 * mongoc_client_set_stream_initiator). */
mongoc_stream_t *cd_readmongo__stream_initiator(const mongoc_uri_t *uri,
                                                const mongoc_host_list_t *host, void *user_data,
                                                bson_error_t *error);

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
