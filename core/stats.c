/*
 * stats.c - latency bucket bounds and the snapshot merge (master).
 */
#include "core/stats.h"

#include <string.h>

const double cd_lat_bounds[CD_LAT_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1.0};

void cd_snapshot_add(cd_snapshot *snap, const cd_stats *st)
{
    snap->requests += st->requests;
    snap->accepted += st->accepted;
    for (int i = 0; i < 6; i++)
        snap->status[i] += st->status[i];
    for (int i = 0; i < CD_LAT_BUCKETS; i++)
        snap->lat_bucket[i] += st->lat_bucket[i];
    snap->lat_sum_us += st->lat_sum_us;
    for (int i = 0; i < CD_STATS_SERVICES; i++) {
        const cd_svc_stats *s = &st->svc[i];
        if (!s->name[0])
            continue;
        uint32_t k = 0;
        while (k < snap->nsvc && strncmp(snap->svc[k].name, s->name, sizeof s->name) != 0)
            k++;
        if (k == snap->nsvc) {
            if (k == CD_SNAP_SERVICES)
                continue; /* more distinct names than we track: drop the extras */
            memcpy(snap->svc[k].name, s->name, sizeof s->name);
            snap->svc[k].name[sizeof s->name - 1] = '\0';
            snap->nsvc++;
        }
        for (int c = 0; c < 6; c++)
            snap->svc[k].status[c] += s->status[c];
    }
}
