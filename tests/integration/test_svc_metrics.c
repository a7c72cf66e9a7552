/*
 * test_svc_metrics.c - a service's own metrics (cd_service_metric,
 * clusterd/service.h) through the real binary: a module built here sets a
 * gauge and a counter in each of two workers, and /metrics (any worker)
 * shows them summed over the cluster under one # TYPE line each, with the
 * service label first and the module's labels after it; and the events
 * service's figures, which it sets the same way.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

static th_server srv;
static char stage[64];

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
    if (stage[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", stage);
        cr_expect_eq(system(cmd), 0);
    }
}

TestSuite(svc_metrics, .fini = fini, .timeout = 120);

/* Sets up = 1 (and up{kind="labelled"} = 2) at init and hits_total at
 * each request, answering what cd_service_metric returned for it and for
 * a name Prometheus would refuse. */
static const char probe_src[] =
    "#include <clusterd/service.h>\n"
    "#include <stdio.h>\n"
    "static unsigned long long hits;\n"
    "static int init(cd_service *svc, char *err, size_t errlen)\n"
    "{\n"
    "    int a = cd_service_metric(svc, \"up\", \"\", 1);\n"
    "    int b = cd_service_metric(svc, \"up\", \"kind=\\\"labelled\\\"\", 2);\n"
    "    int c = cd_service_metric(svc, \"hits_total\", \"\", 0);\n"
    "    if (a || b || c) { snprintf(err, errlen, \"cd_service_metric: %d %d %d\", a, b, c); return -1; }\n"
    "    return 0;\n"
    "}\n"
    "static void handle(cd_service *svc, cd_request *r)\n"
    "{\n"
    "    char body[64];\n"
    "    int rc = cd_service_metric(svc, \"hits_total\", \"\", ++hits);\n"
    "    int bad = cd_service_metric(svc, \"bad name\", \"\", 1);\n"
    "    int n = snprintf(body, sizeof body, \"%d %d\", rc, bad);\n"
    "    cd_request_respond(r, 200, \"text/plain\", body, (size_t)n);\n"
    "}\n"
    "const cd_service_type cd_service_probe = {.abi = CLUSTERD_ABI_VERSION, .name = \"probe\",\n"
    "    .methods = CD_M_GET, .init = init, .handle = handle};\n";

static void build_probe(void)
{
    snprintf(stage, sizeof stage, "/tmp/clusterd-svcmetrics-XXXXXX");
    cr_assert_not_null(mkdtemp(stage));
    char path[128], cmd[512], out[8192];
    snprintf(path, sizeof path, "%s/probe.c", stage);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(probe_src, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cc -I'%s/include' -Wall -Wextra -Werror -shared -fPIC %s -o %s/probe.so 2>&1",
             getenv("CLUSTERD_SRC"), path, stage);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(th_run(argv, out, sizeof out), 0, "building probe.so: %s", out);
}

/* GET /metrics until it holds every one of want (the snapshot follows the
 * heartbeats), or 15 s have passed; returns the last body (malloc'd). */
static char *metrics_with(const char *const *want, size_t n)
{
    char *body = NULL;
    long long end = th_now_ms() + 15000;
    for (;;) {
        th_response r;
        th_http(&r, srv.port, "GET", "/metrics", NULL, 5000);
        free(body);
        body = strdup(r.status == 200 && r.body ? r.body : "");
        th_response_free(&r);
        size_t ok = 0;
        while (ok < n && strstr(body, want[ok]))
            ok++;
        if (ok == n || th_now_ms() > end)
            return body;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

Test(svc_metrics, a_modules_gauge_and_counter_summed_over_two_workers)
{
    build_probe();
    cr_assert_eq(th_start(&srv, 2, "/metrics", NULL, /* not /probe: every GET of it counts */
                          "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 100ms\n\n"
                          "[p]\nmodule = %s/probe.so\ntype = probe\nroute = /probe\n\n"
                          "[metrics]\ntype = metrics\n",
                          stage),
                 0);
    for (int i = 0; i < 20; i++) {
        th_response r;
        th_http(&r, srv.port, "GET", "/probe", NULL, 5000);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "0 -22", "set, then a bad name refused with -EINVAL");
        th_response_free(&r);
    }
    /* 1 and 2 per worker: a gauge is the sum of the live workers'; the
     * counter is the sum of the requests, whichever worker took them. */
    const char *want[] = {
        "# TYPE clusterd_probe_up gauge\nclusterd_probe_up{service=\"p\"} 2\n"
        "clusterd_probe_up{service=\"p\",kind=\"labelled\"} 4\n",
        "# TYPE clusterd_probe_hits_total counter\nclusterd_probe_hits_total{service=\"p\"} 20\n",
    };
    char *body = metrics_with(want, 2);
    cr_expect(strstr(body, want[0]), "%s", body);
    cr_expect(strstr(body, want[1]), "%s", body);
    cr_expect_null(strstr(body, "bad name"), "%s", body);
    free(body);
}

/* The sid of an Engine.IO open packet `0{"sid":"...",...}`, into sid. */
static void open_sid(const char *body, char *sid, size_t cap)
{
    const char *p = strstr(body, "\"sid\":\"");
    cr_assert_not_null(p, "an open packet: %s", body);
    p += 7;
    size_t n = strcspn(p, "\"");
    cr_assert_lt(n, cap);
    memcpy(sid, p, n);
    sid[n] = '\0';
}

/* The events service's own figures (services/events/stats.c), from a
 * polling client connected to /chat that joined one room, on -w 2: the
 * steer hook brings every request of the session to its worker, so the
 * sums are exactly this client's. */
Test(svc_metrics, events_clients_rooms_and_messages)
{
    cr_assert_eq(th_start(&srv, 2, "/metrics", NULL,
                          "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 100ms\n\n"
                          "[ev]\ntype = events\nroute = /socket.io\nnamespaces = /, /chat\n\n"
                          "[metrics]\ntype = metrics\n"),
                 0);
    th_response r;
    th_http(&r, srv.port, "GET", "/socket.io/?EIO=4&transport=polling", NULL, 5000);
    cr_assert_eq(r.status, 200, "%s", r.body ? r.body : "");
    char sid[64], path[160];
    open_sid(r.body, sid, sizeof sid);
    th_response_free(&r);
    snprintf(path, sizeof path, "/socket.io/?EIO=4&transport=polling&sid=%s", sid);
    const char *posts[] = {"40/chat,", "42/chat,[\"join\",\"r1\"]"};
    for (size_t i = 0; i < 2; i++) {
        th_http(&r, srv.port, "POST", path, posts[i], 5000);
        cr_assert_eq(r.status, 200, "POST %s: %d %s", posts[i], r.status, r.body ? r.body : "");
        th_response_free(&r);
    }
    const char *want[] = {
        "# TYPE clusterd_events_clients gauge\n",
        "clusterd_events_clients{service=\"ev\",namespace=\"/chat\",transport=\"polling\"} 1\n",
        "clusterd_events_clients{service=\"ev\",namespace=\"/chat\",transport=\"websocket\"} 0\n",
        "clusterd_events_clients{service=\"ev\",namespace=\"/\",transport=\"polling\"} 0\n",
        "clusterd_events_rooms{service=\"ev\",namespace=\"/chat\"} 1\n",
        "clusterd_events_rooms{service=\"ev\",namespace=\"/\"} 0\n",
        "# TYPE clusterd_events_messages_in_total counter\nclusterd_events_messages_in_total{service=\"ev\"} 2\n",
        "clusterd_events_messages_out_total{service=\"ev\"} ",
        "clusterd_events_slow_clients_dropped_total{service=\"ev\"} 0\n",
    };
    char *body = metrics_with(want, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(body, want[i]), "missing: %s\nin:\n%s", want[i], body);
    free(body);
}
