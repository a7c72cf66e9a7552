/*
 * stats.c - latency bucket bounds, the snapshot merge (master) and the
 * services' own metrics (set in the worker, merged in the master).
 *
 * A service metric is checked when it is set, in the worker, so that
 * what crosses to the master and into /metrics is always a valid
 * Prometheus name and label set: metrics.c prints them as they are.
 */
#include "core/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

/* Both messages fit a channel frame (ipc/channel.h CD_IPC_MAX_PAYLOAD,
 * 64k; core cannot include ipc), the snapshot with room for its workers. */
_Static_assert(sizeof(cd_stats) <= 65536, "a heartbeat is one channel frame");
_Static_assert(sizeof(cd_snapshot) + 256 * sizeof(cd_snap_worker) <= 65536, "a snapshot lists 256 workers");

const double cd_lat_bounds[CD_LAT_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1.0};

int cd_metric_is_counter(const char *name)
{
    size_t n = strnlen(name, CD_METRIC_NAME);
    return n >= 6 && memcmp(name + n - 6, "_total", 6) == 0;
}

/* The index of service s of st in snap->svc, added if new; -1 when full. */
static int snap_svc(cd_snapshot *snap, const cd_svc_stats *s)
{
    uint32_t k = 0;
    while (k < snap->nsvc && strncmp(snap->svc[k].name, s->name, sizeof s->name) != 0)
        k++;
    if (k == snap->nsvc) {
        if (k == CD_SNAP_SERVICES)
            return -1; /* more distinct names than we track: drop the extras */
        memcpy(snap->svc[k].name, s->name, sizeof s->name);
        snap->svc[k].name[sizeof s->name - 1] = '\0';
        snap->nsvc++;
    }
    return (int)k;
}

static void add_metrics(cd_snapshot *snap, const cd_stats *st, const int *svc_map, int gauges)
{
    for (uint32_t i = 0; i < st->nmetrics && i < CD_STATS_METRICS; i++) {
        const cd_svc_metric *m = &st->metrics[i];
        if (m->svc >= CD_STATS_SERVICES || svc_map[m->svc] < 0 || (!gauges && !cd_metric_is_counter(m->name)))
            continue;
        uint32_t svc = (uint32_t)svc_map[m->svc], k = 0;
        while (k < snap->nmetrics && !(snap->metrics[k].svc == svc && strcmp(snap->metrics[k].name, m->name) == 0 &&
                                       strcmp(snap->metrics[k].labels, m->labels) == 0))
            k++;
        if (k == snap->nmetrics) {
            if (k == CD_SNAP_METRICS)
                continue; /* full: the extras are dropped, as services are */
            snap->metrics[k] = *m;
            snap->metrics[k].svc = svc;
            snap->metrics[k].value = 0;
            snap->nmetrics++;
        }
        snap->metrics[k].value += m->value;
    }
}

static void add(cd_snapshot *snap, const cd_stats *st, int gauges)
{
    int svc_map[CD_STATS_SERVICES];
    snap->requests += st->requests;
    snap->accepted += st->accepted;
    snap->moved += st->moved;
    for (int i = 0; i < 6; i++)
        snap->status[i] += st->status[i];
    for (int i = 0; i < CD_LAT_BUCKETS; i++)
        snap->lat_bucket[i] += st->lat_bucket[i];
    snap->lat_sum_us += st->lat_sum_us;
    for (int i = 0; i < CD_STATS_SERVICES; i++) {
        const cd_svc_stats *s = &st->svc[i];
        svc_map[i] = s->name[0] ? snap_svc(snap, s) : -1;
        if (svc_map[i] < 0)
            continue;
        for (int c = 0; c < 6; c++)
            snap->svc[svc_map[i]].status[c] += s->status[c];
    }
    add_metrics(snap, st, svc_map, gauges);
}

void cd_snapshot_add(cd_snapshot *snap, const cd_stats *st)
{
    add(snap, st, 1);
}

void cd_snapshot_retire(cd_snapshot *snap, const cd_stats *st)
{
    add(snap, st, 0);
}

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* `k="v",...` (or ""): Prometheus label names, escaped values, no
 * "service" (ours). */
static int labels_valid(const char *l)
{
    while (*l) {
        const char *k = l;
        if (!name_char(*l, 1))
            return 0;
        while (name_char(*l, 0))
            l++;
        if ((size_t)(l - k) == 7 && memcmp(k, "service", 7) == 0)
            return 0;
        if (l[0] != '=' || l[1] != '"')
            return 0;
        for (l += 2; *l != '"'; l++) {
            if (!*l || *l == '\n')
                return 0;
            if (*l == '\\' && l[1] != '\\' && l[1] != '"' && l[1] != 'n')
                return 0;
            if (*l == '\\')
                l++;
        }
        l++;
        if (*l == ',' && l[1])
            l++;
        else if (*l)
            return 0;
    }
    return 1;
}

int cd_stats_metric_set(cd_stats *st, uint32_t svc, const char *type, const char *name, const char *labels,
                        uint64_t value, unsigned per_svc)
{
    char full[CD_METRIC_NAME];
    if (!labels)
        labels = "";
    if (svc >= CD_STATS_SERVICES || !name || !name_char(name[0], 1) || strlen(labels) >= CD_METRIC_LABELS ||
        !labels_valid(labels))
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!name_char(*p, 0))
            return -EINVAL;
    int n = snprintf(full, sizeof full, "%s_%s", type, name);
    if (n < 0 || (size_t)n >= sizeof full)
        return -EINVAL;
    for (const char *p = type; *p; p++)
        if (!name_char(*p, 0))
            return -EINVAL; /* a module's type name that is no metric name */
    unsigned mine = 0;
    for (uint32_t i = 0; i < st->nmetrics; i++) {
        cd_svc_metric *m = &st->metrics[i];
        if (m->svc != svc)
            continue;
        if (strcmp(m->name, full) == 0 && strcmp(m->labels, labels) == 0) {
            m->value = value;
            return 0;
        }
        mine++;
    }
    if (mine >= per_svc || st->nmetrics >= CD_STATS_METRICS)
        return -ENOSPC;
    cd_svc_metric *m = &st->metrics[st->nmetrics++];
    memset(m, 0, sizeof *m);
    memcpy(m->name, full, (size_t)n + 1);
    memcpy(m->labels, labels, strlen(labels) + 1);
    m->svc = svc;
    m->value = value;
    return 0;
}

size_t cd_stats_wire_len(const cd_stats *st)
{
    uint32_t n = st->nmetrics < CD_STATS_METRICS ? st->nmetrics : CD_STATS_METRICS;
    return offsetof(cd_stats, metrics) + (size_t)n * sizeof(cd_svc_metric);
}

int cd_stats_from_wire(cd_stats *out, const void *msg, size_t len)
{
    const size_t head = offsetof(cd_stats, metrics);
    cd_stats tmp;
    if (len < head || len > sizeof tmp)
        return -1;
    memcpy(&tmp, msg, head);
    if (tmp.nmetrics > CD_STATS_METRICS || len != head + (size_t)tmp.nmetrics * sizeof(cd_svc_metric))
        return -1;
    memcpy(out, msg, len);
    memset((char *)out + len, 0, sizeof *out - len);
    return 0;
}
