/*
 * test_fiber.c - unit tests of core/fiber.c: a fiber runs on resume,
 * yields and resumes where it left off; cd_fiber_wait_fd and
 * cd_fiber_sleep park it on the loop (which keeps serving other watchers)
 * until the descriptor is ready or the time is up; cd_fiber_cancel cuts
 * its waits short for good; off a fiber the same calls wait in
 * poll/nanosleep with the same results; a fiber's stack holds deep frames,
 * and a fiber freed while parked leaves nothing behind (the ASan build's
 * LeakSanitizer says so).
 *
 * Each test has its own loop (ev_loop_new) in criterion's test process.
 * Nothing asserts inside a fiber: a failed cr_assert leaves the test by a
 * longjmp, which must not start on a fiber's stack, so fibers record what
 * they saw and the test's own stack checks it.  Timing checks are bounded
 * on both sides (a wait of T ms returns in [T - 5, T + 500] ms), and an
 * unref'd guard timer turns a loop that would hang into a failure.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clusterd/fiber.h"

#define SLACK_EARLY_MS 5
#define SLACK_LATE_MS 500

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Busy for ms milliseconds without any loop turn (the CPU work a fiber may
 * do between two waits: rendering, parsing). */
static void busy_ms(long long ms)
{
    long long end = now_ms() + ms;

    while (now_ms() < end)
        ;
}

static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0,
                 "socketpair: %s", strerror(errno));
}

static void guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    int *fired = t->data;

    (void)revents;
    *fired = 1;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until nothing but the guard keeps it alive, at most 10 s. */
static void run(struct ev_loop *loop)
{
    ev_timer guard;
    int fired = 0;

    ev_timer_init(&guard, guard_cb, 10., 0.);
    guard.data = &fired;
    ev_timer_start(loop, &guard);
    ev_unref(loop);
    ev_run(loop, 0);
    ev_ref(loop);
    ev_timer_stop(loop, &guard);
    cr_assert_not(fired, "the loop still ran after 10 s: a fiber's wait was never ended");
}

/* ---- resume, yield, end ---- */

typedef struct steps {
    int step;
    cd_fiber *self_inside;
    int local_after; /* a local of the fiber's, read after two switches */
} steps;

static void fn_steps(void *arg)
{
    steps *s = arg;
    volatile int local = 41;

    s->self_inside = cd_fiber_self();
    s->step = 1;
    cd_fiber_yield();
    s->step = 2;
    local++;
    cd_fiber_yield();
    s->local_after = local;
    s->step = 3;
}

Test(fiber, runs_on_resume_yields_and_resumes_where_it_left)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    steps s = {0};
    cd_fiber *f = cd_fiber_new(loop, 0, fn_steps, &s);

    cr_assert_not_null(f);
    cr_assert_eq(s.step, 0, "fn ran before the first resume");
    cr_assert_null(cd_fiber_self(), "cd_fiber_self is not NULL on the loop's stack");
    cr_assert_eq(cd_fiber_resume(f), 0);
    cr_assert_eq(s.step, 1);
    cr_assert_eq(s.self_inside, f, "cd_fiber_self inside the fiber is not the fiber");
    cr_assert_null(cd_fiber_self(), "cd_fiber_self is not NULL after the fiber yielded");
    cr_assert_eq(cd_fiber_resume(f), 0);
    cr_assert_eq(s.step, 2, "the second resume did not continue after the first yield");
    cr_assert_eq(cd_fiber_resume(f), 1, "resume did not say the fiber ended");
    cr_assert_eq(s.step, 3);
    cr_assert_eq(s.local_after, 42, "a local of the fiber's did not survive its switches");
    cr_assert_eq(cd_fiber_resume(f), 1, "an ended fiber's resume is not 1");
    cr_assert_eq(s.step, 3, "an ended fiber ran again");
    cr_assert_null(cd_fiber_self());
    cd_fiber_free(f);
    ev_loop_destroy(loop);
}

/* ---- cd_fiber_wait_fd on a fiber ---- */

typedef struct waiter {
    int fd, events;
    long long timeout_ms;
    int result;      /* what cd_fiber_wait_fd returned */
    long long took;  /* how long it took, ms */
    char got;        /* the byte read after EV_READ */
    ssize_t nread;
    int done;
} waiter;

static void fn_wait(void *arg)
{
    waiter *w = arg;
    long long t0 = now_ms();

    w->result = cd_fiber_wait_fd(w->fd, w->events, w->timeout_ms);
    w->took = now_ms() - t0;
    if (w->result & EV_READ)
        w->nread = read(w->fd, &w->got, 1);
    w->done = 1;
}

typedef struct ticker {
    ev_timer t;
    int ticks, write_at, wfd;
    waiter *w;            /* checked still parked before the write */
    int parked_at_write;
} ticker;

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    ticker *k = (ticker *)t;

    (void)revents;
    k->ticks++;
    if (k->ticks == k->write_at) {
        k->parked_at_write = !k->w->done;
        cr_assert_eq(write(k->wfd, "x", 1), 1);
        ev_timer_stop(loop, t);
    }
}

Test(fiber, wait_fd_parks_while_the_loop_runs_and_wakes_on_read)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    waiter w = {.events = EV_READ, .timeout_ms = 5000};
    ticker k = {.write_at = 3};

    pair(sv);
    w.fd = sv[0];
    k.wfd = sv[1];
    k.w = &w;
    cd_fiber *f = cd_fiber_new(loop, 0, fn_wait, &w);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0, "the fiber did not park in its wait");
    cr_assert_not(w.done);
    ev_timer_init(&k.t, tick_cb, 0.01, 0.01);
    ev_timer_start(loop, &k.t);
    run(loop);
    cr_assert_eq(k.ticks, 3, "another watcher did not run while the fiber waited");
    cr_assert(k.parked_at_write, "the fiber's wait ended before anything was written");
    cr_assert(w.done, "the loop did not resume the fiber when its fd became readable");
    cr_assert_eq(w.result, EV_READ);
    cr_assert_eq(w.nread, 1);
    cr_assert_eq(w.got, 'x');
    cr_assert_lt(w.took, 5000, "the wait ran to its timeout");
    cr_assert_eq(cd_fiber_resume(f), 1);
    cd_fiber_free(f);
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
}

Test(fiber, wait_fd_times_out_with_0)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    waiter w = {.events = EV_READ, .timeout_ms = 150};

    pair(sv);
    w.fd = sv[0];
    cd_fiber *f = cd_fiber_new(loop, 0, fn_wait, &w);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0);
    run(loop);
    cr_assert(w.done);
    cr_assert_eq(w.result, 0, "a wait with nothing to read returned %d", w.result);
    cr_assert_geq(w.took, 150 - SLACK_EARLY_MS, "a 150 ms wait timed out after %lld ms", w.took);
    cr_assert_leq(w.took, 150 + SLACK_LATE_MS, "a 150 ms wait timed out after %lld ms", w.took);
    cd_fiber_free(f);
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
}

Test(fiber, wait_fd_write_on_a_writable_socket_returns_at_once)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    waiter w = {.events = EV_WRITE, .timeout_ms = 5000};

    pair(sv);
    w.fd = sv[0];
    cd_fiber *f = cd_fiber_new(loop, 0, fn_wait, &w);
    cr_assert_not_null(f);
    cd_fiber_resume(f);
    run(loop);
    cr_assert(w.done);
    cr_assert_eq(w.result, EV_WRITE);
    cr_assert_lt(w.took, 500, "EV_WRITE on a writable socket took %lld ms", w.took);
    cd_fiber_free(f);
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
}

/* Runs one loop iteration at a time until cond or 50 iterations. */
#define RUN_UNTIL(loop, cond)                                                                      \
    do {                                                                                           \
        ev_timer g_;                                                                               \
        int fired_ = 0;                                                                            \
        ev_timer_init(&g_, guard_cb, 5., 0.);                                                      \
        g_.data = &fired_;                                                                         \
        ev_timer_start(loop, &g_);                                                                 \
        for (int i_ = 0; i_ < 50 && !(cond) && !fired_; i_++)                                      \
            ev_run(loop, EVRUN_ONCE);                                                              \
        ev_timer_stop(loop, &g_);                                                                  \
        cr_assert(cond, "not after 50 loop turns / 5 s: " #cond);                                  \
    } while (0)

Test(fiber, two_fibers_waiting_each_get_their_own_wakeup)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int a[2], b[2];
    waiter wa = {.events = EV_READ, .timeout_ms = -1};
    waiter wb = {.events = EV_READ, .timeout_ms = -1};

    pair(a);
    pair(b);
    wa.fd = a[0];
    wb.fd = b[0];
    cd_fiber *fa = cd_fiber_new(loop, 0, fn_wait, &wa);
    cd_fiber *fb = cd_fiber_new(loop, 0, fn_wait, &wb);
    cr_assert(fa && fb);
    cr_assert_eq(cd_fiber_resume(fa), 0);
    cr_assert_eq(cd_fiber_resume(fb), 0);

    cr_assert_eq(write(b[1], "b", 1), 1);
    RUN_UNTIL(loop, wb.done);
    cr_assert_eq(wb.result, EV_READ);
    cr_assert_eq(wb.got, 'b');
    cr_assert_not(wa.done, "b's write woke a as well");

    cr_assert_eq(write(a[1], "a", 1), 1);
    RUN_UNTIL(loop, wa.done);
    cr_assert_eq(wa.result, EV_READ);
    cr_assert_eq(wa.got, 'a');
    cr_assert_eq(cd_fiber_resume(fa), 1);
    cr_assert_eq(cd_fiber_resume(fb), 1);
    cd_fiber_free(fa);
    cd_fiber_free(fb);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
    ev_loop_destroy(loop);
}

/* ---- cd_fiber_sleep ---- */

typedef struct sleeper {
    long long ms, busy_before;
    long long took;
    int done;
} sleeper;

static void fn_sleep(void *arg)
{
    sleeper *s = arg;

    if (s->busy_before)
        busy_ms(s->busy_before);
    long long t0 = now_ms();
    cd_fiber_sleep(s->ms);
    s->took = now_ms() - t0;
    s->done = 1;
}

static void count_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    (*(int *)t->data)++;
}

Test(fiber, sleep_parks_for_about_its_time)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    sleeper s = {.ms = 150};
    ev_timer other;
    int ticks = 0;

    cd_fiber *f = cd_fiber_new(loop, 0, fn_sleep, &s);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0, "the fiber did not park in its sleep");
    ev_timer_init(&other, count_cb, 0.01, 0.01);
    other.data = &ticks;
    ev_timer_start(loop, &other);
    ev_unref(loop); /* the sleep alone keeps the loop running */
    run(loop);
    ev_ref(loop);
    ev_timer_stop(loop, &other);
    cr_assert(s.done);
    cr_assert_geq(s.took, 150 - SLACK_EARLY_MS, "a 150 ms sleep took %lld ms", s.took);
    cr_assert_leq(s.took, 150 + SLACK_LATE_MS, "a 150 ms sleep took %lld ms", s.took);
    cr_assert_geq(ticks, 3, "a 10 ms timer ticked %d times while the fiber slept", ticks);
    cd_fiber_free(f);
    ev_loop_destroy(loop);
}

/*
 * A wait's time counts from the call.  The loop's clock (ev_now) is read
 * once per loop turn, so a fiber that ran a while since (CPU work between
 * two waits, or several fibers run in one turn) must not have that time
 * taken off its timeout.
 *
 * The bug these two found (session 22, fixed in c87b24e): the wait's
 * ev_timer was armed from the loop's cached ev_now, so after 100 ms of
 * work the 150 ms wait ended after about 50 ms, and a wait shorter than
 * that staleness ended as timed out even when its data had arrived.
 */
Test(fiber, wait_fd_timeout_counts_from_the_call_not_the_loops_last_turn)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    waiter w = {.events = EV_READ, .timeout_ms = 150};

    pair(sv);
    w.fd = sv[0];
    cd_fiber *f = cd_fiber_new(loop, 0, fn_wait, &w);
    cr_assert_not_null(f);
    busy_ms(100); /* ev_now is now 100 ms behind */
    cr_assert_eq(cd_fiber_resume(f), 0);
    run(loop);
    cd_fiber_free(f); /* first, so that a failure below leaks nothing */
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
    cr_assert(w.done);
    cr_assert_eq(w.result, 0);
    cr_assert_geq(w.took, 150 - SLACK_EARLY_MS,
                  "a 150 ms wait timed out after %lld ms (armed from a stale ev_now?)", w.took);
    cr_assert_leq(w.took, 150 + SLACK_LATE_MS, "a 150 ms wait timed out after %lld ms", w.took);
}

Test(fiber, sleep_counts_from_the_call_not_the_loops_last_turn)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    sleeper s = {.ms = 150, .busy_before = 100}; /* busy inside the fiber this time */

    cd_fiber *f = cd_fiber_new(loop, 0, fn_sleep, &s);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0);
    run(loop);
    cd_fiber_free(f); /* first, so that a failure below leaks nothing */
    ev_loop_destroy(loop);
    cr_assert(s.done);
    cr_assert_geq(s.took, 150 - SLACK_EARLY_MS,
                  "a 150 ms sleep took %lld ms (armed from a stale ev_now?)", s.took);
    cr_assert_leq(s.took, 150 + SLACK_LATE_MS, "a 150 ms sleep took %lld ms", s.took);
}

/* ---- cd_fiber_cancel ---- */

typedef struct canc {
    int fd;
    int first;              /* the wait in progress at the cancel */
    int later_wait;         /* a wait after the cancel */
    long long later_took;   /* the later wait and sleep together, ms */
    int stage;
    int sleep_first;        /* park in a sleep instead of a wait */
} canc;

static void fn_cancel(void *arg)
{
    canc *c = arg;

    c->stage = 1;
    if (c->sleep_first) {
        cd_fiber_sleep(60000);
        c->first = -1;
    } else {
        c->first = cd_fiber_wait_fd(c->fd, EV_READ, -1);
    }
    c->stage = 2;
    long long t0 = now_ms();
    c->later_wait = cd_fiber_wait_fd(c->fd, EV_READ, -1);
    cd_fiber_sleep(60000);
    c->later_wait |= cd_fiber_wait_fd(c->fd, EV_READ, 60000);
    c->later_took = now_ms() - t0;
    c->stage = 3;
}

static void check_cancel(int sleep_first)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    canc c = {.sleep_first = sleep_first, .first = 99, .later_wait = 99};

    pair(sv);
    c.fd = sv[0];
    cd_fiber *f = cd_fiber_new(loop, 0, fn_cancel, &c);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0);
    cr_assert_eq(c.stage, 1);
    cd_fiber_cancel(f); /* no loop turn: the cancel itself resumes it */
    cr_assert_eq(c.stage, 3, "the cancelled fiber did not run to its end (stage %d)", c.stage);
    cr_assert_eq(c.first, sleep_first ? -1 : 0, "the cancelled wait returned %d", c.first);
    cr_assert_eq(c.later_wait, 0, "a wait after the cancel returned %d", c.later_wait);
    cr_assert_lt(c.later_took, 50, "waits and a sleep after the cancel took %lld ms",
                 c.later_took);
    cr_assert_eq(cd_fiber_resume(f), 1);
    /* Nothing of the fiber's is left on the loop. */
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(ev_pending_count(loop), 0);
    cd_fiber_free(f);
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
}

Test(fiber, cancel_ends_a_wait_at_once_with_0_and_every_later_wait)
{
    check_cancel(0);
}

Test(fiber, cancel_ends_a_sleep_at_once_and_every_later_wait)
{
    check_cancel(1);
}

static void fn_yield_then_wait(void *arg)
{
    canc *c = arg;

    c->stage = 1;
    cd_fiber_yield();
    c->stage = 2;
    long long t0 = now_ms();
    c->later_wait = cd_fiber_wait_fd(c->fd, EV_READ, -1);
    cd_fiber_sleep(60000);
    c->later_took = now_ms() - t0;
    c->stage = 3;
}

Test(fiber, cancel_of_a_yielded_fiber_leaves_it_parked_and_its_waits_end_at_once)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    canc c = {.later_wait = 99};

    pair(sv);
    c.fd = sv[0];
    cd_fiber *f = cd_fiber_new(loop, 0, fn_yield_then_wait, &c);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0);
    cd_fiber_cancel(f);
    cr_assert_eq(c.stage, 1, "cancel resumed a fiber that was not waiting");
    cr_assert_eq(cd_fiber_resume(f), 1);
    cr_assert_eq(c.later_wait, 0);
    cr_assert_lt(c.later_took, 50, "a cancelled fiber's waits took %lld ms", c.later_took);
    cd_fiber_free(f);
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
}

/* ---- off a fiber: poll and nanosleep ---- */

Test(fiber, off_a_fiber_wait_fd_and_sleep_wait_in_place)
{
    int sv[2];
    char ch = 0;

    pair(sv);
    cr_assert_null(cd_fiber_self());

    long long t0 = now_ms();
    int r = cd_fiber_wait_fd(sv[0], EV_READ, 150);
    long long took = now_ms() - t0;
    cr_assert_eq(r, 0, "a wait with nothing to read returned %d", r);
    cr_assert_geq(took, 150 - SLACK_EARLY_MS, "a 150 ms wait took %lld ms", took);
    cr_assert_leq(took, 150 + SLACK_LATE_MS, "a 150 ms wait took %lld ms", took);

    t0 = now_ms();
    r = cd_fiber_wait_fd(sv[0], EV_WRITE, 5000);
    cr_assert_eq(r, EV_WRITE);
    cr_assert_lt(now_ms() - t0, 500, "EV_WRITE on a writable socket did not return at once");

    cr_assert_eq(write(sv[1], "y", 1), 1);
    t0 = now_ms();
    r = cd_fiber_wait_fd(sv[0], EV_READ, -1);
    cr_assert_eq(r, EV_READ);
    cr_assert_lt(now_ms() - t0, 500);
    cr_assert_eq(read(sv[0], &ch, 1), 1);
    cr_assert_eq(ch, 'y');

    r = cd_fiber_wait_fd(sv[0], EV_READ | EV_WRITE, 5000);
    cr_assert_eq(r, EV_WRITE, "READ|WRITE with nothing to read returned %d", r);

    cr_assert_eq(write(sv[1], "z", 1), 1);
    r = cd_fiber_wait_fd(sv[0], EV_READ, 0);
    cr_assert_eq(r, EV_READ, "a 0 ms wait with a byte waiting returned %d", r);

    t0 = now_ms();
    cd_fiber_sleep(150);
    took = now_ms() - t0;
    cr_assert_geq(took, 150 - SLACK_EARLY_MS, "a 150 ms sleep took %lld ms", took);
    cr_assert_leq(took, 150 + SLACK_LATE_MS, "a 150 ms sleep took %lld ms", took);
    cd_fiber_yield(); /* off a fiber: nothing to park, returns */
    close(sv[0]);
    close(sv[1]);
}

/* ---- stacks, freeing ---- */

typedef struct deep {
    unsigned long sum_before, sum_after;
    int done;
} deep;

static __attribute__((noinline)) unsigned long sum(const volatile unsigned char *p, size_t n)
{
    unsigned long s = 0;

    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

static void fn_deep(void *arg)
{
    deep *d = arg;
    volatile unsigned char big[64 * 1024];

    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    d->sum_before = sum(big, sizeof big);
    cd_fiber_yield(); /* the frame must survive the switch */
    d->sum_after = sum(big, sizeof big);
    d->done = 1;
}

Test(fiber, a_64k_frame_fits_the_default_stack_and_survives_a_switch)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    deep d = {0};
    unsigned long want = 0;

    for (size_t i = 0; i < 64 * 1024; i++)
        want += (unsigned char)(i * 7 + 3);
    cd_fiber *f = cd_fiber_new(loop, 0, fn_deep, &d);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0);
    cr_assert_eq(d.sum_before, want);
    /* The loop's own stack reuses the space the fiber left. */
    volatile unsigned char noise[16 * 1024];
    memset((void *)noise, 0xa5, sizeof noise);
    cr_assert_eq(cd_fiber_resume(f), 1);
    cr_assert(d.done);
    cr_assert_eq(d.sum_after, want, "the fiber's frame changed while it was switched out");
    cd_fiber_free(f);
    ev_loop_destroy(loop);
}

static void fn_park_forever(void *arg)
{
    int *stage = arg;
    volatile char frame[4096];

    memset((void *)frame, 1, sizeof frame);
    *stage = 1;
    cd_fiber_yield();
    *stage = 2; /* never: freed while parked */
}

Test(fiber, freed_while_parked_in_yield_or_never_run_frees_cleanly)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int stage[3] = {0};

    /* Several rounds, so a stack mapped again where a freed one was is used
     * too (ASan would see stale poison there). */
    for (int round = 0; round < 3; round++) {
        cd_fiber *parked = cd_fiber_new(loop, 0, fn_park_forever, &stage[0]);
        cd_fiber *never = cd_fiber_new(loop, 0, fn_park_forever, &stage[1]);
        cd_fiber *ended = cd_fiber_new(loop, 0, fn_steps, &(steps){0});
        cr_assert(parked && never && ended);
        cr_assert_eq(cd_fiber_resume(parked), 0);
        cr_assert_eq(stage[0], 1);
        int ends = 0;
        for (int i = 0; i < 5 && !ends; i++)
            ends = cd_fiber_resume(ended);
        cr_assert(ends, "fn_steps did not end in 5 resumes");
        cd_fiber_free(parked);
        cd_fiber_free(never);
        cd_fiber_free(ended);
        cr_assert_eq(stage[1], 0, "a fiber never resumed ran");
        stage[0] = 0;
    }
    cd_fiber_free(NULL);
    ev_run(loop, EVRUN_NOWAIT);
    ev_loop_destroy(loop);
}

Test(fiber, freed_while_waiting_leaves_no_watcher_on_the_loop)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    waiter w = {.events = EV_READ, .timeout_ms = 100};

    pair(sv);
    w.fd = sv[0];
    cd_fiber *f = cd_fiber_new(loop, 0, fn_wait, &w);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0);
    cd_fiber_free(f);
    /* Were its io or timer still started, the loop would call into freed
     * memory (ASan) or at least not return at once. */
    cr_assert_eq(write(sv[1], "x", 1), 1);
    long long t0 = now_ms();
    ev_run(loop, 0);
    cr_assert_lt(now_ms() - t0, 50, "the loop still had the freed fiber's watchers");
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
}

/* ---- a fiber's own watchers ---- */

typedef struct own {
    struct ev_loop *loop;
    int fd;
    int timer_fired, io_fired;
    ev_tstamp now_before, now_after;
    int io_revents;
    int done;
} own;

static void own_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    cd_fiber_resume(t->data);
}

typedef struct io_ctx {
    cd_fiber *f;
    int revents;
} io_ctx;

static void own_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    io_ctx *c = w->data;

    (void)loop;
    c->revents = revents;
    cd_fiber_resume(c->f);
}

static void fn_own(void *arg)
{
    own *o = arg;
    ev_timer t; /* on the fiber's stack */

    o->now_before = ev_now(o->loop);
    ev_timer_init(&t, own_timer_cb, 0.02, 0.);
    t.data = cd_fiber_self();
    ev_timer_start(o->loop, &t);
    cd_fiber_yield(); /* own_timer_cb resumes it */
    o->timer_fired = !ev_is_active(&t);
    ev_timer_stop(o->loop, &t);
    o->now_after = ev_now(o->loop);

    ev_io *io = malloc(sizeof *io); /* on the heap */
    io_ctx ctx = {.f = cd_fiber_self()};
    if (!io)
        return;
    ev_io_init(io, own_io_cb, o->fd, EV_WRITE);
    io->data = &ctx;
    ev_io_start(o->loop, io);
    cd_fiber_yield(); /* own_io_cb resumes it */
    o->io_fired = 1;
    o->io_revents = ctx.revents;
    ev_io_stop(o->loop, io);
    free(io);
    ev_now_update(o->loop);
    o->done = 1;
}

Test(fiber, a_fiber_makes_and_frees_its_own_watchers)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    own o = {.loop = loop};

    pair(sv);
    o.fd = sv[0];
    cd_fiber *f = cd_fiber_new(loop, 0, fn_own, &o);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0);
    run(loop);
    cr_assert(o.done, "the fiber did not get through its own watchers");
    cr_assert(o.timer_fired);
    cr_assert(o.io_fired);
    cr_assert(o.io_revents & EV_WRITE);
    cr_assert_gt(o.now_before, 0.);
    cr_assert_geq(o.now_after - o.now_before, 0.015, "ev_now moved %f s across a 20 ms timer",
                  o.now_after - o.now_before);
    cr_assert_eq(cd_fiber_resume(f), 1);
    cd_fiber_free(f);
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
}

/* ---- usleep(3) is the process's own (core/fiber.c) ---- */

static void fn_usleep(void *arg)
{
    sleeper *s = arg;
    long long t0 = now_ms();

    usleep((useconds_t)(s->ms * 1000));
    s->took = now_ms() - t0;
    s->done = 1;
}

/* mongo-c-driver sleeps with usleep in its server selection; on a fiber
 * that parks the fiber (the loop's other timers tick meanwhile) instead of
 * blocking the loop; off a fiber it sleeps as usual. */
Test(fiber, usleep_on_a_fiber_parks_it_and_off_a_fiber_sleeps)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    sleeper s = {.ms = 150};
    ev_timer other;
    int ticks = 0;

    cd_fiber *f = cd_fiber_new(loop, 0, fn_usleep, &s);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0, "usleep on a fiber blocked instead of parking it");
    ev_timer_init(&other, count_cb, 0.01, 0.01);
    other.data = &ticks;
    ev_timer_start(loop, &other);
    ev_unref(loop);
    run(loop);
    ev_ref(loop);
    ev_timer_stop(loop, &other);
    cd_fiber_free(f);
    ev_loop_destroy(loop);
    cr_assert(s.done);
    cr_assert_geq(s.took, 150 - SLACK_EARLY_MS, "a 150 ms usleep took %lld ms", s.took);
    cr_assert_leq(s.took, 150 + SLACK_LATE_MS, "a 150 ms usleep took %lld ms", s.took);
    cr_assert_geq(ticks, 3, "a 10 ms timer ticked %d times during the fiber's usleep", ticks);

    long long t0 = now_ms();
    cr_assert_eq(usleep(50 * 1000), 0);
    long long took = now_ms() - t0;
    cr_assert_geq(took, 50 - SLACK_EARLY_MS, "usleep(50ms) off a fiber took %lld ms", took);
}

/* A fiber in a wait is resumed only by its wait's end: a resume from
 * outside returns 0 and leaves the wait as it was (readmongo's queue once
 * resumed a fiber it wrongly took for parked while the fiber waited on a
 * socket: the fiber ran on and started its watcher twice, and libev
 * aborted the worker). */
Test(fiber, resume_of_a_waiting_fiber_does_nothing)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    waiter w = {.events = EV_READ, .timeout_ms = 5000};

    pair(sv);
    w.fd = sv[0];
    cd_fiber *f = cd_fiber_new(loop, 0, fn_wait, &w);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0, "the fiber did not park in its wait");
    cr_assert_eq(cd_fiber_resume(f), 0, "a waiting fiber was resumed from outside");
    cr_assert_not(w.done, "the wait ended without its fd being ready");
    cr_assert_eq(write(sv[1], "x", 1), 1);
    run(loop);
    cr_assert(w.done);
    cr_assert_eq(w.result, EV_READ);
    cr_assert_eq(w.got, 'x');
    cr_assert_eq(cd_fiber_resume(f), 1);
    cd_fiber_free(f);
    close(sv[0]);
    close(sv[1]);
    ev_loop_destroy(loop);
}

/* ---- cd_fiber_run_blocking ---- */

typedef struct blocking {
    long long sleep_ms;  /* what work does: sleep, then set value */
    int value;
    atomic_int abandoned; /* set by abandon (on the thread) */
} blocking;

static void blocking_work(void *arg)
{
    blocking *b = arg;
    struct timespec ts = {.tv_sec = b->sleep_ms / 1000, .tv_nsec = (b->sleep_ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
    b->value = 42;
}

static void blocking_abandon(void *arg)
{
    atomic_store(&((blocking *)arg)->abandoned, 1);
}

typedef struct runner {
    blocking *b;
    long long timeout_ms;
    int rc, done;
    long long took;
} runner;

static void fn_run_blocking(void *arg)
{
    runner *r = arg;
    long long t0 = now_ms();

    r->rc = cd_fiber_run_blocking(blocking_work, blocking_abandon, r->b, r->timeout_ms);
    r->took = now_ms() - t0;
    r->done = 1;
}

/* The fiber parks while work runs on a thread (the loop's timers tick), and
 * gets work's result; cut short, it returns 0 at its timeout and the thread
 * hands arg to abandon once work is done. */
Test(fiber, run_blocking_parks_the_fiber_and_gives_back_or_abandons)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    blocking b = {.sleep_ms = 100};
    runner r = {.b = &b, .timeout_ms = 5000};
    ev_timer other;
    int ticks = 0;

    cd_fiber *f = cd_fiber_new(loop, 0, fn_run_blocking, &r);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0, "the fiber did not park while work ran");
    ev_timer_init(&other, count_cb, 0.01, 0.01);
    other.data = &ticks;
    ev_timer_start(loop, &other);
    ev_unref(loop);
    run(loop);
    ev_ref(loop);
    ev_timer_stop(loop, &other);
    cd_fiber_free(f);
    cr_assert(r.done);
    cr_assert_eq(r.rc, 1);
    cr_assert_eq(b.value, 42, "work's result is not in arg");
    cr_assert_geq(ticks, 3, "a 10 ms timer ticked %d times while work ran", ticks);
    cr_assert_not(atomic_load(&b.abandoned), "abandon ran for a finished wait");

    static blocking late = {.sleep_ms = 300}; /* outlives the test body for the thread */
    runner r2 = {.b = &late, .timeout_ms = 50};
    f = cd_fiber_new(loop, 0, fn_run_blocking, &r2);
    cr_assert_not_null(f);
    cr_assert_eq(cd_fiber_resume(f), 0);
    run(loop);
    cd_fiber_free(f);
    ev_loop_destroy(loop);
    cr_assert(r2.done);
    cr_assert_eq(r2.rc, 0, "a wait past its timeout did not give up");
    cr_assert_lt(r2.took, 50 + SLACK_LATE_MS, "gave up after %lld ms", r2.took);
    for (int i = 0; i < 200 && !atomic_load(&late.abandoned); i++)
        poll(NULL, 0, 10);
    cr_assert(atomic_load(&late.abandoned), "the thread never handed arg to abandon");
    cr_assert_eq(late.value, 42);
}
