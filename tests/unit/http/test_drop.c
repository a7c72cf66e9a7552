/*
 * Unit tests for cd_request_drop (http/response.c): a service gives up on a
 * request it holds (its work was cancelled) without answering.  The request
 * is freed (the ASan build's LeakSanitizer fails the test otherwise), it is
 * neither counted as answered nor logged, and a client still connected is
 * disconnected instead of waiting for an answer that will never come.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "fixture.h"

TestSuite(http_drop, .init = setup, .fini = teardown);

static cd_request *held;

static void hold_handle(cd_service *svc, cd_request *req)
{
    (void)svc;
    held = req;
}

static const cd_service_type hold_type = {.name = "hold", .methods = CD_M_GET, .handle = hold_handle};

static void add_hold_route(void)
{
    held = NULL;
    services[4] = (cd_service){.type = &hold_type, .name = "hold", .route = "/hold", .route_len = 5};
    set_routes(services, 5);
}

Test(http_drop, a_dropped_request_disconnects_its_client_uncounted)
{
    add_hold_route();
    put("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(0, 50);
    cr_assert_not_null(held, "the service got the request");
    cr_assert_eq(ctx.in_flight, 1);
    cd_request_drop(held);
    held = NULL;
    const char *r = pump(1, 1000);
    cr_assert(got_eof, "the client was disconnected");
    cr_assert_eq(got_len, 0, "nothing was answered: %s", r);
    cr_assert_eq(ctx.in_flight, 0);
    cr_assert_eq(ctx.nconns, 0);
    cr_assert_eq(counted.requests, 0, "a dropped request is not counted as answered");
}

Test(http_drop, a_request_whose_client_left_is_dropped_quietly)
{
    add_hold_route();
    put("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(0, 50);
    cr_assert_not_null(held);
    cd_http_close_all(&ctx); /* the worker stops: the request is detached */
    cd_request_drop(held);
    held = NULL;
    cr_assert_eq(ctx.in_flight, 0);
    cr_assert_eq(counted.requests, 0);
}
