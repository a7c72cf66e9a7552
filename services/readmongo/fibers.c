/*
 * fibers.c - the readmongo service's query fibers and their queue (worker
 * process, loop thread).
 *
 * Each worker has `concurrency` fibers (clusterd/fiber.h); a fiber takes a
 * job, runs and answers it (exec.c), takes the next, and parks in
 * cd_fiber_yield while none waits.  handle() queues a job (readmongo.c);
 * an ev_prepare, just before the loop next blocks, resumes parked fibers
 * while jobs wait (never handle itself: it may run on a fiber's stack, when
 * a fiber's answer makes the HTTP layer dispatch the next pipelined
 * request), and a fiber that finishes a job takes the next queued one
 * without parking.  The queue is bounded: queue_size jobs beyond those the
 * parked fibers are about to take; a full queue answers 503 at once.
 *
 * A stop (destroy, the loop no longer running) drops the queued jobs'
 * requests and cancels each fiber's waits (cd_fiber_cancel): the driver
 * fails at once, the job in hand is dropped, and the fiber ends.
 */
#include "services/readmongo/exec.h"

#include <errno.h>
#include <stdlib.h>

#include "clusterd/log.h"

static cd_readmongo_job *dequeue(cd_readmongo_state *st)
{
    cd_readmongo_job *job = st->head;

    if (job) {
        if (!(st->head = job->next))
            st->tail = NULL;
        job->next = NULL;
        st->queued--;
    }
    return job;
}

/* A query fiber's life: take a job, run and answer it, take the next; park
 * (cd_fiber_yield) while none waits; end once the service is closing. */
static void fiber_main(void *arg)
{
    cd_readmongo_fiber *fb = arg;
    cd_readmongo_state *st = fb->st;

    fb->parked = 0; /* started by kick_cb: running, and soon waiting on I/O */
    for (;;) {
        cd_readmongo_job *job = dequeue(st);
        if (!job) {
            if (st->closing)
                break;
            fb->parked = 1;
            cd_fiber_yield();
            fb->parked = 0;
            continue;
        }
        fb->job = job;
        st->busy++;
        cd_readmongo__run_job(fb, job);
        st->busy--;
        fb->job = NULL;
        cd_readmongo__job_free(job);
    }
    /* The client's last words (endSessions) are cut short: the stop
     * cancelled the fiber's waits. */
    cd_readmongo__fiber_release(fb);
}

/* Just before the loop blocks: parked fibers take the queued jobs. */
static void kick_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    cd_readmongo_state *st = (cd_readmongo_state *)((char *)w - offsetof(cd_readmongo_state, kick));

    (void)revents;
    for (size_t i = 0; i < st->nfibers && st->head; i++)
        if (st->fibers[i].parked)
            cd_fiber_resume(st->fibers[i].f);
    ev_prepare_stop(loop, w);
}

int cd_readmongo__submit(cd_readmongo_state *st, cd_readmongo_job *job)
{
    /* Jobs that parked fibers take at the end of this iteration are not
     * waiting: queue_size counts the ones beyond them. */
    if (st->queued >= (size_t)st->conf->queue_size + (st->nfibers - st->busy))
        return -EAGAIN;
    job->next = NULL;
    if (st->tail)
        st->tail->next = job;
    else
        st->head = job;
    st->tail = job;
    st->queued++;
    if (st->busy < st->nfibers)
        ev_prepare_start(st->svc->loop, &st->kick);
    return 0;
}

size_t cd_readmongo__outstanding(const cd_readmongo_state *st)
{
    return st->queued + st->busy;
}

int cd_readmongo__fibers_start(cd_readmongo_state *st)
{
    size_t n = (size_t)st->conf->concurrency;

    ev_prepare_init(&st->kick, kick_cb);
    if (!(st->fibers = calloc(n, sizeof *st->fibers)))
        return -ENOMEM;
    st->nfibers = n;
    for (size_t i = 0; i < n; i++) {
        cd_readmongo_fiber *fb = &st->fibers[i];
        fb->st = st;
        fb->parked = 1; /* not started yet: the first resume starts it */
        fb->colls = calloc(st->conf->ncollections ? st->conf->ncollections : 1, sizeof *fb->colls);
        if (!fb->colls || !(fb->f = cd_fiber_new(st->svc->loop, 0, fiber_main, fb)))
            return -ENOMEM;
    }
    /* The check at start is the first job. */
    cd_readmongo_job *job = calloc(1, sizeof *job);
    if (!job)
        return -ENOMEM;
    job->st = st;
    job->queued_at_ms = cd_readmongo__now_ms();
    bson_init(&job->q.filter);
    bson_init(&job->q.opts);
    cd_readmongo__submit(st, job);
    return 0;
}

void cd_readmongo__fibers_stop(cd_readmongo_state *st)
{
    cd_readmongo_job *job;

    if (!st->fibers)
        return;
    st->closing = 1;
    ev_prepare_stop(st->svc->loop, &st->kick);
    /* Queued jobs were never started: their requests are dropped. */
    while ((job = dequeue(st))) {
        if (job->req)
            cd_request_drop(job->req);
        cd_readmongo__job_free(job);
    }
    /* A fiber with a job has its waits cut short: the driver fails at once,
     * the job's request is dropped, and the fiber ends; a parked one is
     * resumed to end. */
    for (size_t i = 0; i < st->nfibers; i++) {
        cd_readmongo_fiber *fb = &st->fibers[i];
        if (fb->f) {
            cd_fiber_cancel(fb->f);
            if (!cd_fiber_resume(fb->f))
                cd_warn("%s: a query fiber did not end", st->svc->name);
            cd_fiber_free(fb->f);
        }
        cd_readmongo__fiber_release(fb); /* what a fiber that never ran made */
    }
    free(st->fibers);
    st->fibers = NULL;
    st->nfibers = 0;
}
