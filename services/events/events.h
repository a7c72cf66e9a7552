/*
 * events.h - internals of the events service shared between its files, its
 * unit tests and its fuzz targets: the parsed config; the pure codecs of
 * events_proto.c (a validating JSON scanner, the WebSocket accept key,
 * Socket.IO v5 packet parsing, publish bodies, and the format of room
 * broadcasts on the cross-worker bus); the room table's keyed hash
 * (events_hash.c); and one entry point into events.c, adopting an upgraded
 * connection.  Apart from that entry point nothing here touches a socket
 * or the loop, so it runs (and is tested) in any process; in production it
 * all runs in a worker, on its loop.
 *
 * Why a JSON scanner instead of libbson: Socket.IO payloads are JSON arrays
 * ("42[\"name\",arg...]") and libbson only parses documents; and a
 * JSON -> BSON -> JSON round trip would rewrite what clients sent (numbers
 * become 1.0 or {"$numberLong":...}, key order and escapes change).  The
 * service only needs the event name and, for join/leave, one string; the
 * arguments travel as the exact bytes the client sent, after being checked
 * to be well-formed JSON so we never relay garbage to other clients.
 *
 * The double-underscore names are internal to services/events*.c.
 */
#ifndef CD_EVENTS_H
#define CD_EVENTS_H

#include <stddef.h>
#include <stdint.h>

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
} cd_events_conf;

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

/* ---- WebSocket handshake ---- */

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA1(key + GUID)),
 * written NUL-terminated into out (29 bytes).  The key must be the base64
 * form of 16 bytes (24 characters), as RFC 6455 4.1 demands.  Returns 0 or
 * -EINVAL. */
int cd_events__ws_accept(const char *key, char out[29]);
/* Whether the comma-separated header value (Connection, Upgrade) contains
 * token, case-insensitively. */
int cd_events__header_has_token(const char *value, const char *token);

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

typedef struct cd_sio_packet {
    int type;             /* CD_SIO_* */
    const char *nsp;      /* namespace, "/" when absent */
    size_t nsp_len;
    long long ack_id;     /* -1 when none */
    const char *data;     /* the raw JSON payload, or NULL */
    size_t data_len;
    /* EVENT only: the name's JSON string token, and the arguments after it
     * (the raw text between the name's comma and the closing bracket,
     * empty when there are none). */
    const char *name;
    size_t name_len;
    const char *args;
    size_t args_len;
} cd_sio_packet;

/* Parses a Socket.IO packet (the text after the Engine.IO "4").  Checks
 * the shape the spec gives each type: CONNECT takes an optional object,
 * DISCONNECT nothing, EVENT an array starting with a string, ACK an array.
 * Returns 0; -ENOTSUP for binary packets (5, 6: their attachments travel as
 * binary frames, which this server does not take); -EPROTO for anything
 * malformed or a type a client never sends (CONNECT_ERROR). */
int cd_events__sio_parse(const char *msg, size_t len, cd_sio_packet *p);

/* Whether name is one Socket.IO reserves (connect, disconnect, ...): a
 * client receiving it as an event would take it for a lifecycle event of
 * its own socket. */
int cd_events__reserved_event(const char *name);

/* ---- POST {route}/publish ---- */

typedef struct cd_events_publish {
    char room[CD_EVENTS_ROOM_MAX + 1]; /* decoded, NUL-terminated */
    size_t room_len;
    char *packet; /* malloc'd Engine.IO text "42[" event ["," args] "]"; free() it */
    size_t packet_len;
} cd_events_publish;

/* Parses and checks a publish body: valid UTF-8 throughout, one JSON
 * object and nothing after it but whitespace, with "room" (a non-empty
 * string of at most CD_EVENTS_ROOM_MAX bytes), "event" (a non-empty string
 * Socket.IO does not reserve) and optionally "args" (an array); other
 * members are ignored.  Builds the packet every member of the room gets.
 * Returns 0; -EINVAL (bad body), -EMSGSIZE (packet over max_len) or
 * -ENOMEM, with a reason for the client in *why (no internals). */
int cd_events__publish_parse(const char *body, size_t len, size_t max_len, cd_events_publish *out,
                             const char **why);

/* ---- sessions (events.c) ---- */

struct cd_service;
/* Starts a WebSocket session on fd, an upgraded connection the caller
 * hands over (closed on failure): writes the 101 with Sec-WebSocket-Accept
 * `accept`, then serves the client, starting with its bytes already read
 * (pre: malloc'd or NULL, owned by the callee).  Worker, loop thread; the
 * HTTP upgrade path and the fuzz target use it.  Returns 0 or -ENOMEM. */
int cd_events__adopt_fd(struct cd_service *svc, int fd, const char *accept, char *pre, size_t pre_len);

/* ---- the room table's hash (events_hash.c) ---- */

/* SipHash-2-4 of [data, data + len) under a 128-bit key (the reference
 * algorithm, so its published test vectors apply). */
uint64_t cd_events__siphash(const unsigned char key[16], const void *data, size_t len);

/* ---- room broadcasts on the bus ----
 *
 * One bus message carries one Socket.IO packet for the members of a set of
 * rooms, except the sender:
 *   'R' | sid length (1 byte) | sid | room count (2 bytes, big endian) |
 *   per room: length (2 bytes, big endian) | name | then the packet text.
 * Every worker (the sender's included) delivers it to its local members,
 * once per client even when it is in several of the rooms. */
typedef struct cd_events_bcast {
    const char *except; /* sid not to deliver to; may be empty */
    size_t except_len;
    size_t nrooms;
    const unsigned char *rooms; /* first room record, walk with _bcast_room */
    const char *packet;
    size_t packet_len;
} cd_events_bcast;

/* Encodes into buf (cap bytes).  Returns the length, or -EMSGSIZE. */
long cd_events__bcast_encode(char *buf, size_t cap, const char *except, size_t except_len,
                             const char *const *rooms, const size_t *room_lens, size_t nrooms,
                             const char *packet, size_t packet_len);
/* Decodes a bus message (pointers into msg).  Returns 0 or -EINVAL. */
int cd_events__bcast_decode(const void *msg, size_t len, cd_events_bcast *b);
/* Walks the rooms of a decoded message: call with *cur = b->rooms first;
 * sets name/len and advances *cur. */
void cd_events__bcast_room(const unsigned char **cur, const char **name, size_t *len);

#endif
