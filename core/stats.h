/*
 * stats.h - the metrics schema: what a worker counts and what the master
 * merges into a whole-cluster snapshot.
 *
 * A worker fills one cd_stats (HTTP counting hooks, http/) and sends it with
 * each heartbeat (ipc/proto.h CD_MSG_HEARTBEAT); the master adds every
 * worker's into a cd_snapshot and sends that back to all workers
 * (CD_MSG_CLUSTER), so any worker can answer /metrics for the cluster.  Plain
 * fixed-size structs: both ends are the same binary on the same host.
 */
#ifndef CD_CORE_STATS_H
#define CD_CORE_STATS_H

#include <stdint.h>

/* A worker's life as the master reports it in cd_snap_worker.state. */
enum cd_worker_state {
    CD_WORKER_STARTING = 0,
    CD_WORKER_READY = 1,
    CD_WORKER_DRAINING = 2,
};

#define CD_STATS_SERVICES 16 /* per-worker service counters (one is "-": no route) */
#define CD_SNAP_SERVICES 32  /* cluster-wide, merged by name */
#define CD_LAT_BUCKETS 12    /* latency histogram: 11 bounds + overflow */

/* Upper bounds of the latency buckets, in seconds (Prometheus `le`). */
extern const double cd_lat_bounds[CD_LAT_BUCKETS - 1];

typedef struct cd_svc_stats {
    char name[32];      /* service (section) name; "" = unused */
    uint64_t status[6]; /* answered by class: [1]=1xx .. [5]=5xx */
} cd_svc_stats;

/* Counters a worker reports with each heartbeat. */
typedef struct cd_stats {
    uint64_t requests;    /* answered since start */
    uint64_t in_flight;   /* requests being handled now */
    uint64_t connections; /* open now */
    uint64_t accepted;    /* since start */
    uint64_t status[6];   /* answered by class: [1]=1xx .. [5]=5xx */
    uint64_t rss_bytes;
    uint64_t lat_bucket[CD_LAT_BUCKETS]; /* routed requests by latency (not cumulative) */
    uint64_t lat_sum_us;
    cd_svc_stats svc[CD_STATS_SERVICES];
} cd_stats;

/* One worker as the master sees it. */
typedef struct cd_snap_worker {
    int32_t slot, pid;
    uint32_t generation, state; /* enum cd_worker_state */
    double uptime, heartbeat_age;
    uint64_t requests, in_flight, connections, accepted, rss_bytes;
} cd_snap_worker;

/* The whole cluster, as the master sends it to every worker each heartbeat
 * interval so that any worker can answer /metrics for all.  Counters include
 * the workers that have exited, so they never go down. */
typedef struct cd_snapshot {
    uint32_t nworkers, nsvc;
    uint64_t respawns;
    uint64_t requests, accepted;
    uint64_t status[6];
    uint64_t lat_bucket[CD_LAT_BUCKETS];
    uint64_t lat_sum_us;
    cd_svc_stats svc[CD_SNAP_SERVICES];
    cd_snap_worker workers[]; /* nworkers of them */
} cd_snapshot;

/* Adds a worker's counters into a snapshot's totals (merging services by
 * name).  Used by the master. */
void cd_snapshot_add(cd_snapshot *snap, const cd_stats *st);

#endif
