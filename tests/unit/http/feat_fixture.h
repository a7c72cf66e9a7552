/*
 * feat_fixture.h - what the tests of issue 11's HTTP features share (beside
 * fixture.h): routes of their own, with options, on the fixture's context,
 * and a pump that waits for a piece of text rather than a status line
 * (a streamed body arrives after its head).
 */
#ifndef TEST_HTTP_FEAT_FIXTURE_H
#define TEST_HTTP_FEAT_FIXTURE_H

#include "fixture.h"
#include "http/conn.h"
#include "http/routeconf.h"

/* Routes the fixture's context to routes[0..n) (kept by the caller). */
void feat_routes(cd_route *routes, size_t n);
/* The fixture's teardown, and the routes' array. */
void feat_teardown(void);
/* Turns the loop until needle is in what was read (or EOF, or timeout_ms);
 * returns what was read (in got, as pump). */
const char *wait_for(const char *needle, int timeout_ms);

#endif
