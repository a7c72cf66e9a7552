/*
 * sticky_mod.c - a service module for test_sticky.c (built by the test
 * with cc against include/clusterd/ only, loaded by the real clusterd).
 *
 * Its steer hook sends a request to the worker named by `?to=<id>` (none,
 * or 0: wherever it landed).  It answers every request with the id of the
 * worker that served it, a newline, and the body it received, so the test
 * sees who served it and that the body arrived intact.
 */
#include <clusterd/service.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t steer(cd_service *svc, const cd_request *r)
{
    (void)svc;
    char to[16];
    if (cd_request_query_param(r, "to", to, sizeof to) < 0)
        return 0;
    return (uint32_t)strtoul(to, NULL, 10);
}

static void handle(cd_service *svc, cd_request *r)
{
    size_t len = 0;
    const char *body = cd_request_body(r, &len);
    char head[32];
    int n = snprintf(head, sizeof head, "%u\n", (unsigned)cd_service_worker_id(svc));
    char *out = malloc((size_t)n + len + 1);
    if (!out) {
        cd_request_respond_error(r, 500, "out of memory");
        return;
    }
    memcpy(out, head, (size_t)n);
    if (len)
        memcpy(out + n, body, len);
    cd_request_respond(r, 200, "application/octet-stream", out, (size_t)n + len);
    free(out);
}

const cd_service_type cd_service_sticky = {.abi = CLUSTERD_ABI_VERSION, .name = "sticky",
                                           .methods = CD_M_GET | CD_M_POST, .handle = handle, .steer = steer};
