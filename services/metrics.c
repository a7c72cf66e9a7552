/*
 * metrics.c - the metrics service: Prometheus text format for the whole
 * cluster (worker).
 *
 * Any worker answers for all: each heartbeat interval the master sends every
 * worker a snapshot of the cluster's counters (ipc/channel.h, cd_snapshot),
 * so the answer lags by at most one interval and never blocks on the
 * master.  Counters include workers that have exited, so they only go up.
 *
 * Service names become label values; config allows only [A-Za-z0-9_.-] in
 * them, and they are escaped anyway (the snapshot crosses a process
 * boundary, and a broken label would break the whole scrape).
 *
 * Last come the services' own metrics (cd_service_metric), summed over
 * workers by the master: clusterd_<type>_<name>{service="<section>",...}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/stats.h"
#include "ipc/channel.h"
#include "services/service.h"

static const char *const state_names[] = {"starting", "ready", "draining"};

/* Appends a label value (at most max bytes of s, which need not be
 * terminated within them), escaped per the Prometheus text format:
 * backslash, double quote and newline. */
static void label_value(cd_buf *b, const char *s, size_t max)
{
    size_t start = 0, i = 0;
    for (; i < max && s[i]; i++) {
        const char *esc = s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\"" : s[i] == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        cd_buf_append(b, s + start, i - start);
        cd_buf_append(b, esc, 2);
        start = i + 1;
    }
    cd_buf_append(b, s + start, i - start);
}

/* The services' own metrics (cd_service_metric), grouped by name under
 * one # TYPE line each, in the order they first appear.  Names and labels
 * were checked when set (core/stats.c). */
static void render_service_metrics(const cd_snapshot *s, cd_buf *b)
{
    uint32_t n = s->nmetrics < CD_SNAP_METRICS ? s->nmetrics : CD_SNAP_METRICS;
    for (uint32_t i = 0; i < n; i++) {
        const char *name = s->metrics[i].name;
        uint32_t first = 0;
        while (strncmp(s->metrics[first].name, name, CD_METRIC_NAME) != 0)
            first++;
        if (first < i)
            continue; /* printed with its group */
        cd_buf_printf(b, "# TYPE clusterd_%.*s %s\n", CD_METRIC_NAME, name,
                      cd_metric_is_counter(name) ? "counter" : "gauge");
        for (uint32_t j = i; j < n; j++) {
            const cd_svc_metric *m = &s->metrics[j];
            if (strncmp(m->name, name, CD_METRIC_NAME) != 0 || m->svc >= s->nsvc || m->svc >= CD_SNAP_SERVICES)
                continue;
            cd_buf_printf(b, "clusterd_%.*s{service=\"", CD_METRIC_NAME, name);
            label_value(b, s->svc[m->svc].name, sizeof s->svc[m->svc].name);
            cd_buf_printf(b, "\"%s%.*s} %llu\n", m->labels[0] ? "," : "", CD_METRIC_LABELS, m->labels,
                          (unsigned long long)m->value);
        }
    }
}

static void render(const cd_snapshot *s, cd_buf *b)
{
    cd_buf_printf(b, "# HELP clusterd_requests_total Requests answered, by service and status class.\n"
           "# TYPE clusterd_requests_total counter\n");
    for (uint32_t i = 0; i < s->nsvc && i < CD_SNAP_SERVICES; i++)
        for (int c = 1; c <= 5; c++) {
            cd_buf_printf(b, "clusterd_requests_total{service=\"");
            label_value(b, s->svc[i].name, sizeof s->svc[i].name);
            cd_buf_printf(b, "\",code=\"%dxx\"} %llu\n", c, (unsigned long long)s->svc[i].status[c]);
        }
    cd_buf_printf(b, "# HELP clusterd_request_duration_seconds Time from a complete request to its answer.\n"
           "# TYPE clusterd_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < CD_LAT_BUCKETS - 1; i++) {
        cum += s->lat_bucket[i];
        cd_buf_printf(b, "clusterd_request_duration_seconds_bucket{le=\"%g\"} %llu\n", cd_lat_bounds[i], (unsigned long long)cum);
    }
    cum += s->lat_bucket[CD_LAT_BUCKETS - 1];
    cd_buf_printf(b, "clusterd_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    cd_buf_printf(b, "clusterd_request_duration_seconds_sum %.6f\n", (double)s->lat_sum_us / 1e6);
    cd_buf_printf(b, "clusterd_request_duration_seconds_count %llu\n", (unsigned long long)cum);
    cd_buf_printf(b, "# HELP clusterd_accepted_connections_total Connections accepted.\n"
           "# TYPE clusterd_accepted_connections_total counter\n"
           "clusterd_accepted_connections_total %llu\n",
        (unsigned long long)s->accepted);
    cd_buf_printf(b, "# HELP clusterd_moved_connections_total Connections moved to the worker owning their session.\n"
           "# TYPE clusterd_moved_connections_total counter\n"
           "clusterd_moved_connections_total %llu\n",
        (unsigned long long)s->moved);
    cd_buf_printf(b, "# HELP clusterd_respawns_total Workers respawned after dying.\n"
           "# TYPE clusterd_respawns_total counter\n"
           "clusterd_respawns_total %llu\n",
        (unsigned long long)s->respawns);
    uint64_t in_flight = 0;
    int ready = 0;
    for (uint32_t i = 0; i < s->nworkers; i++) {
        in_flight += s->workers[i].in_flight;
        ready += s->workers[i].state == CD_WORKER_READY;
    }
    cd_buf_printf(b, "# HELP clusterd_in_flight Requests being handled now.\n# TYPE clusterd_in_flight gauge\n"
           "clusterd_in_flight %llu\n",
        (unsigned long long)in_flight);
    cd_buf_printf(b, "# HELP clusterd_workers_ready Workers serving.\n# TYPE clusterd_workers_ready gauge\n"
           "clusterd_workers_ready %d\n",
        ready);
    static const struct {
        const char *name, *type, *help;
    } per[] = {
        {"clusterd_worker_requests_total", "counter", "Requests answered by this worker process."},
        {"clusterd_worker_in_flight", "gauge", "Requests this worker is handling now."},
        {"clusterd_worker_connections", "gauge", "Open connections of this worker."},
        {"clusterd_worker_accepted_total", "counter", "Connections this worker accepted."},
        {"clusterd_worker_rss_bytes", "gauge", "Resident memory of this worker."},
        {"clusterd_worker_heartbeat_age_seconds", "gauge", "Time since this worker's last heartbeat."},
        {"clusterd_worker_uptime_seconds", "gauge", "Time since this worker started."},
    };
    for (size_t k = 0; k < sizeof per / sizeof per[0]; k++) {
        cd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", per[k].name, per[k].help, per[k].name, per[k].type);
        for (uint32_t i = 0; i < s->nworkers; i++) {
            const cd_snap_worker *w = &s->workers[i];
            double v = k == 0   ? (double)w->requests
                       : k == 1 ? (double)w->in_flight
                       : k == 2 ? (double)w->connections
                       : k == 3 ? (double)w->accepted
                       : k == 4 ? (double)w->rss_bytes
                       : k == 5 ? w->heartbeat_age
                                : w->uptime;
            cd_buf_printf(b, "%s{slot=\"%d\",pid=\"%d\",generation=\"%u\",state=\"%s\"} %.15g\n", per[k].name, w->slot, w->pid,
                w->generation, w->state < 3 ? state_names[w->state] : "unknown", v);
        }
    }
    render_service_metrics(s, b);
}

static void metrics_handle(cd_service *svc, cd_request *req)
{
    if (cd_request_subpath(req)[0] != '\0') {
        cd_request_respond_error(req, 404, "metrics has no sub-resources");
        return;
    }
    const cd_snapshot *s = cd_service_cluster(svc);
    if (!s) {
        cd_request_respond_error(req, 503, "no cluster snapshot yet; retry in a second");
        return;
    }
    cd_buf b = {0};
    render(s, &b);
    if (!b.p || b.oom) {
        cd_buf_free(&b);
        cd_request_respond_error(req, 500, "out of memory");
        return;
    }
    cd_request_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    cd_buf_free(&b);
}

const cd_service_type cd_service_metrics = {
    .name = "metrics",
    .methods = CD_M_GET | CD_M_HEAD,
    .handle = metrics_handle,
};
