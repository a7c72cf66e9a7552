/*
 * control_proto.h - the control protocol between clusterctl and the master,
 * declared once: both master/control.c and ctl/clusterctl.c include it.
 *
 * Transport: two nanomsg sockets in the master's runtime dir (mode 0600):
 *   ipc://RUNDIR/control  REQ/REP: one text command per request (at most
 *                         CD_CTL_MAX_REQUEST bytes, the whole request is the
 *                         command), one flat JSON object per reply
 *   ipc://RUNDIR/events   PUB/SUB: one JSON object per lifecycle event
 *
 * Every reply has "ok" (true/false); a refusal has "error" (a text for
 * humans).  The master answers at once, saying whether the action began;
 * clusterctl waits for outcomes by following `status`.
 */
#ifndef CD_IPC_CONTROL_PROTO_H
#define CD_IPC_CONTROL_PROTO_H

/* Socket file names inside the runtime dir. */
#define CD_CTL_SOCK_CONTROL "control"
#define CD_CTL_SOCK_EVENTS "events"

/* Commands (the request text; "scale" takes a worker count: "scale 4"). */
#define CD_CTL_CMD_STATUS "status"
#define CD_CTL_CMD_RELOAD "reload"
#define CD_CTL_CMD_SCALE "scale"
#define CD_CTL_CMD_STOP "stop"
#define CD_CTL_CMD_STOP_NOW "stop now"
#define CD_CTL_CMD_UPGRADE "upgrade"
#define CD_CTL_CMD_REOPEN_LOGS "reopen-logs"
#define CD_CTL_CMD_DRAIN "drain"     /* /healthz/ready answers 503 on every worker; nothing else changes */
#define CD_CTL_CMD_UNDRAIN "undrain" /* ...and back */
#define CD_CTL_USAGE "status, reload, scale N, stop, stop now, reopen-logs, upgrade, drain, undrain"

/* Limits. */
#define CD_CTL_MAX_REQUEST 128  /* bytes; every command is far shorter */
#define CD_CTL_MAX_WORKERS 1024 /* scale N: 1..this (the master's slot count) */

/* One request, parsed (master/control.c: cd_control_parse). */
typedef enum cd_ctl_op {
    CD_CTL_STATUS = 1,
    CD_CTL_RELOAD,
    CD_CTL_SCALE, /* workers */
    CD_CTL_STOP,
    CD_CTL_STOP_NOW,
    CD_CTL_UPGRADE,
    CD_CTL_REOPEN_LOGS,
    CD_CTL_DRAIN,
    CD_CTL_UNDRAIN,
} cd_ctl_op;
typedef struct cd_ctl_request {
    cd_ctl_op op;
    int workers; /* CD_CTL_SCALE: 1..CD_CTL_MAX_WORKERS, else 0 */
} cd_ctl_request;

/* Answer fields.  Every answer: */
#define CD_CTL_F_OK "ok"       /* true or false */
#define CD_CTL_F_ERROR "error" /* string, when ok is false */
/* reload, upgrade: "generation" (a number); scale: "workers" (the count);
 * stop: "pid"; drain, undrain: "draining" (0 or 1).  status: */
#define CD_CTL_F_PID "pid"
#define CD_CTL_F_UPTIME "uptime"         /* seconds */
#define CD_CTL_F_GENERATION "generation" /* of the running config */
#define CD_CTL_F_WORKERS_WANTED "workers_wanted"
#define CD_CTL_F_RELOADING "reloading"         /* bool: a rolling restart (or its roll-back) runs */
#define CD_CTL_F_RELOAD_FAILED "reload_failed" /* bool: the last one failed */
#define CD_CTL_F_STOPPING "stopping"           /* bool */
#define CD_CTL_F_DRAINING "draining" /* bool: drained (clusterctl drain), or a stop in its drain_delay */
#define CD_CTL_F_LAST_RELOAD "last_reload"     /* string, starts with one of CD_CTL_OUTCOME_* */
#define CD_CTL_F_UPGRADING "upgrading"         /* bool: a binary upgrade runs (or is being checked) */
#define CD_CTL_F_LAST_UPGRADE "last_upgrade"   /* string, starts with one of CD_CTL_OUTCOME_* */
#define CD_CTL_F_LISTEN "listen"
#define CD_CTL_F_LATENCY_LE "latency_le" /* array: upper bounds (seconds) of the latency buckets */
#define CD_CTL_F_WORKERS "workers" /* array of objects, in slot order, each starting with "slot": */
/* ...one worker: */
#define CD_CTL_W_SLOT "slot" /* the first field of each worker object */
#define CD_CTL_W_PID "pid"
#define CD_CTL_W_GENERATION "generation"
#define CD_CTL_W_STATE "state" /* one of CD_CTL_STATE_* */
#define CD_CTL_W_UPTIME "uptime"
#define CD_CTL_W_REQUESTS "requests"
#define CD_CTL_W_IN_FLIGHT "in_flight"
#define CD_CTL_W_CONNECTIONS "connections"
#define CD_CTL_W_RSS "rss" /* bytes */
#define CD_CTL_W_HEARTBEAT_AGE "heartbeat_age" /* seconds */
#define CD_CTL_W_LATENCY "latency" /* array: requests by latency bucket since start (latency_le, then
                                      one past the last bound); the last field of a worker */

#define CD_CTL_STATE_STARTING "starting"
#define CD_CTL_STATE_READY "ready"
#define CD_CTL_STATE_DRAINING "draining"

/* How last_reload / last_upgrade begin. */
#define CD_CTL_OUTCOME_DONE "done"         /* done at TIME (generation N) */
#define CD_CTL_OUTCOME_FAILED "FAILED"     /* FAILED, rolled back ... / FAILED: why */
#define CD_CTL_OUTCOME_REJECTED "REJECTED" /* reload only: the new config was invalid */

/* Events: every object has "time" (seconds, the master's clock) and
 * "event" (worker_started, worker_ready, worker_exited, respawn_scheduled,
 * recycle, scaled, stopping, reload_begun, reload_done, reload_failed,
 * reload_rejected, upgrade_done, upgrade_failed, draining: "on" true or
 * false, "stop" true when a graceful stop's drain_delay begins). */
#define CD_CTL_EV_TIME "time"
#define CD_CTL_EV_EVENT "event"

#endif
