/*
 * test_stats.c - unit tests of core/stats.c: the services' own metrics as
 * a worker sets them (names, labels, limits) and as the master merges them
 * into the cluster snapshot (summed by service, name and labels; a
 * retired worker's counters kept, its gauges not).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"

static cd_stats *worker_stats(const char *svc0, const char *svc1)
{
    cd_stats *st = calloc(1, sizeof *st);
    cr_assert_not_null(st);
    strcpy(st->svc[0].name, svc0);
    strcpy(st->svc[1].name, svc1);
    return st;
}

static const cd_svc_metric *find(const cd_snapshot *s, const char *svc, const char *name, const char *labels)
{
    for (uint32_t i = 0; i < s->nmetrics; i++)
        if (strcmp(s->svc[s->metrics[i].svc].name, svc) == 0 && strcmp(s->metrics[i].name, name) == 0 &&
            strcmp(s->metrics[i].labels, labels) == 0)
            return &s->metrics[i];
    return NULL;
}

Test(stats, a_metric_is_set_then_updated_in_place)
{
    cd_stats *st = worker_stats("chat", "-");
    cr_assert_eq(cd_stats_metric_set(st, 0, "events", "clients", "transport=\"polling\"", 3, 8), 0);
    cr_assert_eq(cd_stats_metric_set(st, 0, "events", "clients", "transport=\"polling\"", 5, 8), 0);
    cr_assert_eq(cd_stats_metric_set(st, 0, "events", "clients", "transport=\"websocket\"", 1, 8), 0);
    cr_assert_eq(st->nmetrics, 2);
    cr_expect_str_eq(st->metrics[0].name, "events_clients");
    cr_expect_eq(st->metrics[0].value, 5);
    cr_expect_eq(st->metrics[0].svc, 0);
    free(st);
}

Test(stats, bad_names_and_labels_are_refused)
{
    cd_stats *st = worker_stats("chat", "-");
    const char *names[] = {"", "1x", "a-b", "a b", "caf\xc3\xa9",
                           "a_name_so_long_that_with_its_type_it_cannot_fit_at_all"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_expect_eq(cd_stats_metric_set(st, 0, "events", names[i], "", 1, 8), -EINVAL, "name '%s'", names[i]);
    const char *labels[] = {"a", "a=1", "a=\"1\"x", "a=\"1\",", ",a=\"1\"", "service=\"x\"", "1a=\"x\"",
                            "a=\"x\ny\"", "a=\"x\\q\"", "a=\"unterminated", "a=\"x\",,b=\"y\""};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        cr_expect_eq(cd_stats_metric_set(st, 0, "events", "m", labels[i], 1, 8), -EINVAL, "labels '%s'", labels[i]);
    char long_labels[CD_METRIC_LABELS + 8];
    memset(long_labels, 0, sizeof long_labels);
    strcpy(long_labels, "a=\"");
    memset(long_labels + 3, 'x', CD_METRIC_LABELS);
    strcat(long_labels, "\"");
    cr_expect_eq(cd_stats_metric_set(st, 0, "events", "m", long_labels, 1, 8), -EINVAL);
    cr_expect_eq(cd_stats_metric_set(st, 0, "bad-type", "m", "", 1, 8), -EINVAL);
    cr_expect_eq(cd_stats_metric_set(st, CD_STATS_SERVICES, "events", "m", "", 1, 8), -EINVAL);
    cr_expect_eq(st->nmetrics, 0, "nothing refused was kept");
    cr_expect_eq(cd_stats_metric_set(st, 0, "events", "m", NULL, 1, 8), 0);
    cr_expect_eq(cd_stats_metric_set(st, 0, "events", "m2", "a=\"q\\\"\\\\\\n\",b_2=\"\"", 1, 8), 0);
    free(st);
}

Test(stats, each_service_has_its_own_limit_and_the_worker_one_in_all)
{
    cd_stats *st = worker_stats("a", "b");
    char labels[32];
    for (int i = 0; i < 4; i++) {
        snprintf(labels, sizeof labels, "n=\"%d\"", i);
        cr_assert_eq(cd_stats_metric_set(st, 0, "t", "g", labels, 1, 4), 0);
    }
    cr_expect_eq(cd_stats_metric_set(st, 0, "t", "g", "n=\"9\"", 1, 4), -ENOSPC);
    cr_expect_eq(cd_stats_metric_set(st, 0, "t", "g", "n=\"3\"", 7, 4), 0, "updating one is always possible");
    cr_expect_eq(cd_stats_metric_set(st, 1, "t", "g", "n=\"9\"", 1, 4), 0, "another service has its own");
    int rc = 0;
    for (int i = 0; rc == 0; i++) {
        snprintf(labels, sizeof labels, "n=\"%d\"", i);
        rc = cd_stats_metric_set(st, 1, "t", "h", labels, 1, 1000);
    }
    cr_expect_eq(rc, -ENOSPC);
    cr_expect_eq(st->nmetrics, CD_STATS_METRICS);
    free(st);
}

Test(stats, the_snapshot_sums_workers_by_service_name_and_labels)
{
    /* Two workers whose services sit at different indexes. */
    cd_stats *w1 = worker_stats("chat", "news"), *w2 = worker_stats("news", "chat");
    cr_assert_eq(cd_stats_metric_set(w1, 0, "events", "clients", "t=\"ws\"", 2, 8), 0);
    cr_assert_eq(cd_stats_metric_set(w1, 1, "events", "clients", "t=\"ws\"", 10, 8), 0);
    cr_assert_eq(cd_stats_metric_set(w1, 0, "events", "messages_in_total", "", 100, 8), 0);
    cr_assert_eq(cd_stats_metric_set(w2, 1, "events", "clients", "t=\"ws\"", 3, 8), 0);
    cr_assert_eq(cd_stats_metric_set(w2, 1, "events", "clients", "t=\"polling\"", 4, 8), 0);
    cr_assert_eq(cd_stats_metric_set(w2, 1, "events", "messages_in_total", "", 50, 8), 0);
    cd_snapshot *s = calloc(1, sizeof *s);
    cd_snapshot_add(s, w1);
    cd_snapshot_add(s, w2);
    cr_assert_eq(s->nmetrics, 4);
    const cd_svc_metric *m = find(s, "chat", "events_clients", "t=\"ws\"");
    cr_assert_not_null(m);
    cr_expect_eq(m->value, 5);
    cr_expect_eq(find(s, "chat", "events_clients", "t=\"polling\"")->value, 4);
    cr_expect_eq(find(s, "news", "events_clients", "t=\"ws\"")->value, 10);
    cr_expect_eq(find(s, "chat", "events_messages_in_total", "")->value, 150);
    free(s);
    free(w1);
    free(w2);
}

Test(stats, a_retired_worker_keeps_its_counters_not_its_gauges)
{
    cd_stats *w = worker_stats("chat", "-");
    cr_assert_eq(cd_stats_metric_set(w, 0, "events", "clients", "", 7, 8), 0);
    cr_assert_eq(cd_stats_metric_set(w, 0, "events", "messages_out_total", "", 9, 8), 0);
    cr_expect(cd_metric_is_counter("events_messages_out_total"));
    cr_expect(!cd_metric_is_counter("events_clients"));
    cr_expect(!cd_metric_is_counter("total"));
    cd_snapshot *retired = calloc(1, sizeof *retired);
    cd_snapshot_retire(retired, w);
    cd_snapshot_retire(retired, w);
    cr_expect_null(find(retired, "chat", "events_clients", ""));
    cr_assert_not_null(find(retired, "chat", "events_messages_out_total", ""));
    cr_expect_eq(find(retired, "chat", "events_messages_out_total", "")->value, 18);
    free(retired);
    free(w);
}

/* A heartbeat sends a cd_stats up to its last metric in use, and the
 * master takes only one whose length matches its nmetrics. */
Test(stats, a_heartbeat_carries_only_the_metrics_in_use)
{
    cd_stats *st = worker_stats("chat", "-");
    st->requests = 42;
    cr_assert_lt(cd_stats_wire_len(st), 2048, "no metric: a small heartbeat");
    cr_assert_eq(cd_stats_metric_set(st, 0, "events", "clients", "", 3, 8), 0);
    cr_assert_eq(cd_stats_metric_set(st, 0, "events", "rooms", "", 4, 8), 0);
    size_t len = cd_stats_wire_len(st);
    cr_assert_eq(len, offsetof(cd_stats, metrics) + 2 * sizeof(cd_svc_metric));
    cd_stats *got = malloc(sizeof *got);
    cr_assert_not_null(got);
    memset(got, 0xAB, sizeof *got);
    cr_assert_eq(cd_stats_from_wire(got, st, len), 0);
    cr_expect_eq(got->requests, 42);
    cr_expect_eq(got->nmetrics, 2);
    cr_expect_eq(got->metrics[1].value, 4);
    cr_expect_str_eq(got->metrics[1].name, "events_rooms");
    cr_expect_eq(got->metrics[2].value, 0, "the unused metrics are zeroed");
    /* Lengths that do not match nmetrics, or a count past the array. */
    cr_expect_eq(cd_stats_from_wire(got, st, len - 1), -1);
    cr_expect_eq(cd_stats_from_wire(got, st, len + sizeof(cd_svc_metric)), -1);
    cr_expect_eq(cd_stats_from_wire(got, st, 16), -1);
    st->nmetrics = CD_STATS_METRICS + 1;
    cr_expect_eq(cd_stats_from_wire(got, st, sizeof *st), -1);
    free(got);
    free(st);
}
