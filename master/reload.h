/*
 * reload.h - the rolling restart (HUP, `clusterctl reload`) as an explicit
 * state machine (master process).
 *
 *   IDLE --begin--> ROLLING --every slot new and READY, no old one accepting--> IDLE (done)
 *                      |
 *                      +--fail (a new worker died or cannot boot)--> ROLLING_BACK
 *                                 |--every slot back and READY--> IDLE (failed, rolled back)
 *                                 +--fail again--> IDLE (failed; slots may differ)
 *
 * The transitions (cd_reload_begin, _next, _fail, _finish) are pure
 * functions over cd_reload and a plain view of the slots, so the unit tests
 * drive them without processes; cd_reload_step (the loop's reconcile step
 * calls it) builds the view from the table and carries out each action.  reload.c also holds the parts with
 * effects: loading and checking the new config, and the report at the end.
 */
#ifndef CD_MASTER_RELOAD_H
#define CD_MASTER_RELOAD_H

#include <stddef.h>

#include "conf/conf.h"

typedef struct cd_master cd_master;

typedef enum cd_reload_state {
    CD_RELOAD_IDLE = 0,
    CD_RELOAD_ROLLING,     /* slot by slot, a worker on the new config replaces the old one */
    CD_RELOAD_ROLLING_BACK /* the same, back to the previous config, after a failure */
} cd_reload_state;

typedef struct cd_reload {
    cd_reload_state state;
    int next;           /* the next slot to roll */
    int pending;        /* another reload was asked for meanwhile: it follows this one */
    int failed;         /* the last reload failed (status) */
    char why[160];      /* why the roll-back began */
    cd_conf *prev_conf; /* the config before the reload, until it ends */
    int prev_memfd;     /* ...and its memfd, or -1 */
    char last[192];     /* the last outcome, for status ("done at ...", "FAILED, ...", "REJECTED: ...") */
} cd_reload;

/* One slot as the roll sees it. */
typedef struct cd_reload_slot {
    int wanted;       /* the slot should have a worker */
    int has_worker;   /* it has one (else its respawn is pending: that one starts on the new config) */
    int worker_new;   /* ...of the generation being rolled to */
    int worker_ready; /* ...and it is READY */
} cd_reload_slot;

typedef enum cd_reload_action {
    CD_RELOAD_NOTHING = 0, /* no roll under way */
    CD_RELOAD_WAIT,        /* a worker must become READY (or die), or an old one stop accepting */
    CD_RELOAD_REPLACE,     /* start a new worker for *slot; the old one serves until it is READY */
    CD_RELOAD_STOP_OLD,    /* *slot's new worker is READY: stop the slot's others, then ask again */
    CD_RELOAD_DONE,        /* every slot rolled: call cd_reload_finish(r, 1) */
} cd_reload_action;

/* IDLE -> ROLLING (returns 0).  While a roll runs, the request is kept for
 * later (pending) and 1 is returned.  Pure. */
int cd_reload_begin(cd_reload *r);
/* What the roll does next, given slots[0..active-1] and how many workers
 * of older generations still accept connections.  STOP_OLD and skipping a
 * slot nobody wants move on to the next slot.  Pure. */
cd_reload_action cd_reload_next(cd_reload *r, const cd_reload_slot *slots, int active, int old_accepting, int *slot);
/* A failure: ROLLING -> ROLLING_BACK (returns 1: restore the previous config,
 * cancel the replacements under way, roll again from slot 0); ROLLING_BACK
 * -> the reload ends failed (returns 0: call cd_reload_finish(r, 0)).
 * Returns -1 when no roll runs.  Pure. */
int cd_reload_fail(cd_reload *r, const char *why);
/* Ends the roll: -> IDLE.  A roll-back that completes is still a failure;
 * *why becomes the reason it began.  Returns 1 when the reload succeeded.
 * Pure. */
int cd_reload_finish(cd_reload *r, int ok, const char **why);
/* The master stops: the roll ends where it is, without a report.  Pure. */
void cd_reload_abandon(cd_reload *r);

/* Effects (reload.c).  Loads and checks the config file, makes its memfd,
 * keeps the running config as the previous one and moves to a new
 * generation; returns 0, or -1 with the reason in err (nothing changed;
 * logged, reported in r->last and as an event). */
int cd_reload_load(cd_master *m, char *err, size_t errlen);
/* The roll-back: the previous config and generation become current again. */
void cd_reload_restore(cd_master *m);
/* Frees the previous config and reports the outcome (log, systemd, event,
 * r->last). */
void cd_reload_report(cd_master *m, int ok, const char *why);
/* Driving the roll (the loop's reconcile step): carries out what
 * cd_reload_next says until it must wait; and a new worker's failure
 * (roll back, or give up when that was the roll-back). */
void cd_reload_step(cd_master *m);
void cd_reload_failed(cd_master *m, const char *why);

#endif
