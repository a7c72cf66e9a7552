/*
 * Unit tests for services/readmongo/readmongo_json.c: every BSON type to relaxed
 * Extended JSON, shortest doubles, escapes; and the property that matters
 * most: libbson reads our JSON back into the very same BSON.
 */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "clusterd/buf.h"
#include "services/readmongo/readmongo.h"

static char *render(const bson_t *doc)
{
    cd_buf b = {0};
    cr_assert_eq(cd_readmongo__json(doc, &b), 0);
    return b.p;
}

/* Our JSON, parsed back by libbson, equals the original document. */
static void assert_round_trip(const bson_t *doc)
{
    char *json = render(doc);
    bson_error_t err;
    bson_t *back = bson_new_from_json((const uint8_t *)json, -1, &err);
    cr_assert_not_null(back, "libbson cannot read %s: %s", json, err.message);
    cr_assert(bson_equal(doc, back), "round trip changed the document: %s", json);
    bson_destroy(back);
    free(json);
}

Test(readmongo_json, scalars_compact_and_relaxed)
{
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, "65a000000000000000000002");
    bson_t *d = BCON_NEW("s", BCON_UTF8("a\"b\\c\n\x01"), "i", BCON_INT32(-42), "l", BCON_INT64(9007199254740993LL),
                         "d", BCON_DOUBLE(74.77), "w", BCON_DOUBLE(3.0), "t", BCON_BOOL(true), "n", BCON_NULL,
                         "o", BCON_OID(&oid), "at", BCON_DATE_TIME(1704067201000LL));
    char *j = render(d);
    cr_assert_str_eq(j, "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"i\":-42,\"l\":9007199254740993,\"d\":74.77,\"w\":3.0,"
                        "\"t\":true,\"n\":null,\"o\":{\"$oid\":\"65a000000000000000000002\"},"
                        "\"at\":{\"$date\":\"2024-01-01T00:00:01.000Z\"}}");
    free(j);
    assert_round_trip(d);
    bson_destroy(d);
}

Test(readmongo_json, doubles_are_shortest_that_read_back)
{
    double vals[] = {0.1, 1.0 / 3.0, 1e300, -2.5e-308, 123456789012345678.0, 0.0, -0.0};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        bson_t *d = BCON_NEW("v", BCON_DOUBLE(vals[i]));
        assert_round_trip(d);
        bson_destroy(d);
    }
    bson_t *d = BCON_NEW("v", BCON_DOUBLE(0.1));
    char *j = render(d);
    cr_assert_str_eq(j, "{\"v\":0.1}");
    free(j);
    bson_destroy(d);
    d = BCON_NEW("a", BCON_DOUBLE(NAN), "b", BCON_DOUBLE(-INFINITY));
    j = render(d);
    cr_assert_str_eq(j, "{\"a\":{\"$numberDouble\":\"NaN\"},\"b\":{\"$numberDouble\":\"-Infinity\"}}");
    free(j);
    bson_destroy(d);
}

Test(readmongo_json, nested_and_special_types)
{
    bson_t *d = bson_new();
    bson_t child, arr;
    BSON_APPEND_DOCUMENT_BEGIN(d, "sub", &child);
    BSON_APPEND_INT32(&child, "x", 20);
    BSON_APPEND_ARRAY_BEGIN(&child, "tags", &arr);
    BSON_APPEND_UTF8(&arr, "0", "t");
    BSON_APPEND_DOUBLE(&arr, "1", 2.5);
    bson_append_array_end(&child, &arr);
    bson_append_document_end(d, &child);
    const uint8_t bin[] = {0xde, 0xad, 0xbe, 0xef, 0x01};
    BSON_APPEND_BINARY(d, "bin", BSON_SUBTYPE_BINARY, bin, sizeof bin);
    BSON_APPEND_REGEX(d, "re", "^a.*\"b", "i");
    BSON_APPEND_TIMESTAMP(d, "ts", 1700000000, 7);
    BSON_APPEND_DATE_TIME(d, "old", -86400000LL); /* 1969: not an ISO string in relaxed form */
    BSON_APPEND_MINKEY(d, "min");
    BSON_APPEND_MAXKEY(d, "max");
    bson_decimal128_t dec;
    bson_decimal128_from_string("12.50", &dec);
    BSON_APPEND_DECIMAL128(d, "dec", &dec);
    BSON_APPEND_CODE(d, "code", "function(){}");
    char *j = render(d);
    cr_assert(strstr(j, "\"sub\":{\"x\":20,\"tags\":[\"t\",2.5]}"), "%s", j);
    cr_assert(strstr(j, "\"bin\":{\"$binary\":{\"base64\":\"3q2+7wE=\",\"subType\":\"00\"}}"), "%s", j);
    cr_assert(strstr(j, "\"re\":{\"$regularExpression\":{\"pattern\":\"^a.*\\\"b\",\"options\":\"i\"}}"), "%s", j);
    cr_assert(strstr(j, "\"ts\":{\"$timestamp\":{\"t\":1700000000,\"i\":7}}"), "%s", j);
    cr_assert(strstr(j, "\"old\":{\"$date\":{\"$numberLong\":\"-86400000\"}}"), "%s", j);
    cr_assert(strstr(j, "\"min\":{\"$minKey\":1},\"max\":{\"$maxKey\":1}"), "%s", j);
    cr_assert(strstr(j, "\"dec\":{\"$numberDecimal\":\"12.50\"}"), "%s", j);
    cr_assert(strstr(j, "\"code\":{\"$code\":\"function(){}\"}"), "%s", j);
    free(j);
    assert_round_trip(d);
    bson_destroy(d);
}

Test(readmongo_json, utf8_passes_through)
{
    bson_t *d = BCON_NEW("name", BCON_UTF8("Zoë 東京 \xf0\x9f\x98\x80"));
    char *j = render(d);
    cr_assert_str_eq(j, "{\"name\":\"Zoë 東京 \xf0\x9f\x98\x80\"}");
    free(j);
    bson_destroy(d);
}

/* levels CodeWScopes, each the only value ("s") of the previous one's
 * scope: {"s": Code("x", {"s": Code("x", {... {} ...})})}, built as raw
 * BSON from the outside in (appending would copy the whole tail at each
 * level).  Returns a malloc'd buffer of *len bytes. */
static uint8_t *nested_codewscope(size_t levels, size_t *len)
{
    /* Per level: document length 4, type 1, key "s\0" 2, code_w_s length
     * 4, string length 4, "x\0" 2, then the inner document, then the
     * document's terminating 0. */
    const size_t per = 4 + 1 + 2 + 4 + 4 + 2 + 1;
    size_t total = 5 + per * levels;
    uint8_t *buf = malloc(total), *p = buf;
    cr_assert(buf);
    for (size_t i = 0; i < levels; i++) {
        uint32_t doc_len = (uint32_t)(total - per * i);
        uint32_t cws_len = doc_len - 4 - 1 - 2 - 1;
        memcpy(p, &doc_len, 4); /* little-endian host (x86-64, arm64) */
        p[4] = BSON_TYPE_CODEWSCOPE;
        memcpy(p + 5, "s", 2);
        memcpy(p + 7, &cws_len, 4);
        uint32_t slen = 2;
        memcpy(p + 11, &slen, 4);
        memcpy(p + 15, "x", 2);
        p += 17;
    }
    const uint8_t empty[5] = {5, 0, 0, 0, 0};
    memcpy(p, empty, 5);
    p += 5;
    memset(p, 0, levels); /* every document's terminator */
    *len = total;
    return buf;
}

/* Issue 9: the writer rendered a CodeWScope's scope with the depth reset
 * to the top, so scopes nested in scopes had no bound at all (a deep
 * enough document overflowed a query thread's stack). */
Test(readmongo_json, codewscope_scopes_count_towards_the_depth_bound)
{
    size_t len;
    uint8_t *raw = nested_codewscope(CD_READMONGO_JSON_MAX_DEPTH - 1, &len);
    bson_t doc;
    cr_assert(bson_init_static(&doc, raw, len));
    cr_assert(bson_validate(&doc, BSON_VALIDATE_NONE, NULL));
    cd_buf b = {0};
    /* The top level and CD_READMONGO_JSON_MAX_DEPTH - 1 scopes: exactly at
     * the bound. */
    cr_assert_eq(cd_readmongo__json(&doc, &b), 0);
    cr_assert(strncmp(b.p, "{\"s\":{\"$code\":\"x\",\"$scope\":{\"s\":", 31) == 0, "%.64s", b.p);
    cd_buf_free(&b);
    free(raw);

    raw = nested_codewscope(CD_READMONGO_JSON_MAX_DEPTH, &len);
    cr_assert(bson_init_static(&doc, raw, len));
    cd_buf b2 = {0};
    cr_assert_eq(cd_readmongo__json(&doc, &b2), -1, "one scope too deep was rendered");
    cd_buf_free(&b2);
    free(raw);

    /* Far deeper than any stack would take: refused, not a crash. */
    raw = nested_codewscope(200000, &len);
    cr_assert(bson_init_static(&doc, raw, len));
    cd_buf b3 = {0};
    cr_assert_eq(cd_readmongo__json(&doc, &b3), -1);
    cd_buf_free(&b3);
    free(raw);
}

/* Documents, arrays and scopes count alike. */
Test(readmongo_json, mixed_nesting_is_bounded)
{
    bson_t *docs[CD_READMONGO_JSON_MAX_DEPTH + 1];
    /* docs[i] nests i levels below the top: alternate arrays, documents
     * and scopes. */
    docs[0] = BCON_NEW("v", BCON_INT32(1));
    for (int i = 1; i <= CD_READMONGO_JSON_MAX_DEPTH; i++) {
        docs[i] = bson_new();
        switch (i % 3) {
        case 0: BSON_APPEND_DOCUMENT(docs[i], "d", docs[i - 1]); break;
        case 1: bson_append_code_with_scope(docs[i], "c", -1, "f()", docs[i - 1]); break;
        default: {
            bson_t arr;
            BSON_APPEND_ARRAY_BEGIN(docs[i], "a", &arr);
            BSON_APPEND_DOCUMENT(&arr, "0", docs[i - 1]);
            bson_append_array_end(docs[i], &arr);
            break;
        }
        }
    }
    cd_buf b = {0};
    /* docs[k] has 1 + k levels (arrays add one more: the array and the
     * document inside it). */
    int at_bound = -1;
    for (int i = 0; i <= CD_READMONGO_JSON_MAX_DEPTH; i++) {
        b.len = 0;
        int rc = cd_readmongo__json(docs[i], &b);
        if (rc < 0) {
            at_bound = i;
            break;
        }
    }
    cr_assert_gt(at_bound, 0, "no nesting was refused");
    cd_buf_free(&b);
    for (int i = 0; i <= CD_READMONGO_JSON_MAX_DEPTH; i++)
        bson_destroy(docs[i]);
}

/* Found by fuzz_readmongo_json (regression input
 * tests/fuzz/regressions/readmongo_json/invalid-utf8-string): strings
 * from the database are not always UTF-8, and the writer copied their
 * bytes into the JSON text, which RFC 8259 requires to be UTF-8 (strict
 * clients refuse the whole answer).  Each byte that does not start a valid
 * sequence becomes U+FFFD; valid sequences pass through. */
Test(readmongo_json, invalid_utf8_becomes_replacement_characters)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"Z\x8c\xc3\xab", "Z\\ufffd\xc3\xab"},            /* lone continuation byte */
        {"\xc3", "\\ufffd"},                             /* truncated sequence */
        {"\xc0\xaf", "\\ufffd\\ufffd"},                  /* overlong '/' */
        {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},       /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* above U+10FFFF */
        {"\xff", "\\ufffd"},
        {"a\xe6\x9d\xb1\xf0\x9f\x98\x80z", "a\xe6\x9d\xb1\xf0\x9f\x98\x80z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bson_t *d = bson_new();
        /* As a value, as a key, and in a regex. */
        bson_append_utf8(d, "v", -1, cases[i].in, -1);
        bson_append_int32(d, cases[i].in, -1, 1);
        bson_append_regex(d, "r", -1, cases[i].in, "");
        char *j = render(d);
        char want[256];
        snprintf(want, sizeof want,
                 "{\"v\":\"%s\",\"%s\":1,\"r\":{\"$regularExpression\":{\"pattern\":\"%s\","
                 "\"options\":\"\"}}}",
                 cases[i].out, cases[i].out, cases[i].out);
        cr_expect_str_eq(j, want, "case %zu", i);
        cr_expect(bson_utf8_validate(j, strlen(j), false), "case %zu: not UTF-8", i);
        free(j);
        bson_destroy(d);
    }
}

/* A document whose elements cannot all be walked (a corrupt length deep
 * inside) is an error, not an answer cut short at the damage. */
Test(readmongo_json, corrupt_bson_is_an_error_not_a_short_answer)
{
    bson_t *d = BCON_NEW("a", BCON_INT32(1), "sub", "{", "x", BCON_INT32(2), "y", BCON_INT32(3), "}");
    uint8_t *raw = malloc(d->len);
    memcpy(raw, bson_get_data(d), d->len);
    /* "sub"'s element "y": change its type to an int64, which reads 4
     * bytes past the end of the subdocument. */
    for (uint32_t i = 0; i + 2 < d->len; i++)
        if (raw[i] == BSON_TYPE_INT32 && raw[i + 1] == 'y' && raw[i + 2] == '\0')
            raw[i] = BSON_TYPE_INT64;
    bson_t bad;
    cr_assert(bson_init_static(&bad, raw, d->len));
    cd_buf b = {0};
    cr_expect_eq(cd_readmongo__json(&bad, &b), -1, "rendered: %s", b.p ? b.p : "");
    cd_buf_free(&b);
    free(raw);
    bson_destroy(d);
}
