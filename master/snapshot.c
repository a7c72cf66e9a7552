/*
 * snapshot.c - the whole cluster's counters, sent to every worker (master
 * process), so any of them can answer /metrics for all: the counters of
 * workers that have exited (m->retired: counters never go down), the live
 * workers' own, and one line per worker.  The schema is core/stats.h.
 */
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"
#include "ipc/proto.h"
#include "master/master.h"

/* Sends every worker the whole cluster's counters, so any of them can answer
 * /metrics for all. */
void cd_snapshot_send(cd_master *m)
{
    int nw = 0;
    for (cd_proc *p = m->procs; p; p = p->next)
        nw++;
    size_t len = sizeof(cd_snapshot) + (size_t)nw * sizeof(cd_snap_worker);
    if (len > CD_IPC_MAX_PAYLOAD) {
        nw = (int)((CD_IPC_MAX_PAYLOAD - sizeof(cd_snapshot)) / sizeof(cd_snap_worker));
        len = sizeof(cd_snapshot) + (size_t)nw * sizeof(cd_snap_worker);
    }
    cd_snapshot *snap = malloc(len);
    if (!snap)
        return;
    memcpy(snap, m->retired, sizeof *snap);
    snap->respawns = m->respawns;
    snap->nworkers = (uint32_t)nw;
    int i = 0;
    double t = ev_now(m->loop);
    for (cd_proc *p = m->procs; p; p = p->next) {
        cd_snapshot_add(snap, &p->stats);
        if (i >= nw)
            continue;
        cd_snap_worker *sw = &snap->workers[i++];
        memset(sw, 0, sizeof *sw);
        sw->slot = p->slot;
        sw->pid = p->pid;
        sw->generation = p->generation;
        sw->state = (uint32_t)p->state;
        sw->uptime = t - p->started;
        sw->heartbeat_age = t - p->last_heartbeat;
        sw->requests = p->stats.requests;
        sw->in_flight = p->stats.in_flight;
        sw->connections = p->stats.connections;
        sw->accepted = p->stats.accepted;
        sw->rss_bytes = p->stats.rss_bytes;
    }
    for (cd_proc *p = m->procs; p; p = p->next)
        if (p->chan_fd >= 0 && p->state != PROC_STARTING)
            cd_ipc_send(p->chan_fd, CD_MSG_CLUSTER, snap, len);
    free(snap);
}
