/*
 * pool.c - see pool.h.
 *
 * One mutex guards the queue, the done list and the shutdown flag; the
 * threads sleep on one condition variable.  A thread takes the head of the
 * queue, runs it unlocked, appends it to the done list and sends the
 * ev_async; the loop's callback takes the whole done list at once and runs
 * the done functions in the order the items finished.  The ev_async is sent
 * under the lock and only before shutdown, so once cd_pool_destroy has set
 * shutdown under the same lock no thread touches the loop again.
 *
 * Loop liveness: the ev_async is unref'd while the pool is idle; the first
 * outstanding item takes a reference and the last done gives it back
 * (outstanding is the loop thread's own count, no lock).
 */
#include "clusterd/pool.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

struct cd_pool {
    struct ev_loop *loop;
    ev_async async;           /* loop thread: completions */
    size_t outstanding;       /* loop thread only */
    size_t queue_max;

    pthread_mutex_t lock;     /* everything below */
    pthread_cond_t cond;
    cd_pool_work *head, *tail; /* waiting for a thread */
    size_t queued;
    cd_pool_work *done_head, *done_tail; /* finished, done not yet run */
    int shutdown;

    pthread_t *threads;
    size_t nthreads;
};

static void list_append(cd_pool_work **head, cd_pool_work **tail, cd_pool_work *w)
{
    w->next_ = NULL;
    if (*tail)
        (*tail)->next_ = w;
    else
        *head = w;
    *tail = w;
}

static void *pool_thread(void *arg)
{
    cd_pool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->shutdown)
            pthread_cond_wait(&p->cond, &p->lock);
        /* At shutdown, items still queued are cancelled by destroy. */
        if (p->shutdown)
            break;
        cd_pool_work *w = p->head;
        p->head = w->next_;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);

        w->work(w);

        pthread_mutex_lock(&p->lock);
        list_append(&p->done_head, &p->done_tail, w);
        if (!p->shutdown)
            ev_async_send(p->loop, &p->async);
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

    while (list) {
        cd_pool_work *w = list;
        list = w->next_;
        /* Before done, which may free w or submit again. */
        if (--p->outstanding == 0)
            ev_unref(loop);
        w->done(w, 0);
    }
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
    pthread_mutex_lock(&p->lock);
    if (p->queued >= p->queue_max) {
        pthread_mutex_unlock(&p->lock);
        return -EAGAIN;
    }
    w->work = work;
    w->done = done;
    list_append(&p->head, &p->tail, w);
    p->queued++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->outstanding++ == 0)
        ev_ref(p->loop);
    return 0;
}

size_t cd_pool_outstanding(const cd_pool *p)
{
    return p->outstanding;
}

void cd_pool_destroy(cd_pool *p)
{
    if (!p)
        return;
    join_threads(p, p->nthreads);
    /* The threads are gone: no lock needed.  Finished items first, then
     * the ones no thread took. */
    cd_pool_work *lists[2] = {p->done_head, p->head};
    for (int i = 0; i < 2; i++) {
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
