/*
 * Unit tests for services/service.c: the calls a service makes of its
 * host go through svc->host (and answer "not available" without one), and
 * cd_service_route makes the HTTP route that hands requests to the type's
 * handle() with the service.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/stats.h"
#include "services/service.h"

static struct {
    cd_service *svc;
    int publish, subscribe, all, cluster;
    size_t len;
    cd_bus_cb cb;
} seen;

static int t_publish(cd_service *svc, const void *msg, size_t len)
{
    (void)msg;
    seen.svc = svc;
    seen.publish++;
    seen.len = len;
    return -EAGAIN;
}

static void t_subscribe(cd_service *svc, cd_bus_cb cb)
{
    seen.svc = svc;
    seen.subscribe++;
    seen.cb = cb;
}

static cd_service *t_all(cd_service *svc, size_t *n)
{
    seen.svc = svc;
    seen.all++;
    *n = 1;
    return svc;
}

static cd_snapshot snap;

static const cd_snapshot *t_cluster(cd_service *svc)
{
    seen.svc = svc;
    seen.cluster++;
    return &snap;
}

static const cd_service_host host = {.publish = t_publish, .subscribe = t_subscribe, .all = t_all,
                                     .cluster = t_cluster};

static void bus(cd_service *svc, const void *msg, size_t len)
{
    (void)svc;
    (void)msg;
    (void)len;
}

Test(service_host, calls_go_through_the_host_table)
{
    memset(&seen, 0, sizeof seen);
    cd_service svc = {.name = "s", .host = &host};
    cr_assert_eq(cd_service_publish(&svc, "abc", 3), -EAGAIN, "the host's answer");
    cr_assert_eq(seen.publish, 1);
    cr_assert_eq(seen.len, 3);
    cr_assert_eq(seen.svc, &svc);
    cd_service_subscribe(&svc, bus);
    cr_assert_eq(seen.subscribe, 1);
    cr_assert_eq(seen.cb, bus);
    size_t n = 0;
    cr_assert_eq(cd_service_all(&svc, &n), &svc);
    cr_assert_eq(n, 1);
    cr_assert_eq(cd_service_cluster(&svc), &snap);
    cr_assert_eq(seen.all + seen.cluster, 2);
}

Test(service_host, without_a_host_nothing_is_available)
{
    cd_service svc = {.name = "s"};
    cr_assert_eq(cd_service_publish(&svc, "abc", 3), -ENOTSUP);
    size_t n = 7;
    cr_assert_null(cd_service_all(&svc, &n));
    cr_assert_eq(n, 0);
    cr_assert_null(cd_service_cluster(&svc));
    cd_service_subscribe(&svc, bus);
    cr_assert_eq(svc.bus_cb, bus, "kept on the service, where a worker would look");
}

static cd_service *handled;

static void handle(cd_service *svc, cd_request *req)
{
    (void)req;
    handled = svc;
}

Test(service_host, the_route_hands_requests_to_handle_with_the_service)
{
    static const cd_service_type type = {.name = "t", .methods = CD_M_GET | CD_M_POST, .handle = handle};
    cd_service svc = {.type = &type, .name = "sec", .route = "/sec", .route_len = 4};
    cd_route r = cd_service_route(&svc);
    cr_assert_str_eq(r.prefix, "/sec");
    cr_assert_eq(r.len, 4);
    cr_assert_str_eq(r.name, "sec");
    cr_assert_eq(r.methods, CD_M_GET | CD_M_POST);
    handled = NULL;
    r.handle(r.arg, NULL);
    cr_assert_eq(handled, &svc);
}
