/*
 * bus_proto.c - the pure codecs of the events service's server-side
 * addressing (worker, on its loop; also the unit tests and fuzz targets):
 * the bodies of the backend endpoints (POST {route}/publish, /join,
 * /leave, /disconnect) and the messages the workers exchange on the bus.
 *
 * One bus message is one operation on a set of sockets, exactly what
 * socket.io's adapters carry between servers:
 *   - the namespace (by name, not by index: during a reload that changes
 *     the namespaces, old and new workers share the bus, and an index
 *     would then name a different namespace on each side);
 *   - the target: rooms (none: the whole namespace) and except rooms, a
 *     socket's sid and "user:<sub>" being rooms like the others;
 *   - the operation: a packet (its Engine.IO text and its attachments,
 *     byte for byte), or a command: join a room, leave a room, disconnect
 *     (optionally closing the transport).
 * So the Redis adapter of issue 14 maps onto it field for field: its
 * broadcast message (packet + BroadcastOptions {rooms, except, flags}) is
 * op 'P' with the rooms and except lists, and its requests
 * REMOTE_JOIN / REMOTE_LEAVE / REMOTE_DISCONNECT (socketsJoin,
 * socketsLeave, disconnectSockets with {rooms, except}) are ops 'J', 'L'
 * and 'D'.  Of BroadcastOptions' flags, "local" means "do not put it on the
 * bus" and volatile/compress are per-transport hints: none needs a field.
 *
 * Wire format (integers big endian):
 *   'E' '2' op | nsp length (1) | nsp | room count (2) | except count (2) |
 *   each name: length (1) | bytes |
 *   'P': text length (4) | text | attachment count (2) | each: length (4) | bytes
 *   'J', 'L': length (1) | room        'D': close (1 byte, 0 or 1)
 * The master relays whatever any worker pushed, so the decoder trusts
 * nothing: every length is checked against the message and against the
 * limits in events.h, and the message must end exactly where its last
 * field does.
 *
 * Every function reads bounded input and never logs; errors are return
 * codes.  Only cd_events__cmd_parse allocates (the packet a publish body
 * becomes; cd_events__cmd_free releases it).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "services/events/events.h"

/* ---- backend bodies ---- */

/* Decodes the JSON string token [tok, tok_end) as a name of 1..max bytes
 * into out (cap > max).  Returns its length, or -EINVAL. */
static int decode_name(const char *tok, const char *tok_end, char *out, size_t cap, size_t max)
{
    if (tok >= tok_end || *tok != '"')
        return -EINVAL;
    int n = cd_events__json_string(tok, tok_end, out, cap, NULL);
    return n <= 0 || (size_t)n > max ? -EINVAL : n;
}

/* Adds one name to the target (except: to the except list), prefixed with
 * prefix ("user:" for a user).  Returns 0 or -EINVAL with *why. */
static int add_name(cd_events_cmd *o, int except, const char *prefix, const char *tok, const char *tok_end,
                    const char **why)
{
    size_t *count = except ? &o->nexcept : &o->nrooms;
    if (*count >= CD_EVENTS_TARGET_MAX) {
        *why = "too many rooms in the target (at most 64 and 64 except)";
        return -EINVAL;
    }
    char *slot = o->names[o->nnames];
    size_t pl = strlen(prefix);
    memcpy(slot, prefix, pl);
    int n = decode_name(tok, tok_end, slot + pl, sizeof o->names[0] - pl, CD_EVENTS_ROOM_MAX - pl);
    if (n < 0) {
        *why = "room, sid, user and except names must be non-empty strings of at most 128 bytes "
               "(a user at most 123), without NUL or lone surrogates";
        return -EINVAL;
    }
    o->nnames++;
    (except ? o->except : o->rooms)[*count] = slot;
    (except ? o->except_lens : o->room_lens)[*count] = pl + (size_t)n;
    ++*count;
    return 0;
}

/* The member key of the object: absent is fine; a string adds one name,
 * an array (when many) adds each of its strings. */
static int add_member(cd_events_cmd *o, const char *body, const char *end, const char *key, int except,
                      int many, const char **why)
{
    const char *v, *ve;
    if (cd_events__json_get(body, end, key, &v, &ve) < 0)
        return 0;
    const char *prefix = strcmp(key, "user") == 0 ? "user:" : "";
    if (*v != '[' || !many)
        return add_name(o, except, prefix, v, ve, why);
    /* The body was scanned whole: the array is well-formed. */
    const char *p = cd_events__json_ws(v + 1, ve);
    while (*p != ']') {
        const char *e = cd_events__json_skip(p, ve, CD_EVENTS_JSON_DEPTH);
        if (!e || add_name(o, except, prefix, p, e, why) < 0) {
            if (!e)
                *why = "malformed JSON";
            return -EINVAL;
        }
        p = cd_events__json_ws(e, ve);
        if (*p == ',')
            p = cd_events__json_ws(p + 1, ve);
    }
    return 0;
}

/* publish: "event" and "args" become "42<nsp,>[" event [, args] "]". */
static int build_packet(cd_events_cmd *o, const char *body, const char *end, size_t max_len, const char **why)
{
    const char *ev, *ev_end, *av = NULL, *av_end = NULL;
    char ename[16];
    /* Names longer than any reserved one do not fit ename (-E2BIG), nor
     * do names with a NUL or a lone surrogate (-EINVAL): none is reserved,
     * and all are JSON a client can take. */
    int el = -EINVAL;
    if (cd_events__json_get(body, end, "event", &ev, &ev_end) < 0 || *ev != '"' ||
        (el = cd_events__json_string(ev, ev_end, ename, sizeof ename, NULL)) == 0 ||
        (el > 0 && cd_events__reserved_event(ename))) {
        *why = "\"event\" must be a non-empty string, not a name Socket.IO reserves (connect, disconnect, ...)";
        return -EINVAL;
    }
    int ra = cd_events__json_get(body, end, "args", &av, &av_end);
    if (ra == 0 && *av != '[') {
        *why = "\"args\" must be an array";
        return -EINVAL;
    }
    size_t inner = 0;
    const char *in = NULL;
    if (ra == 0) {
        in = av + 1;
        const char *close = av_end - 1; /* the ']' */
        if (cd_events__json_ws(in, close) != close)
            inner = (size_t)(close - in);
    }
    size_t nl = o->nsp_len == 1 ? 0 : o->nsp_len + 1; /* "/chat," */
    size_t plen = 2 + nl + 1 + (size_t)(ev_end - ev) + (inner ? 1 + inner : 0) + 1;
    if (plen > max_len) {
        *why = "the event is larger than max_message_size";
        return -EMSGSIZE;
    }
    char *pkt = malloc(plen);
    if (!pkt) {
        *why = "out of memory";
        return -ENOMEM;
    }
    size_t k = 0;
    memcpy(pkt, "42", 2), k = 2;
    if (nl) {
        memcpy(pkt + k, o->nsp, o->nsp_len), k += o->nsp_len;
        pkt[k++] = ',';
    }
    pkt[k++] = '[';
    memcpy(pkt + k, ev, (size_t)(ev_end - ev)), k += (size_t)(ev_end - ev);
    if (inner) {
        pkt[k++] = ',';
        memcpy(pkt + k, in, inner), k += inner;
    }
    pkt[k++] = ']';
    o->packet = pkt;
    o->packet_len = k;
    return 0;
}

/* join / leave: the room named by the member of that name. */
static int command_room(cd_events_cmd *o, const char *body, const char *end, const char *key, const char **why)
{
    const char *v, *ve;
    int n = -EINVAL;
    if (cd_events__json_get(body, end, key, &v, &ve) == 0)
        n = decode_name(v, ve, o->room, sizeof o->room, CD_EVENTS_ROOM_MAX);
    if (n < 0) {
        *why = o->cmd == CD_EVENTS_CMD_JOIN ? "\"join\" must be a room name (a non-empty string of at most 128 bytes)"
                                            : "\"leave\" must be a room name (a non-empty string of at most 128 bytes)";
        return -EINVAL;
    }
    o->room_len = (size_t)n;
    return 0;
}

static int command_close(cd_events_cmd *o, const char *body, const char *end, const char **why)
{
    const char *v, *ve;
    if (cd_events__json_get(body, end, "close", &v, &ve) < 0)
        return 0;
    if (ve - v == 4 && memcmp(v, "true", 4) == 0)
        o->close = 1;
    else if (!(ve - v == 5 && memcmp(v, "false", 5) == 0)) {
        *why = "\"close\" must be true or false";
        return -EINVAL;
    }
    return 0;
}

static int parse_namespace(cd_events_cmd *o, const char *body, const char *end, const char **why)
{
    const char *v, *ve;
    if (cd_events__json_get(body, end, "namespace", &v, &ve) < 0) {
        o->nsp[0] = '/';
        o->nsp_len = 1;
        return 0;
    }
    int n = *v == '"' ? cd_events__json_string(v, ve, o->nsp, sizeof o->nsp, NULL) : -EINVAL;
    if (n == -E2BIG) { /* longer than any namespace can be (conf.c) */
        *why = "unknown namespace";
        return -ENOENT;
    }
    if (n <= 0) {
        *why = "\"namespace\" must be a non-empty string";
        return -EINVAL;
    }
    /* What no namespace can be (conf.c's rule): it could not be put in a
     * packet either. */
    for (int i = 0; i < n; i++) {
        char ch = o->nsp[i];
        if (ch < 0x21 || ch > 0x7e || ch == ',' || ch == '?' || ch == '"' || ch == '\\' || o->nsp[0] != '/') {
            *why = "unknown namespace";
            return -ENOENT;
        }
    }
    o->nsp_len = (size_t)n;
    return 0;
}

int cd_events__cmd_parse(int cmd, const char *body, size_t len, size_t max_len, cd_events_cmd *o,
                         const char **why)
{
    const char *end = body + len;
    memset(o, 0, offsetof(cd_events_cmd, names));
    o->cmd = cmd;
    /* The whole body, not just the members used: it is one JSON text. */
    if (!cd_utf8_valid(body, len)) {
        *why = "the body is not valid UTF-8";
        return -EINVAL;
    }
    const char *obj_end = cd_events__json_skip(body, end, CD_EVENTS_JSON_DEPTH);
    if (!obj_end || cd_events__json_ws(obj_end, end) != end || *cd_events__json_ws(body, end) != '{') {
        *why = "expected one JSON object: a target (\"namespace\", \"room\", \"rooms\", \"sid\", \"user\", "
               "\"except\") and what to do";
        return -EINVAL;
    }
    int rc = parse_namespace(o, body, end, why);
    if (rc < 0 || (rc = add_member(o, body, end, "room", 0, 0, why)) < 0 ||
        (rc = add_member(o, body, end, "rooms", 0, 1, why)) < 0 ||
        (rc = add_member(o, body, end, "sid", 0, 0, why)) < 0 ||
        (rc = add_member(o, body, end, "user", 0, 0, why)) < 0 ||
        (rc = add_member(o, body, end, "except", 1, 1, why)) < 0)
        return rc;
    switch (cmd) {
    case CD_EVENTS_CMD_PUBLISH:
        return build_packet(o, body, end, max_len, why);
    case CD_EVENTS_CMD_JOIN:
        return command_room(o, body, end, "join", why);
    case CD_EVENTS_CMD_LEAVE:
        return command_room(o, body, end, "leave", why);
    case CD_EVENTS_CMD_DISCONNECT:
        return command_close(o, body, end, why);
    default:
        *why = "unknown command";
        return -EINVAL;
    }
}

void cd_events__cmd_free(cd_events_cmd *o)
{
    free(o->packet);
    o->packet = NULL;
}

/* ---- bus messages ---- */

static unsigned char *put_be(unsigned char *o, size_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *o++ = (unsigned char)(v >> (8 * i));
    return o;
}

static unsigned char *put_name(unsigned char *o, const char *s, size_t len)
{
    *o++ = (unsigned char)len;
    if (len) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(o, s, len);
    return o + len;
}

/* The encoded length of op's body, or -EMSGSIZE / -EINVAL. */
static long op_size(const cd_events_bus_op *op)
{
    switch (op->op) {
    case CD_EVENTS_BUS_PACKET: {
        const cd_events_packet *p = op->packet;
        if (!p || !p->text_len || p->text_len > UINT32_MAX || p->nattach > CD_EVENTS_BUS_ATTACH_MAX)
            return p ? -EMSGSIZE : -EINVAL;
        size_t n = 4 + p->text_len + 2;
        for (size_t i = 0; i < p->nattach; i++) {
            if (p->attach_len[i] > UINT32_MAX || p->attach_len[i] > CD_EVENTS_BUS_MSG_MAX)
                return -EMSGSIZE;
            n += 4 + p->attach_len[i];
        }
        return n > CD_EVENTS_BUS_MSG_MAX ? -EMSGSIZE : (long)n;
    }
    case CD_EVENTS_BUS_JOIN:
    case CD_EVENTS_BUS_LEAVE:
        return op->room_len && op->room_len <= CD_EVENTS_ROOM_MAX ? (long)(1 + op->room_len) : -EMSGSIZE;
    case CD_EVENTS_BUS_DISCONNECT:
        return 1;
    default:
        return -EINVAL;
    }
}

long cd_events__bus_encode(void *buf, size_t cap, const char *nsp, size_t nsp_len, const cd_events_target *t,
                           const cd_events_bus_op *op)
{
    long body = op_size(op);
    if (body < 0)
        return body;
    if (!nsp_len || nsp_len > CD_EVENTS_ROOM_MAX || t->nrooms > CD_EVENTS_BUS_LIST_MAX ||
        t->nexcept > CD_EVENTS_BUS_LIST_MAX)
        return -EMSGSIZE;
    size_t need = 3 + 1 + nsp_len + 2 + 2 + (size_t)body;
    for (size_t i = 0; i < t->nrooms + t->nexcept; i++) {
        size_t l = i < t->nrooms ? t->room_lens[i] : t->except_lens[i - t->nrooms];
        if (l > CD_EVENTS_ROOM_MAX)
            return -EMSGSIZE;
        need += 1 + l;
    }
    if (need > CD_EVENTS_BUS_MSG_MAX)
        return -EMSGSIZE;
    if (!buf)
        return (long)need;
    if (need > cap)
        return -EMSGSIZE;
    unsigned char *o = buf;
    *o++ = 'E';
    *o++ = '2';
    *o++ = (unsigned char)op->op;
    o = put_name(o, nsp, nsp_len);
    o = put_be(o, t->nrooms, 2);
    o = put_be(o, t->nexcept, 2);
    for (size_t i = 0; i < t->nrooms; i++)
        o = put_name(o, t->rooms[i], t->room_lens[i]);
    for (size_t i = 0; i < t->nexcept; i++)
        o = put_name(o, t->except[i], t->except_lens[i]);
    if (op->op == CD_EVENTS_BUS_PACKET) {
        const cd_events_packet *p = op->packet;
        o = put_be(o, p->text_len, 4);
        memcpy(o, p->text, p->text_len), o += p->text_len;
        o = put_be(o, p->nattach, 2);
        for (size_t i = 0; i < p->nattach; i++) {
            o = put_be(o, p->attach_len[i], 4);
            if (p->attach_len[i])
                memcpy(o, p->attach[i], p->attach_len[i]);
            o += p->attach_len[i];
        }
    } else if (op->op == CD_EVENTS_BUS_DISCONNECT) {
        *o++ = op->close ? 1 : 0;
    } else {
        o = put_name(o, op->room, op->room_len);
    }
    return (long)need;
}

/* A bounded reader: every take checks what is left. */
typedef struct reader {
    const unsigned char *p, *end;
} reader;

static int take_be(reader *r, int bytes, size_t *v)
{
    if (r->end - r->p < bytes)
        return -EINVAL;
    *v = 0;
    for (int i = 0; i < bytes; i++)
        *v = *v << 8 | *r->p++;
    return 0;
}

/* Skips len bytes, pointing *at at them. */
static int take_bytes(reader *r, size_t len, const unsigned char **at)
{
    if ((size_t)(r->end - r->p) < len)
        return -EINVAL;
    *at = r->p;
    r->p += len;
    return 0;
}

/* count names of at most CD_EVENTS_ROOM_MAX bytes; *first at the first. */
static int take_names(reader *r, size_t count, const unsigned char **first)
{
    *first = r->p;
    for (size_t i = 0; i < count; i++) {
        size_t l;
        const unsigned char *at;
        if (take_be(r, 1, &l) < 0 || l > CD_EVENTS_ROOM_MAX || take_bytes(r, l, &at) < 0)
            return -EINVAL;
    }
    return 0;
}

static int take_packet(reader *r, cd_events_bus_msg *m)
{
    size_t l;
    const unsigned char *at;
    if (take_be(r, 4, &l) < 0 || !l || take_bytes(r, l, &at) < 0)
        return -EINVAL;
    m->text = (const char *)at;
    m->text_len = l;
    if (take_be(r, 2, &m->nattach) < 0 || m->nattach > CD_EVENTS_BUS_ATTACH_MAX)
        return -EINVAL;
    m->attach = r->p;
    for (size_t i = 0; i < m->nattach; i++)
        if (take_be(r, 4, &l) < 0 || take_bytes(r, l, &at) < 0)
            return -EINVAL;
    return 0;
}

int cd_events__bus_decode(const void *msg, size_t len, cd_events_bus_msg *m)
{
    reader r = {msg, (const unsigned char *)msg + len};
    size_t l;
    const unsigned char *at;
    memset(m, 0, sizeof *m);
    if (len < 3 || r.p[0] != 'E' || r.p[1] != '2')
        return -EINVAL;
    m->op = r.p[2];
    r.p += 3;
    if (take_be(&r, 1, &l) < 0 || !l || l > CD_EVENTS_ROOM_MAX || take_bytes(&r, l, &at) < 0 || *at != '/')
        return -EINVAL;
    m->nsp = (const char *)at;
    m->nsp_len = l;
    if (take_be(&r, 2, &m->nrooms) < 0 || take_be(&r, 2, &m->nexcept) < 0 ||
        m->nrooms > CD_EVENTS_BUS_LIST_MAX || m->nexcept > CD_EVENTS_BUS_LIST_MAX ||
        take_names(&r, m->nrooms, &m->rooms) < 0 || take_names(&r, m->nexcept, &m->except) < 0)
        return -EINVAL;
    switch (m->op) {
    case CD_EVENTS_BUS_PACKET:
        if (take_packet(&r, m) < 0)
            return -EINVAL;
        break;
    case CD_EVENTS_BUS_JOIN:
    case CD_EVENTS_BUS_LEAVE:
        if (take_be(&r, 1, &l) < 0 || !l || l > CD_EVENTS_ROOM_MAX || take_bytes(&r, l, &at) < 0)
            return -EINVAL;
        m->room = (const char *)at;
        m->room_len = l;
        break;
    case CD_EVENTS_BUS_DISCONNECT:
        if (take_be(&r, 1, &l) < 0 || l > 1)
            return -EINVAL;
        m->close = (int)l;
        break;
    default:
        return -EINVAL;
    }
    return r.p == r.end ? 0 : -EINVAL;
}

void cd_events__bus_name(const unsigned char **cur, const char **name, size_t *len)
{
    const unsigned char *p = *cur;
    *len = p[0];
    *name = (const char *)p + 1;
    *cur = p + 1 + *len;
}

void cd_events__bus_attach(const unsigned char **cur, const char **data, size_t *len)
{
    const unsigned char *p = *cur;
    *len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    *data = (const char *)p + 4;
    *cur = p + 4 + *len;
}
