/*
 * stats.h - the metrics schema: what a worker counts and what the master
 * merges into a whole-cluster snapshot.
 *
 * A worker fills one cd_stats (HTTP counting hooks, http/) and sends it with
 * each heartbeat (ipc/proto.h CD_MSG_HEARTBEAT); the master adds every
 * worker's into a cd_snapshot and sends that back to all workers
 * (CD_MSG_CLUSTER), so any worker can answer /metrics for the cluster.  Plain
 * fixed-size structs: both ends are the same binary on the same host.
 *
 * Services add figures of their own (cd_service_metric, clusterd/service.h):
 * each is one cd_svc_metric, keyed by (service, name, labels), set by the
 * service in its worker's cd_stats and summed over workers by the master.
 * A name ending in _total is a counter and a retired worker's value stays
 * in the sum (counters never go down); any other is a gauge, the sum of
 * the live workers' values.
 *
 * Sizes, both under ipc's CD_IPC_MAX_PAYLOAD (65536, checked in stats.c):
 * a cd_stats is 33736 bytes (192 metrics of 168), of which a heartbeat
 * sends only the part up to the last metric in use (cd_stats_wire_len:
 * 1480 bytes with none); a cd_snapshot is 35008
 * before its workers (72 bytes each), so the per-worker lines of /metrics
 * list at most 424 workers (every total still counts them all).
 */
#ifndef CD_CORE_STATS_H
#define CD_CORE_STATS_H

#include <stddef.h>
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
#define CD_STATS_METRICS 192 /* per-worker service metrics, all services */
#define CD_SNAP_METRICS 192  /* cluster-wide, merged by (service, name, labels) */
#define CD_METRIC_NAME 48    /* "<type>_<name>", NUL included */
#define CD_METRIC_LABELS 104 /* `k="v",...` as the service gave them, NUL included */

/* Upper bounds of the latency buckets, in seconds (Prometheus `le`). */
extern const double cd_lat_bounds[CD_LAT_BUCKETS - 1];

typedef struct cd_svc_stats {
    char name[32];      /* service (section) name; "" = unused */
    uint64_t status[6]; /* answered by class: [1]=1xx .. [5]=5xx */
} cd_svc_stats;

/* One service metric: clusterd_<name>{service="<svc[svc].name>",<labels>}. */
typedef struct cd_svc_metric {
    char name[CD_METRIC_NAME];
    char labels[CD_METRIC_LABELS];
    uint32_t svc; /* index into the svc[] of the struct holding it */
    uint32_t pad;
    uint64_t value;
} cd_svc_metric;

/* Counters a worker reports with each heartbeat. */
typedef struct cd_stats {
    uint64_t requests;    /* answered since start */
    uint64_t in_flight;   /* requests being handled now */
    uint64_t connections; /* open now */
    uint64_t accepted;    /* since start */
    uint64_t moved;       /* connections moved to the worker their request belongs to (http/steer.c) */
    uint64_t status[6];   /* answered by class: [1]=1xx .. [5]=5xx */
    uint64_t rss_bytes;
    uint64_t lat_bucket[CD_LAT_BUCKETS]; /* routed requests by latency (not cumulative) */
    uint64_t lat_sum_us;
    cd_svc_stats svc[CD_STATS_SERVICES];
    uint32_t nmetrics, pad;
    cd_svc_metric metrics[CD_STATS_METRICS];
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
    uint64_t requests, accepted, moved;
    uint64_t status[6];
    uint64_t lat_bucket[CD_LAT_BUCKETS];
    uint64_t lat_sum_us;
    cd_svc_stats svc[CD_SNAP_SERVICES];
    uint32_t nmetrics, pad;
    cd_svc_metric metrics[CD_SNAP_METRICS];
    cd_snap_worker workers[]; /* nworkers of them */
} cd_snapshot;

/* A heartbeat carries a cd_stats up to its last metric in use: most
 * workers set few or none, and the whole struct is ~33 KB.  wire_len is
 * what to send; from_wire checks a received one (len consistent with its
 * nmetrics) and copies it into out, the unused metrics zeroed: 0 or -1. */
size_t cd_stats_wire_len(const cd_stats *st);
int cd_stats_from_wire(cd_stats *out, const void *msg, size_t len);

/* Adds a worker's counters into a snapshot's totals (merging services by
 * name, their metrics by (service, name, labels)).  Used by the master. */
void cd_snapshot_add(cd_snapshot *snap, const cd_stats *st);
/* The same for a worker that has exited: its counters only, not its
 * gauges (its clients, say, are gone with it). */
void cd_snapshot_retire(cd_snapshot *snap, const cd_stats *st);

/* Sets service svc's (an index into st->svc) metric "<type>_<name>" with
 * labels ("" or `k="v",...`: keys [A-Za-z_][A-Za-z0-9_]*, not "service";
 * values with \\, \" and \n escaped) to value.  At most per_svc distinct
 * (name, labels) per service.  Returns 0, -EINVAL (a bad or too long name
 * or labels) or -ENOSPC.  Used by the worker (cd_service_metric). */
int cd_stats_metric_set(cd_stats *st, uint32_t svc, const char *type, const char *name, const char *labels,
                        uint64_t value, unsigned per_svc);
/* Whether a metric name is a counter (ends in _total). */
int cd_metric_is_counter(const char *name);

#endif
