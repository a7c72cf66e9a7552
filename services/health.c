/*
 * health.c - liveness and readiness (worker).
 *
 *   GET {route}        liveness: 200 while this worker's loop runs
 *   GET {route}/ready  readiness: 200, or 503 naming the services that say
 *                      they are degraded (e.g. readmongo while its database
 *                      is unreachable), asked through their degraded() hook
 */
#include <stdio.h>
#include <string.h>

#include "services/service.h"

static void health_handle(cd_service *svc, cd_request *req)
{
    const char *sub = cd_request_subpath(req);
    char body[2048];
    if (sub[0] == '\0') {
        int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"slot\":%d}", svc->slot);
        cd_request_respond(req, 200, "application/json", body, (size_t)n);
        return;
    }
    if (strcmp(sub, "/ready") != 0) {
        cd_request_respond_error(req, 404, "health has only {route} and {route}/ready");
        return;
    }
    size_t n, len = 0;
    cd_service *all = cd_service_all(svc, &n);
    int degraded = 0;
    len += (size_t)snprintf(body + len, sizeof body - len, "{\"ready\":");
    char list[1536] = "";
    size_t ll = 0;
    for (size_t i = 0; i < n; i++) {
        const char *why = all[i].type->degraded ? all[i].type->degraded(&all[i]) : NULL;
        if (!why)
            continue;
        int k = snprintf(list + ll, sizeof list - ll, "%s\"%s\":\"%s\"", degraded ? "," : "", all[i].name, why);
        if (k > 0 && ll + (size_t)k < sizeof list)
            ll += (size_t)k;
        degraded++;
    }
    len += (size_t)snprintf(body + len, sizeof body - len, "%s,\"slot\":%d,\"degraded\":{%s}}",
                            degraded ? "false" : "true", svc->slot, list);
    cd_request_respond(req, degraded ? 503 : 200, "application/json", body, len);
}

const cd_service_type cd_service_health = {
    .name = "health",
    .methods = CD_M_GET | CD_M_HEAD,
    .handle = health_handle,
};
