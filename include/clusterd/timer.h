/*
 * clusterd/timer.h - timers on the worker's loop, for services (public,
 * installed; worker process, loop thread).
 *
 * A service gets the worker's libev loop as svc->loop, and a module may
 * use libev on it directly (it then includes <ev.h> itself; the ev_*
 * functions resolve from the clusterd executable's libev).  These four
 * functions are the libev-free way to do the usual thing, a delay or a
 * period, so the API does not force libev's headers on anyone.  The
 * callback runs on the loop thread, like handle(); it may free its timer.
 */
#ifndef CLUSTERD_TIMER_H
#define CLUSTERD_TIMER_H

#include "clusterd/service.h"

typedef struct cd_timer cd_timer;
typedef void (*cd_timer_cb)(cd_timer *t, void *arg);

/* A stopped timer on svc's loop calling cb(t, arg); NULL when out of memory
 * or svc has no loop (in the master). */
cd_timer *cd_timer_new(cd_service *svc, cd_timer_cb cb, void *arg);
/* (Re)starts t: first call after after_ms, then every repeat_ms (0: once).
 * Returns 0 or -EINVAL (a negative delay). */
int cd_timer_start(cd_timer *t, long long after_ms, long long repeat_ms);
/* Stops t (a stopped timer may be started again). */
void cd_timer_stop(cd_timer *t);
/* Stops and frees t (NULL is fine); from destroy() at the latest. */
void cd_timer_free(cd_timer *t);

#endif
