/*
 * supervise.h - the master's supervision decisions as pure functions over
 * plain structs (master process; no processes, no loop, no clock: the
 * caller passes the facts, including the time and any randomness).
 *
 *   cd_supervise_exit     what a worker's exit means (upgrade failure,
 *                         reload abort, postponed recycle, boot failure,
 *                         expected exit, crash)
 *   cd_supervise_respawn  when its slot gets a new worker (backoff)
 *   cd_supervise_hung     whether a live worker must be killed
 *
 * master.c gathers the facts from its table and acts on the verdicts;
 * tests/unit/master/test_supervise.c checks every case.
 */
#ifndef CD_MASTER_SUPERVISE_H
#define CD_MASTER_SUPERVISE_H

#define CD_BACKOFF_BASE 0.1  /* first delayed respawn, seconds */
#define CD_BACKOFF_MAX 30.0  /* cap on the respawn delay */
#define CD_STABLE_AFTER 10.0 /* a worker up this long resets its slot's crash count */
#define CD_LAST_UP_DELAY 0.5 /* the longest respawn delay when no other worker is up */

/* What the master knew about a worker when it exited. */
typedef struct cd_exit_facts {
    int status;          /* from waitpid */
    int starting;        /* it had not sent READY */
    int draining;        /* it had been told to STOP */
    unsigned generation; /* its generation */
    int replaces_alive;  /* it was replacing a worker that still runs and is not draining */
    int recycling;       /* it was the replacement for a recycled worker */
    int stopping;        /* the master is stopping */
    int reloading;       /* a rolling restart (or its roll-back) is under way */
    int upgrading;       /* this program is an upgrade whose new generation is coming up */
    unsigned upgrade_from; /* ...the old program's generation */
} cd_exit_facts;

typedef enum cd_exit_kind {
    CD_EXITED_UPGRADE_FAILED = 1, /* a worker of the new program died before READY: roll back */
    CD_EXITED_EXPECTED,           /* told to stop (or the master stops): log it, nothing more */
    CD_EXITED_REPLACEMENT_FAILED, /* a replacement died before READY: the worker it replaced keeps the slot */
    CD_EXITED_RELOAD_BOOTFAIL,    /* a worker on the new config cannot boot: the reload fails */
    CD_EXITED_BOOTFAIL,         /* a worker cannot boot: stop the cluster, do not respawn */
    CD_EXITED_CRASH,              /* anything else: respawn */
} cd_exit_kind;

typedef struct cd_exit_verdict {
    cd_exit_kind kind;
    int bootfail;         /* it exited with CD_EXIT_BOOTFAIL */
    int clean;            /* it exited with code 0 */
    int abort_reload;     /* the reload under way fails (rolls back) */
    int postpone_recycle; /* the recycling of its slot waits for another turn */
} cd_exit_verdict;

/* Classifies one exit.  Pure. */
cd_exit_verdict cd_supervise_exit(const cd_exit_facts *f);

/* The respawn of a slot whose worker died unexpectedly. */
typedef struct cd_respawn {
    unsigned fails; /* the slot's crash count, this one included */
    double delay;   /* seconds before the new worker starts (0: at once) */
    int last_up;    /* the delay was cut to CD_LAST_UP_DELAY: no other worker is up */
} cd_respawn;

/* fails: the slot's crash count before this exit; uptime: how long the dead
 * worker ran; active: slots wanted; others_up: a worker that is not
 * draining is still alive; jitter: in [0, 1] (random() / RAND_MAX).  The
 * first crash in a row respawns at once; then the delay doubles from
 * CD_BACKOFF_BASE to CD_BACKOFF_MAX with full jitter in [d/2, d]; a worker
 * that was up CD_STABLE_AFTER seconds resets the count.  Pure. */
cd_respawn cd_supervise_respawn(unsigned fails, double uptime, int active, int others_up, double jitter);

/* The backoff delay for the fails-th crash in a row (fails >= 1), with
 * full jitter in [d/2, d] (jitter in [0, 1]).  Pure. */
double cd_supervise_backoff(unsigned fails, double jitter);

/* Whether a live worker must be killed. */
typedef enum cd_hung_kind {
    CD_HUNG_NO = 0,
    CD_HUNG_DRAIN_OVERRUN, /* told to STOP, still there past its drain deadline */
    CD_HUNG_NOT_READY,     /* no READY within the heartbeat timeout */
    CD_HUNG_NO_HEARTBEAT,  /* READY, then its heartbeats stopped */
} cd_hung_kind;

typedef struct cd_hung_facts {
    int starting, draining;
    int killed; /* already killed for this: not again */
    double now, last_heartbeat, drain_deadline, heartbeat_timeout;
} cd_hung_facts;

cd_hung_kind cd_supervise_hung(const cd_hung_facts *f);

#endif
