/*
 * events_proto.c - the pure codecs of the events service (worker, on its
 * loop; also the unit tests): a validating JSON scanner and Socket.IO v5
 * packet parsing (the backend bodies and the bus messages are bus_proto.c's).
 *
 * Every function reads bounded input ([p, end) or a length), allocates
 * nothing and never logs; errors are return codes.  The JSON scanner
 * recurses at most `depth` levels, so a hostile "[[[[..." costs a bounded
 * stack.  See events.h for why the payloads stay raw JSON text.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "services/events/events.h"

/* ---- JSON ---- */

const char *cd_events__json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}


long cd_events__hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = cd_hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* p at the opening quote; returns past the closing quote or NULL.  The
 * raw bytes must be UTF-8 (RFC 8259 section 8.1): what the scanner accepts
 * may go to clients inside WebSocket text frames. */
static const char *skip_string(const char *p, const char *end)
{
    p++;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c >= 0x80) {
            size_t n = cd_utf8_seq(p, (size_t)(end - p));
            if (!n)
                return NULL;
            p += n;
            continue;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        if (++p >= end)
            return NULL;
        switch (*p) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p++;
            break;
        case 'u':
            if (cd_events__hex4(p + 1, end) < 0)
                return NULL;
            p += 5;
            break;
        default:
            return NULL;
        }
    }
    return NULL;
}

static const char *skip_digits(const char *p, const char *end)
{
    const char *s = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p > s ? p : NULL;
}

static const char *skip_number(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if (!(p = skip_digits(p, end)))
        return NULL;
    if (p < end && *p == '.' && !(p = skip_digits(p + 1, end)))
        return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!(p = skip_digits(p, end)))
            return NULL;
    }
    return p;
}

static const char *skip_literal(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

const char *cd_events__json_skip(const char *p, const char *end, int depth)
{
    p = cd_events__json_ws(p, end);
    if (p >= end)
        return NULL;
    switch (*p) {
    case '"':
        return skip_string(p, end);
    case 't':
        return skip_literal(p, end, "true");
    case 'f':
        return skip_literal(p, end, "false");
    case 'n':
        return skip_literal(p, end, "null");
    case '[':
    case '{': {
        char close = *p == '[' ? ']' : '}';
        int object = *p == '{';
        if (depth <= 1)
            return NULL;
        p = cd_events__json_ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (object) {
                p = cd_events__json_ws(p, end);
                if (p >= end || *p != '"' || !(p = skip_string(p, end)))
                    return NULL;
                p = cd_events__json_ws(p, end);
                if (p >= end || *p != ':')
                    return NULL;
                p++;
            }
            if (!(p = cd_events__json_skip(p, end, depth - 1)))
                return NULL;
            p = cd_events__json_ws(p, end);
            if (p >= end)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    }
    default:
        return skip_number(p, end);
    }
}

size_t cd_events__utf8_put(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int cd_events__json_string(const char *p, const char *end, char *out, size_t cap, const char **next)
{
    size_t o = 0;
    int too_long = 0;
    if (p >= end || *p != '"' || cap == 0)
        return -EINVAL;
    p++;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        char tmp[4];
        size_t n = 1;
        if (c < 0x20)
            return -EINVAL;
        if (c >= 0x80) {
            n = cd_utf8_seq(p, (size_t)(end - p));
            if (!n)
                return -EINVAL;
            memcpy(tmp, p, n);
            p += n;
        } else if (c != '\\') {
            tmp[0] = (char)c;
            p++;
        } else {
            if (++p >= end)
                return -EINVAL;
            char e = *p++;
            switch (e) {
            case '"': case '\\': case '/': tmp[0] = e; break;
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u': {
                long cp = cd_events__hex4(p, end);
                if (cp <= 0) /* malformed, or U+0000: names are C strings */
                    return -EINVAL;
                p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return -EINVAL;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    long lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? cd_events__hex4(p + 2, end) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return -EINVAL;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                n = cd_events__utf8_put(tmp, (unsigned long)cp);
                break;
            }
            default:
                return -EINVAL;
            }
        }
        /* Too long: keep checking the rest, so a malformed string is
         * -EINVAL whatever its length. */
        if (o + n >= cap)
            too_long = 1;
        if (!too_long) {
            memcpy(out + o, tmp, n);
            o += n;
        }
    }
    if (p >= end)
        return -EINVAL;
    out[o] = '\0';
    if (too_long)
        return -E2BIG;
    if (next)
        *next = p + 1;
    return (int)o;
}

int cd_events__json_get(const char *p, const char *end, const char *key, const char **val,
                        const char **val_end)
{
    int found = 0;
    size_t klen = strlen(key);
    /* The whole object is checked first, so a malformed tail after the key
     * is still refused, and the walk below can trust its syntax. */
    const char *obj_end = cd_events__json_skip(p, end, CD_EVENTS_JSON_DEPTH);
    p = cd_events__json_ws(p, end);
    if (!obj_end || *p != '{')
        return -EINVAL;
    p = cd_events__json_ws(p + 1, obj_end);
    if (*p == '}')
        return -ENOENT;
    for (;;) {
        /* A member name may hold anything JSON allows (a NUL, a lone
         * surrogate, any length) and still be skipped: it just is not the
         * key asked for.  Only the raw token is walked here. */
        char name[256];
        const char *name_end = skip_string(p, obj_end);
        int n = klen < sizeof name ? cd_events__json_string(p, name_end, name, sizeof name, NULL) : -E2BIG;
        p = cd_events__json_ws(name_end, obj_end);
        p = cd_events__json_ws(p + 1, obj_end); /* the ':' */
        const char *v_end = cd_events__json_skip(p, obj_end, CD_EVENTS_JSON_DEPTH);
        if (!found && n >= 0 && (size_t)n == klen && memcmp(name, key, klen) == 0) {
            *val = p;
            *val_end = v_end;
            found = 1;
        }
        p = cd_events__json_ws(v_end, obj_end);
        if (*p == '}')
            break;
        p = cd_events__json_ws(p + 1, obj_end); /* the ',' */
    }
    return found ? 0 : -ENOENT;
}

/* ---- Socket.IO ---- */

/* The digits at *s as a number (at most `max` digits, else -1); *s moves
 * past them.  -2 when there are none. */
static long long sio_number(const char **s, const char *end, int max)
{
    long long v = 0;
    int digits = 0;
    while (*s < end && **s >= '0' && **s <= '9') {
        if (++digits > max)
            return -1;
        v = v * 10 + (*(*s)++ - '0');
    }
    return digits ? v : -2;
}

/* EVENT's shape: an array starting with a string (the name), then the
 * arguments; data is well-formed JSON, so after the name comes ']' or ','. */
static int sio_event_shape(cd_sio_packet *p, const char *end)
{
    if (!p->data)
        return -EPROTO;
    const char *a = cd_events__json_ws(p->data, end);
    if (*a != '[')
        return -EPROTO;
    const char *n = cd_events__json_ws(a + 1, end);
    if (n >= end || *n != '"')
        return -EPROTO;
    const char *ne = cd_events__json_skip(n, end, 1);
    p->name = n;
    p->name_len = (size_t)(ne - n);
    const char *r = cd_events__json_ws(ne, end);
    const char *close = end;
    while (close > r && *(close - 1) != ']')
        close--;
    close--;
    if (*r == ',') {
        p->args = r + 1;
        p->args_len = (size_t)(close - (r + 1));
    } else {
        p->args = close;
        p->args_len = 0;
    }
    return 0;
}

/* A placeholder object's "num": a plain integer 0..n-1 not seen before,
 * marked in *seen.  0 or -EPROTO. */
static int sio_num(const char *v, const char *ve, size_t n, uint32_t *seen)
{
    long long num = v ? sio_number(&v, ve, 2) : -1;
    if (num < 0 || v != ve || (size_t)num >= n || (*seen & (1u << num)))
        return -EPROTO;
    *seen |= 1u << num;
    return 0;
}

/* Walks the well-formed JSON value at p (the scanner checked it, so its
 * nesting is bounded) for placeholders, in one pass: returns past the
 * value; *err becomes -EPROTO on a bad placeholder.  Socket.IO takes any
 * object whose "_placeholder" is true (JSON.parse: the last duplicate
 * wins) for one, and looks no further inside it; what is inside one is
 * walked here too (a bad placeholder there still fails), but its marks
 * are undone. */
static const char *sio_walk(const char *p, const char *end, size_t n, uint32_t *seen, int *err)
{
    p = cd_events__json_ws(p, end);
    if (*p != '[' && *p != '{')
        return cd_events__json_skip(p, end, 1);
    int object = *p == '{', is_ph = 0;
    uint32_t before = *seen;
    const char *num = NULL, *num_end = NULL;
    p = cd_events__json_ws(p + 1, end);
    while (*p != ']' && *p != '}') {
        char key[16];
        int kl = -1;
        if (object) { /* the member's name, then ':' */
            const char *ke = cd_events__json_skip(p, end, 1);
            kl = cd_events__json_string(p, ke, key, sizeof key, NULL);
            p = cd_events__json_ws(ke, end) + 1;
        }
        const char *v = cd_events__json_ws(p, end);
        p = sio_walk(v, end, n, seen, err);
        if (kl >= 0 && strcmp(key, "_placeholder") == 0)
            is_ph = p - v == 4 && memcmp(v, "true", 4) == 0;
        else if (kl >= 0 && strcmp(key, "num") == 0)
            num = v, num_end = p;
        p = cd_events__json_ws(p, end);
        if (*p == ',')
            p = cd_events__json_ws(p + 1, end);
    }
    if (is_ph) {
        *seen = before;
        if (sio_num(num, num_end, n, seen) < 0)
            *err = -EPROTO;
    }
    return p + 1;
}

/* The payload after the type (and a binary packet's count): namespace,
 * ack id, JSON data. */
static int sio_body(const char *s, const char *end, cd_sio_packet *p)
{
    if (s < end && *s == '/') {
        const char *c = memchr(s, ',', (size_t)(end - s));
        /* Without a comma the namespace runs to the end (e.g. "40/admin"). */
        p->nsp = s;
        p->nsp_len = c ? (size_t)(c - s) : (size_t)(end - s);
        s = c ? c + 1 : end;
    }
    /* socket.io-client counts from 0; 15 digits is plenty */
    long long id = sio_number(&s, end, 15);
    if (id == -1)
        return -EPROTO;
    if (id >= 0) {
        if (p->type == CD_SIO_CONNECT || p->type == CD_SIO_DISCONNECT)
            return -EPROTO;
        p->ack_id = id;
    }
    if (s < end) {
        const char *e = cd_events__json_skip(s, end, CD_EVENTS_JSON_DEPTH);
        if (!e || cd_events__json_ws(e, end) != end)
            return -EPROTO;
        p->data = s;
        p->data_len = (size_t)(end - s);
    }
    return 0;
}

_Static_assert(CD_EVENTS_ATTACH_MAX < 32, "placeholders are marked in a uint32_t");

int cd_events__sio_parse(const char *msg, size_t len, cd_sio_packet *p)
{
    const char *s = msg, *end = msg + len;
    memset(p, 0, sizeof *p);
    p->nsp = "/";
    p->nsp_len = 1;
    p->ack_id = -1;
    if (s >= end || *s < '0' || *s > '6')
        return -EPROTO;
    p->type = *s++ - '0';
    if (p->type == CD_SIO_CONNECT_ERROR)
        return -EPROTO;
    int binary = p->type == CD_SIO_BINARY_EVENT || p->type == CD_SIO_BINARY_ACK;
    if (binary) {
        long long n = sio_number(&s, end, 6);
        if (n == -1 || n > CD_EVENTS_ATTACH_MAX)
            return -EMSGSIZE;
        if (n < 0 || s >= end || *s++ != '-')
            return -EPROTO;
        p->nattach = (size_t)n;
    }
    if (sio_body(s, end, p) < 0)
        return -EPROTO;
    int rc;
    switch (p->type) {
    case CD_SIO_CONNECT:
        return !p->data || *cd_events__json_ws(p->data, end) == '{' ? 0 : -EPROTO;
    case CD_SIO_DISCONNECT:
        return p->data ? -EPROTO : 0;
    case CD_SIO_ACK:
    case CD_SIO_BINARY_ACK:
        rc = p->data && *cd_events__json_ws(p->data, end) == '[' && p->ack_id >= 0 ? 0 : -EPROTO;
        break;
    default: /* EVENT, BINARY_EVENT */
        rc = sio_event_shape(p, end);
        break;
    }
    if (rc < 0 || !binary)
        return rc;
    uint32_t seen = 0;
    int err = 0;
    sio_walk(p->data, end, p->nattach, &seen, &err);
    return err == 0 && seen == (1u << p->nattach) - 1 ? 0 : -EPROTO;
}

int cd_events__reserved_event(const char *name)
{
    static const char *const names[] = {"connect", "connect_error", "disconnect", "disconnecting",
                                        "newListener", "removeListener"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}
