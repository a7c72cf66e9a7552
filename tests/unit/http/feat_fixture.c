/*
 * feat_fixture.c - see feat_fixture.h.
 */
#include "feat_fixture.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

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

const char *wait_for(const char *needle, int timeout_ms)
{
    got_len = 0;
    got_eof = 0;
    got[0] = '\0';
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        ev_run(loop, EVRUN_NOWAIT);
        ssize_t n = recv(client, got + got_len, sizeof got - 1 - got_len, 0);
        if (n > 0) {
            got_len += (size_t)n;
            got[got_len] = '\0';
        } else if (n == 0) {
            got_eof = 1;
            break;
        }
        if (needle && memmem(got, got_len, needle, strlen(needle)))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > timeout_ms)
            break;
        struct pollfd p = {.fd = client, .events = POLLIN};
        poll(&p, 1, 2);
    }
    return got;
}
