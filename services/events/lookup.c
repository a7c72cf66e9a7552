/*
 * lookup.c - a host name to a numeric address without waiting on the loop
 * (worker: the loop thread starts and collects a lookup, one detached
 * thread per lookup runs getaddrinfo).
 *
 * The Redis adapter's redis_uri may name its server (redis.internal, a
 * Sentinel-managed name, localhost); getaddrinfo can wait seconds on DNS,
 * and hiredis calls it inside redisAsyncConnect, on the loop.  So the
 * adapter resolves first, here, and hands hiredis the numeric address,
 * which getaddrinfo answers without asking anyone.  Each reconnect looks
 * the name up again, so a server moved behind its name is followed.
 *
 * The thread and the loop share the lookup under its mutex: the thread
 * stores the answer and wakes the loop (ev_async_send, thread-safe) unless
 * the loop gave the lookup up meanwhile (a redis_timeout, a stop), in
 * which case the thread frees it; the loop frees a finished lookup.  A
 * thread never touches the loop after it was given up, so a worker can
 * stop with a lookup still in the resolver.
 */
#include "services/events/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum { RUNNING, DONE, GIVEN_UP };

struct cd_events_lookup {
    pthread_mutex_t mu;
    struct ev_loop *loop;
    ev_async *wake;
    int state;
    int err;
    char host[256];
    char addr[INET6_ADDRSTRLEN];
};

int cd_events__is_numeric_host(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static int resolve(const char *host, char *addr, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return rc == EAI_NONAME || rc == EAI_NODATA ? -ENOENT : rc == EAI_AGAIN ? -EAGAIN : -EIO;
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    return rc == 0 ? 0 : -EIO;
}

static void *run(void *arg)
{
    cd_events_lookup *l = arg;
    char addr[INET6_ADDRSTRLEN] = "";
    int err = resolve(l->host, addr, sizeof addr);
    pthread_mutex_lock(&l->mu);
    if (l->state == GIVEN_UP) {
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_destroy(&l->mu);
        free(l);
        return NULL;
    }
    l->state = DONE;
    l->err = err;
    memcpy(l->addr, addr, sizeof addr);
    ev_async_send(l->loop, l->wake);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

cd_events_lookup *cd_events__lookup_start(struct ev_loop *loop, ev_async *wake, const char *host)
{
    if (strlen(host) >= sizeof ((cd_events_lookup *)0)->host)
        return NULL;
    cd_events_lookup *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    l->loop = loop;
    l->wake = wake;
    l->state = RUNNING;
    strcpy(l->host, host);
    pthread_attr_t attr;
    pthread_t t;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&t, &attr, run, l);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        pthread_mutex_destroy(&l->mu);
        free(l);
        return NULL;
    }
    return l;
}

int cd_events__lookup_result(cd_events_lookup *l, char *addr, size_t cap)
{
    pthread_mutex_lock(&l->mu);
    int state = l->state, err = l->err;
    if (state == DONE && err == 0 && strlen(l->addr) < cap)
        strcpy(addr, l->addr);
    else if (state == DONE && err == 0)
        err = -ENAMETOOLONG;
    pthread_mutex_unlock(&l->mu);
    return state == DONE ? err : -EINPROGRESS;
}

void cd_events__lookup_free(cd_events_lookup *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    if (l->state == RUNNING) { /* the thread frees it when getaddrinfo returns */
        l->state = GIVEN_UP;
        pthread_mutex_unlock(&l->mu);
        return;
    }
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
