/*
 * Unit tests for services/timer.c (clusterd/timer.h): timers on a real
 * libev loop, driven by ev_run with a bounded guard timer, so a timer that
 * never fires fails the test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>

#include "clusterd/timer.h"

static struct ev_loop *loop;
static cd_service svc;
static int fired;
static cd_timer *self_free_after; /* freed by its own callback at its 3rd call */

static void count(cd_timer *t, void *arg)
{
    (void)t;
    cr_assert_eq(arg, &svc, "the callback gets its argument");
    fired++;
}

static void count_then_free(cd_timer *t, void *arg)
{
    (void)arg;
    if (++fired == 3) {
        cd_timer_free(t);
        self_free_after = NULL;
    }
}

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

/* Runs the loop until nothing is active or ms have passed. */
static void run_for(int ms)
{
    ev_timer guard;
    ev_timer_init(&guard, guard_cb, ms / 1000.0, 0.);
    ev_timer_start(loop, &guard);
    ev_unref(loop); /* the guard alone does not keep the loop running */
    ev_run(loop, 0);
    ev_ref(loop);
    ev_timer_stop(loop, &guard);
}

static void setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    svc = (cd_service){.name = "t", .loop = loop};
    fired = 0;
}

static void teardown(void) { ev_loop_destroy(loop); }

TestSuite(timer, .init = setup, .fini = teardown, .timeout = 10);

Test(timer, a_one_shot_fires_once_on_the_loop)
{
    cd_timer *t = cd_timer_new(&svc, count, &svc);
    cr_assert_not_null(t);
    cr_assert_eq(cd_timer_start(t, 10, 0), 0);
    run_for(300);
    cr_assert_eq(fired, 1);
    cd_timer_free(t);
}

Test(timer, a_period_repeats_and_its_callback_may_free_it)
{
    self_free_after = cd_timer_new(&svc, count_then_free, NULL);
    cr_assert_eq(cd_timer_start(self_free_after, 1, 5), 0);
    run_for(2000); /* ends early: the freed timer leaves nothing active */
    cr_assert_eq(fired, 3);
    cr_assert_null(self_free_after);
}

Test(timer, stopped_or_restarted_it_fires_only_as_last_started)
{
    cd_timer *t = cd_timer_new(&svc, count, &svc);
    cr_assert_eq(cd_timer_start(t, 5, 0), 0);
    cd_timer_stop(t);
    run_for(100);
    cr_assert_eq(fired, 0, "a stopped timer does not fire");
    cr_assert_eq(cd_timer_start(t, 5, 5), 0);
    cr_assert_eq(cd_timer_start(t, 5, 0), 0); /* restart: now a one-shot */
    run_for(200);
    cr_assert_eq(fired, 1);
    cd_timer_free(t);
}

Test(timer, refusals)
{
    cd_service nolo = {.name = "master-side"};
    cr_assert_null(cd_timer_new(&nolo, count, NULL), "no loop (the master): no timer");
    cr_assert_null(cd_timer_new(&svc, NULL, NULL), "a callback is required");
    cd_timer *t = cd_timer_new(&svc, count, &svc);
    cr_assert_eq(cd_timer_start(t, -1, 0), -EINVAL);
    cr_assert_eq(cd_timer_start(t, 0, -5), -EINVAL);
    cd_timer_free(t);
    cd_timer_free(NULL);
}
