/*
 * test_pool.c - unit tests of core/pool.c: work runs on the pool's threads
 * and done on the loop thread, every item is delivered exactly once and in
 * the order one thread finished them, a full queue answers -EAGAIN, and
 * destroy cancels what it did not deliver.  Each test runs its own loop in
 * criterion's test process; no timing thresholds: the loop returns when the
 * pool has nothing out (which the tests rely on), and an unref'd guard
 * timer only turns a hang into a failure.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>

#include "clusterd/pool.h"

typedef struct item {
    cd_pool_work w;
    size_t seq;
    pthread_t work_thread;
    int worked, done, status;
    struct ctx *ctx;
} item;

typedef struct ctx {
    struct ev_loop *loop;
    cd_pool *pool;
    pthread_t loop_thread;
    size_t ndone, next_expected;
    int in_order;        /* 1 thread: done order must be submit order */
    size_t resubmit;     /* items still to submit from done callbacks */
    size_t submitted;
    item **all;          /* every item, to check after the loop */
    sem_t *gate;         /* when set, work waits on it */
    sem_t started;       /* posted when a work begins */
    int free_in_done;
} ctx;

static item *from(cd_pool_work *w)
{
    return (item *)((char *)w - offsetof(item, w));
}

static void work(cd_pool_work *w)
{
    item *it = from(w);

    it->work_thread = pthread_self();
    sem_post(&it->ctx->started);
    if (it->ctx->gate)
        sem_wait(it->ctx->gate);
    it->worked++;
}

static int submit_one(ctx *c);

static void done(cd_pool_work *w, int status)
{
    item *it = from(w);
    ctx *c = it->ctx;

    cr_assert(pthread_equal(pthread_self(), c->loop_thread), "done ran off the loop thread");
    it->done++;
    it->status = status;
    if (c->in_order && status == 0) {
        cr_assert_eq(it->seq, c->next_expected, "item %zu delivered out of order", it->seq);
        c->next_expected++;
    }
    c->ndone++;
    if (c->resubmit) {
        c->resubmit--;
        cr_assert_eq(submit_one(c), 0);
    }
    if (c->free_in_done)
        free(it);
}

static int submit_one(ctx *c)
{
    item *it = calloc(1, sizeof *it);

    cr_assert_not_null(it);
    it->ctx = c;
    it->seq = c->submitted;
    int rc = cd_pool_submit(c->pool, &it->w, work, done);
    if (rc < 0) {
        free(it);
        return rc;
    }
    if (c->all)
        c->all[c->submitted] = it;
    c->submitted++;
    return 0;
}

static void guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    cr_assert_fail("the loop was still running after 60 s: the pool kept it alive or hung");
}

static void setup(ctx *c, size_t threads, size_t queue_max)
{
    c->loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(c->loop);
    c->loop_thread = pthread_self();
    sem_init(&c->started, 0, 0);
    cr_assert_eq(cd_pool_new(c->loop, threads, queue_max, &c->pool), 0);
}

/* Runs the loop until nothing keeps it alive (the pool, once all is done). */
static void run(ctx *c)
{
    ev_timer guard;

    ev_timer_init(&guard, guard_cb, 60., 0.);
    ev_timer_start(c->loop, &guard);
    ev_unref(c->loop);
    ev_run(c->loop, 0);
    ev_ref(c->loop);
    ev_timer_stop(c->loop, &guard);
}

static void teardown(ctx *c)
{
    cd_pool_destroy(c->pool);
    sem_destroy(&c->started);
    ev_loop_destroy(c->loop);
}

Test(pool, work_runs_on_a_pool_thread_and_done_on_the_loop_thread)
{
    ctx c = {0};
    item *all[8];

    c.all = all;
    setup(&c, 2, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(submit_one(&c), 0);
    cr_assert_eq(cd_pool_outstanding(c.pool), 8);
    run(&c);
    cr_assert_eq(c.ndone, 8);
    cr_assert_eq(cd_pool_outstanding(c.pool), 0);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(all[i]->worked, 1);
        cr_assert_eq(all[i]->done, 1);
        cr_assert_eq(all[i]->status, 0);
        cr_assert(!pthread_equal(all[i]->work_thread, c.loop_thread), "work ran on the loop thread");
        free(all[i]);
    }
    teardown(&c);
}

Test(pool, one_thread_delivers_every_item_once_in_submit_order)
{
    ctx c = {0};
    enum { total = 20000, bound = 16 };

    c.in_order = 1;
    c.free_in_done = 1;
    setup(&c, 1, bound);
    /* Fill the queue, then keep it topped up from the done callbacks. */
    while (c.submitted < bound && submit_one(&c) == 0)
        ;
    c.resubmit = total - c.submitted;
    run(&c);
    cr_assert_eq(c.submitted, total);
    cr_assert_eq(c.ndone, total);
    cr_assert_eq(c.next_expected, total);
    teardown(&c);
}

Test(pool, many_threads_deliver_every_item_exactly_once)
{
    ctx c = {0};
    enum { total = 5000 };
    item **all = calloc(total, sizeof *all);

    c.all = all;
    setup(&c, 4, 64);
    while (c.submitted < 64)
        cr_assert_eq(submit_one(&c), 0);
    c.resubmit = total - c.submitted;
    run(&c);
    cr_assert_eq(c.ndone, total);
    for (size_t i = 0; i < total; i++) {
        cr_assert_eq(all[i]->worked, 1, "item %zu worked %d times", i, all[i]->worked);
        cr_assert_eq(all[i]->done, 1, "item %zu done %d times", i, all[i]->done);
        free(all[i]);
    }
    free(all);
    teardown(&c);
}

Test(pool, a_full_queue_answers_eagain_and_drains_afterwards)
{
    ctx c = {0};
    sem_t gate;

    sem_init(&gate, 0, 0);
    c.gate = &gate;
    c.free_in_done = 1;
    setup(&c, 1, 3);
    /* One item in the thread's hands (it waits at the gate), three queued. */
    cr_assert_eq(submit_one(&c), 0);
    cd_pool_flush(c.pool);
    sem_wait(&c.started);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(submit_one(&c), 0);
    cr_assert_eq(submit_one(&c), -EAGAIN);
    cr_assert_eq(submit_one(&c), -EAGAIN);
    cr_assert_eq(cd_pool_outstanding(c.pool), 4);
    for (int i = 0; i < 4; i++)
        sem_post(&gate);
    run(&c);
    cr_assert_eq(c.ndone, 4, "a refused item was delivered, or an accepted one lost");
    teardown(&c);
    sem_destroy(&gate);
}

Test(pool, destroy_cancels_every_item_not_delivered)
{
    ctx c = {0};
    sem_t gate;
    item *all[7];

    sem_init(&gate, 0, 0);
    c.gate = &gate;
    c.all = all;
    setup(&c, 1, 6);
    cr_assert_eq(submit_one(&c), 0);
    cd_pool_flush(c.pool);
    sem_wait(&c.started); /* the first is in hand */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(submit_one(&c), 0);
    cd_pool_flush(c.pool); /* two queued, two never handed over */
    for (int i = 0; i < 2; i++)
        cr_assert_eq(submit_one(&c), 0);
    /* Let every item through: whichever the thread runs before it sees the
     * shutdown, none is delivered, since the loop does not run again. */
    for (int i = 0; i < 7; i++)
        sem_post(&gate);
    cd_pool_destroy(c.pool);
    cr_assert_eq(c.ndone, 7);
    cr_assert_eq(all[0]->worked, 1, "the item in hand was not finished");
    for (int i = 5; i < 7; i++)
        cr_assert_eq(all[i]->worked, 0, "an item never handed over was worked");
    for (int i = 0; i < 7; i++) {
        cr_assert_eq(all[i]->done, 1);
        cr_assert_eq(all[i]->status, -ECANCELED);
        cr_assert_leq(all[i]->worked, 1);
        free(all[i]);
    }
    /* The loop is left as it was: nothing keeps it alive. */
    c.pool = NULL;
    run(&c);
    teardown(&c);
    sem_destroy(&gate);
}

Test(pool, an_idle_pool_does_not_keep_the_loop_alive)
{
    ctx c = {0};

    setup(&c, 3, 1);
    run(&c); /* returns at once */
    cr_assert_eq(c.ndone, 0);
    /* Nor does it leave the loop's count of references off once gone. */
    cd_pool_destroy(c.pool);
    c.pool = NULL;
    run(&c);
    teardown(&c);
}

/* Items submitted in one loop iteration reach the threads together: one
 * batch, at most one thread woken by the loop, however many items; the
 * other threads are woken by the first (a chain) or find the work queued. */
Test(pool, a_burst_is_handed_over_in_one_batch_with_one_wakeup_from_the_loop)
{
    ctx c = {0};
    cd_pool_counts n;
    enum { burst = 32 };

    c.free_in_done = 1;
    setup(&c, 4, burst);
    for (int i = 0; i < burst; i++)
        cr_assert_eq(submit_one(&c), 0);
    cd_pool_get_counts(c.pool, &n);
    cr_assert_eq(n.batches, 0, "handed over before the loop ran");
    run(&c);
    cr_assert_eq(c.ndone, burst);
    cd_pool_get_counts(c.pool, &n);
    cr_assert_eq(n.submitted, burst);
    cr_assert_eq(n.batches, 1);
    cr_assert_leq(n.loop_wakeups, 1);
    cr_assert_leq(n.chain_wakeups, 3, "more threads woken than the pool has");
    /* Completions: one ev_async send each time the done list was empty. */
    cr_assert_leq(n.done_wakeups, burst);
    cr_assert_geq(n.done_batches, 1);
    teardown(&c);
}

/* Items submitted from done callbacks (the steady state of a service) go in
 * one batch per loop iteration, never one lock and wake-up each. */
Test(pool, items_submitted_from_done_callbacks_are_batched_per_iteration)
{
    ctx c = {0};
    cd_pool_counts n;
    enum { total = 4000 };

    c.free_in_done = 1;
    setup(&c, 2, 64);
    while (c.submitted < 64)
        cr_assert_eq(submit_one(&c), 0);
    c.resubmit = total - c.submitted;
    run(&c);
    cr_assert_eq(c.ndone, total);
    cd_pool_get_counts(c.pool, &n);
    cr_assert_eq(n.submitted, total);
    cr_assert_leq(n.batches, n.done_batches + 1, "more than one batch per loop iteration");
    cr_assert_leq(n.loop_wakeups, n.batches);
    teardown(&c);
}
