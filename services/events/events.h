/*
 * events.h - internals of the events service (Socket.IO v5 over Engine.IO
 * v4, long-polling and WebSockets, rooms fanned out across workers), shared between its
 * files, its unit tests and its fuzz targets.  The service is
 * clusterd-events.so, built from this folder and http/websocket.c:
 *
 *   events.c       the service vtable: routes requests (by transport, CORS),
 *                  checks and accepts upgrades, steers requests to the
 *                  worker owning their session, init/stop/destroy
 *                  of the per-worker state
 *   conf.c         the [section]'s keys, defaults and checks; the Origin
 *                  allowlist (master and workers)
 *   engineio.c     a client's Engine.IO session, whatever its transport:
 *                  the open packet, heartbeat, packet types, the upgrade
 *                  probe, sids naming the worker, the client's life
 *   polling.c      HTTP long-polling: the held GET, the queue, POSTed
 *                  packets, the sid index, engine.io's JSON errors
 *   eio_payload.c  pure codec: polling payloads (\x1e, "b<base64>")
 *   socketio.c     Socket.IO packets: connect (namespaces, JWT auth),
 *                  disconnect, events and binary events (attachments
 *                  gathered), clients' acks; to handlers or sio_relay.c
 *   sio_relay.c    events without handlers: join/leave/whoami, the relay
 *                  to the sender's rooms, the service's acks
 *   sio_api.c      the handler API (clusterd/socketio.h): handles, the
 *                  handler module, dispatch to handlers (sio_api.h)
 *   sio_emit.c     what handlers send: emit, emitWithAck, acks,
 *                  broadcasts; the packets' builder
 *   rooms.c        the room registry (keyed hash of rooms, memberships)
 *   broadcast.c    packets and commands to sockets on every worker (the
 *                  bus), applied on each to its own sockets
 *   backend.c      POST {route}/publish, /join, /leave, /disconnect
 *   bus_proto.c    pure codecs: the backend bodies, the bus messages
 *   events_proto.c pure codecs: a validating JSON scanner, Socket.IO
 *                  packets
 *   events_hash.c  SipHash-2-4, the room table's hash
 *   stats.c        the figures in /metrics (clients, rooms, messages)
 *   hookclient.c, hook_proto.c, hooks.c  the HTTP hooks (hooks.h)
 *   http/websocket.c  the WebSocket itself: the opening handshake's checks
 *                  and accept key, the connection over wslay; it knows
 *                  nothing of Engine.IO
 *
 * The codecs touch no socket and no loop, so they run (and are tested) in
 * any process; everything else runs in a worker, on its loop.
 *
 * Why a JSON scanner instead of libbson: Socket.IO payloads are JSON arrays
 * ("42[\"name\",arg...]") and libbson only parses documents; and a
 * JSON -> BSON -> JSON round trip would rewrite what clients sent (numbers
 * become 1.0 or {"$numberLong":...}, key order and escapes change).  The
 * service only needs the event name and, for join/leave, one string; the
 * arguments travel as the exact bytes the client sent, after being checked
 * to be well-formed JSON so we never relay garbage to other clients.
 *
 * The double-underscore names are internal to services/events/.
 */
#ifndef CD_EVENTS_H
#define CD_EVENTS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "clusterd/conf.h"
#include "clusterd/socketio.h"
#include "clusterd/websocket.h"

/* The [section] of an events service (master and workers, read-only after
 * conf_check).  Durations in ms, sizes in bytes. */
typedef struct cd_events_conf {
    long long ping_interval_ms; /* Engine.IO pingInterval */
    long long ping_timeout_ms;  /* Engine.IO pingTimeout */
    long long max_message_size; /* one WebSocket message, = maxPayload */
    long long max_send_queue;   /* bytes queued to one client; above: disconnect */
    long long max_clients;      /* WebSocket clients per worker; above: 503 */
    long long max_rooms;        /* rooms one client may join */
    char **origins;             /* Origin allowlist (NULL: any origin) */
    size_t norigins;
    char **namespaces;          /* the namespaces that exist; [0] first listed */
    size_t nnamespaces;
    int transports;             /* CD_EVENTS_T_* bits */
    int auth;                   /* CD_EVENTS_AUTH_* */
    int jwt_alg;                /* auth.c's enum */
    char *jwt_key_file, *jwt_rooms_claim, *publish_token_file;
    char *publish_token;        /* read at conf_check (trailing newline stripped) */
    size_t publish_token_len;
    char *handlers, *handlers_dir; /* `handlers`: the module's name or path; the config's folder */
    char **forward_headers;     /* handshake headers kept on the session (sio_api.c) */
    size_t nforward_headers;
    struct cd_events_hooks_conf *hooks; /* connect_hook, event_hook, disconnect_hook (hooks.h), or NULL */
    long long hook_timeout_ms;    /* one hook call, connect to answer */
    long long hook_max_in_flight; /* hook calls at once, per worker */
    int adapter;                  /* CD_EVENTS_ADAPTER_*: local (the host's bus) or redis too (redis.h) */
    char *redis_uri, *redis_prefix; /* redis:// or unix:// URI; the channels' prefix (socket.io's `key`) */
    long long redis_timeout_ms;   /* connect and command bound */
} cd_events_conf;

#define CD_EVENTS_ADAPTER_LOCAL 0
#define CD_EVENTS_ADAPTER_REDIS 1

#define CD_EVENTS_T_POLLING 1
#define CD_EVENTS_T_WEBSOCKET 2
#define CD_EVENTS_AUTH_NONE 0
#define CD_EVENTS_AUTH_JWT 1
/* At most this many namespaces per service. */
#define CD_EVENTS_NSP_MAX 32
/* The index of namespace [nsp, nsp + len) in conf->namespaces, or -1 (conf.c). */
int cd_events__nsp_index(const cd_events_conf *c, const char *nsp, size_t len);

/* Longest room name, in bytes (after JSON unescaping). */
#define CD_EVENTS_ROOM_MAX 128
/* Deepest JSON nesting accepted in a client's packet. */
#define CD_EVENTS_JSON_DEPTH 32

/* ---- JSON (RFC 8259), scanned in place ---- */

/* Skips whitespace, then one complete JSON value, checking its syntax
 * (strings, escapes, numbers, literals, nesting up to `depth` levels) and
 * that its strings are valid UTF-8.
 * Returns a pointer just past the value, or NULL when [p, end) does not
 * start with a well-formed value. */
const char *cd_events__json_skip(const char *p, const char *end, int depth);
/* Skips JSON whitespace. */
const char *cd_events__json_ws(const char *p, const char *end);
/* The value of the 4 hex digits at p; -1 when they are not 4 hex digits
 * before end. */
long cd_events__hex4(const char *p, const char *end);
/* Code point cp (at most U+10FFFF) as UTF-8 into out (room for 4 bytes);
 * returns the bytes written. */
size_t cd_events__utf8_put(char *out, unsigned long cp);
/* Decodes the JSON string token at p (which must point at its opening
 * quote) into out as UTF-8, NUL-terminated.  Returns the decoded length;
 * -EINVAL when it is not a well-formed string (invalid UTF-8 included) or
 * holds a NUL or a lone surrogate; -E2BIG when it is well-formed but does
 * not fit in cap (including the NUL).  *next (if not NULL) is set past the
 * closing quote on success. */
int cd_events__json_string(const char *p, const char *end, char *out, size_t cap, const char **next);
/* Finds `key` among the members of the JSON object at p (after whitespace).
 * On success sets [*val, *val_end) to the raw value and returns 0; returns
 * -ENOENT when the object is well-formed but has no such key, -EINVAL when
 * it is not a well-formed object.  Duplicate keys: the first wins. */
int cd_events__json_get(const char *p, const char *end, const char *key, const char **val,
                        const char **val_end);

/* ---- Socket.IO v5 packets (inside Engine.IO "4" messages) ---- */

enum {
    CD_SIO_CONNECT = 0,
    CD_SIO_DISCONNECT = 1,
    CD_SIO_EVENT = 2,
    CD_SIO_ACK = 3,
    CD_SIO_CONNECT_ERROR = 4,
    CD_SIO_BINARY_EVENT = 5,
    CD_SIO_BINARY_ACK = 6,
};

/* Most attachments one binary packet may announce. */
#define CD_EVENTS_ATTACH_MAX 16

typedef struct cd_sio_packet {
    int type;             /* CD_SIO_* */
    size_t nattach;       /* BINARY_EVENT, BINARY_ACK: attachments announced */
    const char *nsp;      /* namespace, "/" when absent */
    size_t nsp_len;
    long long ack_id;     /* -1 when none */
    const char *data;     /* the raw JSON payload, or NULL */
    size_t data_len;
    /* EVENT and BINARY_EVENT only: the name's JSON string token, and the arguments after it
     * (the raw text between the name's comma and the closing bracket,
     * empty when there are none). */
    const char *name;
    size_t name_len;
    const char *args;
    size_t args_len;
} cd_sio_packet;

/* Parses a Socket.IO packet (the text after the Engine.IO "4").  Checks
 * the shape the spec gives each type: CONNECT takes an optional object,
 * DISCONNECT nothing, EVENT an array starting with a string, ACK an array
 * (with an ack id).  BINARY_EVENT and BINARY_ACK ("51-[...]",
 * "52-/chat,3[...]") are shaped as EVENT and ACK after their attachment
 * count and "-"; their placeholders ({"_placeholder":true,"num":n}, any
 * object whose "_placeholder" is true) must number 0..nattach-1, each
 * once, and are otherwise left as they are.  Returns 0; -EMSGSIZE when
 * more than CD_EVENTS_ATTACH_MAX attachments are announced; -EPROTO for
 * anything malformed or a type a client never sends (CONNECT_ERROR). */
int cd_events__sio_parse(const char *msg, size_t len, cd_sio_packet *p);

/* Whether name is one Socket.IO reserves (connect, disconnect, ...): a
 * client receiving it as an event would take it for a lifecycle event of
 * its own socket. */
int cd_events__reserved_event(const char *name);

/* ---- the room table's hash (events_hash.c) ---- */

/* SipHash-2-4 of [data, data + len) under a 128-bit key (the reference
 * algorithm, so its published test vectors apply). */
uint64_t cd_events__siphash(const unsigned char key[16], const void *data, size_t len);

/* ---- Engine.IO polling payloads (eio_payload.c) ---- */

/* One packet of a payload: text (data[0] is its type digit) or binary
 * (decoded bytes). */
typedef struct cd_eio_packet {
    int binary;
    const char *data;
    size_t len;
} cd_eio_packet;
typedef struct cd_eio_payload {
    cd_eio_packet *pkts;
    size_t n;
    char *scratch; /* the decoded binary packets */
} cd_eio_payload;
/* Decodes a polling body: packets split on \x1e, "b<base64>" binary, text
 * starting with a type digit 0-6.  Text packets point into body.  Returns
 * 0 (free with _payload_free), -EMSGSIZE over max bytes, -EINVAL (empty
 * body or packet, bad type, bad base64), -ENOMEM. */
int cd_events__payload_decode(const char *body, size_t len, size_t max, cd_eio_payload *out);
void cd_events__payload_free(cd_eio_payload *p);
/* An encoded payload being built (a polling client's queue). */
typedef struct cd_eio_buf {
    char *p;
    size_t len, cap;
} cd_eio_buf;
/* Appends one packet (\x1e first unless b is empty).  0 or -ENOMEM. */
int cd_events__payload_put(cd_eio_buf *b, int binary, const char *data, size_t len);
/* What _payload_put adds for a packet of len bytes, separator included. */
size_t cd_events__payload_size(int binary, size_t len);
void cd_events__payload_reset(cd_eio_buf *b); /* frees, empties */
/* Standard base64 (RFC 4648 4): decode takes optional padding, refuses
 * other characters and non-canonical endings (-EINVAL), writes at most
 * len * 3 / 4 bytes and returns how many; encode writes (len + 2) / 3 * 4. */
long cd_events__b64_decode(const char *in, size_t len, unsigned char *out);
size_t cd_events__b64_encode(const unsigned char *in, size_t len, char *out);

typedef struct cd_request cd_request; /* clusterd/request.h */

/* ---- the running service (worker, loop thread) ----
 *
 * Three levels, as in engine.io and socket.io:
 *   cd_events_client  one Engine.IO session (engineio.c): its transport
 *                     (polling.c, or a WebSocket from http/websocket.c,
 *                     after an upgrade or from the start), heartbeat, sid;
 *   cd_events_socket  one Socket.IO socket: the client's connection to one
 *                     namespace (socketio.c), with its own sid, user and
 *                     rooms; a client has at most one per namespace;
 *   cd_events_room    a room of one namespace (rooms.c), linking sockets by
 *                     cd_events_member.
 * A client is freed only by engineio.c (its transport's close, or
 * stop/destroy), never from inside a handler: code that wants it gone calls
 * cd_events__fail, which disconnects its sockets at once.  A socket is freed
 * by socketio.c (DISCONNECT, a server-side disconnect, or its client
 * closing).  A broadcast walks one room's member list at a time, saving the
 * next member before acting on the current one: acting may free the current
 * member's socket (and its client's other sockets, which are never in the
 * same room, rooms being per namespace), and nothing else. */

/* Engine.IO and Socket.IO sids, base64url; an Engine.IO sid names its
 * worker in its first 6 characters, then 120 random bits (engineio.c). */
#define CD_EVENTS_SID_LEN 26

typedef struct cd_events_state cd_events_state;
typedef struct cd_events_client cd_events_client;
typedef struct cd_events_socket cd_events_socket;
typedef struct cd_events_room cd_events_room;

/* One socket's membership of one room: on the room's list, and in the
 * socket's array, so both "who is in r" and "leave all" are cheap. */
typedef struct cd_events_member {
    cd_events_socket *socket;
    cd_events_room *room;
    struct cd_events_member *prev, *next;
} cd_events_member;

struct cd_events_room {
    cd_events_room *hnext; /* hash chain */
    cd_events_member *members;
    int nsp;               /* namespace index (conf->namespaces) */
    size_t len;
    char name[];           /* NUL-terminated, len bytes */
};

/* One Socket.IO packet as it goes out: the Engine.IO text message ("4"
 * then the Socket.IO packet, e.g. "42/chat,[...]" or "451-[...]") and, for
 * the binary types, its attachments in order, each one Engine.IO binary
 * message.  Built once and sent to many: with `frames` (1 + nattach
 * slots, zeroed by the sender, who unrefs what they hold once done) the
 * WebSocket frames are made by the first WebSocket recipient and shared
 * by the others (a reference each, no copy); NULL for one recipient. */
typedef struct cd_events_packet {
    const char *text;
    size_t text_len;
    size_t nattach;
    const char *const *attach;
    const size_t *attach_len;
    cd_ws_frame **frames;
} cd_events_packet;

enum cd_events_phase {
    CD_EV_OPEN,    /* the Engine.IO session is open */
    CD_EV_CLOSING, /* the session is closing: nothing more in or out */
};

enum cd_events_transport {
    CD_EIO_POLLING,   /* HTTP long-polling (polling.c) */
    CD_EIO_WEBSOCKET, /* a WebSocket (ws), from the start or upgraded */
};

struct cd_events_poll; /* polling.c's per-session state */
struct cd_events_partial; /* socketio.c: a binary packet awaiting attachments */

struct cd_events_client {
    cd_events_state *st;
    enum cd_events_transport transport;
    cd_ws_conn *ws;              /* the WebSocket, or NULL */
    struct cd_events_poll *poll; /* polling state, or NULL (websocket only) */
    ev_timer hb;                 /* heartbeat: the next ping, or the pong's deadline */
    cd_events_client *prev, *next;
    enum cd_events_phase phase;
    int awaiting_pong;                 /* "2" sent, "3" not back yet */
    ev_tstamp opened;                  /* when the session began */
    cd_events_socket *sockets;         /* connected namespaces (socketio.c) */
    size_t nsockets;
    struct cd_events_partial *partial; /* socketio.c's, or NULL */
    const char *close_reason;          /* why the session ended, as socket.io words it (NULL: "transport close") */
    int forget;                        /* polling: the sid goes at once (the client's close, a ping timeout) */
    char *headers;                     /* forward_headers kept: "name\0value\0"..., or NULL */
    size_t headers_len;
    struct cd_sio_socket *connecting;  /* CONNECTs a handler has not resolved yet (sio_api.c) */
    char sid[CD_EVENTS_SID_LEN + 1];   /* the Engine.IO sid (names the owning worker) */
};

struct cd_events_socket {
    cd_events_client *client;
    cd_events_socket *next; /* the client's sockets */
    int nsp;                /* namespace index */
    uint64_t mark;          /* last broadcast delivered: one copy per broadcast */
    cd_events_member **rooms; /* [0, nown): its own rooms ("", sid, user:<sub>); then the joined ones */
    size_t nrooms, nown;      /* capacity: max_rooms + CD_EVENTS_OWN_ROOMS */
    void *identity;         /* auth.c's cd_events_identity, or NULL */
    struct cd_sio_socket *api; /* its handle when its namespace has handlers (sio_api.c), or NULL */
    char sid[CD_EVENTS_SID_LEN + 1]; /* the Socket.IO sid (a room of its own) */
};

struct cd_events_state {
    struct cd_service *svc;
    const cd_events_conf *conf;
    struct cd_events_upgrade *pending; /* upgrades accepted, fd not here yet */
    cd_events_client *clients;
    size_t nclients;
    cd_events_room **buckets;
    size_t nbuckets, nrooms;
    uint64_t mark;
    int stopping;
    uint32_t worker_id;        /* cd_service_worker_id, encoded in Engine.IO sids */
    void *auth;                /* auth.c's cd_events_auth, or NULL */
    void *poll_index;          /* polling.c's sid -> client index */
    size_t nsp_sockets[CD_EVENTS_NSP_MAX]; /* connected sockets per namespace */
    size_t nclients_by[2];     /* by enum cd_events_transport */
    uint64_t msgs_in, msgs_out, slow_dropped; /* counters for /metrics (stats.c) */
    struct cd_events_stats *stats; /* stats.c's timer, or NULL */
    struct cd_events_hooks *hooks; /* hooks.c's, or NULL */
    unsigned char hash_key[16]; /* the room table's SipHash key, random per worker */
    struct cd_sio_server *sio; /* the handler API's server (sio_api.c) */
    struct cd_events_redis *redis; /* the Redis adapter (redis_adapter.c), or NULL */
};

/* stats.c: the service's figures in /metrics (cd_service_metric), set
 * from the state once a second.  start: 0 or -ENOMEM (sets them at once);
 * stop: stops and frees the timer (fine when never started). */
int cd_events__stats_start(cd_events_state *st);
void cd_events__stats_stop(cd_events_state *st);
/* Sets them now (the timer's tick; tests). */
void cd_events__stats_update(cd_events_state *st);

/* conf.c: the section's keys and checks (master and worker). */
void *cd_events__conf_new(void);
extern const cd_conf_key cd_events__keys[];
int cd_events__conf_check(void *conf, char *err, size_t errlen);
void cd_events__conf_free(void *conf);
/* Whether a browser's Origin (NULL: none sent) may connect. */
int cd_events__origin_allowed(const cd_events_conf *conf, const char *origin);

/* auth.c: JWT authentication of a Socket.IO CONNECT (libjwt), and the
 * rooms its token allows (worker; conf_check loads the key too). */
enum { CD_EVENTS_JWT_HS256 = 0, CD_EVENTS_JWT_RS256 = 1, CD_EVENTS_JWT_ES256 = 2 }; /* jwt_alg */
/* Longest token accepted, in bytes. */
#define CD_EVENTS_JWT_MAX 8192
typedef struct cd_events_auth cd_events_auth; /* the loaded key (worker) */
/* Loads conf's jwt_key_file for conf's jwt_alg: HS256 the file's bytes (a
 * trailing newline stripped), RS256 an RSA and ES256 a P-256 public key
 * (PEM).  0, or -1 with why in err. */
int cd_events__auth_new(const cd_events_conf *conf, cd_events_auth **out, char *err, size_t errlen);
void cd_events__auth_free(cd_events_auth *a);
typedef struct cd_events_identity {
    char *user;                  /* sub, or NULL */
    char **rooms; size_t nrooms; /* the rooms claim's patterns */
} cd_events_identity;
/* Checks the CONNECT payload [p, p+len) (a JSON object or NULL/0): its
 * "token" member, signed with the configured alg and key only, exp and nbf
 * against the clock.  0 with *id filled (free with _identity_free), or
 * -EACCES with *why one of "missing token", "invalid token", "token
 * expired", "token not yet valid" (or -ENOMEM, *why "invalid token"). */
int cd_events__auth_check(const cd_events_auth *a, const char *p, size_t len, cd_events_identity *id,
                          const char **why);
void cd_events__identity_free(cd_events_identity *id);
/* Whether a client with identity id may join room (fnmatch patterns). */
int cd_events__room_allowed(const cd_events_identity *id, const char *room);
/* Reads a whole small file into *out (malloc'd, NUL-terminated; *len
 * without the NUL).  0, -errno, or -EFBIG when it is over max bytes. */
int cd_events__read_file(const char *path, size_t max, char **out, size_t *len);

/* engineio.c: a client's Engine.IO session, whatever its transport. */
/* Starts a session on fd, an upgraded connection handed over by the HTTP
 * layer (closed on failure): the 101 with Sec-WebSocket-Accept `accept`,
 * the Engine.IO open packet, then the client, starting with pre[0,
 * pre_len) (bytes it sent after its request; copied).  The upgrade path
 * and the fuzz target (tests/fuzz/fuzz_events_ws.c) call it, which is why
 * it takes the service.  Returns 0 or -ENOMEM. */
int cd_events__adopt_fd(struct cd_service *svc, int fd, const char *accept, const char *pre, size_t pre_len);
/* The same, the session keeping headers (cd_events__headers_copy's block,
 * taken in all cases; NULL: none). */
int cd_events__adopt_fd_headers(struct cd_service *svc, int fd, const char *accept, const char *pre, size_t pre_len,
                                char *headers, size_t headers_len);
/* Queues one Engine.IO text message (msg[0] is the packet type); over
 * max_send_queue the client is closed instead (logged, counted in
 * slow_dropped).  Never frees. */
void cd_events__send(cd_events_client *c, const char *msg, size_t len);
/* Queues one Engine.IO binary message (an attachment).  Never frees. */
void cd_events__send_binary(cd_events_client *c, const void *data, size_t len);
/* Queues a whole packet: its text, then its attachments.  Never frees. */
void cd_events__send_packet(cd_events_client *c, const cd_events_packet *p);
/* Closes the client's session with code and reason (WebSocket close code;
 * polling: the session ends); its sockets disconnect and it receives
 * nothing more.  Never frees. */
void cd_events__fail(cd_events_client *c, uint16_t code, const char *reason);
/* Frees a client and its transport now (stop; a polling client's held
 * GET is answered with the close packet "1"). */
void cd_events__client_free(cd_events_client *c);
/* The same at destroy: a held GET is dropped (cd_request_drop), not answered. */
void cd_events__client_drop(cd_events_client *c);
/* A new client on transport t (sid set, not yet counted or listed), or
 * NULL; _client_start then lists it, starts its heartbeat and queues the
 * open packet. */
cd_events_client *cd_events__client_new(cd_events_state *st, enum cd_events_transport t);
void cd_events__client_start(cd_events_client *c);
/* One Engine.IO packet from the client, whatever the transport. */
void cd_events__on_packet(cd_events_client *c, int binary, const char *msg, size_t len);
/* A WebSocket handshake for a session that upgraded already: answered
 * 101 then closed at once, as engine.io does (the session is untouched).
 * fd is closed on failure.  0 or -ENOMEM. */
int cd_events__stray_fd(cd_events_state *st, int fd, const char *accept);
/* The session with Engine.IO sid `sid` on this worker, any transport, or
 * NULL: a walk of the clients, for requests that are rare by nature. */
cd_events_client *cd_events__client_find(cd_events_state *st, const char *sid);
/* Attaches an upgraded connection (as adopt_fd) to polling client c as its
 * upgrade probe.  0, -EBUSY (c is not an open polling session without a
 * probe: fd closed), -ENOMEM (fd closed). */
int cd_events__probe_fd(cd_events_client *c, int fd, const char *accept, const char *pre, size_t pre_len);
/* A new random id (Socket.IO sids), base64url. */
void cd_events__random_id(char out[CD_EVENTS_SID_LEN + 1]);
/* A new Engine.IO sid: worker's id in its first characters, then random,
 * base64url.  _sid_worker reads the id back: 0 when [sid, sid + len) is
 * not such a sid. */
void cd_events__session_id(uint32_t worker, char out[CD_EVENTS_SID_LEN + 1]);
uint32_t cd_events__sid_worker(const char *sid, size_t len);

/* polling.c: the long-polling transport of a client. */
/* Answers with engine.io's JSON error {"code":code,"message":...}: 0
 * Transport unknown, 1 Session ID unknown, 2 Bad handshake method, 3 Bad
 * request, 4 Forbidden, 5 Unsupported protocol version. */
void cd_events__eio_error(cd_request *req, int status, int code);
/* Serves GET/POST {route}/?EIO=4&transport=polling[&sid=X] (events.c has
 * checked EIO, the transport and the Origin). */
void cd_events__poll_request(cd_events_state *st, cd_request *req);
/* The open session sid on this worker (any transport while polling), or NULL. */
cd_events_client *cd_events__poll_find(cd_events_state *st, const char *sid);
/* Appends a message to the client's queue.  0, or -ENOBUFS over
 * max_send_queue (nothing queued; *queued tells how much was). */
int cd_events__poll_put(cd_events_client *c, int binary, const char *msg, size_t len, size_t *queued);
/* Answers the held GET, if any, with what is queued, if anything. */
void cd_events__poll_flush(cd_events_client *c);
void cd_events__poll_drop_queue(cd_events_client *c);
/* The session is closing: a held GET gets what is queued and "1"; returns
 * 1 when it did (the client may go now), 0 when the close packet waits for
 * the next GET. */
int cd_events__poll_closing(cd_events_client *c);
/* The client closed: a held GET gets what is queued and "6" (noop);
 * returns 1 when there was one, 0 when the noop waits for the next GET. */
int cd_events__poll_noop(cd_events_client *c);
/* "2probe" came on the probe: a held GET gets "6" now, and GETs until the
 * upgrade are answered at once, so the client can pause polling. */
void cd_events__poll_probed(cd_events_client *c);
int cd_events__poll_was_probed(const cd_events_client *c);
/* "5": hands over the queue (*q, the caller frees it), answers a held GET
 * with "6", and frees the polling state. */
void cd_events__poll_upgrade(cd_events_client *c, cd_eio_buf *q);
/* Frees the polling state: a held GET answered with "1" (answer) or
 * dropped; the sid leaves the index. */
void cd_events__poll_free(cd_events_client *c, int answer);
void cd_events__poll_index_free(cd_events_state *st);

/* socketio.c: Socket.IO over a client's session. */
/* One Socket.IO packet from a client (the text after the Engine.IO "4"). */
void cd_events__on_socketio(cd_events_client *c, const char *msg, size_t len);
/* One binary message from a client (an attachment of the packet before). */
void cd_events__on_binary(cd_events_client *c, const void *data, size_t len);
/* The client's session is ending: all its sockets disconnect (no packet
 * sent: the transport is going) and are freed, the partial packet too. */
void cd_events__sockets_close(cd_events_client *c);
/* A server-side disconnect of one socket: DISCONNECT ("41<nsp,>") sent,
 * rooms left, the socket freed; with close_transport the client's session
 * closes too. */
void cd_events__socket_disconnect(cd_events_socket *s, int close_transport);
/* A socket of namespace nsp for client c, connected: its own rooms joined,
 * CONNECT answered with sid (NULL: a new one).  id (may be NULL) is the
 * socket's from then on; h its handler API handle (NULL: one is made when
 * the namespace has handlers).  NULL when out of memory (the client is
 * failed, id freed). */
cd_events_socket *cd_events__socket_open(cd_events_client *c, int nsp, cd_events_identity *id, const char *sid,
                                         struct cd_sio_socket *h);
/* Queues "4<type><nsp,><rest>" to client c (no prefix for "/"). */
void cd_events__send_nsp(cd_events_client *c, const char *nsp, size_t nsp_len, char type, const char *rest,
                         size_t len);
/* CONNECT_ERROR {"message":message} for namespace nsp (message escaped). */
void cd_events__connect_error(cd_events_client *c, int nsp, const char *message);
/* The name of namespace nsp ("/" when none are configured). */
const char *cd_events__nsp_name(const cd_events_conf *conf, int nsp);
/* Whether room [name, len) is one a socket may not join or leave by name:
 * "", "user:...", or shaped like a socket sid. */
int cd_events__room_reserved(const char *name, size_t len);

/* sio_relay.c: an EVENT or BINARY_EVENT (att: its attachments, or NULL)
 * of a namespace without handlers: join, leave, whoami, or relayed to the
 * sender's rooms, with the service's acks. */
void cd_events__relay(cd_events_socket *s, const cd_sio_packet *p, const cd_events_packet *att);

/* sio_api.c: the handler API (clusterd/socketio.h) behind the
 * trampolines of services/sio.c; the handler module; the dispatch of
 * socketio.c's packets to handlers.  A handle (struct cd_sio_socket)
 * outlives its socket: when the socket goes, its handle is queued and its
 * on_disconnect runs from the loop (a timer), never under the code that
 * freed the socket. */
/* Makes st->sio and, with `handlers`, loads the module and runs its
 * setup.  0, or -1 with why in err. */
int cd_events__sio_init(cd_events_state *st, char *err, size_t errlen);
/* After the clients are gone: pending on_disconnects and acks, the
 * module's teardown, then every handle freed. */
void cd_events__sio_destroy(cd_events_state *st);
/* A CONNECT to nsp (after auth; id may be NULL): 1 when a handler took it
 * (id with it), 0 when the namespace has no on_connect (the caller
 * connects the socket). */
int cd_events__sio_connect(cd_events_client *c, int nsp, cd_events_identity *id, const char *auth, size_t auth_len);
/* Whether a CONNECT of c to nsp awaits its handler. */
int cd_events__sio_connecting(const cd_events_client *c, int nsp);
/* Gives socket s a handle when its namespace has handlers.  0 or -ENOMEM. */
int cd_events__sio_attach(cd_events_socket *s, struct cd_sio_socket *h);
/* An EVENT or BINARY_EVENT (att: its attachments, or NULL) for s: 1 when
 * its namespace's on_event took it, 0 to handle it as without handlers. */
int cd_events__sio_event(cd_events_socket *s, const cd_sio_packet *p, const cd_events_packet *att);
/* A client's ACK or BINARY_ACK: the emitWithAck it answers, if any. */
void cd_events__sio_ack_in(cd_events_socket *s, const cd_sio_packet *p, const cd_events_packet *att);
/* Socket s is being freed (reason as socket.io words it). */
void cd_events__sio_gone(cd_events_socket *s, const char *reason);
/* Client c is closing: its pending CONNECTs lose it. */
void cd_events__sio_client_gone(cd_events_client *c);
/* The forward_headers of req, as a "name\0value\0"... block (malloc'd,
 * *len bytes), or NULL when there are none (or no memory). */
char *cd_events__headers_copy(const cd_events_conf *conf, const cd_request *req, size_t *len);

/* sio_emit.c: the packets a handler sends.  Builds "4<type>[<n>-][<nsp>,]
 * [<id>][<event>,<args...>]" (type '2' EVENT or '3' ACK; with attachments
 * '5' or '6' and n = args->nbin; event NULL for an ack; id < 0: none) in
 * *out (malloc'd, *len bytes) and checks it as a client's packet would be
 * checked.  0, -EINVAL (not a JSON array, a reserved or empty event name,
 * placeholders that do not match the attachments), -EMSGSIZE (over
 * CD_EVENTS_ATTACH_MAX attachments), -ENOMEM. */
int cd_events__sio_build(int ack, const char *nsp, long long id, const char *event, const cd_sio_args *args,
                         char **out, size_t *len);

/* rooms.c: the room table, keyed by SipHash of (namespace, name) under
 * hash_key.  The rooms array of a socket holds first its own rooms (joined
 * at CONNECT, left only with all the others): "" (the whole namespace), its
 * sid and, authenticated, "user:<sub>"; then the rooms it joined, at most
 * max_rooms of them. */
#define CD_EVENTS_OWN_ROOMS 3
int cd_events__rooms_init(cd_events_state *st); /* 0 or -ENOMEM */
void cd_events__rooms_free(cd_events_state *st); /* the table; rooms go with their last members */
cd_events_room *cd_events__room_find(cd_events_state *st, int nsp, const char *name, size_t len);
/* Returns 1 (joined), 0 (already a member), -ENOSPC (max_rooms), -ENOMEM. */
int cd_events__room_join(cd_events_socket *s, const char *name, size_t len);
/* Joins one of the socket's own rooms (before any other join): 1, 0,
 * -ENOSPC (CD_EVENTS_OWN_ROOMS already), -ENOMEM. */
int cd_events__room_join_own(cd_events_socket *s, const char *name, size_t len);
/* Returns 1 (left) or 0 (was not a member, or it is one of its own rooms). */
int cd_events__room_leave(cd_events_socket *s, const char *name, size_t len);
void cd_events__room_leave_all(cd_events_socket *s);

/* Packets and commands to sockets on every worker: the target, its codec
 * on the bus and the backend's bodies (bus_proto.c), sending and applying
 * (broadcast.c), the backend endpoints (backend.c).
 *
 * Whom: the sockets of namespace nsp in any of rooms (none: all of the
 * namespace's sockets), minus those in any of except; a socket sid and
 * "user:<sub>" are rooms like the others. */
typedef struct cd_events_target {
    int nsp;
    size_t nrooms;
    const char *const *rooms;
    const size_t *room_lens;
    size_t nexcept;
    const char *const *except;
    const size_t *except_lens;
} cd_events_target;

/* ---- bus messages (bus_proto.c, pure) ----
 * One message is one operation on the target's sockets (bus_proto.c
 * gives the format, and how socket.io's adapters map onto it). */
enum {
    CD_EVENTS_BUS_PACKET = 'P',     /* send a packet */
    CD_EVENTS_BUS_JOIN = 'J',       /* join a room (socketsJoin) */
    CD_EVENTS_BUS_LEAVE = 'L',      /* leave a room (socketsLeave) */
    CD_EVENTS_BUS_DISCONNECT = 'D', /* disconnect (disconnectSockets) */
};
/* Limits the decoder enforces (the encoder refuses more): names of rooms,
 * except rooms and namespaces are at most CD_EVENTS_ROOM_MAX bytes. */
#define CD_EVENTS_BUS_LIST_MAX 2048  /* rooms, or except rooms, per message */
#define CD_EVENTS_BUS_ATTACH_MAX 256 /* attachments per packet */
#define CD_EVENTS_BUS_MSG_MAX (1 << 20) /* ipc/bus.c's largest message */
typedef struct cd_events_bus_op {
    int op;                           /* CD_EVENTS_BUS_* */
    const cd_events_packet *packet;   /* PACKET */
    const char *room;                 /* JOIN, LEAVE: 1..CD_EVENTS_ROOM_MAX bytes */
    size_t room_len;
    int close;                        /* DISCONNECT: close the transport too */
} cd_events_bus_op;
/* Encodes op on the target's sockets of namespace nsp (its name) into buf
 * (cap bytes; buf NULL: only returns the length it needs).  Returns the
 * length, -EMSGSIZE (a limit above, or over cap), -EINVAL (unknown op). */
long cd_events__bus_encode(void *buf, size_t cap, const char *nsp, size_t nsp_len, const cd_events_target *t,
                           const cd_events_bus_op *op);
/* A decoded message, pointing into it.  Walk rooms and except (nrooms and
 * nexcept names) with _bus_name, attach (nattach) with _bus_attach. */
typedef struct cd_events_bus_msg {
    int op;
    const char *nsp;
    size_t nsp_len;
    size_t nrooms, nexcept, nattach;
    const unsigned char *rooms, *except, *attach;
    const char *text; /* PACKET: the Engine.IO text message */
    size_t text_len;
    const char *room; /* JOIN, LEAVE */
    size_t room_len;
    int close;        /* DISCONNECT */
} cd_events_bus_msg;
/* Decodes a message (any bytes: the bus is not trusted).  0 or -EINVAL. */
int cd_events__bus_decode(const void *msg, size_t len, cd_events_bus_msg *m);
/* Reads the name at *cur (a rooms or except record) and advances *cur. */
void cd_events__bus_name(const unsigned char **cur, const char **name, size_t *len);
/* Reads the attachment at *cur and advances *cur. */
void cd_events__bus_attach(const unsigned char **cur, const char **data, size_t *len);

/* ---- backend bodies (bus_proto.c, pure) ---- */
enum { CD_EVENTS_CMD_PUBLISH, CD_EVENTS_CMD_JOIN, CD_EVENTS_CMD_LEAVE, CD_EVENTS_CMD_DISCONNECT };
/* Most names in one body's target (room, rooms, sid and user together),
 * and in its except list. */
#define CD_EVENTS_TARGET_MAX 64
typedef struct cd_events_cmd {
    int cmd;                          /* CD_EVENTS_CMD_* */
    char nsp[CD_EVENTS_ROOM_MAX + 1]; /* decoded; "/" when absent */
    size_t nsp_len;
    size_t nrooms, nexcept, nnames;   /* the target, as cd_events_target wants it */
    const char *rooms[CD_EVENTS_TARGET_MAX], *except[CD_EVENTS_TARGET_MAX];
    size_t room_lens[CD_EVENTS_TARGET_MAX], except_lens[CD_EVENTS_TARGET_MAX];
    char room[CD_EVENTS_ROOM_MAX + 1]; /* JOIN, LEAVE */
    size_t room_len;
    int close;                        /* DISCONNECT */
    char *packet;                     /* PUBLISH: "42<nsp,>[event,args...]"; _cmd_free */
    size_t packet_len;
    char names[2 * CD_EVENTS_TARGET_MAX][CD_EVENTS_ROOM_MAX + 1]; /* storage (last member) */
} cd_events_cmd;
/* Parses the body of endpoint cmd: valid UTF-8 throughout, one JSON
 * object and nothing after it but whitespace; the target: "namespace"
 * (default "/"), "room", "rooms" (array), "sid", "user" (room
 * "user:<sub>"), "except" (array or one name), names of 1 to
 * CD_EVENTS_ROOM_MAX bytes; then PUBLISH "event" (non-empty, not a name
 * Socket.IO reserves) and optional "args" (an array), whose packet must
 * fit max_len; JOIN "join", LEAVE "leave" (a room name); DISCONNECT
 * optional "close" (a boolean).  Other members are ignored.  Returns 0;
 * -EINVAL (bad body), -ENOENT (a namespace longer than any can be),
 * -EMSGSIZE (packet over max_len) or -ENOMEM, with a reason for the client
 * in *why (no internals).  Call _cmd_free after it, whatever it returned. */
int cd_events__cmd_parse(int cmd, const char *body, size_t len, size_t max_len, cd_events_cmd *out,
                         const char **why);
void cd_events__cmd_free(cd_events_cmd *c);

/* broadcast.c */
/* Puts op on the bus for the target's sockets on every worker (this one
 * included), where cd_events__on_bus applies it.  Returns 0 or -errno
 * (-EAGAIN: the bus is backed up; -EMSGSIZE; -ENOMEM). */
int cd_events__bus_send(cd_events_state *st, const cd_events_target *t, const cd_events_bus_op *op);
/* Sends p to the target's sockets on every worker: _bus_send of a PACKET. */
int cd_events__broadcast(cd_events_state *st, const cd_events_target *t, const cd_events_packet *p);
/* The bus callback: delivers a broadcast or command to this worker's sockets. */
void cd_events__on_bus(struct cd_service *svc, const void *msg, size_t len);
/* Applies one decoded message to this worker's sockets (the bus's and the
 * Redis adapter's messages both end here). */
void cd_events__bus_apply(cd_events_state *st, const cd_events_bus_msg *m);

/* backend.c: answers POST {route}/publish, /join, /leave, /disconnect
 * (what: "publish", ...): the bearer token when publish_token is set, the
 * body (cd_events__cmd_parse), then one bus message. */
void cd_events__backend(cd_events_state *st, cd_request *req, const char *what);

#endif
