/*
 * top.h - `clusterctl top`, the live view of a running cluster (clusterctl
 * process).
 *
 * top.c owns the terminal (raw input, the alternate screen, SIGWINCH,
 * restoring everything on q, Ctrl-C, TERM or HUP) and asks for the master's
 * `status` once a second; top_view.c is pure: it reads a status answer into
 * a cd_top_sample, derives rates and latency percentiles from two samples,
 * and lays the screen out as lines that fit the terminal's width.  The pure
 * half is what tests/fuzz/fuzz_top.c and the unit tests drive.
 */
#ifndef CD_CTL_TOP_H
#define CD_CTL_TOP_H

#include <stddef.h>

#include "core/stats.h"

/* One worker of a status answer, with what was derived from the one
 * before it.  Counters are doubles (the answer's numbers). */
typedef struct cd_top_worker {
    int slot, pid;
    char state[12];
    double requests, in_flight, connections, rss, heartbeat_age;
    double lat[CD_LAT_BUCKETS]; /* requests by latency bucket since start */
    double stat_t;              /* the master's clock at the worker's last heartbeat */
    /* Derived: over the worker's last heartbeat interval seen (-1: not yet). */
    double rate;                 /* requests per second */
    double dlat[CD_LAT_BUCKETS]; /* requests by latency bucket in that interval */
    int known;                   /* rate and dlat are set */
} cd_top_worker;

typedef struct cd_top_sample {
    int ok;         /* 0: why says what went wrong */
    char why[200];  /* no answer, or the master's refusal */
    int pid, generation, wanted, reloading, stopping;
    double uptime;
    char listen[64];
    double le[CD_LAT_BUCKETS - 1]; /* bucket bounds, seconds */
    int nle;                       /* how many the master sent (0: no latency) */
    cd_top_worker *w;
    int nw, cap;
    double rate; /* derived: the whole cluster's requests per second (-1: not yet) */
} cd_top_sample;

/* Reads a status answer into s (whose worker array is reused).  Returns 0,
 * or -EINVAL with s->ok = 0 and s->why set when the answer is a refusal or
 * not a status answer; -ENOMEM when the workers do not fit in memory. */
int cd_top_parse(cd_top_sample *s, const char *reply);
/* Sets the derived fields of cur from prev (the sample before, may be
 * NULL or not ok): a worker's rate and latency come from the change of its
 * counters between two heartbeats. */
void cd_top_derive(cd_top_sample *cur, const cd_top_sample *prev);
/* The q quantile (0..1) of a latency histogram of n buckets whose first
 * nle have the upper bounds le (seconds): linear within its bucket as
 * Prometheus' histogram_quantile does; INFINITY past the last bound; -1
 * when the histogram is empty. */
double cd_top_quantile(const double *le, int nle, const double *counts, int n, double q);
/* Lays s out for a terminal of cols x rows: at most rows lines, each at
 * most cols - 1 printable ASCII bytes (nothing ever wraps), joined by '\n'
 * into out (NUL-terminated, cut to cap).  Columns that do not fit are left
 * out, least useful first.  Returns the number of lines. */
int cd_top_render(const cd_top_sample *s, int cols, int rows, char *out, size_t cap);
void cd_top_sample_free(cd_top_sample *s);

/* Fetches the master's status answer: malloc'd, or NULL with *why set. */
typedef char *(*cd_top_fetch)(void *ctx, const char **why);
/* Runs the live view on the terminal of stdin/stdout until q (or Ctrl-C,
 * TERM, HUP), restoring the terminal.  Returns the exit code: 0, or 2 when
 * stdin or stdout is not a terminal. */
int cd_top_run(cd_top_fetch fetch, void *ctx);

#endif
