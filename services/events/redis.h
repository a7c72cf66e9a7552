/*
 * redis.h - the events service's Redis adapter (adapter = redis): the
 * pure codecs of redis_msg.c (socket.io-redis-adapter's msgpack messages
 * <-> the events bus's operations, the redis_uri) and the running adapter
 * of redis_adapter.c (worker, loop thread).  redis_adapter.c's essay gives
 * the wire mapping and the design; docs/socketio.md ("Across hosts:
 * Redis") the user's view.
 */
#ifndef CD_EVENTS_REDIS_H
#define CD_EVENTS_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "clusterd/buf.h"
#include "services/events/events.h"

/* ---- redis_uri (redis_msg.c, pure) ---- */

typedef struct cd_events_redis_uri {
    int is_unix;         /* unix:///path: path set; else host and port */
    char host[256];
    int port;            /* default 6379 */
    char path[108];      /* sun_path's size */
    char user[128];      /* AUTH user password when both are set */
    char password[256];  /* "": no AUTH */
    int db;              /* SELECT db when not 0 */
} cd_events_redis_uri;
/* Parses redis://[[user]:password@]host[:port][/db] (host a name, an IPv4
 * address or [IPv6]; password and user percent-decoded) or
 * unix://[[user]:password@]/path[?db=N].  0 or -EINVAL. */
int cd_events__redis_uri_parse(const char *uri, cd_events_redis_uri *out);

/* ---- messages (redis_msg.c, pure) ---- */

/* socket.io-redis-adapter's RequestType. */
enum {
    CD_EVENTS_RREQ_SOCKETS = 0,
    CD_EVENTS_RREQ_ALL_ROOMS = 1,
    CD_EVENTS_RREQ_REMOTE_JOIN = 2,
    CD_EVENTS_RREQ_REMOTE_LEAVE = 3,
    CD_EVENTS_RREQ_REMOTE_DISCONNECT = 4,
    CD_EVENTS_RREQ_REMOTE_FETCH = 5,
    CD_EVENTS_RREQ_SERVER_SIDE_EMIT = 6,
    CD_EVENTS_RREQ_BROADCAST = 7,
};

/* Longest uid and requestId kept. */
#define CD_EVENTS_REDIS_ID_MAX 64

/* An operation as the adapter publishes it: the message (malloc'd, len
 * bytes) and whether it goes on the request channel (else the broadcast
 * channel, with "<room>#" after it when the target has exactly one room). */
typedef struct cd_events_redis_out {
    char *msg;
    size_t len;
    int request;
} cd_events_redis_out;
/* Encodes op on target t of namespace nsp as a message of the adapter
 * with uid: a PACKET as [uid, {type: 2, data, nsp}, {rooms, except,
 * flags: {}}] (the packet's JSON as msgpack, each placeholder replaced by
 * its attachment as bin), JOIN / LEAVE / DISCONNECT as the requests
 * {uid, type, opts: {rooms, except}, rooms: [room] | close}.  0, -EINVAL
 * (a packet that is not an EVENT or BINARY_EVENT, or not well-formed),
 * -ENOMEM.  Free out->msg. */
int cd_events__redis_encode(const char *uid, const char *nsp, const cd_events_target *t,
                            const cd_events_bus_op *op, cd_events_redis_out *out);

/* What one message from Redis asks of this host. */
enum {
    CD_EVENTS_RIN_IGNORE, /* not for us (ours, another namespace, a request we do not serve) */
    CD_EVENTS_RIN_APPLY,  /* bus messages to apply */
    CD_EVENTS_RIN_ANSWER, /* a request to answer: SOCKETS, ALL_ROOMS, REMOTE_FETCH */
};
typedef struct cd_events_redis_in {
    int what;                /* CD_EVENTS_RIN_* */
    int type;                /* ANSWER: CD_EVENTS_RREQ_*; IGNORE of a request: its type or -1 */
    /* APPLY: bus messages (bus_proto.c's format), each after its length
     * (4 bytes, big endian); ANSWER: one DISCONNECT message carrying the
     * request's target (rooms, except), nothing else read. */
    char *msgs;
    size_t len;
    char request_id[CD_EVENTS_REDIS_ID_MAX + 1]; /* ANSWER */
} cd_events_redis_in;
/* Decodes a message from the broadcast channel (request 0: msgpack
 * [uid, packet, opts]) or the request channel (request 1: JSON or
 * msgpack) of namespace nsp, skipping those from uid.  Any bytes: the
 * channel is not trusted.  0 with *in set (free it), -EINVAL (does not
 * decode, or not the adapter's shape), -EMSGSIZE (over the bus's limits),
 * -ENOMEM. */
int cd_events__redis_decode(int request, const char *uid, const char *nsp, const void *data, size_t len,
                            cd_events_redis_in *in);
void cd_events__redis_in_free(cd_events_redis_in *in);
/* Walks the messages of an APPLY: *off starts at 0; returns 1 with
 * [*msg, *mlen) the next one, 0 at the end. */
int cd_events__redis_in_next(const cd_events_redis_in *in, size_t *off, const void **msg, size_t *mlen);

/* JSON text [p, end) (one value, whitespace around allowed) to msgpack,
 * as JSON.parse then notepack would: integers that fit 64 bits as
 * integers, other numbers as float 64.  For the unit tests and fuzz
 * target; 0 with *out (malloc'd, *len bytes), -EINVAL, -ENOMEM. */
int cd_events__redis_json_to_mp(const char *p, size_t len, char **out, size_t *olen);
/* One msgpack value to JSON text as JSON.stringify would write what
 * notepack decodes (undefined: null in arrays, dropped from maps; a
 * timestamp: its ISO string; bin: a placeholder, counted in *nbin).
 * 0 with *out (malloc'd, NUL-terminated, *olen bytes), -EINVAL, -ENOMEM. */
int cd_events__redis_mp_to_json(const void *data, size_t len, char **out, size_t *olen, size_t *nbin);

/* ---- the adapter (redis_adapter.c, worker) ---- */

/* Starts the adapter when conf->adapter is redis (connects in the
 * background: never blocks).  0, or -1 with why in err. */
int cd_events__redis_start(cd_events_state *st, char *err, size_t errlen);
/* Disconnects and frees it (fine when never started). */
void cd_events__redis_stop(cd_events_state *st);
/* Publishes op to the other hosts (the sending worker calls it once per
 * bus message it sent).  Dropped and counted while disconnected. */
void cd_events__redis_publish(cd_events_state *st, const cd_events_target *t, const cd_events_bus_op *op);
/* NULL when subscribed (or no adapter), else why not. */
const char *cd_events__redis_degraded(const cd_events_state *st);
/* redis_answer.c: the answer (JSON, appended to b) of this worker to a
 * request in->what == CD_EVENTS_RIN_ANSWER of namespace nsp.  0, -EINVAL,
 * -ENOMEM. */
int cd_events__redis_answer(cd_events_state *st, int nsp, const cd_events_redis_in *in, cd_buf *b);
/* The figures of stats.c. */
typedef struct cd_events_redis_stats {
    int up;
    uint64_t in, out, errors, reconnects;
} cd_events_redis_stats;
void cd_events__redis_stats(const cd_events_state *st, cd_events_redis_stats *s);

/* ---- a host name looked up off the loop (lookup.c, worker) ---- */

typedef struct cd_events_lookup cd_events_lookup;
/* 1 when host is an IPv4 or IPv6 address (nothing to look up). */
int cd_events__is_numeric_host(const char *host);
/* Looks host up in a thread of its own; wake (an ev_async started on
 * loop) is sent when the answer is in.  NULL when no thread could start. */
cd_events_lookup *cd_events__lookup_start(struct ev_loop *loop, ev_async *wake, const char *host);
/* 0 with the numeric address in addr, -EINPROGRESS while it runs, or
 * -ENOENT (no such name), -EAGAIN (the resolver failed for now), -EIO. */
int cd_events__lookup_result(cd_events_lookup *l, char *addr, size_t cap);
/* Frees l now when it ended, else its thread does when getaddrinfo
 * returns (and sends nothing).  NULL is fine. */
void cd_events__lookup_free(cd_events_lookup *l);

#endif
