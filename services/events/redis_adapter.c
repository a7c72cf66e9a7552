/*
 * redis_adapter.c - adapter = redis: Socket.IO rooms across hosts through
 * Redis pub/sub, wire-compatible with @socket.io/redis-adapter 8.x (its
 * classic createAdapter) and @socket.io/redis-emitter 5.x (worker, loop
 * thread; hiredis async over the worker's libev loop).
 *
 * Channels, for prefix P (redis_prefix, the adapter's `key`) and each
 * configured namespace N:
 *   P#N#         broadcasts to the whole namespace or to several rooms
 *   P#N#room#    broadcasts to exactly one room (the adapter's choice)
 *   P-request#N# REMOTE_JOIN / LEAVE / DISCONNECT, and the requests that
 *                want answers (SOCKETS, ALL_ROOMS, REMOTE_FETCH, ...)
 *   P-response#N#  where those answers go
 * Each worker PSUBSCRIBEs "P#N#*" and SUBSCRIBEs "P-request#N#" for every
 * namespace; redis_msg.c turns what arrives into bus operations
 * (bus_proto.c) applied to this worker's sockets (cd_events__bus_apply),
 * and what cd_events__bus_send sends into the adapter's messages, which
 * the sending worker PUBLISHes once (broadcast.c calls
 * cd_events__redis_publish).  The message shapes are in redis_msg.c.
 *
 * One subscriber and one publisher connection per worker, not one per
 * host relayed over the local bus: no single relay to fail or restart (a
 * worker that dies takes only its own connections), each worker applies
 * what it receives to its own sockets, and nothing extra crosses the bus;
 * the cost, 2 connections and 2 subscriptions per namespace per worker,
 * is small for Redis.  The consequence for Node servers: their
 * serverCount() (PUBSUB NUMSUB of the request channel) counts each
 * clusterd worker, so every worker answers SOCKETS, ALL_ROOMS and
 * REMOTE_FETCH for its own sockets (redis_answer.c).
 *
 * Every worker of one host uses the same uid, made from the hostname, the
 * boot id and the master's pid and start time (/proc: no new IPC), so a
 * message any worker of this host published is skipped by all of them:
 * the local bus delivered it already.  Each message is so delivered once
 * per socket.
 *
 * Redis down: publishes are dropped for Redis and counted (errors_total)
 * while the local bus goes on delivering on this host; degraded() says
 * "redis adapter disconnected" until both connections are up and every
 * subscription confirmed, so /healthz/ready answers 503.  Reconnection:
 * after 100 ms, doubling to 5 s, reset once subscribed; a connect (with
 * AUTH, SELECT and the subscriptions) must complete within redis_timeout,
 * and a PUBLISH must be answered within it, else both connections are
 * dropped and made again (hiredis 0.14 has no timeouts of its own: one
 * ev_timer watches both).  Connections are freed only from that timer,
 * never inside a hiredis callback.  Up and down are logged once per change,
 * naming the server without the password.
 * A host name in redis_uri is looked up in a thread (lookup.c) at every
 * connect, within the connect's redis_timeout, and hiredis is given the
 * address: its own getaddrinfo would wait on DNS on the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "clusterd/buf.h"
#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/redis.h"

#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0
#define PENDING_MAX 10000 /* PUBLISHes awaiting their reply; above: dropped */

typedef struct cd_events_redis {
    cd_events_state *st;
    cd_events_redis_uri uri;
    char uid[40];
    char where[400];          /* redis_uri without its password, for the log */
    char **pattern, **request, **response; /* per namespace: P#N#*, P-request#N#, P-response#N# */
    size_t nnsp;
    redisAsyncContext *pub, *sub;
    int pub_ok, sub_ok;       /* connected (and AUTH, SELECT sent) */
    size_t acks;              /* subscriptions confirmed */
    int up, logged;           /* logged: 0 none yet, 1 up, 2 down */
    int failed;               /* a failure waits for the timer to drop the connections */
    ev_timer timer;           /* connect bound, reply bound, backoff */
    ev_async looked_up;       /* a lookup of the host ended (lookup.c) */
    cd_events_lookup *lookup; /* running, or NULL */
    char addr[256];           /* the host as an address, for this connect */
    double backoff;
    ev_tstamp since;          /* connect started, or the oldest PUBLISH unanswered's window */
    size_t pending;
    uint64_t in, out, errors, reconnects;
    const char *why;          /* the last failure, for the log */
} cd_events_redis;

static void connect_all(cd_events_redis *r);

static void log_state(cd_events_redis *r, int up)
{
    if (r->logged == (up ? 1 : 2))
        return;
    r->logged = up ? 1 : 2;
    cd_events__stats_update(r->st); /* /metrics follows at once, not at the next tick */
    if (up)
        cd_info("[%s] events: redis adapter subscribed (%s, uid %s)", r->st->svc->name, r->where, r->uid);
    else
        cd_warn("[%s] events: redis adapter disconnected (%s): %s; local delivery goes on, retrying", r->st->svc->name,
                r->where, r->why ? r->why : "unknown");
}

/* Something went wrong: the timer drops both connections soon (never
 * here: we may be inside a hiredis callback). */
static void fail(cd_events_redis *r, const char *why)
{
    if (r->failed)
        return;
    r->failed = 1;
    r->why = why;
    r->up = 0;
    log_state(r, 0);
    ev_timer_stop(r->st->svc->loop, &r->timer);
    ev_timer_set(&r->timer, 0., 0.);
    ev_timer_start(r->st->svc->loop, &r->timer);
}

static void drop(cd_events_redis *r)
{
    redisAsyncContext *p = r->pub, *s = r->sub;
    cd_events__lookup_free(r->lookup);
    r->lookup = NULL;
    r->pub = r->sub = NULL; /* their callbacks, called by the frees, see they are gone */
    r->pub_ok = r->sub_ok = 0;
    r->acks = 0;
    r->pending = 0;
    r->up = 0;
    if (p)
        redisAsyncFree(p);
    if (s)
        redisAsyncFree(s);
}

static void arm(cd_events_redis *r, double after)
{
    ev_timer_stop(r->st->svc->loop, &r->timer);
    ev_timer_set(&r->timer, after, 0.);
    ev_timer_start(r->st->svc->loop, &r->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    cd_events_redis *r = w->data;
    double timeout = (double)r->st->conf->redis_timeout_ms / 1000.;
    ev_tstamp now = ev_now(r->st->svc->loop);
    if (r->failed) { /* drop, then wait the backoff */
        drop(r);
        r->failed = 0;
        arm(r, r->backoff);
        r->backoff = r->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : r->backoff * 2;
        return;
    }
    if (r->lookup) { /* the host's lookup is taking too long */
        if (now - r->since >= timeout)
            fail(r, "host name lookup timed out (redis_timeout)");
        else
            arm(r, timeout - (now - r->since));
        return;
    }
    if (!r->pub && !r->sub) { /* the backoff is over */
        r->reconnects++;
        connect_all(r);
        return;
    }
    if (!r->up) {
        if (now - r->since >= timeout)
            fail(r, "connect timed out (redis_timeout)");
        else
            arm(r, timeout - (now - r->since));
        return;
    }
    if (r->pending && now - r->since >= timeout)
        fail(r, "no reply to PUBLISH within redis_timeout");
    else if (r->pending)
        arm(r, timeout - (now - r->since));
}

static int ours(const cd_events_redis *r, const redisAsyncContext *ac)
{
    return r && ac && (ac == r->pub || ac == r->sub);
}

static void check_up(cd_events_redis *r)
{
    if (r->up || !r->pub_ok || !r->sub_ok || r->acks < 2 * r->nnsp)
        return;
    r->up = 1;
    r->failed = 0;
    r->backoff = BACKOFF_MIN;
    log_state(r, 1);
    ev_timer_stop(r->st->svc->loop, &r->timer);
}

/* AUTH and SELECT replies. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    cd_events_redis *r = priv;
    redisReply *rep = reply;
    if (!ours(r, ac))
        return;
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        fail(r, rep ? "AUTH or SELECT refused" : "connection lost");
}

static void on_publish_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    cd_events_redis *r = priv;
    redisReply *rep = reply;
    if (!ours(r, ac))
        return;
    if (r->pending)
        r->pending--;
    r->since = ev_now(r->st->svc->loop);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        r->errors++;
        if (!rep)
            fail(r, "connection lost");
    }
}

static void on_message(cd_events_redis *r, int request, size_t nsp, const redisReply *payload);

/* Whether a broadcast came on the channel of one room no socket of this
 * worker is in ("P#N#room#"): then it is not even decoded, as the Node
 * adapter does. */
static int unknown_room(cd_events_redis *r, size_t nsp, const redisReply *ch)
{
    const cd_events_conf *c = r->st->conf;
    size_t base = strlen(c->redis_prefix) + strlen(c->namespaces[nsp]) + 2; /* "P#N#" */
    if (ch->type != REDIS_REPLY_STRING || (size_t)ch->len <= base || ch->str[ch->len - 1] != '#')
        return 0;
    cd_events_room *room = cd_events__room_find(r->st, (int)nsp, ch->str + base, (size_t)ch->len - base - 1);
    if (room && room->members)
        return 0;
    r->in++;
    return 1;
}

/* Everything the subscriber connection receives. */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    cd_events_redis *r = priv;
    redisReply *rep = reply;
    if (!ours(r, ac) || !rep)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        fail(r, "SUBSCRIBE refused");
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 || rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "psubscribe") == 0 || strcmp(kind, "subscribe") == 0) {
        r->acks++;
        check_up(r);
        return;
    }
    int request = strcmp(kind, "message") == 0;
    if (!request && (strcmp(kind, "pmessage") != 0 || rep->elements < 4))
        return;
    const redisReply *key = rep->element[1]; /* the pattern, or the request channel */
    if (key->type != REDIS_REPLY_STRING)
        return;
    for (size_t n = 0; n < r->nnsp; n++)
        if (strcmp(key->str, request ? r->request[n] : r->pattern[n]) == 0) {
            if (request || !unknown_room(r, n, rep->element[2]))
                on_message(r, request, n, rep->element[request ? 2 : 3]);
            return;
        }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    cd_events_redis *r = ac->data;
    if (!ours(r, ac))
        return;
    if (status != REDIS_OK) { /* hiredis frees the context after this */
        if (ac == r->pub)
            r->pub = NULL;
        else
            r->sub = NULL;
        fail(r, ac->errstr[0] ? "connect failed" : "connect failed");
        return;
    }
    if (ac == r->pub)
        r->pub_ok = 1;
    else
        r->sub_ok = 1;
    check_up(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    cd_events_redis *r = ac->data;
    if (!ours(r, ac))
        return;
    if (ac == r->pub) /* hiredis frees it after this */
        r->pub = NULL;
    else
        r->sub = NULL;
    fail(r, "connection closed");
}

/* A new connection with AUTH and SELECT queued (sent once connected). */
static redisAsyncContext *open_one(cd_events_redis *r)
{
    const cd_events_redis_uri *u = &r->uri;
    redisAsyncContext *ac = u->is_unix ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(r->addr, u->port);
    if (!ac)
        return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    if (redisLibevAttach(r->st->svc->loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (u->password[0] && u->user[0])
        redisAsyncCommand(ac, on_setup_reply, r, "AUTH %s %s", u->user, u->password);
    else if (u->password[0])
        redisAsyncCommand(ac, on_setup_reply, r, "AUTH %s", u->password);
    if (u->db)
        redisAsyncCommand(ac, on_setup_reply, r, "SELECT %d", u->db);
    return ac;
}

/* Both connections, to r->addr (or the unix socket). */
static void open_all(cd_events_redis *r)
{
    r->pub = open_one(r);
    r->sub = r->pub ? open_one(r) : NULL;
    if (!r->pub || !r->sub) {
        fail(r, "cannot start a connection");
        return;
    }
    for (size_t n = 0; n < r->nnsp; n++) {
        redisAsyncCommand(r->sub, on_sub_reply, r, "PSUBSCRIBE %s", r->pattern[n]);
        redisAsyncCommand(r->sub, on_sub_reply, r, "SUBSCRIBE %s", r->request[n]);
    }
    arm(r, (double)r->st->conf->redis_timeout_ms / 1000. - (ev_now(r->st->svc->loop) - r->since));
}

static void on_looked_up(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop, (void)revents;
    cd_events_redis *r = w->data;
    if (!r->lookup)
        return; /* given up meanwhile */
    int rc = cd_events__lookup_result(r->lookup, r->addr, sizeof r->addr);
    if (rc == -EINPROGRESS)
        return;
    cd_events__lookup_free(r->lookup);
    r->lookup = NULL;
    if (rc < 0)
        fail(r, rc == -ENOENT ? "no such host (redis_uri)" : "host name lookup failed");
    else
        open_all(r);
}

/* A connect: the host name looked up first, off the loop, unless it is an
 * address (or a unix socket); bounded by redis_timeout as a whole. */
static void connect_all(cd_events_redis *r)
{
    const cd_events_redis_uri *u = &r->uri;
    r->since = ev_now(r->st->svc->loop);
    if (u->is_unix || cd_events__is_numeric_host(u->host)) {
        snprintf(r->addr, sizeof r->addr, "%s", u->is_unix ? "" : u->host);
        open_all(r);
        return;
    }
    r->lookup = cd_events__lookup_start(r->st->svc->loop, &r->looked_up, u->host);
    if (!r->lookup) {
        fail(r, "cannot start a host name lookup");
        return;
    }
    arm(r, (double)r->st->conf->redis_timeout_ms / 1000.);
}

/* Answers request in with this worker's sockets or rooms of namespace
 * nsp (redis_answer.c), on the response channel. */
static void answer(cd_events_redis *r, size_t nsp, const cd_events_redis_in *in)
{
    cd_buf b = {0};
    if (cd_events__redis_answer(r->st, (int)nsp, in, &b) < 0) {
        r->errors++;
    } else if (r->pub && r->up && r->pending < PENDING_MAX) {
        if (!r->pending++)
            r->since = ev_now(r->st->svc->loop);
        redisAsyncCommand(r->pub, on_publish_reply, r, "PUBLISH %s %b", r->response[nsp], b.p, b.len);
        r->out++;
    }
    cd_buf_free(&b);
}

/* ---- in and out ---- */

static void on_message(cd_events_redis *r, int request, size_t nsp, const redisReply *payload)
{
    if (payload->type != REDIS_REPLY_STRING)
        return;
    r->in++;
    cd_events_redis_in in;
    const char *name = r->st->conf->namespaces[nsp];
    int rc = cd_events__redis_decode(request, r->uid, name, payload->str, payload->len, &in);
    if (rc < 0) {
        r->errors++;
        cd_debug("events: a Redis message of %zu bytes on %s does not decode (%d); ignored", (size_t)payload->len,
                 request ? r->request[nsp] : r->pattern[nsp], rc);
        return;
    }
    if (in.what == CD_EVENTS_RIN_ANSWER) {
        answer(r, nsp, &in);
    } else if (in.what == CD_EVENTS_RIN_APPLY) {
        size_t off = 0, mlen;
        const void *msg;
        cd_events_bus_msg m;
        while (cd_events__redis_in_next(&in, &off, &msg, &mlen))
            if (cd_events__bus_decode(msg, mlen, &m) == 0)
                cd_events__bus_apply(r->st, &m);
    }
    cd_events__redis_in_free(&in);
}

void cd_events__redis_publish(cd_events_state *st, const cd_events_target *t, const cd_events_bus_op *op)
{
    cd_events_redis *r = st->redis;
    if (!r || t->nsp < 0 || (size_t)t->nsp >= r->nnsp)
        return;
    if (!r->up || r->pending >= PENDING_MAX) {
        r->errors++; /* dropped for Redis; the local bus delivers on this host */
        return;
    }
    cd_events_redis_out o;
    const char *nsp = st->conf->namespaces[t->nsp];
    if (cd_events__redis_encode(r->uid, nsp, t, op, &o) < 0) {
        r->errors++;
        return;
    }
    const char *pfx = st->conf->redis_prefix;
    if (o.request)
        redisAsyncCommand(r->pub, on_publish_reply, r, "PUBLISH %s %b", r->request[t->nsp], o.msg, o.len);
    else if (t->nrooms == 1)
        redisAsyncCommand(r->pub, on_publish_reply, r, "PUBLISH %s#%s#%b# %b", pfx, nsp, t->rooms[0],
                          t->room_lens[0], o.msg, o.len);
    else
        redisAsyncCommand(r->pub, on_publish_reply, r, "PUBLISH %s#%s# %b", pfx, nsp, o.msg, o.len);
    free(o.msg);
    if (!r->pending++) {
        r->since = ev_now(st->svc->loop);
        arm(r, (double)st->conf->redis_timeout_ms / 1000.);
    }
    r->out++;
}

/* ---- lifetime ---- */

/* Reads the first line of a small file into buf ("" when it cannot). */
static void read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (f) {
        size_t n = fread(buf, 1, cap - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
}

/* This host's uid: the hostname, the kernel's boot id (containers with
 * the same hostname on two machines), the master's pid and its start
 * time. */
static void host_uid(char out[40])
{
    char host[256] = "", boot[64], stat[1024], path[64];
    gethostname(host, sizeof host - 1);
    read_line("/proc/sys/kernel/random/boot_id", boot, sizeof boot);
    pid_t master = getppid();
    snprintf(path, sizeof path, "/proc/%d/stat", (int)master);
    read_line(path, stat, sizeof stat);
    unsigned long long start = 0;
    const char *p = strrchr(stat, ')'); /* then the 22nd field, counting from after the name */
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p)
        start = strtoull(p + 1, NULL, 10);
    char id[400];
    int n = snprintf(id, sizeof id, "%s/%s/%d/%llu", host, boot, (int)master, start);
    static const unsigned char key[16] = "clusterd-uid-key";
    uint64_t h = cd_events__siphash(key, id, n > 0 && (size_t)n < sizeof id ? (size_t)n : strlen(id));
    snprintf(out, 40, "clusterd-%016llx", (unsigned long long)h);
}

/* s with the glob characters of a PSUBSCRIBE pattern escaped. */
static char *glob_escape(const char *s)
{
    char *o = malloc(2 * strlen(s) + 1), *p = o;
    if (!o)
        return NULL;
    for (; *s; s++) {
        if (strchr("*?[]\\", *s))
            *p++ = '\\';
        *p++ = *s;
    }
    *p = '\0';
    return o;
}

static char *channel(const char *pfx, const char *kind, const char *nsp, const char *tail)
{
    size_t n = strlen(pfx) + strlen(kind) + strlen(nsp) + strlen(tail) + 4;
    char *c = malloc(n);
    if (c)
        snprintf(c, n, "%s%s#%s#%s", pfx, kind, nsp, tail);
    return c;
}

static void free_redis(cd_events_redis *r)
{
    for (size_t n = 0; n < r->nnsp; n++) {
        free(r->pattern[n]);
        free(r->request[n]);
        free(r->response[n]);
    }
    free(r->pattern);
    free(r->request);
    free(r->response);
    free(r);
}

int cd_events__redis_start(cd_events_state *st, char *err, size_t errlen)
{
    const cd_events_conf *c = st->conf;
    if (c->adapter != CD_EVENTS_ADAPTER_REDIS)
        return 0;
    cd_events_redis *r = calloc(1, sizeof *r);
    size_t nn = c->nnamespaces;
    if (!r || !(r->pattern = calloc(nn, sizeof *r->pattern)) || !(r->request = calloc(nn, sizeof *r->request)) ||
        !(r->response = calloc(nn, sizeof *r->response))) {
        if (r)
            free_redis(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->st = st;
    r->nnsp = nn;
    char *epfx = glob_escape(c->redis_prefix);
    for (size_t n = 0; n < nn; n++) {
        char *ensp = glob_escape(c->namespaces[n]);
        r->pattern[n] = epfx && ensp ? channel(epfx, "", ensp, "*") : NULL;
        r->request[n] = channel(c->redis_prefix, "-request", c->namespaces[n], "");
        r->response[n] = channel(c->redis_prefix, "-response", c->namespaces[n], "");
        free(ensp);
        if (!r->pattern[n] || !r->request[n] || !r->response[n]) {
            free(epfx);
            free_redis(r);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    free(epfx);
    if (cd_events__redis_uri_parse(c->redis_uri, &r->uri) < 0) { /* conf checked it */
        free_redis(r);
        snprintf(err, errlen, "redis_uri: not a redis:// or unix:// URI");
        return -1;
    }
    host_uid(r->uid);
    const cd_events_redis_uri *u = &r->uri; /* never the password */
    int v6 = strchr(u->host, ':') != NULL;
    if (u->is_unix)
        snprintf(r->where, sizeof r->where, "unix://%s%s%s?db=%d", u->user, u->user[0] ? "@" : "", u->path, u->db);
    else
        snprintf(r->where, sizeof r->where, "redis://%s%s%s%s%s:%d/%d", u->user, u->user[0] ? "@" : "",
                 v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, u->db);
    r->backoff = BACKOFF_MIN;
    ev_init(&r->timer, on_timer);
    r->timer.data = r;
    ev_async_init(&r->looked_up, on_looked_up);
    r->looked_up.data = r;
    ev_async_start(st->svc->loop, &r->looked_up);
    st->redis = r;
    connect_all(r);
    return 0;
}

void cd_events__redis_stop(cd_events_state *st)
{
    cd_events_redis *r = st->redis;
    if (!r)
        return;
    ev_timer_stop(st->svc->loop, &r->timer);
    ev_async_stop(st->svc->loop, &r->looked_up);
    drop(r); /* a lookup still running is given up: its thread frees it */
    st->redis = NULL;
    free_redis(r);
}

const char *cd_events__redis_degraded(const cd_events_state *st)
{
    return st->redis && !st->redis->up ? "redis adapter disconnected" : NULL;
}

void cd_events__redis_stats(const cd_events_state *st, cd_events_redis_stats *s)
{
    const cd_events_redis *r = st->redis;
    memset(s, 0, sizeof *s);
    if (!r)
        return;
    s->up = r->up;
    s->in = r->in;
    s->out = r->out;
    s->errors = r->errors;
    s->reconnects = r->reconnects;
}
