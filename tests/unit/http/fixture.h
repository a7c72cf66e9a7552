/*
 * fixture.h - the HTTP context the tests of tests/unit/http drive (built
 * in fixture.c): a context from a config text, routed to test services,
 * with one connection whose other end (client) the test writes raw bytes
 * on and reads answers from while it turns the loop (pump).
 *
 * The services: /echo answers at once with what it read of the request,
 * /later answers from a 20 ms timer, /up takes the connection with
 * cd_http_upgrade from handle() (its callback writes a 101 and echoes the
 * bytes sent after the request), /upcblater does so from a 20 ms timer.
 */
#ifndef TEST_HTTP_FIXTURE_H
#define TEST_HTTP_FIXTURE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "core/stats.h"
#include "http/server.h"
#include "services/service.h"

extern cd_http_ctx ctx;
extern struct ev_loop *loop;
extern cd_service services[6]; /* [0..4) routed by setup; tests may add more */
extern int client;             /* the test's end of the connection (-1 once closed) */

/* What the on_done hook heard. */
typedef struct fx_counted {
    uint64_t requests, status[6];
} fx_counted;
extern fx_counted counted;

/* What the upgrade callback saw. */
typedef struct fx_upgrade {
    int calls, calls_in_handle; /* calls_in_handle: calls made before the upgrading call returned */
    int fd;
    char head[64];
    size_t headlen;
} fx_upgrade;
extern fx_upgrade up;

/* What the metrics and health services get of their host (test_host). */
extern cd_snapshot *host_snapshot;
extern cd_service *host_services;
extern size_t host_nservices;
extern const cd_service_host test_host;

/* The echo service's handler (for other test types). */
void echo_handle(cd_service *svc, cd_request *req);

/* Routes the context to services s[0..n) (their cd_service_route). */
void set_routes(cd_service *s, size_t n);
/* Builds everything from "[cluster]\n" + cluster; setup() with the
 * defaults the tests use (10s timeouts, 1k headers, 64-byte bodies). */
void setup_with(const char *cluster);
void setup(void);
void teardown(void);

/* Writes s on the client end. */
void put(const char *s);
/* Turns the loop and collects output until `responses` HTTP status lines
 * have arrived, EOF, or timeout_ms.  Returns the bytes (in got). */
const char *pump(int responses, int timeout_ms);
/* The same, stopping also once needle has arrived (NULL: never). */
const char *pump_until(int responses, const char *needle, int timeout_ms);
extern char got[65536];
extern size_t got_len;
extern int got_eof;
/* How many times needle occurs in hay. */
int count(const char *hay, const char *needle);

#endif
