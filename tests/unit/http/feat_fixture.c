/*
 * feat_fixture.c - see feat_fixture.h.
 */
#include "feat_fixture.h"

#include <criterion/criterion.h>
#include <stdlib.h>

static const cd_route **feat_sorted;

void feat_routes(cd_route *routes, size_t n)
{
    free(feat_sorted);
    cr_assert_eq(cd_router_build(routes, n, &feat_sorted), 0);
    ctx.routes = feat_sorted;
    ctx.nroutes = n;
}

void feat_teardown(void)
{
    teardown();
    free(feat_sorted);
    feat_sorted = NULL;
}

const char *wait_for(const char *needle, int timeout_ms) { return pump_until(0, needle, timeout_ms); }
