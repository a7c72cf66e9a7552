/*
 * redis_msg.c - the Redis adapter's pure codecs (worker, on its loop; also
 * the unit tests and the fuzz target fuzz_events_redis): the messages of
 * socket.io-redis-adapter (8.x, its classic createAdapter) and
 * socket.io-redis-emitter (5.x) to and from the events bus's operations
 * (bus_proto.c).  redis_adapter.c's essay gives the channels and which
 * side does what; redis_uri.c parses redis_uri.
 *
 * Broadcast channel, msgpack (notepack.io): [uid, packet, opts] with
 * packet {type: 2 (EVENT) or 5, data: [event, ...args], nsp} (binary
 * arguments as bin in place; socket.io's encoder turns an EVENT with
 * binary into BINARY_EVENT itself, so we send type 2) and opts {rooms:
 * [...], except: [...], flags: {...}} (flags are hints for the sending
 * server: ignored).  In, it becomes one bus PACKET message: the Engine.IO
 * text "4" "2"|"5<n>-" ["<nsp>,"] <data as JSON> (redis_json.c), its bins
 * the attachments in order; the text is checked as a client's packet is
 * (cd_events__sio_parse) so nothing malformed reaches a client.
 *
 * Request channel, JSON (what the adapter and emitter send for these) or
 * msgpack: {uid, type, opts: {rooms, except}, rooms: [...]} for
 * REMOTE_JOIN (2) and REMOTE_LEAVE (3), one bus JOIN / LEAVE per room;
 * {uid, type: 4, opts, close} for REMOTE_DISCONNECT, a bus DISCONNECT.
 * The older single-socket forms ({sid, room} without opts) are taken too.
 * SOCKETS (0, target: its rooms), ALL_ROOMS (1) and REMOTE_FETCH (5,
 * target: opts) are for the caller to answer (CD_EVENTS_RIN_ANSWER, with
 * the requestId).  SERVER_SIDE_EMIT (6) and BROADCAST (7, broadcastWithAck)
 * are ignored: events has no server-side listeners, and acks from many
 * hosts' clients have no path back here.  Out we publish requests as
 * msgpack maps (the adapter reads either: JSON when the first byte is '{').
 *
 * Room names are strings (numbers, which a Node server may use as rooms,
 * in their decimal text) of at most CD_EVENTS_ROOM_MAX bytes; lists at
 * most CD_EVENTS_BUS_LIST_MAX names; a message at most
 * CD_EVENTS_BUS_MSG_MAX bytes once on the bus.  Nothing here logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "clusterd/buf.h"
#include "services/events/redis.h"
#include "services/events/redis_mp.h"

/* ---- out ---- */

#define PACK(x)                                                                                                        \
    do {                                                                                                               \
        if ((x) < 0)                                                                                                   \
            rc = -ENOMEM;                                                                                              \
    } while (0)

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int pack_names(msgpack_packer *pk, size_t n, const char *const *names, const size_t *lens)
{
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = msgpack_pack_str_with_body(pk, names[i], lens[i]);
    return rc;
}

static int pack_opts(msgpack_packer *pk, const cd_events_target *t, int flags)
{
    int rc = 0;
    PACK(msgpack_pack_map(pk, flags ? 3 : 2));
    PACK(pack_cstr(pk, "rooms"));
    PACK(pack_names(pk, t->nrooms, t->rooms, t->room_lens));
    PACK(pack_cstr(pk, "except"));
    PACK(pack_names(pk, t->nexcept, t->except, t->except_lens));
    if (flags) {
        PACK(pack_cstr(pk, "flags"));
        PACK(msgpack_pack_map(pk, 0));
    }
    return rc;
}

static int pack_packet(msgpack_packer *pk, const char *uid, const char *nsp, const cd_events_target *t,
                       const cd_events_packet *p)
{
    cd_sio_packet sp;
    if (!p->text_len || p->text[0] != '4' || cd_events__sio_parse(p->text + 1, p->text_len - 1, &sp) < 0 ||
        (sp.type != CD_SIO_EVENT && sp.type != CD_SIO_BINARY_EVENT) || sp.nattach != p->nattach)
        return -EINVAL;
    int rc = 0;
    PACK(msgpack_pack_array(pk, 3));
    PACK(pack_cstr(pk, uid));
    PACK(msgpack_pack_map(pk, 3));
    PACK(pack_cstr(pk, "type"));
    PACK(msgpack_pack_int(pk, CD_SIO_EVENT));
    PACK(pack_cstr(pk, "data"));
    if (rc < 0)
        return rc;
    cd_mp_att att = {p->nattach, (const char *const *)p->attach, p->attach_len};
    int jr = cd_mp_pack_json(pk, sp.data, sp.data + sp.data_len, &att);
    if (jr < 0)
        return jr;
    PACK(pack_cstr(pk, "nsp"));
    PACK(pack_cstr(pk, nsp));
    PACK(pack_opts(pk, t, 1));
    return rc;
}

static int pack_request(msgpack_packer *pk, const char *uid, const cd_events_target *t, const cd_events_bus_op *op)
{
    int type = op->op == CD_EVENTS_BUS_JOIN    ? CD_EVENTS_RREQ_REMOTE_JOIN
               : op->op == CD_EVENTS_BUS_LEAVE ? CD_EVENTS_RREQ_REMOTE_LEAVE
                                               : CD_EVENTS_RREQ_REMOTE_DISCONNECT;
    int rc = 0;
    PACK(msgpack_pack_map(pk, 4));
    PACK(pack_cstr(pk, "uid"));
    PACK(pack_cstr(pk, uid));
    PACK(pack_cstr(pk, "type"));
    PACK(msgpack_pack_int(pk, type));
    PACK(pack_cstr(pk, "opts"));
    PACK(pack_opts(pk, t, 0));
    if (op->op == CD_EVENTS_BUS_DISCONNECT) {
        PACK(pack_cstr(pk, "close"));
        PACK(op->close ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    } else {
        PACK(pack_cstr(pk, "rooms"));
        PACK(msgpack_pack_array(pk, 1));
        PACK(msgpack_pack_str_with_body(pk, op->room, op->room_len));
    }
    return rc;
}

int cd_events__redis_encode(const char *uid, const char *nsp, const cd_events_target *t,
                            const cd_events_bus_op *op, cd_events_redis_out *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc;
    memset(out, 0, sizeof *out);
    switch (op->op) {
    case CD_EVENTS_BUS_PACKET:
        rc = op->packet ? pack_packet(&pk, uid, nsp, t, op->packet) : -EINVAL;
        break;
    case CD_EVENTS_BUS_JOIN:
    case CD_EVENTS_BUS_LEAVE:
    case CD_EVENTS_BUS_DISCONNECT:
        out->request = 1;
        rc = pack_request(&pk, uid, t, op);
        break;
    default:
        rc = -EINVAL;
    }
    if (rc == 0 && !sb.data)
        rc = -ENOMEM;
    if (rc < 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    out->msg = sb.data;
    out->len = sb.size;
    return 0;
}

/* ---- in ---- */

/* A list of room names read from a msgpack array (strings, or integers
 * as their decimal text). */
typedef struct names {
    size_t n;
    const char **p;
    size_t *len;
    char (*num)[24];
} names;

static void names_free(names *l)
{
    free(l->p);
    free(l->len);
    free(l->num);
    memset(l, 0, sizeof *l);
}

static int read_names(cd_mp *r, names *l)
{
    cd_mp_val v;
    names_free(l);
    if (cd_mp_next(r, &v) < 0)
        return -EINVAL;
    if (v.kind == CD_MP_NIL)
        return 0;
    if (v.kind != CD_MP_ARRAY)
        return -EINVAL;
    if (v.len > CD_EVENTS_BUS_LIST_MAX)
        return -EMSGSIZE;
    size_t n = v.len ? v.len : 1;
    l->p = malloc(n * sizeof *l->p);
    l->len = malloc(n * sizeof *l->len);
    l->num = malloc(n * sizeof *l->num);
    if (!l->p || !l->len || !l->num)
        return -ENOMEM;
    for (size_t i = 0; i < v.len; i++) {
        cd_mp_val e;
        if (cd_mp_next(r, &e) < 0)
            return -EINVAL;
        if (e.kind == CD_MP_STR) {
            if (e.len > CD_EVENTS_ROOM_MAX)
                return -EMSGSIZE;
            l->p[i] = (const char *)e.ptr;
            l->len[i] = e.len;
        } else if (e.kind == CD_MP_INT || e.kind == CD_MP_UINT) {
            l->len[i] = (size_t)(e.kind == CD_MP_INT ? snprintf(l->num[i], 24, "%lld", (long long)e.i)
                                                     : snprintf(l->num[i], 24, "%llu", (unsigned long long)e.u));
            l->p[i] = l->num[i];
        } else {
            return -EINVAL;
        }
        l->n++;
    }
    return 0;
}

/* Appends one bus message (its length first) to in->msgs. */
static int add_msg(cd_events_redis_in *in, const char *nsp, const names *rooms, const names *except,
                   const cd_events_bus_op *op)
{
    cd_events_target t = {.nrooms = rooms->n, .rooms = rooms->p, .room_lens = rooms->len,
                          .nexcept = except->n, .except = except->p, .except_lens = except->len};
    long n = cd_events__bus_encode(NULL, 0, nsp, strlen(nsp), &t, op);
    if (n < 0)
        return (int)n;
    char *m = realloc(in->msgs, in->len + 4 + (size_t)n);
    if (!m)
        return -ENOMEM;
    in->msgs = m;
    unsigned char *o = (unsigned char *)m + in->len;
    o[0] = (unsigned char)(n >> 24), o[1] = (unsigned char)(n >> 16), o[2] = (unsigned char)(n >> 8);
    o[3] = (unsigned char)n;
    n = cd_events__bus_encode(o + 4, (size_t)n, nsp, strlen(nsp), &t, op);
    if (n < 0)
        return (int)n;
    in->len += 4 + (size_t)n;
    return 0;
}

/* Whether v is the string s. */
static int is(const cd_mp_val *v, const char *s)
{
    return v->kind == CD_MP_STR && v->len == strlen(s) && memcmp(v->ptr, s, v->len) == 0;
}

/* opts {rooms, except, ...}. */
static int read_opts(cd_mp *r, names *rooms, names *except)
{
    cd_mp_val m, k;
    if (cd_mp_next(r, &m) < 0 || m.kind != CD_MP_MAP)
        return -EINVAL;
    for (size_t i = 0; i < m.len; i++) {
        int rc = cd_mp_next(r, &k) < 0 ? -EINVAL
                 : is(&k, "rooms")     ? read_names(r, rooms)
                 : is(&k, "except")    ? read_names(r, except)
                                       : cd_mp_skip(r, CD_EVENTS_JSON_DEPTH);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The packet {type, data, nsp} at r, for namespace nsp, as the Engine.IO
 * text in *text (its bins in att).  1 done, 0 not for us, <0 error. */
static int read_packet(cd_mp *r, const char *nsp, cd_buf *text, const char **att, size_t *att_len, size_t *natt)
{
    cd_mp_val m, k, v;
    cd_mp data = {0};
    long long type = -1;
    const unsigned char *pn = (const unsigned char *)"/";
    size_t pnl = 1;
    if (cd_mp_next(r, &m) < 0 || m.kind != CD_MP_MAP)
        return -EINVAL;
    for (size_t i = 0; i < m.len; i++) {
        if (cd_mp_next(r, &k) < 0)
            return -EINVAL;
        cd_mp at = *r;
        if (is(&k, "data")) {
            data = at;
            if (cd_mp_skip(r, CD_EVENTS_JSON_DEPTH) < 0)
                return -EINVAL;
            continue;
        }
        if (cd_mp_next(r, &v) < 0)
            return -EINVAL;
        if (is(&k, "type") && v.kind == CD_MP_INT)
            type = v.i;
        else if (is(&k, "nsp") && v.kind == CD_MP_STR)
            pn = v.ptr, pnl = v.len;
        else if ((*r = at, cd_mp_skip(r, CD_EVENTS_JSON_DEPTH)) < 0)
            return -EINVAL;
    }
    if (pnl != strlen(nsp) || memcmp(pn, nsp, pnl) != 0 || (type != CD_SIO_EVENT && type != CD_SIO_BINARY_EVENT))
        return 0;
    if (!data.p)
        return -EINVAL;
    cd_buf json = {0};
    size_t nbin = 0;
    int rc = cd_mp_to_json(&data, &json, &nbin, att, att_len);
    *natt = nbin;
    if (rc == 0) {
        if (nbin)
            cd_buf_printf(text, "45%zu-", nbin);
        else
            cd_buf_append(text, "42", 2);
        if (strcmp(nsp, "/") != 0)
            cd_buf_printf(text, "%s,", nsp);
        cd_buf_append(text, json.p, json.len);
        rc = text->oom || json.oom ? -ENOMEM : 1;
    }
    cd_buf_free(&json);
    return rc;
}

/* [uid, packet, opts] from the broadcast channel. */
static int decode_broadcast(cd_mp *r, const char *uid, const char *nsp, cd_events_redis_in *in)
{
    cd_mp_val a, u;
    if (cd_mp_next(r, &a) < 0 || a.kind != CD_MP_ARRAY || a.len < 3 || cd_mp_next(r, &u) < 0)
        return -EINVAL;
    if (is(&u, uid))
        return 0; /* ours: the local bus delivered it */
    cd_buf text = {0};
    const char *att[CD_EVENTS_BUS_ATTACH_MAX];
    size_t att_len[CD_EVENTS_BUS_ATTACH_MAX], natt = 0;
    names rooms = {0}, except = {0};
    int rc = read_packet(r, nsp, &text, att, att_len, &natt);
    if (rc > 0)
        rc = read_opts(r, &rooms, &except);
    cd_sio_packet sp;
    if (rc == 0 && text.len && cd_events__sio_parse(text.p + 1, text.len - 1, &sp) < 0)
        rc = -EINVAL; /* nothing a client would refuse reaches one */
    if (rc == 0 && text.len) {
        cd_events_packet p = {.text = text.p, .text_len = text.len, .nattach = natt, .attach = att,
                              .attach_len = att_len};
        cd_events_bus_op op = {.op = CD_EVENTS_BUS_PACKET, .packet = &p};
        rc = add_msg(in, nsp, &rooms, &except, &op);
        if (rc == 0)
            in->what = CD_EVENTS_RIN_APPLY;
    }
    names_free(&rooms);
    names_free(&except);
    cd_buf_free(&text);
    return rc;
}

typedef struct request {
    long long type;
    int close, has_opts;
    names rooms, except, list; /* opts.rooms, opts.except; rooms */
    const unsigned char *sid, *room;
    size_t sid_len, room_len;
} request;

static int read_request(cd_mp *r, const char *uid, request *q, cd_events_redis_in *in)
{
    cd_mp_val m, k, v;
    if (cd_mp_next(r, &m) < 0 || m.kind != CD_MP_MAP)
        return -EINVAL;
    for (size_t i = 0; i < m.len; i++) {
        if (cd_mp_next(r, &k) < 0)
            return -EINVAL;
        cd_mp at = *r;
        int rc = 0;
        if (is(&k, "opts")) {
            q->has_opts = 1;
            rc = read_opts(r, &q->rooms, &q->except);
        } else if (is(&k, "rooms")) {
            rc = read_names(r, &q->list);
        } else if ((rc = cd_mp_next(r, &v)) == 0) {
            if (is(&k, "uid") && is(&v, uid))
                q->type = -2; /* ours */
            else if (is(&k, "type") && v.kind == CD_MP_INT && q->type != -2)
                q->type = v.i;
            else if (is(&k, "close") && v.kind == CD_MP_BOOL)
                q->close = v.b;
            else if (is(&k, "requestId") && v.kind == CD_MP_STR && v.len <= CD_EVENTS_REDIS_ID_MAX)
                memcpy(in->request_id, v.ptr, v.len), in->request_id[v.len] = '\0';
            else if (is(&k, "sid") && v.kind == CD_MP_STR && v.len && v.len <= CD_EVENTS_ROOM_MAX)
                q->sid = v.ptr, q->sid_len = v.len;
            else if (is(&k, "room") && v.kind == CD_MP_STR && v.len && v.len <= CD_EVENTS_ROOM_MAX)
                q->room = v.ptr, q->room_len = v.len;
            else
                *r = at, rc = cd_mp_skip(r, CD_EVENTS_JSON_DEPTH);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* l becomes the one name [p, p + len).  0 or -ENOMEM. */
static int names_one(names *l, const void *p, size_t len)
{
    names_free(l);
    l->p = malloc(sizeof *l->p);
    l->len = malloc(sizeof *l->len);
    if (!l->p || !l->len)
        return -ENOMEM;
    l->p[0] = p;
    l->len[0] = len;
    l->n = 1;
    return 0;
}

/* The older single-socket form: {sid[, room]} without opts. */
static int sid_target(request *q)
{
    if (q->has_opts)
        return 0;
    if (!q->sid)
        return -EINVAL;
    int rc = names_one(&q->rooms, q->sid, q->sid_len);
    if (rc == 0 && q->room && !q->list.n)
        rc = names_one(&q->list, q->room, q->room_len);
    return rc;
}

static int apply_request(request *q, const char *nsp, cd_events_redis_in *in)
{
    cd_events_bus_op op = {0};
    names none = {0};
    int rc = 0;
    switch (q->type) {
    case CD_EVENTS_RREQ_REMOTE_JOIN:
    case CD_EVENTS_RREQ_REMOTE_LEAVE:
        if ((rc = sid_target(q)) < 0)
            return rc;
        op.op = q->type == CD_EVENTS_RREQ_REMOTE_JOIN ? CD_EVENTS_BUS_JOIN : CD_EVENTS_BUS_LEAVE;
        for (size_t i = 0; i < q->list.n && rc == 0; i++) {
            op.room = q->list.p[i];
            op.room_len = q->list.len[i];
            if (op.room_len) /* joining "" means nothing */
                rc = add_msg(in, nsp, &q->rooms, &q->except, &op);
        }
        break;
    case CD_EVENTS_RREQ_REMOTE_DISCONNECT:
        if ((rc = sid_target(q)) < 0)
            return rc;
        op.op = CD_EVENTS_BUS_DISCONNECT;
        op.close = q->close;
        rc = add_msg(in, nsp, &q->rooms, &q->except, &op);
        break;
    case CD_EVENTS_RREQ_SOCKETS:
    case CD_EVENTS_RREQ_ALL_ROOMS:
    case CD_EVENTS_RREQ_REMOTE_FETCH:
        if (!in->request_id[0])
            return -EINVAL;
        op.op = CD_EVENTS_BUS_DISCONNECT; /* carries the target only */
        rc = add_msg(in, nsp, q->type == CD_EVENTS_RREQ_SOCKETS ? &q->list : &q->rooms,
                     q->type == CD_EVENTS_RREQ_REMOTE_FETCH ? &q->except : &none, &op);
        in->type = (int)q->type;
        if (rc == 0)
            in->what = CD_EVENTS_RIN_ANSWER;
        return rc;
    default:
        in->type = (int)q->type;
        return 0;
    }
    if (rc == 0 && in->len)
        in->what = CD_EVENTS_RIN_APPLY;
    return rc;
}

static int decode_request(cd_mp *r, const char *uid, const char *nsp, cd_events_redis_in *in)
{
    request q = {.type = -1};
    int rc = read_request(r, uid, &q, in);
    if (rc == 0 && q.type >= 0)
        rc = apply_request(&q, nsp, in);
    names_free(&q.rooms);
    names_free(&q.except);
    names_free(&q.list);
    return rc;
}

int cd_events__redis_decode(int request, const char *uid, const char *nsp, const void *data, size_t len,
                            cd_events_redis_in *in)
{
    memset(in, 0, sizeof *in);
    in->type = -1;
    char *conv = NULL;
    if (len > CD_EVENTS_BUS_MSG_MAX)
        return -EMSGSIZE;
    if (request && len && *(const char *)data == '{') { /* JSON: as msgpack, then one decoder */
        int rc = cd_events__redis_json_to_mp(data, len, &conv, &len);
        if (rc < 0)
            return rc;
        data = conv;
    }
    cd_mp r = {data, (const unsigned char *)data + len};
    int rc = request ? decode_request(&r, uid, nsp, in) : decode_broadcast(&r, uid, nsp, in);
    free(conv);
    if (rc < 0) {
        cd_events__redis_in_free(in);
        return rc;
    }
    if (in->what == CD_EVENTS_RIN_IGNORE) {
        free(in->msgs);
        in->msgs = NULL;
        in->len = 0;
    }
    return 0;
}

void cd_events__redis_in_free(cd_events_redis_in *in)
{
    free(in->msgs);
    memset(in, 0, sizeof *in);
}

int cd_events__redis_in_next(const cd_events_redis_in *in, size_t *off, const void **msg, size_t *mlen)
{
    if (*off + 4 > in->len)
        return 0;
    const unsigned char *p = (const unsigned char *)in->msgs + *off;
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    *msg = p + 4;
    *mlen = n;
    *off += 4 + n;
    return 1;
}
