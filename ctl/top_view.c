/*
 * top_view.c - what `clusterctl top` shows, computed (clusterctl process).
 *
 * Pure functions over the master's status answer (ipc/control_proto.h): read
 * it into a cd_top_sample, derive each worker's requests/s and latency
 * histogram from the change of its counters between two of its heartbeats,
 * and lay the screen out.  A worker's counters are as of its last heartbeat
 * (the master's clock then is uptime - heartbeat_age), so rates divide by the
 * time between heartbeats, not between refreshes: a refresh that saw no new
 * heartbeat keeps the last figures instead of showing a false zero.  The
 * cluster's p50/p99 come from the sum of every worker's last interval.
 *
 * The layout never wraps: every line is at most cols - 1 printable ASCII
 * bytes (text from the answer is made ASCII), and columns are left out,
 * least useful first, until the table fits; so a narrow terminal shows fewer
 * columns, never garbage.  The answer is read with ctl/reply.h; everything
 * here is bounded by it and tests/fuzz/fuzz_top.c runs it on any bytes.
 */
#include "ctl/top.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/reply.h"
#include "ipc/control_proto.h"

/* ---- reading an answer ---- */

static int to_int(double d) { return d >= INT_MIN && d <= INT_MAX ? (int)d : -1; }

/* Text from the answer, made printable ASCII for the screen. */
static void ascii(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

/* Whether "key": occurs in the worker object [obj, end) (end NULL: the rest). */
static int in_obj(const char *obj, const char *end, const char *key)
{
    const char *v = json_find(obj, key);
    return v && (!end || v < end);
}

static double wnum(const char *obj, const char *end, const char *key)
{
    return in_obj(obj, end, key) ? json_num(obj, key) : -1;
}

static void read_worker(cd_top_worker *w, const char *p, const char *end, double uptime)
{
    memset(w, 0, sizeof *w);
    w->slot = to_int(wnum(p, end, CD_CTL_W_SLOT));
    w->pid = to_int(wnum(p, end, CD_CTL_W_PID));
    if (in_obj(p, end, CD_CTL_W_STATE))
        json_str(p, CD_CTL_W_STATE, w->state, sizeof w->state);
    ascii(w->state);
    w->requests = wnum(p, end, CD_CTL_W_REQUESTS);
    w->in_flight = wnum(p, end, CD_CTL_W_IN_FLIGHT);
    w->connections = wnum(p, end, CD_CTL_W_CONNECTIONS);
    w->rss = wnum(p, end, CD_CTL_W_RSS);
    w->heartbeat_age = wnum(p, end, CD_CTL_W_HEARTBEAT_AGE);
    if (in_obj(p, end, CD_CTL_W_LATENCY))
        json_nums(p, CD_CTL_W_LATENCY, w->lat, CD_LAT_BUCKETS);
    w->stat_t = uptime - w->heartbeat_age;
    w->rate = -1;
}

int cd_top_parse(cd_top_sample *s, const char *r)
{
    s->nw = 0;
    s->ok = 0;
    s->rate = -1;
    s->why[0] = '\0';
    const char *workers = json_find(r, CD_CTL_F_WORKERS);
    if (!json_bool(r, CD_CTL_F_OK) || !workers) {
        json_str(r, CD_CTL_F_ERROR, s->why, sizeof s->why);
        if (!s->why[0])
            snprintf(s->why, sizeof s->why, "the master's answer is not a status");
        ascii(s->why);
        return -EINVAL;
    }
    s->pid = to_int(json_num(r, CD_CTL_F_PID));
    s->uptime = json_num(r, CD_CTL_F_UPTIME);
    s->generation = to_int(json_num(r, CD_CTL_F_GENERATION));
    s->wanted = to_int(json_num(r, CD_CTL_F_WORKERS_WANTED));
    s->reloading = json_bool(r, CD_CTL_F_RELOADING);
    s->stopping = json_bool(r, CD_CTL_F_STOPPING);
    json_str(r, CD_CTL_F_LISTEN, s->listen, sizeof s->listen);
    ascii(s->listen);
    s->nle = json_nums(r, CD_CTL_F_LATENCY_LE, s->le, CD_LAT_BUCKETS - 1);
    if (s->nle < 0)
        s->nle = 0;
    /* Bucket bounds are finite, positive and increasing, or not used: a
     * quantile between two infinite or crossed bounds has no meaning (the
     * fuzzer found NaN from [1e3085, ...]). */
    for (int i = 0; i < s->nle; i++)
        if (!isfinite(s->le[i]) || s->le[i] <= 0 || (i && s->le[i] <= s->le[i - 1]))
            s->nle = 0;
    for (const char *p = next_worker(workers), *next; p; p = next) {
        next = next_worker(p + 1);
        if (s->nw == s->cap) {
            int cap = s->cap ? s->cap * 2 : 16;
            cd_top_worker *w = realloc(s->w, (size_t)cap * sizeof *w);
            if (!w)
                return -ENOMEM;
            s->w = w;
            s->cap = cap;
        }
        read_worker(&s->w[s->nw++], p, next, s->uptime);
    }
    s->ok = 1;
    return 0;
}

void cd_top_sample_free(cd_top_sample *s)
{
    free(s->w);
    s->w = NULL;
    s->nw = s->cap = 0;
}

/* ---- deriving rates and percentiles ---- */

/* Two readings less apart than this are the same heartbeat (the answer
 * carries milliseconds; heartbeat_interval is at least 10ms). */
#define SAME_HEARTBEAT 0.005

static const cd_top_worker *find_prev(const cd_top_sample *prev, const cd_top_worker *w)
{
    if (!prev || !prev->ok || w->pid <= 0)
        return NULL;
    for (int i = 0; i < prev->nw; i++)
        if (prev->w[i].pid == w->pid && prev->w[i].slot == w->slot)
            return &prev->w[i];
    return NULL;
}

void cd_top_derive(cd_top_sample *cur, const cd_top_sample *prev)
{
    double total = 0;
    int any = 0;
    for (int i = 0; i < cur->nw; i++) {
        cd_top_worker *w = &cur->w[i];
        const cd_top_worker *pw = find_prev(prev, w);
        w->known = 0;
        w->rate = -1;
        memset(w->dlat, 0, sizeof w->dlat);
        if (pw) {
            double dt = w->stat_t - pw->stat_t;
            if (dt >= SAME_HEARTBEAT && w->requests >= pw->requests) {
                w->rate = (w->requests - pw->requests) / dt;
                for (int b = 0; b < CD_LAT_BUCKETS; b++) {
                    double d = w->lat[b] - pw->lat[b];
                    w->dlat[b] = d > 0 ? d : 0;
                }
                w->known = 1;
            } else if (pw->known && dt > -SAME_HEARTBEAT && dt < SAME_HEARTBEAT) {
                w->rate = pw->rate;
                memcpy(w->dlat, pw->dlat, sizeof w->dlat);
                w->known = 1;
            }
        }
        if (w->known && isfinite(w->rate)) {
            total += w->rate;
            any = 1;
        }
    }
    cur->rate = any ? total : -1;
}

double cd_top_quantile(const double *le, int nle, const double *counts, int n, double q)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        if (counts[i] > 0 && isfinite(counts[i]))
            total += counts[i];
    if (!(total > 0) || !isfinite(total))
        return -1;
    double rank = q * total, cum = 0;
    for (int i = 0; i < n; i++) {
        double c = counts[i] > 0 && isfinite(counts[i]) ? counts[i] : 0;
        if (c > 0 && cum + c >= rank) {
            if (i >= nle)
                return INFINITY;
            double lo = i ? le[i - 1] : 0, hi = le[i];
            return lo + (hi - lo) * (rank - cum) / c;
        }
        cum += c;
    }
    return INFINITY;
}

/* ---- the layout ---- */

typedef struct screen {
    char *out;
    size_t cap, len;
    int cols, rows, lines;
} screen;

/* Adds one line, made printable and cut to cols - 1; none past rows. */
static void line(screen *sc, const char *fmt, ...)
{
    if (sc->lines >= sc->rows)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        buf[0] = '\0';
    ascii(buf);
    size_t l = strlen(buf), max = sc->cols > 1 ? (size_t)sc->cols - 1 : 0;
    if (l > max)
        l = max;
    size_t need = l + (sc->lines ? 1 : 0);
    if (sc->len + need >= sc->cap) {
        sc->rows = sc->lines; /* full: no later line either, so none is missing in between */
        return;
    }
    if (sc->lines)
        sc->out[sc->len++] = '\n';
    memcpy(sc->out + sc->len, buf, l);
    sc->len += l;
    sc->out[sc->len] = '\0';
    sc->lines++;
}

static const char *fmt_rate(char *b, size_t n, double v)
{
    if (!(v >= 0) || !isfinite(v))
        snprintf(b, n, "-");
    else if (v < 100000)
        snprintf(b, n, "%.1f", v);
    else
        snprintf(b, n, "%.0fk", v / 1000 < 1e9 ? v / 1000 : 1e9);
    return b;
}

static const char *fmt_count(char *b, size_t n, double v)
{
    if (!(v >= 0) || !isfinite(v))
        snprintf(b, n, "-");
    else if (v < 100000)
        snprintf(b, n, "%.0f", v);
    else
        snprintf(b, n, "%.0fk", v / 1000 < 1e9 ? v / 1000 : 1e9);
    return b;
}

static const char *fmt_lat(char *b, size_t n, double v, const cd_top_sample *s)
{
    if (isinf(v) && v > 0 && s->nle > 0)
        snprintf(b, n, ">%gs", s->le[s->nle - 1]);
    else if (!(v >= 0) || !isfinite(v))
        snprintf(b, n, "-");
    else if (v < 0.01)
        snprintf(b, n, "%.2fms", v * 1000);
    else if (v < 1)
        snprintf(b, n, "%.0fms", v * 1000);
    else
        snprintf(b, n, "%.2fs", v < 1e9 ? v : 1e9);
    return b;
}

static const char *fmt_rss(char *b, size_t n, double v)
{
    double mb = v / 1048576.0;
    if (!(v >= 0) || !isfinite(v))
        snprintf(b, n, "-");
    else if (mb < 1000)
        snprintf(b, n, "%.1fM", mb);
    else
        snprintf(b, n, "%.1fG", mb / 1024 < 1e9 ? mb / 1024 : 1e9);
    return b;
}

static const char *fmt_secs(char *b, size_t n, double v)
{
    if (!(v >= 0) || !isfinite(v))
        snprintf(b, n, "-");
    else if (v < 1000)
        snprintf(b, n, "%.1fs", v);
    else
        snprintf(b, n, "%.0fs", v < 1e9 ? v : 1e9);
    return b;
}

/* The table's columns in display order; prio 0 is kept longest. */
enum { C_SLOT, C_PID, C_STATE, C_RATE, C_INFL, C_CONNS, C_RSS, C_HB, C_P50, C_P99, NCOL };
static const struct {
    const char *name;
    int width, prio, left;
} col_def[NCOL] = {
    {"SLOT", 4, 0, 1}, {"PID", 7, 1, 1}, {"STATE", 8, 2, 1}, {"REQ/S", 8, 3, 0}, {"INFL", 5, 4, 0},
    {"CONNS", 6, 5, 0}, {"RSS", 7, 7, 0}, {"HB", 6, 6, 0},  {"P50", 7, 8, 0},   {"P99", 7, 9, 0},
};

/* Which columns fit in cols - 1 bytes, taken by priority until one does not. */
static void pick_columns(int cols, int *shown)
{
    int used = 0;
    memset(shown, 0, NCOL * sizeof *shown);
    for (int prio = 0; prio < NCOL; prio++)
        for (int c = 0; c < NCOL; c++) {
            if (col_def[c].prio != prio)
                continue;
            int w = col_def[c].width + (used ? 1 : 0);
            if (used + w > cols - 1)
                return;
            used += w;
            shown[c] = 1;
        }
}

static void cell(const cd_top_sample *s, const cd_top_worker *w, int c, char *b, size_t n)
{
    double p;
    switch (c) {
    case C_SLOT: snprintf(b, n, "%d", w->slot); break;
    case C_PID: snprintf(b, n, "%d", w->pid); break;
    case C_STATE: snprintf(b, n, "%s", w->state[0] ? w->state : "?"); break;
    case C_RATE: fmt_rate(b, n, w->rate); break;
    case C_INFL: fmt_count(b, n, w->in_flight); break;
    case C_CONNS: fmt_count(b, n, w->connections); break;
    case C_RSS: fmt_rss(b, n, w->rss); break;
    case C_HB: fmt_secs(b, n, w->heartbeat_age); break;
    default:
        p = w->known ? cd_top_quantile(s->le, s->nle, w->dlat, CD_LAT_BUCKETS, c == C_P50 ? 0.5 : 0.99) : -1;
        fmt_lat(b, n, p, s);
    }
}

/* One table row (w NULL: the column names) into b. */
static void row(const cd_top_sample *s, const cd_top_worker *w, const int *shown, char *b, size_t n)
{
    size_t len = 0;
    b[0] = '\0';
    for (int c = 0; c < NCOL && len + 1 < n; c++) {
        if (!shown[c])
            continue;
        char v[64];
        if (w)
            cell(s, w, c, v, sizeof v);
        else
            snprintf(v, sizeof v, "%s", col_def[c].name);
        int k = snprintf(b + len, n - len, col_def[c].left ? "%s%-*s" : "%s%*s", len ? " " : "", col_def[c].width, v);
        if (k < 0)
            break;
        len += (size_t)k < n - len ? (size_t)k : n - len - 1;
    }
    while (len > 0 && b[len - 1] == ' ') /* a left-aligned last column's padding */
        b[--len] = '\0';
}

static void header(screen *sc, const cd_top_sample *s)
{
    int ready = 0;
    for (int i = 0; i < s->nw; i++)
        ready += strcmp(s->w[i].state, CD_CTL_STATE_READY) == 0;
    char up[32], rate[32], p50[32], p99[32];
    line(sc, "clusterd pid %d on %s  generation %d  %d/%d ready  up %s%s%s", s->pid, s->listen, s->generation, ready,
         s->wanted, fmt_secs(up, sizeof up, s->uptime), s->reloading ? "  RELOADING" : "",
         s->stopping ? "  STOPPING" : "");
    double sum[CD_LAT_BUCKETS] = {0};
    for (int i = 0; i < s->nw; i++)
        for (int b = 0; s->w[i].known && b < CD_LAT_BUCKETS; b++)
            sum[b] += s->w[i].dlat[b];
    if (s->nle > 0)
        line(sc, "cluster %s req/s  p50 %s  p99 %s  (q quits)", fmt_rate(rate, sizeof rate, s->rate),
             fmt_lat(p50, sizeof p50, cd_top_quantile(s->le, s->nle, sum, CD_LAT_BUCKETS, 0.5), s),
             fmt_lat(p99, sizeof p99, cd_top_quantile(s->le, s->nle, sum, CD_LAT_BUCKETS, 0.99), s));
    else
        line(sc, "cluster %s req/s  (latency not reported by this clusterd; q quits)",
             fmt_rate(rate, sizeof rate, s->rate));
}

int cd_top_render(const cd_top_sample *s, int cols, int rows, char *out, size_t cap)
{
    screen sc = {out, cap, 0, cols, rows, 0};
    if (cap)
        out[0] = '\0';
    if (!cap || rows < 1)
        return 0;
    if (!s->ok) {
        line(&sc, "clusterctl top: %s", s->why);
        line(&sc, "(trying again every second; q quits)");
        return sc.lines;
    }
    header(&sc, s);
    line(&sc, "%s", "");
    int shown[NCOL];
    pick_columns(cols, shown);
    char b[512];
    row(s, NULL, shown, b, sizeof b);
    line(&sc, "%s", b);
    for (int i = 0; i < s->nw; i++) {
        if (sc.lines == sc.rows - 1 && i < s->nw - 1) {
            line(&sc, "... %d more (a taller terminal shows them)", s->nw - i);
            break;
        }
        row(s, &s->w[i], shown, b, sizeof b);
        line(&sc, "%s", b);
    }
    return sc.lines;
}
