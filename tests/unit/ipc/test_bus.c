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
#include <sys/stat.h>
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

static void remove_bus_dir(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/bus-in", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/bus-out", dir);
    unlink(path);
    rmdir(dir);
}

/* Issue 9: the bus sockets used to get the umask's mode (0777 under umask
 * 0): any local user could inject broadcasts.  Like the control socket,
 * they must be 0600 whatever the umask. */
Test(bus, sockets_are_0600_whatever_the_umask)
{
    char dir[] = "/tmp/clusterd-bus-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    mode_t old = umask(0);
    cd_bus relay;
    int rc = cd_bus_master_open(&relay, dir);
    umask(old);
    cr_assert_eq(rc, 0, "open: %d", rc);
    static const char *const names[] = {"bus-in", "bus-out"};
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0, "%s exists", path);
        cr_assert(S_ISSOCK(st.st_mode), "%s is a socket", path);
        cr_assert_eq(st.st_mode & 07777, 0600, "%s has mode %o", path, (unsigned)(st.st_mode & 07777));
    }
    cr_assert_eq(umask(old), old, "the process umask is left as it was");
    cd_bus_close(&relay);
    remove_bus_dir(dir);
}

/* (A path that is too long: a failed nn_bind itself leaks inside nanomsg,
 * which would put a LeakSanitizer report in the ASan build's output.) */
Test(bus, a_failed_open_leaves_nothing_open)
{
    char dir[400];
    memset(dir, 'd', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    cd_bus relay;
    int rc = cd_bus_master_open(&relay, dir);
    cr_assert_eq(rc, -ENAMETOOLONG);
    cr_assert_eq(relay.in, -1);
    cr_assert_eq(relay.out, -1);
}

/* Workers that run as another user (a root master with user=) own the
 * runtime dir; a 0600 root socket would keep them off the bus (connecting
 * needs write permission on the socket file), silently: nanomsg retries the
 * connection in the background.  The bus sockets go to the dir's owner. */
Test(bus, sockets_belong_to_the_owner_of_the_dir)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to give the dir away");
    char dir[] = "/tmp/clusterd-bus-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(chown(dir, 65534, 65534), 0);
    cd_bus relay;
    cr_assert_eq(cd_bus_master_open(&relay, dir), 0);
    static const char *const names[] = {"bus-in", "bus-out"};
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_uid, 65534, "%s: owner %d", path, (int)st.st_uid);
        cr_assert_eq(st.st_gid, 65534, "%s: group %d", path, (int)st.st_gid);
        cr_assert_eq(st.st_mode & 07777, 0600);
    }
    cd_bus_close(&relay);
    remove_bus_dir(dir);
}

Test(bus, envelope_round_trip_and_limits)
{
    char buf[32];
    long n = cd_bus_wrap(buf, sizeof buf, "events", "R\0\0\0", 4);
    cr_assert_eq(n, 11);
    cr_assert(memcmp(buf, "events\0R\0\0\0", 11) == 0);
    const char *name;
    const void *payload;
    size_t plen;
    cr_assert_eq(cd_bus_unwrap(buf, (size_t)n, &name, &payload, &plen), 0);
    cr_assert_str_eq(name, "events");
    cr_assert_eq(plen, 4);
    cr_assert_eq(payload, buf + 7);
    cr_assert_eq(cd_bus_wrap(buf, 10, "events", "R\0\0\0", 4), -EMSGSIZE, "one byte short");
    cr_assert_eq(cd_bus_wrap(buf, 3, "events", NULL, 0), -EMSGSIZE);
    cr_assert_eq(cd_bus_wrap(buf, 7, "events", NULL, 0), 7, "an empty payload");
    cr_assert_eq(cd_bus_unwrap(buf, 7, &name, &payload, &plen), 0);
    cr_assert_eq(plen, 0);
    cr_assert_eq(cd_bus_unwrap("events", 6, &name, &payload, &plen), -EINVAL, "no NUL: not an envelope");
    cr_assert_eq(cd_bus_unwrap("", 0, &name, &payload, &plen), -EINVAL);
}

/* The relay runs on the master's loop: a flood of broadcasts must not keep
 * it there (signals, reaping, heartbeat checks wait meanwhile).  One call
 * relays a bounded batch; the rest waits for the next turn of the loop,
 * and nothing is lost. */
Test(bus, relay_takes_a_bounded_batch_per_call)
{
    char dir[] = "/tmp/clusterd-bus-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cd_bus relay, a;
    cr_assert_eq(cd_bus_master_open(&relay, dir), 0);
    cr_assert_eq(cd_bus_worker_open(&a, dir), 0);
    /* Until the PUSH pipe is connected, a send says EAGAIN. */
    int sent = 0;
    for (int i = 0; i < 400 && sent == 0; i++) {
        if (cd_bus_send(&a, "x", 1) == 0)
            sent = 1;
        else
            usleep(5000);
    }
    cr_assert_eq(sent, 1, "the bus never connected");
    for (int i = 0; i < 100000 && sent < 3000; i++)
        if (cd_bus_send(&a, "x", 1) == 0)
            sent++;
    cr_assert_eq(sent, 3000);
    /* Wait until the master has them all queued: poll + a pause, bounded. */
    struct pollfd p = {.fd = relay.rcvfd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1);
    usleep(300000);
    int first = cd_bus_master_relay(&relay);
    cr_assert_gt(first, 0);
    cr_assert_leq(first, CD_BUS_RELAY_BATCH, "one call relayed %d", first);
    cr_assert_eq(poll(&p, 1, 0), 1, "rcvfd stays readable while messages wait: the loop comes back");
    int total = first;
    for (int i = 0; i < 2000 && total < sent; i++) {
        int n = cd_bus_master_relay(&relay);
        cr_assert_leq(n, CD_BUS_RELAY_BATCH);
        total += n;
        if (n == 0) {
            poll(&p, 1, 10);
        }
    }
    cr_assert_eq(total, sent, "every message relayed in the end");
    cd_bus_close(&a);
    cd_bus_close(&relay);
    remove_bus_dir(dir);
}

/* A worker's bus is up once cd_bus_worker_open returns (it opens it while
 * booting, before READY): the first send goes through, and the first
 * message the relay publishes reaches it. */
Test(bus, a_worker_bus_is_connected_when_open_returns, .timeout = 20)
{
    char dir[] = "/tmp/clusterd-bus-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cd_bus relay, a;
    cr_assert_eq(cd_bus_master_open(&relay, dir), 0);
    cr_assert_eq(cd_bus_worker_open(&a, dir), 0);
    cr_assert_eq(cd_bus_send(&a, "first", 5), 0, "the first send after open");
    char got[64];
    cr_assert_eq(recv_one(&relay, &a, got, sizeof got), 0, "the first message came back");
    cr_assert_str_eq(got, "first");
    cd_bus_close(&a);
    cd_bus_close(&relay);
    char path[512];
    snprintf(path, sizeof path, "%s/bus-in", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/bus-out", dir);
    unlink(path);
    rmdir(dir);
}
