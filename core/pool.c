/*
 * pool.c - see clusterd/pool.h.  Worker process (or any process running a
 * loop): the loop thread and the pool's threads.
 *
 * The handoff between the loop and the threads is where a blocking driver
 * costs most (issue 13: about three context switches per readmongo request,
 * a quarter of the worker's time in finish_task_switch), so it is done in
 * batches on both sides:
 *
 * - Submission: cd_pool_submit only appends to the loop's own pending list
 *   (no lock).  Before the loop blocks again (an ev_prepare, active only
 *   while something is pending) cd_pool_flush moves the whole list onto the
 *   shared queue under one lock and wakes at most one sleeping thread: one
 *   futex call per loop iteration, none when every thread is busy (a busy
 *   thread takes the next item itself when it finishes).  An ev_prepare
 *   rather than an ev_idle: it runs right before the loop would block, so
 *   no extra zero-timeout poll; the price is that an item submitted from
 *   another ev_prepare callback that runs after this one waits for the
 *   loop's next wake-up (nothing does that today; call cd_pool_flush there).
 * - Threads: a thread that takes an item and still sees items queued wakes
 *   one more sleeping thread (a chain, so a burst still runs in parallel on
 *   the database, and the loop never pays for it); a thread that finishes
 *   an item appends it to the done list and takes the next queued item under
 *   the same lock, and only sleeps when the queue is empty.  Fewer threads
 *   than concurrent items is the cheap case: nobody sleeps between items.
 * - Completion: the thread that makes the done list non-empty sends the
 *   ev_async (one eventfd write at most per loop wake-up, fewer when libev
 *   sees its own pipe already pending); the loop's callback takes the whole
 *   list under one lock and runs the done functions in finishing order.
 *
 * "Sleeping" and "being woken" are counted (idle, waking) under the lock,
 * so a signal is only sent when a thread is asleep and not already being
 * woken.  waking never counts more than the signals really in flight (a
 * thread that wakes, for any reason, takes one off), so no item is left
 * queued with every thread asleep.
 *
 * The ev_async is sent under the lock and only before shutdown, so once
 * cd_pool_destroy has set shutdown under the same lock no thread touches
 * the loop again.  Loop liveness: the ev_async and the ev_prepare are
 * unref'd; the first outstanding item takes a reference and the last done
 * gives it back (outstanding is the loop thread's own count, no lock).
 */
#include "clusterd/pool.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

struct cd_pool {
    struct ev_loop *loop;
    ev_async async;           /* loop thread: completions */
    ev_prepare flush;         /* loop thread: active while pending */
    size_t outstanding;       /* loop thread only */
    size_t queue_max;
    cd_pool_work *pend_head, *pend_tail; /* loop thread only: not flushed */
    size_t npending;
    cd_pool_counts counts;    /* loop thread's fields; threads' under lock */

    pthread_mutex_t lock;     /* everything below */
    pthread_cond_t cond;
    cd_pool_work *head, *tail; /* waiting for a thread */
    atomic_size_t queued;     /* written under lock, read by submit */
    cd_pool_work *done_head, *done_tail; /* finished, done not yet run */
    size_t idle;              /* threads asleep on cond */
    size_t waking;            /* signals sent and not yet taken */
    int shutdown;

    pthread_t *threads;
    size_t nthreads;
};

/* Wakes one sleeping thread unless every sleeper is being woken already.
 * Under the lock; returns whether a signal went out. */
static int wake_one(cd_pool *p)
{
    if (p->idle <= p->waking)
        return 0;
    p->waking++;
    pthread_cond_signal(&p->cond);
    return 1;
}

/* Takes the head of the queue (under the lock; the queue is not empty). */
static cd_pool_work *take(cd_pool *p)
{
    cd_pool_work *w = p->head;

    p->head = w->next_;
    if (!p->head)
        p->tail = NULL;
    atomic_store_explicit(&p->queued, atomic_load_explicit(&p->queued, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    if (p->head && wake_one(p)) /* more waiting: the next sleeper helps */
        p->counts.chain_wakeups++;
    return w;
}

static void *pool_thread(void *arg)
{
    cd_pool *p = arg;
    cd_pool_work *w = NULL;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (w) { /* the one just worked: to the done list, loop woken once */
            w->next_ = NULL;
            if (p->done_tail) {
                p->done_tail->next_ = w;
            } else {
                p->done_head = w;
                if (!p->shutdown) {
                    ev_async_send(p->loop, &p->async);
                    p->counts.done_wakeups++;
                }
            }
            p->done_tail = w;
            w = NULL;
        }
        while (!p->head && !p->shutdown) {
            p->idle++;
            pthread_cond_wait(&p->cond, &p->lock);
            p->idle--;
            if (p->waking)
                p->waking--;
        }
        /* At shutdown, items still queued are cancelled by destroy. */
        if (p->shutdown)
            break;
        w = take(p);
        pthread_mutex_unlock(&p->lock);

        w->work(w);

        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    cd_pool *p = (cd_pool *)((char *)a - offsetof(cd_pool, async));
    cd_pool_work *list;

    (void)revents;
    pthread_mutex_lock(&p->lock);
    list = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);

    p->counts.done_batches++;
    while (list) {
        cd_pool_work *w = list;
        list = w->next_;
        /* Before done, which may free w or submit again. */
        if (--p->outstanding == 0)
            ev_unref(loop);
        w->done(w, 0);
    }
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *pr, int revents)
{
    (void)loop;
    (void)revents;
    cd_pool_flush((cd_pool *)((char *)pr - offsetof(cd_pool, flush)));
}

void cd_pool_flush(cd_pool *p)
{
    if (!p->pend_head)
        return;
    ev_ref(p->loop); /* the prepare was unref'd when started */
    ev_prepare_stop(p->loop, &p->flush);
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next_ = p->pend_head;
    else
        p->head = p->pend_head;
    p->tail = p->pend_tail;
    atomic_store_explicit(&p->queued,
                          atomic_load_explicit(&p->queued, memory_order_relaxed) + p->npending,
                          memory_order_relaxed);
    if (wake_one(p))
        p->counts.loop_wakeups++;
    pthread_mutex_unlock(&p->lock);
    p->pend_head = p->pend_tail = NULL;
    p->npending = 0;
    p->counts.batches++;
}

/* Tells the first n threads to stop and joins them. */
static void join_threads(cd_pool *p, size_t n)
{
    pthread_mutex_lock(&p->lock);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
}

static void pool_free(cd_pool *p)
{
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p);
}

int cd_pool_new(struct ev_loop *loop, size_t threads, size_t queue_max, cd_pool **out)
{
    cd_pool *p = calloc(1, sizeof *p);
    sigset_t all, old;
    size_t started = 0;
    int rc = 0;

    if (!p)
        return -ENOMEM;
    p->loop = loop;
    p->nthreads = threads ? threads : 1;
    p->queue_max = queue_max ? queue_max : 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (!(p->threads = calloc(p->nthreads, sizeof *p->threads))) {
        pool_free(p);
        return -ENOMEM;
    }
    ev_async_init(&p->async, async_cb);
    ev_async_start(loop, &p->async);
    ev_unref(loop); /* idle, it must not keep the loop alive */
    ev_prepare_init(&p->flush, prepare_cb);

    /* Signals belong to the loop thread; the pool's threads (and any
     * threads they start) inherit a full mask. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; started < p->nthreads; started++) {
        rc = pthread_create(&p->threads[started], NULL, pool_thread, p);
        if (rc != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < p->nthreads) {
        join_threads(p, started);
        ev_ref(loop);
        ev_async_stop(loop, &p->async);
        pool_free(p);
        return -rc;
    }
    *out = p;
    return 0;
}

int cd_pool_submit(cd_pool *p, cd_pool_work *w, cd_pool_work_fn work, cd_pool_done_fn done)
{
    if (atomic_load_explicit(&p->queued, memory_order_relaxed) + p->npending >= p->queue_max)
        return -EAGAIN;
    w->work = work;
    w->done = done;
    w->next_ = NULL;
    if (p->pend_tail) {
        p->pend_tail->next_ = w;
    } else {
        p->pend_head = w;
        ev_prepare_start(p->loop, &p->flush);
        ev_unref(p->loop); /* outstanding keeps the loop alive, not this */
    }
    p->pend_tail = w;
    p->npending++;
    p->counts.submitted++;
    if (p->outstanding++ == 0)
        ev_ref(p->loop);
    return 0;
}

size_t cd_pool_outstanding(const cd_pool *p)
{
    return p->outstanding;
}

void cd_pool_get_counts(cd_pool *p, cd_pool_counts *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->counts;
    pthread_mutex_unlock(&p->lock);
}

void cd_pool_destroy(cd_pool *p)
{
    if (!p)
        return;
    join_threads(p, p->nthreads);
    if (p->pend_head) {
        ev_ref(p->loop);
        ev_prepare_stop(p->loop, &p->flush);
    }
    /* The threads are gone: no lock needed.  Finished items first, then
     * the ones no thread took, then the ones never handed over: submission
     * order within each. */
    cd_pool_work *lists[3] = {p->done_head, p->head, p->pend_head};
    for (int i = 0; i < 3; i++) {
        while (lists[i]) {
            cd_pool_work *w = lists[i];
            lists[i] = w->next_;
            w->done(w, -ECANCELED);
        }
    }
    if (p->outstanding == 0)
        ev_ref(p->loop); /* undo the idle unref before stopping */
    ev_async_stop(p->loop, &p->async);
    pool_free(p);
}
