/*
 * master.h - the master process: listeners, worker slots, supervision.
 *
 * The master owns one SO_REUSEPORT listener per worker slot for the whole
 * life of the slot, so a worker's death never resets connections queued on
 * its listener: the next worker of the slot inherits the same socket.
 *
 * master.c  the loop: signals, children, channels, timers (start here);
 *           which slots are steered to, and the hand-off of connections
 *           queued on a slot that has no ready worker
 * spawn.c   fork + exec of a worker with its listener, channel and config
 * steer.c   the reuseport group's steering program (which slots get traffic)
 */
#ifndef CD_MASTER_H
#define CD_MASTER_H

#include <ev.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "core/stats.h"
#include "ipc/bus.h"
#include "ipc/channel.h"

typedef enum proc_state {
    PROC_STARTING, /* forked, not READY yet */
    PROC_READY,    /* serving */
    PROC_DRAINING, /* told to STOP, finishing its requests */
} proc_state;

typedef struct cd_master cd_master;

#define CD_MAX_SLOTS 1024 /* slots are preallocated: their embedded watchers never move */

/* One worker process. */
typedef struct cd_proc {
    cd_master *m;
    pid_t pid;
    int slot;
    unsigned generation;
    int chan_fd;
    ev_io chan_w;
    cd_ipc_decoder *dec;
    proc_state state;
    ev_tstamp started, last_heartbeat, drain_deadline;
    cd_stats stats;
    char bootfail[256]; /* reason a worker gave before failing to boot */
    int hung;           /* killed for missing heartbeats */
    int recycle;        /* asked to be replaced (max_requests, max_rss) */
    int not_accepting;  /* answered STOP with DRAINING: it takes no new connection */
    struct cd_proc *replaces; /* the worker this one takes over from once READY */
    struct cd_proc *next;
} cd_proc;

/* One worker slot: a listener and the worker serving it. */
typedef struct cd_slot {
    int index;
    int fd;         /* the listener, -1 when the slot is closed */
    int wanted;     /* the slot should have a worker */
    int retiring;   /* scaled down: its worker drains; the listener stays open (master.c) */
    int activated;  /* the listener came from systemd (socket activation) */
    cd_proc *current; /* the worker serving it (or starting) */
    unsigned fails;   /* consecutive crashes, for backoff */
    ev_timer respawn_w;
    int steered;          /* in the steering program's set (master.c) */
    ev_io handoff_w;      /* the master accepts here while no worker of the slot is READY */
    cd_master *m;
} cd_slot;

struct cd_master {
    struct ev_loop *loop;
    cd_conf *conf;
    const char *conf_path;
    int cli_workers; /* -w, or 0 */
    int conf_memfd;  /* sealed copy of conf->text for workers */

    cd_slot *slots;
    int nslots; /* CD_MAX_SLOTS, allocated once */
    int active; /* slots 0..active-1 receive traffic */
    cd_proc *procs;
    unsigned generation;
    int steer_valid;      /* the group's program matches the slots' `steered` flags */
    int steer_warned;     /* a failure to steer was logged */
    unsigned handoff_rr;  /* round-robin over ready workers for handed-off connections */

    ev_signal sig_w[8];
    ev_child child_w;
    ev_timer tick_w;
    ev_timer stop_deadline_w;

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
    char last_reload[192];
    uint64_t watchdog_usec; /* 0: no WatchdogSec */
    ev_tstamp last_watchdog, last_status, last_snapshot;
    cd_snapshot *retired; /* counters of workers that have exited */
    uint64_t respawns;
    cd_proc *recycling; /* the replacement being started for a recycled worker */

    char **argv;           /* to exec ourselves again (upgrade) */
    char exe_path[512];    /* the binary's path: an upgrade execs what is there now */
    int upgrading;         /* the new program waits for its first generation */
    int upgrade_checking;  /* `NEW -V` is running */
    unsigned upgrade_from; /* the old program's generation */
    ev_tstamp upgrade_deadline;
    int prev_exe_fd;       /* the old binary, for a rollback */
    char last_upgrade[192];
    ev_child upgrade_check_w;
    ev_timer upgrade_check_timeout_w;

    int stopping;
    int exit_code;
    int reloading;       /* rolling restart in progress */
    int rolling_back;    /* ...back to the previous config after a failure */
    cd_conf *prev_conf;  /* the config before the reload, until it is done */
    int prev_memfd;
    char reload_why[160];
    int reload_next;     /* next slot to roll */
    int reload_pending;  /* another HUP came during the reload */
    int reload_failed;
};

/* Runs the master until it stops; returns the process exit code. */
int cd_master_main(cd_conf *conf, const char *conf_path, int cli_workers, char **argv);

/* What signals and clusterctl ask of the master (master.c).  Each returns 0
 * when the action has begun, or -1 with the reason in err. */
int cd_master_reload(cd_master *m, char *err, size_t errlen); /* validates, then rolls */
int cd_master_scale(cd_master *m, int workers, char *err, size_t errlen);
void cd_master_stop(cd_master *m, int immediate);
void cd_master_reopen_logs(cd_master *m); /* USR1: workers reopen their log files */
void cd_master_send_stop(cd_master *m, cd_proc *p); /* graceful STOP to one worker */
void cd_master_reopen_bus(cd_master *m);             /* after a failed exec */

/* upgrade.c: USR2.  cd_upgrade_begin checks the new binary in a child and
 * then execs it (returns 0 when the check has begun, -1 with err). */
int cd_upgrade_begin(cd_master *m, char *err, size_t errlen);
/* In the new program: the config text the old one ran (from its memfd). */
int cd_upgrade_load_conf(const char *conf_path, cd_conf **out, char *err, size_t errlen);
/* In the new program, when it cannot go on: exec the old binary again. */
void cd_upgrade_rollback_exec(char **argv, const char *why);
/* Adopts listeners and workers handed over by exec: 0 not an upgrade, 1 a
 * rollback (keep the workers), 2 an upgrade (start a new generation). */
int cd_upgrade_adopt(cd_master *m);
void cd_upgrade_start_generation(cd_master *m);
void cd_upgrade_check(cd_master *m);
void cd_upgrade_fail(cd_master *m, const char *why);

/* spawn.c: a cd_proc for a worker that already runs (handed over by exec). */
cd_proc *cd_spawn_adopt(cd_master *m, cd_slot *s, pid_t pid, unsigned generation, int chan_fd);
/* Publishes a lifecycle event (a JSON object, printf format) to clusterctl
 * followers (control.c).  A no-op when the control plane is closed. */
void cd_master_event(cd_master *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* control.c: the control plane (nanomsg REQ/REP at ipc://RUNDIR/control and
 * PUB at ipc://RUNDIR/events, both mode 0600).  Returns 0 or -1 (logged). */
int cd_control_open(cd_master *m);
void cd_control_close(cd_master *m);

/* One clusterctl request, parsed (control.c). */
typedef enum cd_ctl_op {
    CD_CTL_STATUS = 1,
    CD_CTL_RELOAD,
    CD_CTL_SCALE, /* workers */
    CD_CTL_STOP,
    CD_CTL_STOP_NOW,
    CD_CTL_UPGRADE,
    CD_CTL_REOPEN_LOGS,
} cd_ctl_op;
typedef struct cd_ctl_request {
    cd_ctl_op op;
    int workers; /* CD_CTL_SCALE: 1..CD_MAX_SLOTS */
} cd_ctl_request;
#define CD_CTL_MAX_REQUEST 128 /* bytes; every command is far shorter */
/* Parses a request as it came off the socket (len bytes, no terminator
 * needed): one command, white space around it ignored.  Returns 0, or -1
 * with *why set to a reason fit for the client (a static string): too long,
 * a NUL or control byte inside, unknown, or a bad argument.  Pure. */
int cd_control_parse(const void *req, size_t len, cd_ctl_request *out, const char **why);

/* spawn.c: forks and execs a worker for slot s.  Returns the new proc or
 * NULL (logged). */
cd_proc *cd_spawn_worker(cd_master *m, cd_slot *s);

/* master.c: reads a worker's channel (the proc is io->data). */
void cd_master_chan_cb(struct ev_loop *loop, ev_io *io, int revents);

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

/* steer.c: steers new connections, evenly at random, to the sockets at
 * group indices idx[0..n-1] of the reuseport group that fd belongs to
 * (1 <= n <= CD_MAX_SLOTS).  Returns 0 or -errno. */
int cd_steer_set(int fd, const int *idx, int n);

#endif
