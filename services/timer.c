/*
 * timer.c - clusterd/timer.h: a libev ev_timer behind four functions, so a
 * service can have a delay or a period on its worker's loop without
 * including libev (worker process, loop thread).  The ev_timer is the
 * first member, so libev's callback finds the cd_timer by a cast.
 */
#include <errno.h>
#include <ev.h>
#include <stdlib.h>

#include "clusterd/timer.h"

struct cd_timer {
    ev_timer w; /* first: ev callback -> cd_timer */
    struct ev_loop *loop;
    cd_timer_cb cb;
    void *arg;
};

static void fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_timer *t = (cd_timer *)w;
    t->cb(t, t->arg); /* last: the callback may free t */
}

cd_timer *cd_timer_new(cd_service *svc, cd_timer_cb cb, void *arg)
{
    if (!svc || !svc->loop || !cb)
        return NULL;
    cd_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    ev_timer_init(&t->w, fire, 0., 0.);
    t->loop = svc->loop;
    t->cb = cb;
    t->arg = arg;
    return t;
}

int cd_timer_start(cd_timer *t, long long after_ms, long long repeat_ms)
{
    if (after_ms < 0 || repeat_ms < 0)
        return -EINVAL;
    ev_timer_stop(t->loop, &t->w);
    ev_timer_set(&t->w, (double)after_ms / 1000., (double)repeat_ms / 1000.);
    ev_timer_start(t->loop, &t->w);
    return 0;
}

void cd_timer_stop(cd_timer *t) { ev_timer_stop(t->loop, &t->w); }

void cd_timer_free(cd_timer *t)
{
    if (!t)
        return;
    ev_timer_stop(t->loop, &t->w);
    free(t);
}
