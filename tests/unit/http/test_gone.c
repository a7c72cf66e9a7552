/*
 * Unit tests for cd_request_on_gone (http/request.c, server.c): a service
 * holding a request (a long-poll) is told once when its client goes away,
 * whether the client closes or only shuts its side, or the server closes
 * the connection (the worker stopping); it may answer from the callback
 * (into the void, or to the half-closed client, which still reads); a
 * request answered first is never reported.  Leaks show in the ASan build
 * (LeakSanitizer).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(http_gone, .init = setup, .fini = teardown);

static cd_request *held;
static int gone_calls, answer_in_cb;

static void on_gone(void *arg)
{
    cr_assert_eq(arg, &held);
    gone_calls++;
    if (answer_in_cb) {
        cd_request_respond(held, 200, "text/plain", "bye", 3);
        held = NULL;
    }
}

static void hold_handle(cd_service *svc, cd_request *req)
{
    (void)svc;
    held = req;
    cd_request_on_gone(req, on_gone, &held);
}

static const cd_service_type hold_type = {.name = "hold", .methods = CD_M_GET, .handle = hold_handle};

static void hold(int answer_from_cb)
{
    held = NULL;
    gone_calls = 0;
    answer_in_cb = answer_from_cb;
    services[4] = (cd_service){.type = &hold_type, .name = "hold", .route = "/hold", .route_len = 5};
    set_routes(services, 5);
    put("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    pump(0, 50);
    cr_assert_not_null(held, "the service holds the request");
}

Test(http_gone, a_closed_connection_is_reported_once_and_the_answer_frees_the_request)
{
    hold(0);
    close(client);
    client = -1;
    pump(0, 100);
    cr_assert_eq(gone_calls, 1);
    cd_request_respond(held, 200, "text/plain", "late", 4); /* into the void */
    held = NULL;
    pump(0, 50);
    cr_assert_eq(gone_calls, 1, "told once");
    cr_assert_eq(ctx.in_flight, 0);
    cr_assert_eq(ctx.nconns, 0, "the connection went with the answer");
}

Test(http_gone, a_half_closed_client_is_reported_and_still_reads_an_answer_from_the_callback)
{
    hold(1);
    shutdown(client, SHUT_WR);
    const char *r = pump(1, 1000);
    cr_assert_eq(gone_calls, 1);
    cr_assert_null(held, "answered from the callback");
    cr_assert(strstr(r, "HTTP/1.1 200") && strstr(r, "\r\n\r\nbye"), "%s", r);
    pump(0, 100);
    cr_assert(got_eof, "closed after the answer");
    cr_assert_eq(gone_calls, 1);
}

/* The connection closed by the server side (the worker stopping) while
 * the request is held: reported from the close, the request detached. */
Test(http_gone, a_connection_closed_here_is_reported_too)
{
    hold(1);
    cd_http_close_all(&ctx);
    cr_assert_eq(gone_calls, 1);
    cr_assert_null(held, "answered (freed) from the callback");
    cr_assert_eq(ctx.in_flight, 0);
}

Test(http_gone, a_request_answered_first_is_never_reported)
{
    hold(0);
    cd_request_respond(held, 200, "text/plain", "ok", 2);
    held = NULL;
    const char *r = pump(1, 1000);
    cr_assert(strstr(r, "\r\n\r\nok"), "%s", r);
    close(client);
    client = -1;
    pump(0, 100);
    cr_assert_eq(gone_calls, 0);
}
