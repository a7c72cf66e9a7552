/*
 * master.h - the master process: listeners, worker slots, supervision.
 *
 * The master owns one SO_REUSEPORT listener per worker slot for the whole
 * life of the slot, so a worker's death never resets connections queued on
 * its listener: the next worker of the slot inherits the same socket.
 *
 * Start with master.c: the loop.  Its handlers (signals, SIGCHLD, worker
 * channels, clusterctl commands, timers) only record facts in the table;
 * one reconcile step then decides what to do: reap the exited, kill the
 * hung, manage the rest (start, stop, replace, roll), as gunicorn's arbiter
 * does.  The other files:
 *
 * master.c     the loop: handlers, then reconcile (reap, murder, manage)
 * commands.c   what clusterctl and signals ask: checked, recorded, answered
 * supervise.c  exit classification, respawn backoff, hung workers: pure
 * reload.c     the rolling restart: state machine (pure) and its effects
 * upgrade.c    the binary upgrade in place: state machine, `-V` check,
 *              done or rolled back
 * handover.c   what an upgrade passes through exec, and adopting it
 * slots.c      the slot/worker table (its only writer): starting a worker
 *              for a slot, replacements, listeners, scaling, steering, the
 *              hand-off of connections queued on a slot
 * spawn.c      fork + exec of a worker; returns the pid and channel fd
 * control.c    clusterctl's control plane: parse a command, answer, events
 * snapshot.c   the cluster's counters sent to every worker (/metrics)
 * rundir.c     the runtime dir and the bus relay in it
 * start.c      setup before the loop and teardown after it
 * privs.c      rlimit, user/group, pidfile, watchdog interval at start
 * systemd.c    sd_notify, socket activation, watchdog (libsystemd dlopen'd)
 * pidfile.c    the locked pidfile
 * steer.c      the reuseport group's steering program (which slots get traffic)
 * sticky.c     the relay of connections a worker moves to the worker that
 *              owns their session (HANDOFF in, CONN out)
 *
 * Calls go one way: master.c -> commands.c, start.c -> reload.c, upgrade.c
 * (-> handover.c) -> slots.c -> spawn.c, steer.c.  Any of them may publish an event
 * (control.c) or tell systemd something; those call nothing back.
 */
#ifndef CD_MASTER_H
#define CD_MASTER_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "core/buf.h"
#include "core/stats.h"
#include "ipc/bus.h"
#include "ipc/channel.h"
#include "ipc/control_proto.h"
#include "master/reload.h"
#include "master/spawn.h"
#include "master/supervise.h"
#include "master/upgrade.h"

typedef enum proc_state {
    PROC_STARTING, /* forked, not READY yet */
    PROC_READY,    /* serving */
    PROC_DRAINING, /* told to STOP, finishing its requests */
} proc_state;

#define CD_MAX_SLOTS CD_CTL_MAX_WORKERS /* slots are preallocated: their embedded watchers never move */

/* One worker process.  Facts the handlers record are marked (fact): the
 * reconcile step acts on them. */
typedef struct cd_proc {
    cd_master *m;
    pid_t pid;
    int slot;
    unsigned generation;
    int chan_fd; /* -1 once the channel is gone (fact) */
    ev_io chan_w;
    cd_ipc_decoder *dec;
    proc_state state;
    ev_tstamp started, last_heartbeat, drain_deadline;
    cd_stats stats;
    char bootfail[256]; /* reason a worker gave before failing to boot (fact) */
    int exited;         /* reaped (fact); status is its wait status */
    int status;
    int just_ready;     /* READY came; what follows from it is still to do (fact) */
    int hung;           /* killed for missing heartbeats or an overrun drain */
    int recycle;        /* asked to be replaced (max_requests, max_rss) (fact) */
    int not_accepting;  /* answered STOP with DRAINING: it takes no new connection (fact) */
    struct cd_proc *replaces; /* the worker this one takes over from once READY (slots.c) */
    int passed[8]; /* connections it sent (HANDOFF), until their frame is read (sticky.c) */
    int npassed;
    struct cd_proc *next;
} cd_proc;

/* One worker slot: a listener and the worker serving it. */
typedef struct cd_slot {
    int index;
    int fd;           /* the listener, -1 when the slot is closed */
    int wanted;       /* the slot should have a worker */
    int retiring;     /* scaled down: its worker drains; the listener stays open (slots.c) */
    int activated;    /* the listener came from systemd (socket activation) */
    cd_proc *current; /* the worker serving it (or starting) */
    unsigned fails;   /* consecutive crashes, for backoff */
    ev_timer respawn_w; /* the backoff before its next worker; the loop spawns when it is not running */
    int steered;        /* in the steering program's set (slots.c) */
    ev_io handoff_w;    /* the master accepts here while no worker of the slot is READY */
    cd_master *m;
} cd_slot;

typedef enum cd_stop_mode {
    CD_RUNNING = 0,
    CD_STOP_DELAYED, /* graceful, in its drain_delay: readiness says 503, everything else serves */
    CD_STOPPING,     /* graceful: workers drain */
    CD_STOPPING_NOW, /* immediate: workers were sent SIGQUIT */
} cd_stop_mode;

struct cd_master {
    struct ev_loop *loop;
    cd_conf *conf;
    const char *conf_path;
    int cli_workers; /* -w, or 0 */
    int conf_memfd;  /* sealed copy of conf->text for workers */

    /* The table (slots.c writes it). */
    cd_slot *slots;
    int nslots; /* CD_MAX_SLOTS, allocated once */
    int active; /* slots 0..active-1 receive traffic */
    cd_proc *procs;
    unsigned generation;
    int steer_valid;      /* the group's program matches the slots' `steered` flags */
    int steer_warned;     /* a failure to steer was logged */
    unsigned handoff_rr;  /* round-robin over ready workers for handed-off connections */
    uint64_t sticky_moved, sticky_lost; /* connections moved between workers, or dropped on the way (sticky.c) */
    void (*chan_cb)(struct ev_loop *, ev_io *, int); /* the loop's channel handler */

    /* The mode: each its own state machine. */
    cd_stop_mode stop;
    int exit_code;
    cd_reload reload;
    cd_upgrade upgrade;
    cd_proc *recycling; /* the replacement being started for a recycled worker (one at a time) */

    ev_signal sig_w[8];
    ev_child child_w;
    ev_timer tick_w;
    ev_timer stop_deadline_w;
    ev_timer drain_delay_w; /* a graceful stop's drain_delay (CD_STOP_DELAYED) */
    int drained;            /* clusterctl drain: workers answer /healthz/ready with 503 */

    cd_bus bus; /* relay for services with uses_bus; bus.in < 0 when closed */
    int ctl_rep, ctl_pub; /* control plane sockets, -1 when closed */
    int ctl_bound, bus_bound; /* we bound those socket files (and remove them at exit) */
    ev_io ctl_w;
    ev_tstamp started;
    ev_io bus_w;
    char runtime_dir[200]; /* created by us, removed at exit */

    int activated;   /* slots 0..activated-1 have sockets from systemd */
    int pidfile_fd;  /* locked pidfile, or -1 */
    int drop_privs;  /* workers switch to uid/gid */
    uid_t uid;
    gid_t gid;
    int notified_ready; /* READY=1 sent */
    int ready_seen;     /* slots with a READY worker when last counted */
    uint64_t watchdog_usec; /* 0: no WatchdogSec */
    ev_tstamp last_watchdog, last_status, last_snapshot;
    cd_snapshot *retired; /* counters of workers that have exited */
    uint64_t respawns;

    char **argv;        /* to exec ourselves again (upgrade) */
    char exe_path[512]; /* the binary's path: an upgrade execs what is there now */
};

/* master.c: runs the master until it stops; returns the process exit code. */
int cd_master_main(cd_conf *conf, const char *conf_path, int cli_workers, char **argv);

/* commands.c: runs one command (clusterctl's, or a signal's); its answer
 * goes to o.  Returns 0, or -1 with the reason in err (and in o). */
int cd_master_execute(cd_master *m, const cd_ctl_request *req, cd_buf *o, char *err, size_t errlen);
/* commands.c: graceful (workers drain) or immediate stop; the exit code is
 * at least code.  It begins at once: a stop clusterctl or a signal asks
 * for waits drain_delay first (cd_master_execute); this one is what ends
 * that wait, and what the master's own stops (a worker that cannot boot)
 * call. */
void cd_master_stop(cd_master *m, int immediate, int code);
/* Whether workers should answer /healthz/ready with 503: the host is
 * drained (clusterctl drain), or a graceful stop is in its drain_delay. */
static inline int cd_master_draining(const cd_master *m) { return m->drained || m->stop == CD_STOP_DELAYED; }

/* start.c: everything but the loop's watchers and the workers (memfd,
 * adoption after an upgrade, process settings, listeners, runtime dir,
 * control plane, bus).  Returns the number of slots to start, or -1
 * (logged); *adopted as cd_upgrade_adopt says.  teardown undoes it all. */
int cd_master_setup(cd_master *m, int *adopted);
void cd_master_teardown(cd_master *m);

/* slots.c: the table.  The only writer of m->procs, slot->current,
 * proc->replaces, slot->wanted/retiring and m->active. */
int cd_slots_init(cd_master *m);                 /* 0 or -ENOMEM */
void cd_slots_close_all(cd_master *m);           /* at exit: listeners, workers' entries */
int cd_slots_open(cd_master *m, int i);          /* slot i's listener; 0 or -1 (logged) */
void cd_slots_activate(cd_master *m, int n);     /* slots 0..n-1 get traffic and should have workers */
/* A listener that comes from systemd (activated) or from the old program of
 * an upgrade. */
void cd_slots_take_listener(cd_master *m, int i, int fd, int activated);
void cd_slots_scale(cd_master *m, int target);   /* opens or retires slots (their workers: the loop) */
cd_proc *cd_slots_find(cd_master *m, pid_t pid);
/* Starts a worker for slot s on the current config and generation (spawn.c):
 * it serves the slot at once, or (take_over) once READY, when the current
 * one drains.  Returns it, or NULL (logged). */
cd_proc *cd_slots_start(cd_master *m, cd_slot *s, int take_over);
/* A started (or adopted) worker enters the table, not yet serving a slot;
 * its channel is watched with m->chan_cb.  NULL when out of memory. */
cd_proc *cd_slots_add(cd_master *m, cd_slot *s, pid_t pid, unsigned generation, int chan);
void cd_slots_adopt(cd_master *m, cd_slot *s, pid_t pid, unsigned generation, int chan, int ready);
void cd_slots_remove(cd_master *m, cd_proc *p);        /* it exited: out of the table */
void cd_slots_close_channel(cd_master *m, cd_proc *p); /* its channel hit EOF */
void cd_slots_serve(cd_master *m, cd_slot *s, cd_proc *p);       /* p is s's worker now */
void cd_slots_serve_after(cd_master *m, cd_slot *s, cd_proc *p); /* ...taking over from the current once READY */
cd_proc *cd_slots_took_over(cd_master *m, cd_proc *p); /* p is READY: returns the worker it replaced (to stop) */
/* A replacement died before READY: the worker it replaced (if alive and
 * not draining) serves the slot again.  Returns 1 when that happened. */
int cd_slots_keep_replaced(cd_master *m, cd_slot *s, cd_proc *replaced);
void cd_slots_cancel_replacements(cd_master *m); /* reload roll-back: replacements stop */
void cd_slots_give_back(cd_master *m, unsigned old_generation); /* upgrade rollback */
void cd_slots_stop(cd_master *m, cd_proc *p); /* graceful STOP (it drains) */
/* Tells p (or, with p NULL, every worker with a channel) whether the host
 * is draining (cd_master_draining): DRAIN or UNDRAIN.  A worker that
 * starts, or is adopted, while draining is told as it enters the table. */
void cd_slots_tell_drain(cd_master *m, cd_proc *p);
int cd_slots_count_ready(cd_master *m);       /* active slots whose worker is READY */
/* Steering and hand-off follow the slots' readiness; called whenever it may
 * have changed (the reconcile step, STOP, scaling). */
void cd_slots_changed(cd_master *m);

/* control.c: the control plane (ipc/control_proto.h). */
int cd_control_open(cd_master *m); /* 0 or -1 (logged); m->ctl_w's callback is the loop's */
void cd_control_close(cd_master *m);
/* Parses a request as it came off the socket (len bytes, no terminator
 * needed): one command, white space around it ignored.  Returns 0, or -1
 * with *why set to a reason fit for the client (a static string): too long,
 * a NUL or control byte inside, unknown, or a bad argument.  Pure. */
int cd_control_parse(const void *req, size_t len, cd_ctl_request *out, const char **why);
/* The next request: 1 (in *req; answer it with cd_control_answer), 0 when
 * none is waiting, -1 when one was refused (answered already). */
int cd_control_next(cd_master *m, cd_ctl_request *req);
void cd_control_answer(cd_master *m, const cd_buf *o);
void cd_control_status(cd_master *m, cd_buf *o);             /* the status answer */
void cd_control_error(cd_buf *o, const char *msg);           /* {"ok":false,"error":msg} */
void cd_control_ok(cd_buf *o, const char *field, long long value); /* {"ok":true[,field:value]} */
/* Publishes a lifecycle event (a JSON object, printf format) to clusterctl
 * followers.  A no-op when the control plane is closed. */
void cd_master_event(cd_master *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* snapshot.c: sends every worker past READY the cluster's counters. */
void cd_snapshot_send(cd_master *m);

/* rundir.c: the runtime dir (0 or -1, logged) and the bus relay. */
int cd_rundir_ensure(cd_master *m);
void cd_rundir_remove(cd_master *m); /* the sockets we bound, then the dir if empty */
int cd_bus_ensure(cd_master *m);     /* opens the relay when a service needs it: 0 or -1 (logged) */
void cd_bus_shut(cd_master *m);

/* privs.c: rlimit, user/group, pidfile (unless adopted), watchdog.  0 or -1 (logged). */
int cd_privs_prepare(cd_master *m, int adopted);

/* systemd.c: sd_notify helpers (no-ops without NOTIFY_SOCKET). */
void cd_systemd_notify(const char *state);
void cd_systemd_status(cd_master *m, const char *what);
/* systemd.c: sockets passed by systemd, by slot (slotK names, else in order);
 * returns how many (0 when not socket-activated) or -errno. */
int cd_systemd_listeners(int *fds, int max);
int cd_systemd_watchdog_usec(uint64_t *usec);

/* pidfile.c: creates and locks path, writes our pid.  Returns the fd to keep,
 * or -EEXIST (another process holds it: its pid in *holder) or -errno. */
int cd_pidfile_open(const char *path, pid_t *holder);
void cd_pidfile_close(const char *path, int fd);

/* sticky.c: p sent msg (CD_MSG_HANDOFF): forwards the connection that came
 * with it to the worker it names (or one that can serve it), without
 * waiting; a connection that cannot go is closed (logged, counted). */
void cd_sticky_forward(cd_master *m, cd_proc *p, const cd_ipc_msg *msg);
/* Closes the connections p sent whose frames will never be read. */
void cd_sticky_drop(cd_proc *p);

/* steer.c: steers new connections, evenly at random, to the sockets at
 * group indices idx[0..n-1] of the reuseport group that fd belongs to
 * (1 <= n <= CD_MAX_SLOTS).  Returns 0 or -errno. */
int cd_steer_set(int fd, const int *idx, int n);

#endif
