/*
 * bus.c - see bus.h.
 */
#include "ipc/bus.h"

#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include <nanomsg/pubsub.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUS_BUF (4 << 20) /* per-socket buffer: room for bursts of broadcasts */
#define BUS_MAX_MSG (1 << 20)

static int endpoint(char *out, size_t len, const char *dir, const char *name)
{
    int n = snprintf(out, len, "ipc://%s/%s", dir, name);
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int cd_ipc_bind_0600(int s, const char *dir, const char *name)
{
    char path[300], url[320];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return -ENAMETOOLONG;
    snprintf(url, sizeof url, "ipc://%s", path);
    /* nanomsg binds (creates the file) inside nn_bind, in this thread: a
     * umask for that moment gives the file 0600 from birth; the chmod then
     * makes sure of it whatever the library did. */
    mode_t old = umask(0177);
    int rc = nn_bind(s, url) < 0 ? -nn_errno() : 0;
    umask(old);
    if (rc == 0 && chmod(path, 0600) < 0)
        rc = -errno;
    return rc;
}

static int chown_in(const char *dir, const char *name, const struct stat *owner)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name); /* fits: cd_ipc_bind_0600 checked */
    return chown(path, owner->st_uid, owner->st_gid) < 0 ? -errno : 0;
}

static int sock(int proto, int *out)
{
    int s = nn_socket(AF_SP, proto);
    if (s < 0)
        return -nn_errno();
    int buf = BUS_BUF, max = BUS_MAX_MSG;
    nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDBUF, &buf, sizeof buf);
    nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVBUF, &buf, sizeof buf);
    nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max, sizeof max);
    *out = s;
    return 0;
}

static int rcvfd(int s, int *fd)
{
    size_t sz = sizeof *fd;
    return nn_getsockopt(s, NN_SOL_SOCKET, NN_RCVFD, fd, &sz) < 0 ? -nn_errno() : 0;
}

int cd_bus_master_open(cd_bus *b, const char *dir)
{
    int rc;
    b->in = b->out = -1;
    if ((rc = sock(NN_PULL, &b->in)) < 0 || (rc = sock(NN_PUB, &b->out)) < 0)
        goto fail;
    if ((rc = cd_ipc_bind_0600(b->in, dir, "bus-in")) < 0 || (rc = cd_ipc_bind_0600(b->out, dir, "bus-out")) < 0)
        goto fail;
    /* A root master whose workers run as another user gives them the dir
     * (master.c): connecting needs write permission on the socket file, so
     * the bus sockets go to the dir's owner too, still 0600. */
    struct stat st;
    if (stat(dir, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (st.st_uid != geteuid() && ((rc = chown_in(dir, "bus-in", &st)) < 0 || (rc = chown_in(dir, "bus-out", &st)) < 0))
        goto fail;
    if ((rc = rcvfd(b->in, &b->rcvfd)) < 0)
        goto fail;
    return 0;
fail:
    cd_bus_close(b);
    return rc;
}

int cd_bus_master_relay(cd_bus *b)
{
    int n = 0;
    while (n < CD_BUS_RELAY_BATCH) {
        void *msg;
        int len = nn_recv(b->in, &msg, NN_MSG, NN_DONTWAIT);
        if (len < 0)
            return n;
        /* PUB never blocks: a slow subscriber drops, the others keep going. */
        if (nn_send(b->out, &msg, NN_MSG, NN_DONTWAIT) < 0)
            nn_freemsg(msg);
        n++;
    }
    return n;
}

/* nn_connect returns before the connection is up; until it is, a PUSH send
 * fails with EAGAIN (a publish right after start answered 503) and a SUB
 * misses what is published.  A worker opens its bus while booting, before
 * READY, so it waits for both connections there: on a local ipc:// socket
 * they come up within milliseconds.  Bounded: past BUS_CONNECT_MS it goes on,
 * and nanomsg keeps reconnecting by itself. */
#define BUS_CONNECT_MS 2000
static void wait_connected(const cd_bus *b)
{
    for (int i = 0; i < BUS_CONNECT_MS; i++) {
        if (nn_get_statistic(b->in, NN_STAT_CURRENT_CONNECTIONS) > 0 &&
            nn_get_statistic(b->out, NN_STAT_CURRENT_CONNECTIONS) > 0)
            return;
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
}

int cd_bus_worker_open(cd_bus *b, const char *dir)
{
    char in[512], out[512];
    int rc;
    b->in = b->out = -1;
    if ((rc = endpoint(in, sizeof in, dir, "bus-in")) < 0 || (rc = endpoint(out, sizeof out, dir, "bus-out")) < 0)
        return rc;
    if ((rc = sock(NN_PUSH, &b->in)) < 0 || (rc = sock(NN_SUB, &b->out)) < 0)
        goto fail;
    if (nn_setsockopt(b->out, NN_SUB, NN_SUB_SUBSCRIBE, "", 0) < 0 || nn_connect(b->in, in) < 0 ||
        nn_connect(b->out, out) < 0) {
        rc = -nn_errno();
        goto fail;
    }
    if ((rc = rcvfd(b->out, &b->rcvfd)) < 0)
        goto fail;
    wait_connected(b);
    return 0;
fail:
    cd_bus_close(b);
    return rc;
}

int cd_bus_send(cd_bus *b, const void *msg, size_t len)
{
    return nn_send(b->in, msg, len, NN_DONTWAIT) < 0 ? -nn_errno() : 0;
}

long cd_bus_recv(cd_bus *b, void **msg)
{
    int len = nn_recv(b->out, msg, NN_MSG, NN_DONTWAIT);
    return len < 0 ? -nn_errno() : len;
}

void cd_bus_free(void *msg) { nn_freemsg(msg); }

long cd_bus_wrap(void *out, size_t cap, const char *name, const void *payload, size_t len)
{
    size_t nl = strlen(name) + 1;
    if (len > cap || nl > cap - len)
        return -EMSGSIZE;
    memcpy(out, name, nl);
    if (len) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy((char *)out + nl, payload, len);
    return (long)(nl + len);
}

int cd_bus_unwrap(const void *msg, size_t len, const char **name, const void **payload, size_t *plen)
{
    const char *m = msg;
    const char *nul = len ? memchr(m, '\0', len) : NULL;
    if (!nul)
        return -EINVAL;
    *name = m;
    *payload = nul + 1;
    *plen = len - (size_t)(nul + 1 - m);
    return 0;
}

void cd_bus_close(cd_bus *b)
{
    if (b->in >= 0)
        nn_close(b->in);
    if (b->out >= 0)
        nn_close(b->out);
    b->in = b->out = -1;
}
