/*
 * Unit tests of clusterctl top's pure half (ctl/top_view.c): percentiles
 * from a histogram, rates and latency derived between two heartbeats, and
 * the layout at several terminal sizes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ctl/top.h"

static const double le[] = {0.001, 0.002, 0.004};

Test(top_view, quantile_interpolates_within_the_bucket)
{
    double c[] = {0, 10, 0, 0};
    cr_assert_float_eq(cd_top_quantile(le, 3, c, 4, 0.5), 0.0015, 1e-12);
    cr_assert_float_eq(cd_top_quantile(le, 3, c, 4, 0.99), 0.001 + 0.001 * 0.99, 1e-12);
    double first[] = {4, 0, 0, 0};
    cr_assert_float_eq(cd_top_quantile(le, 3, first, 4, 0.5), 0.0005, 1e-12, "the first bucket starts at 0");
    double over[] = {1, 0, 0, 99};
    cr_assert(isinf(cd_top_quantile(le, 3, over, 4, 0.5)), "past the last bound");
    cr_assert_float_eq(cd_top_quantile(le, 3, over, 4, 0.01), 0.001, 1e-12);
    double none[] = {0, 0, 0, 0};
    cr_assert_eq(cd_top_quantile(le, 3, none, 4, 0.5), -1, "no requests: no percentile");
}

#define LE "\"latency_le\":[0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1]"
#define WORKER(slot, pid, state, req, age, lat)                                                                 \
    "{\"slot\":" #slot ",\"pid\":" #pid ",\"generation\":1,\"state\":\"" state "\",\"uptime\":1.0,"         \
    "\"requests\":" #req ",\"in_flight\":3,\"connections\":4,\"rss\":10485760,\"heartbeat_age\":" #age       \
    ",\"latency\":[" lat "]}"
#define ANSWER(uptime, workers)                                                                                \
    "{\"ok\":true,\"pid\":42,\"uptime\":" #uptime ",\"generation\":7,\"workers_wanted\":2,\"reloading\":false," \
    "\"stopping\":false,\"listen\":\"127.0.0.1:8080\"," LE ",\"workers\":[" workers "]}"
#define Z "0,0,0,0,0,0,0,0,0,0,0,0"

static cd_top_sample a, b, c;

static void fini(void)
{
    cd_top_sample_free(&a);
    cd_top_sample_free(&b);
    cd_top_sample_free(&c);
}

TestSuite(top_view, .fini = fini);

Test(top_view, rates_come_from_the_time_between_heartbeats)
{
    cr_assert_eq(cd_top_parse(&a, ANSWER(10.000, WORKER(0, 101, "ready", 100, 0.500, Z) ","
                                                 WORKER(1, 102, "ready", 50, 0.250, Z))), 0);
    cd_top_derive(&a, NULL);
    cr_assert_eq(a.nw, 2);
    cr_assert_eq(a.w[0].pid, 101);
    cr_assert_not(a.w[0].known, "a first sample has no rate");
    cr_assert_eq(a.rate, -1);
    /* Worker 0: 200 more requests between heartbeats 2 s apart (at 9.5 and
     * 11.5); worker 1 sent no heartbeat since (9.75 both times). */
    cr_assert_eq(cd_top_parse(&b, ANSWER(11.600, WORKER(0, 101, "ready", 300, 0.100, "0,100,100,0,0,0,0,0,0,0,0,0") ","
                                                 WORKER(1, 102, "ready", 50, 1.850, Z))), 0);
    cd_top_derive(&b, &a);
    cr_assert(b.w[0].known);
    cr_assert_float_eq(b.w[0].rate, 100, 1e-9);
    cr_assert_not(b.w[1].known, "no new heartbeat and nothing known before: still unknown, not zero");
    cr_assert_float_eq(b.rate, 100, 1e-9);
    /* The next refresh sees no new heartbeat from worker 0: same figures;
     * worker 1 was replaced (a new pid in its slot): unknown again. */
    cr_assert_eq(cd_top_parse(&c, ANSWER(12.600, WORKER(0, 101, "ready", 300, 1.100, "0,100,100,0,0,0,0,0,0,0,0,0") ","
                                                 WORKER(1, 103, "starting", 0, 0.010, Z))), 0);
    cd_top_derive(&c, &b);
    cr_assert(c.w[0].known);
    cr_assert_float_eq(c.w[0].rate, 100, 1e-9, "kept, not a false zero");
    cr_assert_float_eq(c.w[0].dlat[1], 100, 1e-9);
    cr_assert_not(c.w[1].known);
    /* Half the requests at most 1ms, half in (1ms, 2.5ms]: p50 is 1ms. */
    cr_assert_float_eq(cd_top_quantile(c.le, c.nle, c.w[0].dlat, CD_LAT_BUCKETS, 0.5), 0.001, 1e-12);
}

static char out[8192];

/* Every line of out is at most max bytes; returns the number of lines. */
static int check_lines(size_t max)
{
    int n = 1;
    size_t len = 0;
    for (const char *p = out; *p; p++) {
        if (*p == '\n') {
            n++;
            len = 0;
            continue;
        }
        cr_assert(*p >= 0x20 && *p < 0x7f, "printable: %s", out);
        cr_assert_leq(++len, max, "a line of at most %zu bytes:\n%s", max, out);
    }
    return n;
}

Test(top_view, columns_drop_on_a_narrow_terminal)
{
    cr_assert_eq(cd_top_parse(&a, ANSWER(10.0, WORKER(0, 101, "ready", 100, 0.5, Z) ","
                                                WORKER(1, 102, "draining", 50, 0.25, Z))), 0);
    cd_top_derive(&a, NULL);
    int n = cd_top_render(&a, 120, 30, out, sizeof out);
    cr_assert_eq(n, 6, "%s", out);
    cr_assert_eq(check_lines(119), 6);
    cr_assert(strstr(out, "clusterd pid 42 on 127.0.0.1:8080  generation 7  1/2 ready"), "%s", out);
    cr_assert(strstr(out, "SLOT PID     STATE       REQ/S  INFL  CONNS     RSS     HB     P50     P99"), "%s", out);
    cr_assert(strstr(out, "\n1    102     draining        -     3      4   10.0M   0.2s       -       -"), "%s", out);

    cd_top_render(&a, 40, 30, out, sizeof out);
    check_lines(39);
    cr_assert(strstr(out, "\nSLOT PID     STATE       REQ/S  INFL\n"), "%s", out);
    cr_assert(strstr(out, "\n0    101     ready           -     3"), "%s", out);

    cd_top_render(&a, 13, 30, out, sizeof out);
    check_lines(12);
    cr_assert(strstr(out, "\nSLOT PID\n0    101\n1    102"), "%s", out);
    cd_top_render(&a, 1, 30, out, sizeof out);
    check_lines(0);
}

Test(top_view, a_short_terminal_says_how_many_rows_are_left_out)
{
    cr_assert_eq(cd_top_parse(&a, ANSWER(10.0, WORKER(0, 101, "ready", 1, 0.5, Z) "," WORKER(1, 102, "ready", 1, 0.5, Z) ","
                                                WORKER(2, 103, "ready", 1, 0.5, Z) "," WORKER(3, 104, "ready", 1, 0.5, Z))), 0);
    int n = cd_top_render(&a, 80, 6, out, sizeof out);
    cr_assert_eq(n, 6, "%s", out);
    cr_assert(strstr(out, "\n0    101"), "%s", out);
    cr_assert(strstr(out, "\n... 3 more (a taller terminal shows them)"), "%s", out);
    cr_assert_eq(cd_top_render(&a, 80, 8, out, sizeof out), 8, "all four fit: %s", out);
    cr_assert_null(strstr(out, "more"));
}

Test(top_view, a_refusal_or_garbage_is_shown_as_text)
{
    cr_assert_eq(cd_top_parse(&a, "{\"ok\":false,\"error\":\"no \\u001b[2Jway\"}"), -EINVAL);
    cr_assert_eq(cd_top_render(&a, 80, 24, out, sizeof out), 2);
    cr_assert(strstr(out, "clusterctl top: no ?[2Jway\n"), "escape bytes made harmless: %s", out);
    cr_assert_eq(cd_top_parse(&a, "not json"), -EINVAL);
    cd_top_render(&a, 80, 24, out, sizeof out);
    cr_assert(strstr(out, "not a status"), "%s", out);
}
