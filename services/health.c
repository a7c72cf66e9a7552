/*
 * health.c - liveness and readiness (worker).
 *
 *   GET {route}        liveness: 200 while this worker's loop runs
 *   GET {route}/ready  readiness: 200, or 503 naming the services that say
 *                      they are degraded (e.g. readmongo while its database
 *                      is unreachable), asked through their degraded() hook,
 *                      or 503 with "draining":true while the master has the
 *                      host drained (clusterctl drain, a stop's drain_delay)
 *
 * {"ready":B,"draining":B,"slot":N,"degraded":{"service":"why",...}}: a
 * balancer that must keep a degraded host in (say Redis is down for the
 * whole fleet) can tell the two apart by "draining" (deploy/haproxy.cfg).
 * Draining changes this answer only: the listeners still accept and every
 * other route serves, so the balancer takes the host out before anything
 * is refused.
 */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
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
    /* Names and reasons go through the JSON escaper: a reason is free text
     * from a service, and a fixed buffer would cut an entry in half. */
    size_t n;
    cd_service *all = cd_service_all(svc, &n);
    int degraded = 0;
    cd_buf list = {0};
    for (size_t i = 0; i < n; i++) {
        const char *why = all[i].type->degraded ? all[i].type->degraded(&all[i]) : NULL;
        if (!why)
            continue;
        if (degraded++)
            cd_buf_append(&list, ",", 1);
        cd_json_str(&list, all[i].name, strlen(all[i].name));
        cd_buf_append(&list, ":", 1);
        cd_json_str(&list, why, strlen(why));
    }
    int draining = svc->host && svc->host->drained && svc->host->drained(svc);
    int ready = !degraded && !draining;
    cd_buf b = {0};
    cd_buf_printf(&b, "{\"ready\":%s,\"draining\":%s,\"slot\":%d,\"degraded\":{%s}}", ready ? "true" : "false",
                  draining ? "true" : "false", svc->slot, list.p ? list.p : "");
    if (list.oom || b.oom || !b.p)
        cd_request_respond_error(req, 500, "out of memory");
    else
        cd_request_respond(req, ready ? 200 : 503, "application/json", b.p, b.len);
    cd_buf_free(&list);
    cd_buf_free(&b);
}

const cd_service_type cd_service_health = {
    .name = "health",
    .methods = CD_M_GET | CD_M_HEAD,
    .handle = health_handle,
};
