/*
 * Integration test of a clusterd whose database is not there, as
 * scripts/run.sh starts it on a machine without FerretDB (no Go >= 1.24 to
 * build it): the real binary, -w 2, readmongo pointed at a port where
 * nothing listens.  Readiness names readmongo degraded, with the reason,
 * from the start (each worker pings at start; no request to readmongo is
 * made here), on every worker, while liveness and the other services
 * answer 200, and readmongo itself answers 503 with the generic reason.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tests/integration/harness.h"

#define CONF                                                                                                 \
    "[cluster]\nlisten = 127.0.0.1:%d\n[dummy]\n[healthz]\ntype = health\n"                                   \
    "[readmongo]\nuri = mongodb://127.0.0.1:%d/\ndatabase = demo\ncollections = users\n"                      \
    "server_selection_timeout = 300ms\nconnect_timeout = 200ms\n"

static th_server srv;

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(nodb, .fini = fini, .timeout = 60);

/* GET path's status, its body into body (cut to cap). */
static int get(const char *path, char *body, size_t cap)
{
    th_response r;
    th_http(&r, srv.port, "GET", path, NULL, 5000);
    snprintf(body, cap, "%s", r.body ? r.body : "");
    int status = r.status;
    th_response_free(&r);
    return status;
}

Test(nodb, readiness_says_why_from_the_start_and_the_rest_serves)
{
    int dead = th_free_port(); /* bound then released: nothing listens */
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF, dead), 0);
    char body[2048];
    /* Until each worker's check has failed, its readiness may still be
     * 200; then every answer is 503 naming readmongo, from both slots. */
    int slots = 0, in_a_row = 0;
    for (long long end = th_now_ms() + 20000; th_now_ms() < end && !(slots == 3 && in_a_row >= 20);) {
        int status = get("/healthz/ready", body, sizeof body);
        if (status != 503) {
            in_a_row = 0;
            continue;
        }
        cr_assert(strstr(body, "\"ready\":false") && strstr(body, "\"readmongo\":\"database unreachable\""),
                  "%s", body);
        slots |= strstr(body, "\"slot\":0") ? 1 : strstr(body, "\"slot\":1") ? 2 : 0;
        in_a_row++;
    }
    cr_assert_eq(slots, 3, "both workers degraded (seen: %#x): %s", slots, body);
    cr_assert_geq(in_a_row, 20, "readiness stays 503 once the checks have run: %s", body);
    cr_assert(th_log_contains(&srv, "readmongo: database unreachable at start", 0), "logged");

    cr_assert_eq(get("/healthz", body, sizeof body), 200, "%s", body);
    cr_assert_eq(get("/dummy", body, sizeof body), 200, "%s", body);
    cr_assert_eq(get("/readmongo/users", body, sizeof body), 503, "%s", body);
    cr_assert(strstr(body, "database unreachable") && !strstr(body, "127.0.0.1"), "%s", body);
}
