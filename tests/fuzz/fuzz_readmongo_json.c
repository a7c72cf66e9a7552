/*
 * fuzz_readmongo_json.c - readmongo's BSON -> relaxed Extended JSON writer
 * (cd_readmongo__json, services/readmongo/readmongo_json.c) with documents built from
 * the fuzz input.  The writer renders whatever the database returns, on the
 * service's query threads.
 *
 * Byte 0 chooses how the rest becomes a document:
 *   0  raw BSON: the bytes as they are (the length prefix is set to the
 *      input's length so mutations are not all rejected by it); rendered
 *      whether or not bson_validate accepts them, as the driver does not
 *      validate what the server sends
 *   1  a little program of bson_append_* calls, one per BSON type
 *      (CodeWScope, binary, regex, decimal128, doubles with NaN and
 *      infinities, nested documents and arrays ...), nesting past the
 *      writer's depth bound
 *   2  MongoDB extended JSON, parsed by libbson
 *
 * Checks: for a valid document within the depth bound the writer succeeds,
 * beyond it (documents, arrays and CodeWScope scopes all count) it fails;
 * whatever the bytes, when it succeeds it wrote valid JSON (a strict
 * grammar check written here, plus UTF-8: invalid UTF-8 in the BSON must
 * come out as U+FFFD) within 16 bytes per BSON byte; and libbson reads the output back as a document
 * when no key of the input starts with '$' (such keys collide with the
 * $-wrappers of Extended JSON: that ambiguity is the format's, not ours)
 * and it holds no DBPointer or code (libbson 1.23's reader fails on some
 * valid ones, see no_read_back), within the reader's own nesting limit.
 * Any violation aborts.
 */
#include <bson/bson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/buf.h"
#include "services/readmongo/readmongo.h"

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_readmongo_json: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* ---- a strict JSON checker (RFC 8259 grammar; UTF-8 checked apart) ---- */

typedef struct jp {
    const char *p, *end;
} jp;

static void ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int lit(jp *j, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static int digits(jp *j)
{
    const char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s;
}

static int number(jp *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!(j->p < j->end && *j->p >= '1' && *j->p <= '9' && digits(j)))
        return 0;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!digits(j))
            return 0;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digits(j))
            return 0;
    }
    return 1;
}

static int string(jp *j)
{
    if (j->p >= j->end || *j->p != '"')
        return 0;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return 1;
        if (c < 0x20)
            return 0;
        if (c != '\\')
            continue;
        if (j->p >= j->end)
            return 0;
        c = (unsigned char)*j->p++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++, j->p++)
                if (j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p) || !*j->p)
                    return 0;
        } else if (!strchr("\"\\/bfnrt", c) || !c) {
            return 0;
        }
    }
    return 0;
}

static int value(jp *j, int depth)
{
    if (depth > 1000)
        return 0;
    ws(j);
    if (j->p >= j->end)
        return 0;
    char c = *j->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 1;
        }
        for (;;) {
            if (c == '{') {
                ws(j);
                if (!string(j))
                    return 0;
                ws(j);
                if (!lit(j, ":"))
                    return 0;
            }
            if (!value(j, depth + 1))
                return 0;
            ws(j);
            if (lit(j, ","))
                continue;
            return lit(j, close == '}' ? "}" : "]");
        }
    }
    if (c == '"')
        return string(j);
    if (c == 't')
        return lit(j, "true");
    if (c == 'f')
        return lit(j, "false");
    if (c == 'n')
        return lit(j, "null");
    return number(j);
}

static int valid_json_object(const char *s, size_t len)
{
    jp j = {s, s + len};
    ws(&j);
    if (j.p >= j.end || *j.p != '{' || !value(&j, 0))
        return 0;
    ws(&j);
    return j.p == j.end && bson_utf8_validate(s, len, false);
}

/* ---- documents from bytes ---- */

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static unsigned u8(rd *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

static uint64_t u64(rd *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u8(r);
    return v;
}

/* Up to max bytes (length from the input) as a NUL-free string in out. */
static size_t text(rd *r, char *out, size_t max, int utf8)
{
    size_t len = u8(r) % (max + 1), i = 0;
    for (; i < len && r->n; i++)
        out[i] = (char)u8(r);
    len = i;
    out[len] = '\0';
    /* Keep valid UTF-8 as it is, else fold to ASCII: the interesting bytes
     * for JSON are the controls, quotes and backslashes. */
    if (utf8 && !bson_utf8_validate(out, len, false))
        for (i = 0; i < len; i++)
            out[i] = (char)((unsigned char)out[i] & 0x7f);
    for (i = 0; i < len; i++)
        if (!out[i])
            out[i] = '\x01';
    return len;
}

static void build(bson_t *doc, rd *r, int depth, int *dollar);

/* Appends one element chosen by the input; returns 0 at the end of this
 * document. */
static int element(bson_t *doc, rd *r, int depth, int *dollar)
{
    char key[17], s[65], s2[17];
    bson_t child, arr;
    bson_oid_t oid;
    bson_decimal128_t dec;

    if (!r->n)
        return 0;
    unsigned op = u8(r);
    if (op == 0xff)
        return 0; /* end of this document */
    text(r, key, 16, 1);
    if (key[0] == '$')
        *dollar = 1;
    switch (op % 22) {
    case 0: {
        static const double special[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, 1e308, 5e-324, 0.1};
        uint64_t bits = u64(r);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (op & 0x80)
            d = special[bits % 8];
        bson_append_double(doc, key, -1, d);
        break;
    }
    case 1: {
        size_t n = text(r, s, 64, 1);
        bson_append_utf8(doc, key, -1, s, (int)n);
        break;
    }
    case 2:
        bson_append_document_begin(doc, key, -1, &child);
        if (depth < 150)
            build(&child, r, depth + 1, dollar);
        bson_append_document_end(doc, &child);
        break;
    case 3:
        bson_append_array_begin(doc, key, -1, &arr);
        if (depth < 150)
            build(&arr, r, depth + 1, dollar); /* keys need not be "0", "1"... */
        bson_append_array_end(doc, &arr);
        break;
    case 4: {
        uint8_t bin[32];
        size_t n = u8(r) % (sizeof bin + 1);
        for (size_t i = 0; i < n && i < sizeof bin; i++) /* the bound again: gcc -O3 cannot see n <= 32 */
            bin[i] = (uint8_t)u8(r);
        static const bson_subtype_t subs[] = {BSON_SUBTYPE_BINARY, BSON_SUBTYPE_FUNCTION,
                                              BSON_SUBTYPE_UUID, BSON_SUBTYPE_MD5,
                                              BSON_SUBTYPE_USER, BSON_SUBTYPE_ENCRYPTED};
        bson_append_binary(doc, key, -1, subs[u8(r) % 6], bin, (uint32_t)n);
        break;
    }
    case 5: bson_append_undefined(doc, key, -1); break;
    case 6:
        for (int i = 0; i < 12; i++)
            oid.bytes[i] = (uint8_t)u8(r);
        bson_append_oid(doc, key, -1, &oid);
        break;
    case 7: bson_append_bool(doc, key, -1, u8(r) & 1); break;
    case 8: bson_append_date_time(doc, key, -1, (int64_t)u64(r)); break;
    case 9: bson_append_null(doc, key, -1); break;
    case 10:
        text(r, s, 64, 1);
        text(r, s2, 16, 1);
        bson_append_regex(doc, key, -1, s, s2);
        break;
    case 11:
        text(r, s, 64, 1);
        for (int i = 0; i < 12; i++)
            oid.bytes[i] = (uint8_t)u8(r);
        bson_append_dbpointer(doc, key, -1, s, &oid);
        break;
    case 12:
        text(r, s, 64, 1);
        bson_append_code(doc, key, -1, s);
        break;
    case 13: {
        size_t n = text(r, s, 64, 1);
        bson_append_symbol(doc, key, -1, s, (int)n);
        break;
    }
    case 14: {
        bson_t scope = BSON_INITIALIZER;
        text(r, s, 64, 1);
        if (depth < 150)
            build(&scope, r, depth + 1, dollar);
        bson_append_code_with_scope(doc, key, -1, s, &scope);
        bson_destroy(&scope);
        break;
    }
    case 15: bson_append_int32(doc, key, -1, (int32_t)(uint32_t)u64(r)); break;
    case 16: {
        uint64_t v = u64(r);
        bson_append_timestamp(doc, key, -1, (uint32_t)(v >> 32), (uint32_t)v);
        break;
    }
    case 17: bson_append_int64(doc, key, -1, (int64_t)u64(r)); break;
    case 18:
        dec.high = u64(r);
        dec.low = u64(r);
        bson_append_decimal128(doc, key, -1, &dec);
        break;
    case 19: bson_append_maxkey(doc, key, -1); break;
    case 20: bson_append_minkey(doc, key, -1); break;
    default: {
        /* A decimal128 from text: the special values and exponents. */
        static const char *const decs[] = {"NaN", "-Infinity", "Infinity", "-0", "1E+6144",
                                           "1E-6176", "12.50", "-1.000000000000000000000000000000000E+6144"};
        bson_decimal128_from_string(decs[u8(r) % 8], &dec);
        bson_append_decimal128(doc, key, -1, &dec);
        break;
    }
    }
    return 1;
}

static void build(bson_t *doc, rd *r, int depth, int *dollar)
{
    /* Bounded by the input: every element consumes at least one byte. */
    while (element(doc, r, depth, dollar))
        ;
}

/* Whether libbson's JSON reader may fail on our (valid) output for
 * reasons of its own: a key starting with '$' anywhere reads as an
 * Extended JSON wrapper; and libbson 1.23 fails to store some valid
 * DBPointers ($ref "" after a longer key: its buffer keeps the old text)
 * and $code values ("Error storing Javascript code"), so documents with
 * those types are checked by the grammar alone. */
static int no_read_back(bson_iter_t *it)
{
    while (bson_iter_next(it)) {
        bson_iter_t child;
        if (bson_iter_key(it)[0] == '$' || BSON_ITER_HOLDS_DBPOINTER(it) ||
            BSON_ITER_HOLDS_CODE(it) || BSON_ITER_HOLDS_CODEWSCOPE(it))
            return 1;
        if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) &&
            bson_iter_recurse(it, &child) && no_read_back(&child))
            return 1;
    }
    return 0;
}

/* Deepest nesting, the top level being 1; documents, arrays and scopes
 * count.  -1 when some level cannot be walked to its end: bson_validate
 * does not look into every CodeWScope scope. */
static int depth_of(bson_iter_t *it, int depth)
{
    int deepest = depth;
    while (bson_iter_next(it)) {
        bson_iter_t child;
        int d = 0;
        if (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) {
            if (!bson_iter_recurse(it, &child))
                return -1;
            d = depth_of(&child, depth + 1);
        } else if (BSON_ITER_HOLDS_CODEWSCOPE(it)) {
            uint32_t clen, slen;
            const uint8_t *scope;
            bson_t sdoc;
            bson_iter_codewscope(it, &clen, &slen, &scope);
            if (!bson_init_static(&sdoc, scope, slen) || !bson_iter_init(&child, &sdoc))
                return -1;
            d = depth_of(&child, depth + 1);
        }
        if (d < 0)
            return -1;
        if (d > deepest)
            deepest = d;
    }
    return it->err_off ? -1 : deepest;
}

static void render_and_check(const bson_t *doc)
{
    cd_buf out = {0};
    int rc = cd_readmongo__json(doc, &out);
    /* Valid means sound BSON; its text need not be UTF-8 (the writer makes
     * it so), and may hold NULs (escaped as \u0000). */
    int valid = bson_validate(doc, BSON_VALIDATE_NONE, NULL);
    bson_iter_t it;

    int depth = valid && bson_iter_init(&it, doc) ? depth_of(&it, 1) : -1;
    if (depth < 0)
        valid = 0;
    if (valid && depth <= CD_READMONGO_JSON_MAX_DEPTH && rc != 0) {
        char *j = bson_as_canonical_extended_json(doc, NULL);
        fprintf(stderr, "refused a valid document of depth %d: %.2000s\n", depth, j ? j : "?");
        bson_free(j);
        CHECK(rc == 0);
    }
    /* The bound holds for every kind of nesting, scopes included. */
    if (depth > CD_READMONGO_JSON_MAX_DEPTH)
        CHECK(rc == -1);
    if (rc == 0) {
        CHECK(out.p && !out.oom);
        CHECK(out.len <= 16 * (size_t)doc->len + 16);
        /* Whatever the bytes were, what the writer accepted is JSON. */
        CHECK(valid_json_object(out.p, out.len));
        if (valid) {
            /* libbson's reader stops at 100 JSON levels; a BSON level is
             * at most 2 of ours ({"$code":..,"$scope":{...}}) plus 2 for
             * a wrapper at the bottom. */
            if (depth <= 45 && bson_iter_init(&it, doc) && !no_read_back(&it)) {
                bson_t back;
                bson_error_t err;
                if (!bson_init_from_json(&back, out.p, (ssize_t)out.len, &err)) {
                    fprintf(stderr, "libbson cannot read back %.*s: %s\n",
                            (int)(out.len > 2000 ? 2000 : out.len), out.p, err.message);
                    CHECK(0);
                }
                bson_destroy(&back);
            }
        }
    }
    cd_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 3;
    data++;
    size--;

    if (mode == 0) {
        if (size < 5 || size > INT32_MAX)
            return 0;
        uint8_t *copy = malloc(size);
        CHECK(copy);
        memcpy(copy, data, size);
        uint32_t len = (uint32_t)size;
        for (int i = 0; i < 4; i++)
            copy[i] = (uint8_t)(len >> (8 * i));
        bson_t doc;
        if (bson_init_static(&doc, copy, size))
            render_and_check(&doc);
        free(copy);
    } else if (mode == 1) {
        rd r = {data, size};
        bson_t doc = BSON_INITIALIZER;
        int dollar = 0;
        build(&doc, &r, 1, &dollar);
        render_and_check(&doc);
        bson_destroy(&doc);
    } else {
        bson_json_reader_t *reader = bson_json_data_reader_new(false, 0);
        bson_error_t err;
        bson_t doc = BSON_INITIALIZER;
        bson_json_data_reader_ingest(reader, data, size);
        if (bson_json_reader_read(reader, &doc, &err) == 1)
            render_and_check(&doc);
        bson_destroy(&doc);
        bson_json_reader_destroy(reader);
    }
    return 0;
}
