/*
 * clusterd/pool.h - a bounded thread pool owned by one libev loop (public,
 * installed; worker process, or any process that runs a loop).
 *
 * The shape of libuv's uv_queue_work and of redis's bio.c: the loop thread
 * submits an item with two functions, `work` runs on one of the pool's
 * threads, then `done` runs back on the loop thread.  Completions reach the
 * loop through one ev_async per pool, so a burst of finished items costs
 * one wake-up.  Submission is batched the same way: the items submitted
 * during one loop iteration are handed to the threads together, just
 * before the loop blocks again (one lock, at most one thread woken by the
 * loop; see pool.c).  The queue of items waiting for a thread is bounded: a
 * full queue is an answer (-EAGAIN), never a wait, so the caller can refuse
 * at once (readmongo answers 503).
 *
 * The item is the caller's: embed a cd_pool_work in your own struct and get
 * back to it with offsetof (as uv_work_t is used).  The pool allocates
 * nothing per item and knows nothing of what the work does.
 *
 * Threads: the pool's threads start with every signal blocked (signals
 * belong to the loop thread).  While items are out (submitted, their done
 * not yet run) the pool keeps the loop alive; idle, it does not.
 *
 * Everything below is called on the loop thread only, except that `work`
 * runs on a pool thread.
 *
 * A service makes its pool in init (on svc->loop, sized by its own keys),
 * submits from handle, answers the request from done (status 0), and
 * destroys the pool in destroy; the items destroy cancels get
 * done(w, -ECANCELED), where the service drops their requests
 * (cd_request_drop) instead of answering them.  readmongo does exactly this.
 */
#ifndef CLUSTERD_POOL_H
#define CLUSTERD_POOL_H

#include <stddef.h>

struct ev_loop;
typedef struct cd_pool cd_pool;
typedef struct cd_pool_work cd_pool_work;

/* Runs on a pool thread, several at once for different items: it may block
 * (that is what the pool is for) but must not touch the loop. */
typedef void (*cd_pool_work_fn)(cd_pool_work *w);

/* Runs on the loop thread once per submitted item, last thing the pool does
 * with it (the item may be freed here).  status is 0 when work ran and its
 * result is delivered through the loop, or -ECANCELED when cd_pool_destroy
 * ends the item: work may or may not have run, and the loop is not running,
 * so done must not touch anything the loop owned (a request, a watcher). */
typedef void (*cd_pool_done_fn)(cd_pool_work *w, int status);

struct cd_pool_work {
    cd_pool_work_fn work;
    cd_pool_done_fn done;
    cd_pool_work *next_; /* the pool's */
};

/* Starts `threads` threads (at least 1) and an ev_async on loop.  At most
 * queue_max items wait for a thread (at least 1).  Returns 0 with *out, or
 * -ENOMEM, or the negated error of pthread_create (nothing is left
 * running). */
int cd_pool_new(struct ev_loop *loop, size_t threads, size_t queue_max, cd_pool **out);

/* Queues w: work(w) will run on a pool thread, then done(w, 0) on the loop
 * thread.  Returns 0, or -EAGAIN when queue_max items are already waiting
 * (w is untouched and done will not be called).  w reaches the threads at
 * the end of this loop iteration (an ev_prepare), or at cd_pool_flush. */
int cd_pool_submit(cd_pool *p, cd_pool_work *w, cd_pool_work_fn work, cd_pool_done_fn done);

/* Hands the items submitted since the last flush to the threads now (the
 * pool does it itself before the loop blocks; call it only when the loop is
 * not running and a thread must start on them, e.g. in a test). */
void cd_pool_flush(cd_pool *p);

/* Items submitted whose done has not run yet. */
size_t cd_pool_outstanding(const cd_pool *p);

/* What the handoff cost so far: for tests and for measuring (issue 13). */
typedef struct cd_pool_counts {
    unsigned long long submitted;     /* items accepted by cd_pool_submit */
    unsigned long long batches;       /* flushes that handed items over */
    unsigned long long loop_wakeups;  /* threads woken by the loop thread */
    unsigned long long chain_wakeups; /* threads woken by a pool thread */
    unsigned long long done_wakeups;  /* ev_async sends for completions */
    unsigned long long done_batches;  /* runs of the loop's completion callback */
} cd_pool_counts;
void cd_pool_get_counts(cd_pool *p, cd_pool_counts *out);

/* Ends the pool; the loop must still exist but is not run.  The threads
 * finish the item in hand and are joined; then every item not delivered
 * (still queued, or finished but its done not yet run) gets
 * done(w, -ECANCELED) here.  Must not be called from a done callback. */
void cd_pool_destroy(cd_pool *p);

#endif
