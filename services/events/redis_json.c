/*
 * redis_json.c - JSON <-> msgpack for the Redis adapter (pure: worker, on
 * its loop; also the unit tests and the fuzz target fuzz_events_redis).
 *
 * socket.io-redis-adapter puts packets on Redis as msgpack OBJECTS
 * (notepack.io): {type, data, nsp} where data is the decoded event array,
 * binary arguments as msgpack bin in place.  clusterd keeps a packet as
 * the Socket.IO text its clients get ("42[...]", "451-[...{_placeholder}]")
 * plus attachments.  So a packet crossing Redis is converted once each
 * way, here:
 *
 *   out: the packet's JSON (already checked well-formed by
 *        cd_events__sio_parse or the builders) -> msgpack, as JSON.parse
 *        then notepack would write it: integers that fit 64 bits as
 *        integers, other numbers as float 64, each placeholder object
 *        {"_placeholder":true,"num":n} as bin (attachment n);
 *   in:  msgpack -> JSON as JSON.stringify would write what notepack
 *        decodes: nil null, bin a placeholder (numbered in order, the
 *        caller keeps the bytes as attachments), notepack's undefined
 *        (fixext 1 type 0) null in an array and left out of a map, a
 *        timestamp (ext -1) its ISO 8601 string, other ext null, float
 *        in the shortest form that reads back the same (NaN and the
 *        infinities null), map keys that are integers as their decimal
 *        text, strings checked to be UTF-8 and escaped.
 *
 * The msgpack reader is our own (msgpack-c's unpacker builds a tree and
 * allocates what a container's header claims before its items arrive, up
 * to gigabytes for a 5-byte header): it walks the bytes in place, every
 * count checked against the bytes left (each item takes at least one),
 * nesting bounded by CD_EVENTS_JSON_DEPTH.  The writer is msgpack-c's
 * packer.  Nothing here logs; errors are return codes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "clusterd/buf.h"
#include "clusterd/json.h"
#include "clusterd/text.h"
#include "services/events/redis.h"
#include "services/events/redis_mp.h"

/* ---- the reader ---- */

static int need(cd_mp *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n ? 0 : -EINVAL;
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Takes n bytes of payload. */
static int payload(cd_mp *r, cd_mp_val *v, size_t n)
{
    if (need(r, n) < 0)
        return -EINVAL;
    v->ptr = r->p;
    v->len = n;
    r->p += n;
    return 0;
}

/* A length of n bytes, then the payload. */
static int sized(cd_mp *r, cd_mp_val *v, int kind, int n)
{
    if (need(r, (size_t)n) < 0)
        return -EINVAL;
    size_t l = (size_t)be(r->p, n);
    r->p += n;
    v->kind = kind;
    return payload(r, v, l);
}

static int container(cd_mp *r, cd_mp_val *v, int kind, size_t count)
{
    v->kind = kind;
    v->len = count;
    /* Each item takes a byte at least (a map's entry two). */
    size_t left = (size_t)(r->end - r->p);
    return count > (kind == CD_MP_MAP ? left / 2 : left) ? -EINVAL : 0;
}

static int ext(cd_mp *r, cd_mp_val *v, size_t n)
{
    if (need(r, 1) < 0)
        return -EINVAL;
    v->kind = CD_MP_EXT;
    v->ext = (signed char)*r->p++;
    return payload(r, v, n);
}

static int fixed(cd_mp *r, int n, uint64_t *u)
{
    if (need(r, (size_t)n) < 0)
        return -EINVAL;
    *u = be(r->p, n);
    r->p += n;
    return 0;
}

int cd_mp_next(cd_mp *r, cd_mp_val *v)
{
    memset(v, 0, sizeof *v);
    if (need(r, 1) < 0)
        return -EINVAL;
    unsigned c = *r->p++;
    uint64_t u;
    if (c <= 0x7f || c >= 0xe0) {
        v->kind = CD_MP_INT;
        v->i = c <= 0x7f ? (int64_t)c : (int64_t)(signed char)c;
        return 0;
    }
    if (c >= 0x80 && c <= 0x8f)
        return container(r, v, CD_MP_MAP, c & 0x0f);
    if (c >= 0x90 && c <= 0x9f)
        return container(r, v, CD_MP_ARRAY, c & 0x0f);
    if (c >= 0xa0 && c <= 0xbf) {
        v->kind = CD_MP_STR;
        return payload(r, v, c & 0x1f);
    }
    switch (c) {
    case 0xc0: v->kind = CD_MP_NIL; return 0;
    case 0xc2: case 0xc3: v->kind = CD_MP_BOOL; v->b = c == 0xc3; return 0;
    case 0xc4: return sized(r, v, CD_MP_BIN, 1);
    case 0xc5: return sized(r, v, CD_MP_BIN, 2);
    case 0xc6: return sized(r, v, CD_MP_BIN, 4);
    case 0xc7: case 0xc8: case 0xc9: {
        int n = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
        return fixed(r, n, &u) < 0 ? -EINVAL : ext(r, v, (size_t)u);
    }
    case 0xca: {
        if (fixed(r, 4, &u) < 0)
            return -EINVAL;
        float f;
        uint32_t w = (uint32_t)u;
        memcpy(&f, &w, 4);
        v->kind = CD_MP_FLOAT;
        v->f = f;
        return 0;
    }
    case 0xcb:
        if (fixed(r, 8, &u) < 0)
            return -EINVAL;
        memcpy(&v->f, &u, 8);
        v->kind = CD_MP_FLOAT;
        return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (fixed(r, 1 << (c - 0xcc), &u) < 0)
            return -EINVAL;
        if (u > INT64_MAX) {
            v->kind = CD_MP_UINT;
            v->u = u;
        } else {
            v->kind = CD_MP_INT;
            v->i = (int64_t)u;
        }
        return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int n = 1 << (c - 0xd0);
        if (fixed(r, n, &u) < 0)
            return -EINVAL;
        if (n < 8 && (u >> (8 * n - 1)) & 1) /* sign-extend */
            u |= ~(uint64_t)0 << (8 * n);
        v->kind = CD_MP_INT;
        v->i = (int64_t)u;
        return 0;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        return ext(r, v, (size_t)1 << (c - 0xd4));
    case 0xd9: return sized(r, v, CD_MP_STR, 1);
    case 0xda: return sized(r, v, CD_MP_STR, 2);
    case 0xdb: return sized(r, v, CD_MP_STR, 4);
    case 0xdc: case 0xdd:
        return fixed(r, c == 0xdc ? 2 : 4, &u) < 0 ? -EINVAL : container(r, v, CD_MP_ARRAY, (size_t)u);
    case 0xde: case 0xdf:
        return fixed(r, c == 0xde ? 2 : 4, &u) < 0 ? -EINVAL : container(r, v, CD_MP_MAP, (size_t)u);
    default: /* 0xc1 is never used */
        return -EINVAL;
    }
}

int cd_mp_skip(cd_mp *r, int depth)
{
    cd_mp_val v;
    if (depth <= 0 || cd_mp_next(r, &v) < 0)
        return -EINVAL;
    if (v.kind != CD_MP_ARRAY && v.kind != CD_MP_MAP)
        return 0;
    size_t n = v.kind == CD_MP_MAP ? 2 * v.len : v.len;
    for (size_t i = 0; i < n; i++)
        if (cd_mp_skip(r, depth - 1) < 0)
            return -EINVAL;
    return 0;
}

/* ---- msgpack -> JSON ---- */

/* notepack's undefined: fixext 1, type 0. */
static int undefined(const cd_mp_val *v)
{
    return v->kind == CD_MP_EXT && v->ext == 0 && v->len == 1;
}

static void put_double(cd_buf *b, double d)
{
    if (!isfinite(d)) {
        cd_buf_append(b, "null", 4);
        return;
    }
    char s[40];
    if (d == floor(d) && fabs(d) < 1e21) { /* as JavaScript writes integers: all digits */
        cd_buf_printf(b, "%.0f", d == 0 ? 0. : d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) { /* the shortest that reads back the same */
        snprintf(s, sizeof s, "%.*g", prec, d);
        if (strtod(s, NULL) == d)
            break;
    }
    cd_buf_printf(b, "%s", s);
}

/* A timestamp (ext -1: 4, 8 or 12 bytes) as Date's JSON, or null when
 * its year is not 0..9999 (toISOString would write six digits). */
static void put_timestamp(cd_buf *b, const cd_mp_val *v)
{
    int64_t sec;
    uint32_t nsec = 0;
    if (v->len == 4) {
        sec = (int64_t)be(v->ptr, 4);
    } else if (v->len == 8) {
        uint64_t x = be(v->ptr, 8);
        nsec = (uint32_t)(x >> 34);
        sec = (int64_t)(x & 0x3ffffffffULL);
    } else {
        nsec = (uint32_t)be(v->ptr, 4);
        sec = (int64_t)be(v->ptr + 4, 8);
    }
    struct tm tm;
    time_t t = (time_t)sec;
    if (v->len == 12 && (sec < -62167219200LL || sec > 253402300799LL)) /* 0000-01-01 .. 9999-12-31 */
        t = 0, sec = -1;
    if (sec < -62167219200LL || nsec > 999999999 || !gmtime_r(&t, &tm)) {
        cd_buf_append(b, "null", 4);
        return;
    }
    cd_buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, nsec / 1000000);
}

/* Where the bins go (bin NULL: counted only). */
typedef struct bins {
    size_t *n;
    const char **bin;
    size_t *len;
} bins;

static int to_json(cd_mp *r, cd_buf *b, bins *bn, int depth);

static int str_json(cd_buf *b, const cd_mp_val *v)
{
    if (!cd_utf8_valid((const char *)v->ptr, v->len))
        return -EINVAL;
    cd_json_str(b, (const char *)v->ptr, v->len);
    return 0;
}

static int map_json(cd_mp *r, cd_buf *b, size_t n, bins *bn, int depth)
{
    cd_buf_append(b, "{", 1);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        cd_mp_val k;
        if (cd_mp_next(r, &k) < 0)
            return -EINVAL;
        cd_mp peek = *r;
        cd_mp_val v;
        if (cd_mp_next(&peek, &v) < 0)
            return -EINVAL;
        if (undefined(&v)) { /* JSON.stringify leaves the member out */
            *r = peek;
            continue;
        }
        if (!first)
            cd_buf_append(b, ",", 1);
        first = 0;
        if (k.kind == CD_MP_STR) {
            if (str_json(b, &k) < 0)
                return -EINVAL;
        } else if (k.kind == CD_MP_INT) {
            cd_buf_printf(b, "\"%lld\"", (long long)k.i);
        } else if (k.kind == CD_MP_UINT) {
            cd_buf_printf(b, "\"%llu\"", (unsigned long long)k.u);
        } else {
            return -EINVAL;
        }
        cd_buf_append(b, ":", 1);
        if (to_json(r, b, bn, depth - 1) < 0)
            return -EINVAL;
    }
    cd_buf_append(b, "}", 1);
    return 0;
}

static int to_json(cd_mp *r, cd_buf *b, bins *bn, int depth)
{
    cd_mp_val v;
    if (depth <= 0 || cd_mp_next(r, &v) < 0)
        return -EINVAL;
    switch (v.kind) {
    case CD_MP_NIL: cd_buf_append(b, "null", 4); return 0;
    case CD_MP_BOOL: cd_buf_append(b, v.b ? "true" : "false", v.b ? 4 : 5); return 0;
    case CD_MP_INT: cd_buf_printf(b, "%lld", (long long)v.i); return 0;
    case CD_MP_UINT: cd_buf_printf(b, "%llu", (unsigned long long)v.u); return 0;
    case CD_MP_FLOAT: put_double(b, v.f); return 0;
    case CD_MP_STR: return str_json(b, &v);
    case CD_MP_BIN:
        if (*bn->n >= CD_EVENTS_BUS_ATTACH_MAX)
            return -EMSGSIZE;
        if (bn->bin) {
            bn->bin[*bn->n] = (const char *)v.ptr;
            bn->len[*bn->n] = v.len;
        }
        cd_buf_printf(b, "{\"_placeholder\":true,\"num\":%zu}", (*bn->n)++);
        return 0;
    case CD_MP_EXT:
        if (v.ext == -1 && (v.len == 4 || v.len == 8 || v.len == 12))
            put_timestamp(b, &v);
        else
            cd_buf_append(b, "null", 4);
        return 0;
    case CD_MP_ARRAY:
        cd_buf_append(b, "[", 1);
        for (size_t i = 0; i < v.len; i++) {
            if (i)
                cd_buf_append(b, ",", 1);
            int rc = to_json(r, b, bn, depth - 1);
            if (rc < 0)
                return rc;
        }
        cd_buf_append(b, "]", 1);
        return 0;
    default:
        return map_json(r, b, v.len, bn, depth);
    }
}

int cd_mp_to_json(cd_mp *r, cd_buf *b, size_t *nbin, const char **bin, size_t *bin_len)
{
    bins bn = {nbin, bin, bin_len};
    int rc = to_json(r, b, &bn, CD_EVENTS_JSON_DEPTH);
    return rc < 0 ? rc : b->oom ? -ENOMEM : 0;
}

int cd_events__redis_mp_to_json(const void *data, size_t len, char **out, size_t *olen, size_t *nbin)
{
    cd_mp r = {data, (const unsigned char *)data + len};
    cd_buf b = {0};
    *nbin = 0;
    int rc = cd_mp_to_json(&r, &b, nbin, NULL, NULL);
    if (rc == 0 && r.p != r.end)
        rc = -EINVAL;
    if (rc < 0) {
        cd_buf_free(&b);
        return rc;
    }
    cd_buf_append(&b, "", 0);
    if (b.oom || !b.p) {
        cd_buf_free(&b);
        return -ENOMEM;
    }
    *out = b.p;
    *olen = b.len;
    return 0;
}

/* ---- JSON -> msgpack ---- */

/* The value at p is a placeholder: its attachment number, else -1. */
static long placeholder(const char *p, const char *end, size_t natt)
{
    const char *v, *ve;
    if (cd_events__json_get(p, end, "_placeholder", &v, &ve) < 0 || ve - v != 4 || memcmp(v, "true", 4) != 0)
        return -1;
    if (cd_events__json_get(p, end, "num", &v, &ve) < 0)
        return -1;
    char *e;
    long n = strtol(v, &e, 10);
    return e == ve && n >= 0 && (size_t)n < natt ? n : -1;
}

/* The items of the array or object whose '[' or '{' is at p. */
static long count_items(const char *p, const char *end, const char **close)
{
    long n = 0;
    const char *q = cd_events__json_ws(p + 1, end);
    while (q < end && *q != ']' && *q != '}') {
        if (*p == '{') { /* key ':' */
            q = cd_events__json_skip(q, end, 1);
            q = q ? cd_events__json_ws(q, end) : NULL;
            if (!q || q >= end || *q != ':')
                return -EINVAL;
            q++;
        }
        q = cd_events__json_skip(q, end, CD_EVENTS_JSON_DEPTH);
        if (!q)
            return -EINVAL;
        n++;
        q = cd_events__json_ws(q, end);
        if (q < end && *q == ',')
            q = cd_events__json_ws(q + 1, end);
    }
    if (q >= end)
        return -EINVAL;
    *close = q + 1;
    return n;
}

/* Decodes the JSON string token [p, tok_end) (checked well-formed by
 * cd_events__json_skip) into out as JSON.parse would, \u0000 included; a
 * lone surrogate becomes U+FFFD (notepack would write it as WTF-8, which
 * is not UTF-8).  Returns the length, or -EINVAL. */
static long json_unescape(const char *p, const char *tok_end, char *out)
{
    size_t n = 0;
    for (p++; p < tok_end - 1; p++) {
        if (*p != '\\') {
            out[n++] = *p;
            continue;
        }
        if (++p >= tok_end - 1)
            return -EINVAL;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *esc = *p ? strchr(from, *p) : NULL;
        if (esc) {
            out[n++] = to[esc - from];
            continue;
        }
        long c = *p == 'u' ? cd_events__hex4(p + 1, tok_end - 1) : -1, lo;
        if (c < 0)
            return -EINVAL;
        p += 4;
        if (c >= 0xd800 && c < 0xdc00 && tok_end - 1 - p >= 7 && p[1] == '\\' && p[2] == 'u' &&
            (lo = cd_events__hex4(p + 3, tok_end - 1)) >= 0xdc00 && lo < 0xe000) {
            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        } else if (c >= 0xd800 && c < 0xe000) {
            c = 0xfffd;
        }
        n += cd_events__utf8_put(out + n, (unsigned long)c);
    }
    return (long)n;
}

static int pack_string(msgpack_packer *pk, const char *p, const char *end, const char **next)
{
    const char *tok_end = cd_events__json_skip(p, end, 1);
    if (!tok_end || *p != '"')
        return -EINVAL;
    char *s = malloc((size_t)(tok_end - p)); /* decoded is never longer than its token */
    if (!s)
        return -ENOMEM;
    long n = json_unescape(p, tok_end, s);
    int rc = n < 0 ? -EINVAL : msgpack_pack_str_with_body(pk, s, (size_t)n) < 0 ? -ENOMEM : 0;
    free(s);
    *next = tok_end;
    return rc;
}

static int pack_number(msgpack_packer *pk, const char *p, const char *end, const char **next)
{
    const char *q = p;
    int integer = 1;
    while (q < end && strchr("+-0123456789.eE", *q)) {
        if (*q == '.' || *q == 'e' || *q == 'E')
            integer = 0;
        q++;
    }
    char num[400];
    size_t l = (size_t)(q - p);
    if (!l || l >= sizeof num) /* JSON.parse takes longer ones: refused here */
        return -EINVAL;
    memcpy(num, p, l);
    num[l] = '\0';
    *next = q;
    errno = 0;
    char *e;
    long long ll = integer ? strtoll(num, &e, 10) : 0;
    if (integer && errno == 0 && *e == '\0')
        return msgpack_pack_int64(pk, ll) < 0 ? -ENOMEM : 0;
    if (integer && errno == ERANGE && num[0] != '-') { /* up to 2^64 - 1 as notepack's uint 64 */
        errno = 0;
        unsigned long long ull = strtoull(num, &e, 10);
        if (errno == 0 && *e == '\0')
            return msgpack_pack_uint64(pk, ull) < 0 ? -ENOMEM : 0;
    }
    double d = strtod(num, NULL);
    return msgpack_pack_double(pk, d) < 0 ? -ENOMEM : 0;
}

static int pack_value(msgpack_packer *pk, const char *p, const char *end, const char **next,
                      const cd_mp_att *att, int depth)
{
    p = cd_events__json_ws(p, end);
    if (depth <= 0 || p >= end)
        return -EINVAL;
    if (*p == '{' || *p == '[') {
        const char *close;
        long n = count_items(p, end, &close);
        if (n < 0)
            return -EINVAL;
        long ph = *p == '{' && att ? placeholder(p, close, att->n) : -1;
        if (ph >= 0) {
            *next = close;
            return msgpack_pack_bin_with_body(pk, att->data[ph], att->len[ph]) < 0 ? -ENOMEM : 0;
        }
        int obj = *p == '{';
        if ((obj ? msgpack_pack_map(pk, (size_t)n) : msgpack_pack_array(pk, (size_t)n)) < 0)
            return -ENOMEM;
        const char *q = p + 1;
        for (long i = 0; i < n; i++) {
            q = cd_events__json_ws(q, close);
            if (i)
                q = cd_events__json_ws(q + 1, close); /* the ',' */
            int rc;
            if (obj) {
                if ((rc = pack_string(pk, q, close, &q)) < 0)
                    return rc;
                q = cd_events__json_ws(q, close) + 1; /* the ':' */
            }
            if ((rc = pack_value(pk, q, close, &q, att, depth - 1)) < 0)
                return rc;
        }
        *next = close;
        return 0;
    }
    if (*p == '"')
        return pack_string(pk, p, end, next);
    static const char *const lit[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(lit[i]);
        if ((size_t)(end - p) >= l && memcmp(p, lit[i], l) == 0) {
            *next = p + l;
            int rc = i == 0 ? msgpack_pack_true(pk) : i == 1 ? msgpack_pack_false(pk) : msgpack_pack_nil(pk);
            return rc < 0 ? -ENOMEM : 0;
        }
    }
    return pack_number(pk, p, end, next);
}

int cd_mp_pack_json(msgpack_packer *pk, const char *p, const char *end, const cd_mp_att *att)
{
    /* Checked whole first: the packer then only meets well-formed text. */
    const char *e = cd_events__json_skip(p, end, CD_EVENTS_JSON_DEPTH);
    if (!e || cd_events__json_ws(e, end) != end)
        return -EINVAL;
    const char *next;
    return pack_value(pk, p, e, &next, att, CD_EVENTS_JSON_DEPTH + 1);
}

int cd_events__redis_json_to_mp(const char *p, size_t len, char **out, size_t *olen)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = cd_mp_pack_json(&pk, p, p + len, NULL);
    if (rc < 0 || !sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return rc < 0 ? rc : -ENOMEM;
    }
    *out = sb.data;
    *olen = sb.size;
    return 0;
}
