/*
 * stats.c - the events service's figures in /metrics (worker, loop
 * thread): once a second (and at start) it reads this worker's
 * cd_events_state and sets them with cd_service_metric; the master sums
 * the workers' (core/stats.c), and any worker's /metrics prints the sum:
 *
 *   clusterd_events_clients{service,namespace,transport}   gauge
 *       connected sockets of the namespace whose client uses the transport
 *       (a client with two namespaces counts in both)
 *   clusterd_events_rooms{service,namespace}               gauge
 *       rooms with members, not counting a socket's own rooms (the
 *       namespace's, its sid's, user:<sub>)
 *   clusterd_events_messages_in_total{service}             counter
 *   clusterd_events_messages_out_total{service}            counter
 *   clusterd_events_slow_clients_dropped_total{service}    counter
 *   with adapter = redis (redis_adapter.c):
 *   clusterd_events_redis_up{service}                      gauge (workers subscribed)
 *   clusterd_events_redis_messages_total{service,direction="in|out"} counter
 *   clusterd_events_redis_errors_total{service}            counter (decode errors,
 *       publish failures, publishes dropped while disconnected)
 *   clusterd_events_redis_reconnects_total{service}        counter
 *
 * Clients and rooms are counted from the lists the service keeps anyway,
 * not maintained on every join, so the hot paths pay nothing; the walk of
 * the room table is one pass over its buckets per second.  Transports not
 * in `transports` get no series.  Namespaces are at most 64 bytes of
 * printable ASCII without '"' or '\' (conf.c), so they go into the label
 * as they are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "clusterd/log.h"
#include "clusterd/service.h"
#include "clusterd/timer.h"
#include "services/events/events.h"
#include "services/events/redis.h"

#define PERIOD_MS 1000

struct cd_events_stats {
    cd_timer *timer;
    int warned; /* a metric was refused: logged once */
};

/* Whether room r is one of its first member's own rooms (and so everyone's
 * own: namespace, sid and user rooms are never joined by name). */
static int own_room(const cd_events_room *r)
{
    const cd_events_member *m = r->members;
    const cd_events_socket *s = m->socket;
    for (size_t i = 0; i < s->nown && i < s->nrooms; i++)
        if (s->rooms[i] == m)
            return 1;
    return 0;
}

static void count(const cd_events_state *st, size_t clients[][2], size_t *rooms)
{
    int nsp = (int)st->conf->nnamespaces;
    for (const cd_events_client *c = st->clients; c; c = c->next)
        for (const cd_events_socket *s = c->sockets; s; s = s->next)
            if (s->nsp >= 0 && s->nsp < nsp && (unsigned)c->transport < 2)
                clients[s->nsp][c->transport]++;
    for (size_t b = 0; b < st->nbuckets; b++)
        for (const cd_events_room *r = st->buckets[b]; r; r = r->hnext)
            if (r->members && r->nsp >= 0 && r->nsp < nsp && !own_room(r))
                rooms[r->nsp]++;
}

void cd_events__stats_update(cd_events_state *st)
{
    static const char *const tnames[2] = {"polling", "websocket"};
    static const int tbits[2] = {CD_EVENTS_T_POLLING, CD_EVENTS_T_WEBSOCKET};
    size_t clients[CD_EVENTS_NSP_MAX][2] = {{0}}, rooms[CD_EVENTS_NSP_MAX] = {0};
    const cd_events_conf *conf = st->conf;
    cd_service *svc = st->svc;
    char labels[128];
    int rc = 0;
    count(st, clients, rooms);
    for (size_t n = 0; n < conf->nnamespaces && n < CD_EVENTS_NSP_MAX; n++) {
        for (int t = 0; t < 2; t++) {
            if (!(conf->transports & tbits[t]))
                continue;
            snprintf(labels, sizeof labels, "namespace=\"%s\",transport=\"%s\"", conf->namespaces[n], tnames[t]);
            rc = rc ? rc : cd_service_metric(svc, "clients", labels, clients[n][t]);
        }
        snprintf(labels, sizeof labels, "namespace=\"%s\"", conf->namespaces[n]);
        rc = rc ? rc : cd_service_metric(svc, "rooms", labels, rooms[n]);
    }
    rc = rc ? rc : cd_service_metric(svc, "messages_in_total", "", st->msgs_in);
    rc = rc ? rc : cd_service_metric(svc, "messages_out_total", "", st->msgs_out);
    rc = rc ? rc : cd_service_metric(svc, "slow_clients_dropped_total", "", st->slow_dropped);
    if (conf->adapter == CD_EVENTS_ADAPTER_REDIS) {
        cd_events_redis_stats r;
        cd_events__redis_stats(st, &r);
        rc = rc ? rc : cd_service_metric(svc, "redis_up", "", (uint64_t)r.up);
        rc = rc ? rc : cd_service_metric(svc, "redis_messages_total", "direction=\"in\"", r.in);
        rc = rc ? rc : cd_service_metric(svc, "redis_messages_total", "direction=\"out\"", r.out);
        rc = rc ? rc : cd_service_metric(svc, "redis_errors_total", "", r.errors);
        rc = rc ? rc : cd_service_metric(svc, "redis_reconnects_total", "", r.reconnects);
    }
    if (rc < 0 && rc != -ENOTSUP && st->stats && !st->stats->warned) {
        st->stats->warned = 1;
        cd_warn("[%s] events metrics: cd_service_metric failed (%d): some figures are missing from /metrics",
                svc->name, rc);
    }
}

static void tick(cd_timer *t, void *arg)
{
    (void)t;
    cd_events__stats_update(arg);
}

int cd_events__stats_start(cd_events_state *st)
{
    struct cd_events_stats *s = calloc(1, sizeof *s);
    if (!s || !(s->timer = cd_timer_new(st->svc, tick, st))) {
        free(s);
        return -ENOMEM;
    }
    st->stats = s;
    int rc = cd_timer_start(s->timer, PERIOD_MS, PERIOD_MS);
    if (rc < 0) {
        cd_events__stats_stop(st);
        return rc;
    }
    cd_events__stats_update(st); /* the series exist from the start, at 0 */
    return 0;
}

void cd_events__stats_stop(cd_events_state *st)
{
    struct cd_events_stats *s = st->stats;
    if (!s)
        return;
    cd_timer_stop(s->timer);
    cd_timer_free(s->timer);
    free(s);
    st->stats = NULL;
}
