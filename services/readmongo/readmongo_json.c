/*
 * readmongo_json.c - BSON to relaxed Extended JSON v2, compact (worker,
 * query fibers).
 *
 * libbson's bson_as_relaxed_extended_json was 22% of a worker's CPU on
 * readmongo requests (it grows its string by small appends and formats every
 * double with 20 significant digits: 74.769999999999996021 where JavaScript
 * says 74.77).  This writer appends to one buffer with memcpy, writes
 * doubles in the shortest form that reads back to the same value, and
 * leaves out the spaces.  The output is the same JSON values: relaxed
 * numbers for int32/int64/finite doubles, and the $-wrappers of the spec for
 * everything else.  Nesting (documents, arrays and CodeWScope scopes alike)
 * is bounded by CD_READMONGO_JSON_MAX_DEPTH, so no document from the
 * database can run a query thread out of stack.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clusterd/buf.h"
#include "clusterd/text.h"
#include "services/readmongo/readmongo.h"

static void lit(cd_buf *b, const char *s) { cd_buf_append(b, s, strlen(s)); }

/* A JSON string of len bytes of s.  Valid UTF-8 passes through; controls,
 * quote and backslash are escaped; a byte that does not start a valid
 * UTF-8 sequence becomes U+FFFD, because JSON text must be UTF-8 and
 * strings from the database are not always.  This is not clusterd/json.h's
 * writer on purpose: that one passes every byte from 0x80 up unchanged (it
 * quotes our own text) and writes \n as \u000a, where this one must repair
 * the database's bytes and writes the short escapes libbson does. */
static void str(cd_buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;

    if (cd_buf_reserve(b, len + 2) < 0)
        return;
    b->p[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = u[i];
        if (ch >= 0x80) {
            size_t n = cd_utf8_seq(s + i, len - i);
            if (n) {
                i += n - 1;
                continue;
            }
        } else if (ch >= 0x20 && ch != '"' && ch != '\\') {
            continue;
        }
        cd_buf_append(b, s + run, i - run);
        char esc[8];
        int n;
        switch (ch) {
        case '"': n = snprintf(esc, sizeof esc, "\\\""); break;
        case '\\': n = snprintf(esc, sizeof esc, "\\\\"); break;
        case '\n': n = snprintf(esc, sizeof esc, "\\n"); break;
        case '\r': n = snprintf(esc, sizeof esc, "\\r"); break;
        case '\t': n = snprintf(esc, sizeof esc, "\\t"); break;
        default:
            n = ch >= 0x80 ? snprintf(esc, sizeof esc, "\\ufffd")
                           : snprintf(esc, sizeof esc, "\\u%04x", ch);
            break;
        }
        cd_buf_append(b, esc, (size_t)n);
        run = i + 1;
    }
    cd_buf_append(b, s + run, len - run);
    cd_buf_append(b, "\"", 1);
}

static void base64(cd_buf *b, const uint8_t *d, uint32_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (uint32_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < len ? d[i + 2] : 0);
        char out[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < len ? tab[v >> 6 & 63] : '=',
                       i + 2 < len ? tab[v & 63] : '='};
        cd_buf_append(b, out, 4);
    }
}

static void i64(cd_buf *b, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof tmp, *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    cd_buf_append(b, p, (size_t)(e - p));
}

static void dbl(cd_buf *b, double d)
{
    if (isnan(d)) {
        lit(b, "{\"$numberDouble\":\"NaN\"}");
        return;
    }
    if (isinf(d)) {
        lit(b, d > 0 ? "{\"$numberDouble\":\"Infinity\"}" : "{\"$numberDouble\":\"-Infinity\"}");
        return;
    }
    /* The shortest of 15, 16, 17 significant digits that reads back exactly. */
    char tmp[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    cd_buf_append(b, tmp, (size_t)n);
    if (!strpbrk(tmp, ".eE"))
        lit(b, ".0"); /* still a double when read back by typed clients */
}

static void oid(cd_buf *b, const bson_oid_t *o)
{
    char hex[25];
    bson_oid_to_string(o, hex);
    lit(b, "{\"$oid\":\"");
    cd_buf_append(b, hex, 24);
    lit(b, "\"}");
}

static void date(cd_buf *b, int64_t ms)
{
    /* Relaxed form: an ISO-8601 string for years 1970..9999, else $numberLong. */
    if (ms >= 0 && ms < 253402300800000LL) {
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char tmp[40];
        int n = snprintf(tmp, sizeof tmp, "{\"$date\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"}", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
        cd_buf_append(b, tmp, (size_t)n);
        return;
    }
    lit(b, "{\"$date\":{\"$numberLong\":\"");
    i64(b, ms);
    lit(b, "\"}}");
}

static int value(cd_buf *b, bson_iter_t *it, int depth);

/* The elements it walks, as an object or an array.  depth is that of the
 * container they belong to (the top-level document is 1); documents, arrays
 * and CodeWScope scopes each add one, so no nesting of any kind goes past
 * CD_READMONGO_JSON_MAX_DEPTH and the recursion is bounded. */
static int elements(cd_buf *b, bson_iter_t *it, int array, int depth)
{
    if (depth > CD_READMONGO_JSON_MAX_DEPTH)
        return -1;
    cd_buf_append(b, array ? "[" : "{", 1);
    int first = 1;
    while (bson_iter_next(it)) {
        if (!first)
            cd_buf_append(b, ",", 1);
        first = 0;
        if (!array) {
            str(b, bson_iter_key(it), bson_iter_key_len(it));
            cd_buf_append(b, ":", 1);
        }
        if (value(b, it, depth) < 0)
            return -1;
    }
    /* bson_iter_next also stops at corrupt BSON: that is no end. */
    if (it->err_off)
        return -1;
    cd_buf_append(b, array ? "]" : "}", 1);
    return 0;
}

/* A document or array value inside a container at depth. */
static int container(cd_buf *b, bson_iter_t *it, int array, int depth)
{
    bson_iter_t child;
    if (!bson_iter_recurse(it, &child))
        return -1;
    return elements(b, &child, array, depth + 1);
}

/* The $-wrappers of the types JSON has no value for, one function each. */
static void binary(cd_buf *b, bson_iter_t *it)
{
    bson_subtype_t sub;
    const uint8_t *data;
    uint32_t len;
    bson_iter_binary(it, &sub, &len, &data);
    lit(b, "{\"$binary\":{\"base64\":\"");
    base64(b, data, len);
    char sub_hex[40];
    snprintf(sub_hex, sizeof sub_hex, "\",\"subType\":\"%02x\"}}", (unsigned)sub);
    lit(b, sub_hex);
}

static void regex(cd_buf *b, bson_iter_t *it)
{
    const char *opts;
    const char *re = bson_iter_regex(it, &opts);
    lit(b, "{\"$regularExpression\":{\"pattern\":");
    str(b, re, strlen(re));
    lit(b, ",\"options\":");
    str(b, opts, strlen(opts));
    lit(b, "}}");
}

static void dbpointer(cd_buf *b, bson_iter_t *it)
{
    const bson_oid_t *o;
    const char *s;
    uint32_t len;
    bson_iter_dbpointer(it, &len, &s, &o);
    lit(b, "{\"$dbPointer\":{\"$ref\":");
    str(b, s, len);
    lit(b, ",\"$id\":");
    oid(b, o);
    lit(b, "}}");
}

/* {"$code":"..."} or {"$symbol":"..."}: head is everything before the string. */
static void wrapped(cd_buf *b, const char *head, const char *s, uint32_t len)
{
    lit(b, head);
    str(b, s, len);
    lit(b, "}");
}

/* A CodeWScope inside a container at depth: its scope is one level more. */
static int codewscope(cd_buf *b, bson_iter_t *it, int depth)
{
    uint32_t len, scope_len;
    const uint8_t *scope;
    const char *s = bson_iter_codewscope(it, &len, &scope_len, &scope);
    bson_t sdoc;
    bson_iter_t sit;
    if (!bson_init_static(&sdoc, scope, scope_len) || !bson_iter_init(&sit, &sdoc))
        return -1;
    lit(b, "{\"$code\":");
    str(b, s, len);
    lit(b, ",\"$scope\":");
    if (elements(b, &sit, 0, depth + 1) < 0)
        return -1;
    lit(b, "}");
    return 0;
}

static void timestamp(cd_buf *b, bson_iter_t *it)
{
    uint32_t t, inc;
    bson_iter_timestamp(it, &t, &inc);
    char tmp[80];
    int n = snprintf(tmp, sizeof tmp, "{\"$timestamp\":{\"t\":%" PRIu32 ",\"i\":%" PRIu32 "}}", t, inc);
    cd_buf_append(b, tmp, (size_t)n);
}

static void decimal128(cd_buf *b, bson_iter_t *it)
{
    bson_decimal128_t dec;
    char tmp[BSON_DECIMAL128_STRING];
    bson_iter_decimal128(it, &dec);
    bson_decimal128_to_string(&dec, tmp);
    lit(b, "{\"$numberDecimal\":\"");
    lit(b, tmp);
    lit(b, "\"}");
}

static int value(cd_buf *b, bson_iter_t *it, int depth)
{
    uint32_t len;
    const char *s;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_DOUBLE: dbl(b, bson_iter_double(it)); break;
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &len);
        str(b, s, len);
        break;
    case BSON_TYPE_DOCUMENT: return container(b, it, 0, depth);
    case BSON_TYPE_ARRAY: return container(b, it, 1, depth);
    case BSON_TYPE_BINARY: binary(b, it); break;
    case BSON_TYPE_UNDEFINED: lit(b, "{\"$undefined\":true}"); break;
    case BSON_TYPE_OID: oid(b, bson_iter_oid(it)); break;
    case BSON_TYPE_BOOL: lit(b, bson_iter_bool(it) ? "true" : "false"); break;
    case BSON_TYPE_DATE_TIME: date(b, bson_iter_date_time(it)); break;
    case BSON_TYPE_NULL: lit(b, "null"); break;
    case BSON_TYPE_REGEX: regex(b, it); break;
    case BSON_TYPE_DBPOINTER: dbpointer(b, it); break;
    case BSON_TYPE_CODE:
        s = bson_iter_code(it, &len);
        wrapped(b, "{\"$code\":", s, len);
        break;
    case BSON_TYPE_SYMBOL:
        s = bson_iter_symbol(it, &len);
        wrapped(b, "{\"$symbol\":", s, len);
        break;
    case BSON_TYPE_CODEWSCOPE: return codewscope(b, it, depth);
    case BSON_TYPE_INT32: i64(b, bson_iter_int32(it)); break;
    case BSON_TYPE_TIMESTAMP: timestamp(b, it); break;
    case BSON_TYPE_INT64: i64(b, bson_iter_int64(it)); break;
    case BSON_TYPE_DECIMAL128: decimal128(b, it); break;
    case BSON_TYPE_MAXKEY: lit(b, "{\"$maxKey\":1}"); break;
    case BSON_TYPE_MINKEY: lit(b, "{\"$minKey\":1}"); break;
    default: return -1; /* EOD or a type this libbson does not know */
    }
    return 0;
}

int cd_readmongo__json(const bson_t *doc, cd_buf *out)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, doc))
        return -1;
    if (elements(out, &it, 0, 1) < 0)
        return -1;
    return out->oom ? -1 : 0;
}
