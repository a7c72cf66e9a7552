/*
 * upgrade.h - the binary upgrade in place (USR2, `clusterctl upgrade`) as
 * an explicit state machine (master process).
 *
 *   old program:  IDLE --begin--> CHECKING --`NEW -V` exits 0--> exec NEW
 *                                     +--fails or times out--> IDLE (refused)
 *   new program:  (adopted) STARTING --every slot's new worker READY--> IDLE (done: old ones drain)
 *                                     +--a new worker dies before READY,
 *                                        or upgrade_timeout--> exec OLD (rolled back)
 *
 * The transitions are pure functions over cd_upgrade (tests drive them
 * without processes); the loop's handlers and reconcile step call them, and
 * the effects below carry out what they say: the `-V` check, the end of an
 * upgrade, going back (upgrade.c), and the state handed over through exec
 * and adopting it (handover.c).
 */
#ifndef CD_MASTER_UPGRADE_H
#define CD_MASTER_UPGRADE_H

#include <ev.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf/conf.h"

typedef struct cd_master cd_master;

typedef enum cd_upgrade_state {
    CD_UPGRADE_IDLE = 0,
    CD_UPGRADE_CHECKING, /* old program: `NEW -V` runs; the master keeps serving */
    CD_UPGRADE_STARTING, /* new program: its generation comes up while the old one serves */
} cd_upgrade_state;

typedef struct cd_upgrade {
    cd_upgrade_state state;
    unsigned from;      /* STARTING: the old program's generation */
    double deadline;    /* STARTING: the new workers must all be READY by then */
    int prev_exe_fd;    /* STARTING: the old binary, for a rollback; -1 */
    char last[192];     /* the last outcome, for status ("done at ...", "FAILED...") */
    ev_child check_w;   /* CHECKING: the `-V` child */
    ev_timer check_timeout_w;
} cd_upgrade;

typedef enum cd_upgrade_action {
    CD_UPGRADE_NONE = 0, /* no new generation is coming up */
    CD_UPGRADE_WAIT,     /* not all READY yet, still in time */
    CD_UPGRADE_DONE,     /* all READY: stop the old generation (cd_upgrade_finish) */
    CD_UPGRADE_TIMEOUT,  /* upgrade_timeout passed: roll back (cd_upgrade_rollback) */
} cd_upgrade_action;

/* Why an upgrade cannot begin now (a static string), or NULL.  Pure. */
const char *cd_upgrade_refusal(const cd_upgrade *u, int stopping, int reloading);
/* IDLE -> CHECKING.  Pure. */
void cd_upgrade_checking(cd_upgrade *u);
/* CHECKING -> IDLE; returns 1 when `-V` exited 0 (exec the new binary), 0
 * when the upgrade is refused.  Pure. */
int cd_upgrade_checked(cd_upgrade *u, int status);
/* New program: IDLE -> STARTING, generation `from` serving, the new one due
 * by deadline.  Pure. */
void cd_upgrade_starting(cd_upgrade *u, unsigned from, double deadline);
/* STARTING: what now, with new_ready of the active slots' workers of the
 * new generation READY.  Pure. */
cd_upgrade_action cd_upgrade_next(const cd_upgrade *u, int new_ready, int active, double now);
/* STARTING -> IDLE (done or failed); returns 0 when it was not STARTING
 * (nothing to end).  Pure. */
int cd_upgrade_end(cd_upgrade *u);

/* Effects (upgrade.c). */
/* Starts the `-V` check of the binary at m->exe_path (its end comes to the
 * watcher cd_upgrade.check_w, whose callback the loop set).  Returns 0, or
 * -1 with err. */
int cd_upgrade_begin(cd_master *m, char *err, size_t errlen);
/* The `-V` check ended with status: exec the new binary with our state
 * (returns only when that failed), or refuse the upgrade (CHECKING -> IDLE;
 * logged, reported in last). */
void cd_upgrade_check_result(cd_master *m, int status);
/* All new workers READY: the old ones drain; reports. */
void cd_upgrade_finish(cd_master *m);
/* A new worker failed or the time ran out: the old workers get their slots
 * back and the old binary is exec'd again.  Returns only if that failed. */
void cd_upgrade_rollback(cd_master *m, const char *why);
/* New program: a new generation on every slot (the old workers serve
 * until it is READY; upgrade_timeout runs from now).  And the loop's
 * reconcile step: done, or too late. */
void cd_upgrade_start_generation(cd_master *m);
void cd_upgrade_step(cd_master *m);

/* handover.c: what crosses exec.  Execs path (or, with path NULL, the
 * binary behind exe_fd) with our state; rollback_why set makes it a
 * rollback.  Returns only when exec failed (logged; everything taken back). */
void cd_handover_exec(cd_master *m, const char *path, int exe_fd, const char *rollback_why);
/* In the new program: adopts listeners and workers handed over by exec
 * (into the slot table): 0 not an upgrade, 1 a rollback (keep the
 * workers), 2 an upgrade (start a new generation). */
int cd_upgrade_adopt(cd_master *m);
/* In the new program before the loop (clusterd.c): the config text the old
 * one ran (from its memfd); and, when it cannot go on, exec the old binary. */
int cd_upgrade_load_conf(const char *conf_path, cd_conf **out, char *err, size_t errlen);
void cd_upgrade_rollback_exec(char **argv, const char *why);

#endif
