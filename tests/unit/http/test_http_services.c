/*
 * Services behind an HTTP context (fixture.h): what the metrics and health
 * services write from their host's data (test_host: a cluster snapshot, a
 * list of services) comes out escaped, whatever the names and reasons.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

extern const cd_service_type cd_service_metrics;
extern const cd_service_type cd_service_health;

TestSuite(http_services, .init = setup, .fini = teardown);

/* Service names reach Prometheus label values: a quote, backslash or
 * newline in one must come out escaped (text format 0.0.4), never end the
 * label or the line.  Config forbids such names; the snapshot comes from
 * another process, so the renderer does not rely on that. */
Test(http_services, metrics_label_values_are_escaped)
{
    services[4] = (cd_service){.type = &cd_service_metrics, .name = "metrics", .route = "/metrics",
                               .route_len = 8, .loop = loop, .host = &test_host};
    set_routes(services, 5);
    cd_snapshot *snap = calloc(1, sizeof *snap);
    snap->nsvc = 2;
    strcpy(snap->svc[0].name, "a\"b\\c\nd");
    snap->svc[0].status[2] = 7;
    memset(snap->svc[1].name, 'x', sizeof snap->svc[1].name); /* not terminated: stops at the array's end */
    snap->svc[1].status[4] = 3;
    host_snapshot = snap;
    put("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *r = pump(1, 1000);
    host_snapshot = NULL;
    free(snap);
    cr_assert(strstr(r, "HTTP/1.1 200 ") == r, "%s", r);
    cr_assert(strstr(r, "\nclusterd_requests_total{service=\"a\\\"b\\\\c\\nd\",code=\"2xx\"} 7\n"), "%s", r);
    cr_assert(strstr(r, "\nclusterd_requests_total{service=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",code=\"4xx\"} 3\n"),
              "%s", r);
    cr_assert_null(strstr(r, "\nd\","), "no raw newline inside a label: %s", r);
}

/* /healthz/ready lists degraded services as JSON: a reason is free text
 * from a service, so it is escaped, and many of them still make valid
 * JSON (no entry cut in half by a fixed buffer). */
static const char *odd_reason(cd_service *svc)
{
    (void)svc;
    return "said \"no\" \\ then\nleft, and this reason is long enough that forty of them do not fit in 2k";
}

Test(http_services, health_ready_escapes_degraded_reasons)
{
    static cd_service_type odd_type;
    odd_type = (cd_service_type){.name = "odd", .methods = CD_M_GET, .handle = echo_handle, .degraded = odd_reason};
    static cd_service many[42];
    many[0] = (cd_service){.type = &cd_service_health, .name = "healthz", .route = "/healthz", .route_len = 8,
                           .loop = loop, .host = &test_host};
    for (int i = 1; i < 42; i++)
        many[i] = (cd_service){.type = &odd_type, .name = "odd", .route = "/odd", .route_len = 4, .loop = loop};
    host_services = many;
    host_nservices = 42;
    set_routes(many, 42);
    put("GET /healthz/ready HTTP/1.1\r\nHost: t\r\n\r\n");
    const char *r = pump(1, 1000);
    cr_assert(strstr(r, "HTTP/1.1 503 ") == r, "%s", r);
    cr_assert(strstr(r, "\"odd\":\"said \\\"no\\\" \\\\ then\\u000aleft,"), "%s", r);
    const char *body = strstr(r, "\r\n\r\n") + 4;
    cr_assert_eq(count(body, "\"odd\":"), 41, "%s", body);
    cr_assert(strstr(body, "}}") && strstr(body, "}}")[2] == '\0', "ends as JSON: %s", body);
}
