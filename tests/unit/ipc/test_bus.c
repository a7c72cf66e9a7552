/*
 * Unit test for ipc/bus.c: a relay and two worker endpoints in one process;
 * a message sent by one worker reaches both (itself included).  Bounded by
 * poll timeouts; never calls nn_term (criterion uses nanomsg itself).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/bus.h"

static int recv_one(cd_bus *relay, cd_bus *b, char *out, size_t cap)
{
    for (int i = 0; i < 200; i++) {
        cd_bus_master_relay(relay);
        void *msg;
        long len = cd_bus_recv(b, &msg);
        if (len >= 0) {
            size_t n = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
            memcpy(out, msg, n);
            out[n] = '\0';
            cd_bus_free(msg);
            return 0;
        }
        struct pollfd p[2] = {{.fd = relay->rcvfd, .events = POLLIN}, {.fd = b->rcvfd, .events = POLLIN}};
        poll(p, 2, 10);
    }
    return -1;
}

Test(bus, relays_to_every_worker, .timeout = 20)
{
    char dir[] = "/tmp/clusterd-bus-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cd_bus relay, a, b;
    cr_assert_eq(cd_bus_master_open(&relay, dir), 0);
    cr_assert_eq(cd_bus_worker_open(&a, dir), 0);
    cr_assert_eq(cd_bus_worker_open(&b, dir), 0);
    /* Connections are made asynchronously: until they are, a send may say
     * EAGAIN and a subscriber may miss messages.  Send until one arrives. */
    char got[64];
    int ok = -1;
    for (int i = 0; i < 50 && ok < 0; i++) {
        int rc = cd_bus_send(&a, "warmup", 6);
        cr_assert(rc == 0 || rc == -EAGAIN, "send: %d", rc);
        ok = recv_one(&relay, &b, got, sizeof got);
    }
    cr_assert_eq(ok, 0, "the bus delivered nothing");
    /* Drain what the warm-up left behind. */
    void *m;
    long len;
    for (int i = 0; i < 20; i++) {
        cd_bus_master_relay(&relay);
        while ((len = cd_bus_recv(&a, &m)) >= 0)
            cd_bus_free(m);
        while ((len = cd_bus_recv(&b, &m)) >= 0)
            cd_bus_free(m);
        usleep(5000);
    }
    cr_assert_eq(cd_bus_send(&b, "hello from b", 12), 0);
    cr_assert_eq(recv_one(&relay, &a, got, sizeof got), 0);
    cr_assert_str_eq(got, "hello from b");
    cr_assert_eq(recv_one(&relay, &b, got, sizeof got), 0);
    cr_assert_str_eq(got, "hello from b", "the sender gets its own message too");
    cd_bus_close(&a);
    cd_bus_close(&b);
    cd_bus_close(&relay);
    char path[128];
    snprintf(path, sizeof path, "%s/bus-in", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/bus-out", dir);
    unlink(path);
    rmdir(dir);
}
