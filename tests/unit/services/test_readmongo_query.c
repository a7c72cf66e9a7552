/*
 * test_readmongo_query.c - unit tests of the readmongo service's request
 * checks and error mapping (services/readmongo_query.c): what is refused
 * before anything reaches the database.  Runs in criterion's test
 * processes; no database, no loop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <mongoc/mongoc.h>
#include <string.h>

#include "services/readmongo.h"

static int parse(const char *json, size_t max_size, int max_depth, bson_t *out, char *err,
                 size_t errlen)
{
    return cd_readmongo__parse_doc("filter", json, strlen(json), max_size, max_depth, out, err,
                                   errlen);
}

/* Parses json with roomy limits, expecting rc; returns nothing, frees. */
static void expect(const char *json, int rc)
{
    char err[256] = "";
    bson_t doc;

    int got = parse(json, 4096, 16, &doc, err, sizeof err);
    cr_expect_eq(got, rc, "%s: got %d (%s), want %d", json, got, err, rc);
    if (rc < 0)
        cr_expect(err[0] != '\0', "%s: no message", json);
    bson_destroy(&doc);
}

Test(readmongo_parse_doc, accepts_relaxed_and_canonical_extended_json)
{
    char err[256];
    bson_t doc;
    bson_iter_t it;

    cr_assert_eq(parse("{\"_id\":{\"$oid\":\"5f0000000000000000000001\"},"
                       "\"at\":{\"$date\":\"2024-01-01T00:00:00Z\"},"
                       "\"n\":{\"$numberLong\":\"5\"},\"x\":{\"$gte\":1.5}}",
                       4096, 16, &doc, err, sizeof err),
                 0, "%s", err);
    cr_assert(bson_iter_init_find(&it, &doc, "_id") && BSON_ITER_HOLDS_OID(&it));
    cr_assert(bson_iter_init_find(&it, &doc, "at") && BSON_ITER_HOLDS_DATE_TIME(&it));
    cr_assert_eq(bson_iter_date_time(&it), 1704067200000LL);
    cr_assert(bson_iter_init_find(&it, &doc, "n") && BSON_ITER_HOLDS_INT64(&it));
    bson_destroy(&doc);

    expect("{}", 0);
    expect("  {\"a\": [1, {\"b\": \"$where\"}]}\n", 0); /* a value, not an operator */
    expect("{\"a\":{\"$regex\":\"^x\"}}", 0);
}

Test(readmongo_parse_doc, refuses_what_is_not_one_object)
{
    expect("", -EINVAL);
    expect("   ", -EINVAL);
    expect("[1,2]", -EINVAL); /* libbson alone would take it as {"0":1,"1":2} */
    expect("null", -EINVAL);
    expect("\"s\"", -EINVAL);
    expect("{\"a\":1,}", -EINVAL);
    expect("{'a':1}", -EINVAL);
    expect("{\"a\":1} x", -EINVAL);
    /* libbson's bson_init_from_json would ignore the second object. */
    expect("{}{\"$where\":\"1\"}", -EINVAL);
    expect("{\"a\":1} {\"b\":2}", -EINVAL);
    expect("{\"a\":", -EINVAL);
}

Test(readmongo_parse_doc, refuses_code_running_operators_at_any_depth)
{
    expect("{\"$where\":\"sleep(100)\"}", -EPERM);
    expect("{\"a\":1,\"$where\":\"1\"}", -EPERM);
    expect("{\"$expr\":{\"$function\":{\"body\":\"x\",\"args\":[],\"lang\":\"js\"}}}", -EPERM);
    expect("{\"$and\":[{\"a\":1},{\"$or\":[{\"$where\":\"1\"}]}]}", -EPERM);
    expect("{\"x\":{\"$accumulator\":{}}}", -EPERM);
    expect("{\"a\":[[[{\"$function\":1}]]]}", -EPERM);

    char err[256];
    bson_t doc;
    cr_assert_eq(parse("{\"$expr\":{\"$function\":{}}}", 4096, 16, &doc, err, sizeof err), -EPERM);
    cr_assert(strstr(err, "$function"), "message names the operator: %s", err);
    cr_assert(bson_empty(&doc), "a refused document is left empty");
    bson_destroy(&doc);
}

Test(readmongo_parse_doc, caps_size_before_parsing)
{
    char err[256];
    bson_t doc;
    const char *json = "{\"a\":\"0123456789\"}"; /* 18 bytes */

    cr_assert_eq(parse(json, 18, 16, &doc, err, sizeof err), 0, "%s", err);
    bson_destroy(&doc);
    cr_assert_eq(parse(json, 17, 16, &doc, err, sizeof err), -E2BIG);
    bson_destroy(&doc);
    /* Too large wins even when the text is not JSON at all. */
    cr_assert_eq(parse("{{{{{{{{{{", 5, 16, &doc, err, sizeof err), -E2BIG);
    bson_destroy(&doc);
}

Test(readmongo_parse_doc, caps_nesting_depth)
{
    char err[256];
    bson_t doc;

    /* {} is depth 1; each nested document or array adds one. */
    cr_assert_eq(parse("{\"a\":{\"b\":[1]}}", 4096, 3, &doc, err, sizeof err), 0, "%s", err);
    bson_destroy(&doc);
    cr_assert_eq(parse("{\"a\":{\"b\":[{}]}}", 4096, 3, &doc, err, sizeof err), -ELOOP);
    bson_destroy(&doc);
    cr_assert_eq(parse("{}", 4096, 1, &doc, err, sizeof err), 0, "%s", err);
    bson_destroy(&doc);
    cr_assert_eq(parse("{\"a\":[]}", 4096, 1, &doc, err, sizeof err), -ELOOP);
    bson_destroy(&doc);

    /* Deeper than libbson's own parser stack: still a clean refusal. */
    char deep[1200];
    size_t n = 0;
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"a\":");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "1");
    for (int i = 0; i < 150; i++)
        deep[n++] = '}';
    deep[n] = '\0';
    int rc = parse(deep, sizeof deep, 16, &doc, err, sizeof err);
    cr_assert(rc == -ELOOP || rc == -EINVAL, "rc %d", rc);
    bson_destroy(&doc);
}

Test(readmongo_check_doc, checks_a_built_document)
{
    char err[256];
    bson_t *doc = BCON_NEW("a", "{", "$where", BCON_UTF8("1"), "}");

    cr_assert_eq(cd_readmongo__check_doc("projection", doc, 16, err, sizeof err), -EPERM);
    cr_assert(strstr(err, "projection"), "%s", err);
    bson_destroy(doc);
}

Test(readmongo_parse_count, digits_only_and_capped)
{
    long long v = -1;

    cr_assert_eq(cd_readmongo__parse_count("0", 10, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(cd_readmongo__parse_count("10", 10, &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(cd_readmongo__parse_count("11", 10, &v), -ERANGE);
    cr_assert_eq(cd_readmongo__parse_count("99999999999999999999999", 10, &v), -ERANGE);
    cr_assert_eq(cd_readmongo__parse_count("9223372036854775807", LLONG_MAX, &v), 0);
    cr_assert_eq(cd_readmongo__parse_count("9223372036854775808", LLONG_MAX, &v), -ERANGE);
    cr_assert_eq(cd_readmongo__parse_count("", 10, &v), -EINVAL);
    cr_assert_eq(cd_readmongo__parse_count("-1", 10, &v), -EINVAL);
    cr_assert_eq(cd_readmongo__parse_count("+1", 10, &v), -EINVAL);
    cr_assert_eq(cd_readmongo__parse_count("1 ", 10, &v), -EINVAL);
    cr_assert_eq(cd_readmongo__parse_count("0x1", 10, &v), -EINVAL);
}

Test(readmongo_split_path, collection_and_id)
{
    char coll[16], id[16];

    cr_assert_eq(cd_readmongo__split_path("", coll, sizeof coll, id, sizeof id), 0);
    cr_assert_eq(cd_readmongo__split_path("/", coll, sizeof coll, id, sizeof id), 0);
    cr_assert_eq(cd_readmongo__split_path("/users", coll, sizeof coll, id, sizeof id), 1);
    cr_assert_str_eq(coll, "users");
    cr_assert_eq(cd_readmongo__split_path("/users/", coll, sizeof coll, id, sizeof id), 1);
    cr_assert_str_eq(coll, "users");
    cr_assert_eq(cd_readmongo__split_path("/users/abc", coll, sizeof coll, id, sizeof id), 2);
    cr_assert_str_eq(coll, "users");
    cr_assert_str_eq(id, "abc");
    cr_assert_eq(cd_readmongo__split_path("/p/a%20b%2Fc", coll, sizeof coll, id, sizeof id), 2);
    cr_assert_str_eq(id, "a b/c");
}

Test(readmongo_split_path, malformed)
{
    char coll[8], id[8];

    cr_assert_eq(cd_readmongo__split_path("//x", coll, sizeof coll, id, sizeof id), -EINVAL);
    cr_assert_eq(cd_readmongo__split_path("/a/b/c", coll, sizeof coll, id, sizeof id), -EINVAL);
    cr_assert_eq(cd_readmongo__split_path("/a/%zz", coll, sizeof coll, id, sizeof id), -EINVAL);
    cr_assert_eq(cd_readmongo__split_path("/a/%4", coll, sizeof coll, id, sizeof id), -EINVAL);
    cr_assert_eq(cd_readmongo__split_path("/a/x%00", coll, sizeof coll, id, sizeof id), -EINVAL);
    cr_assert_eq(cd_readmongo__split_path("/abcdefgh", coll, sizeof coll, id, sizeof id),
                 -ENAMETOOLONG);
    cr_assert_eq(cd_readmongo__split_path("/a/abcdefgh", coll, sizeof coll, id, sizeof id),
                 -ENAMETOOLONG);
}

Test(readmongo_id_filter, objectid_when_it_parses_else_string)
{
    bson_t f;
    bson_iter_t it;

    bson_init(&f);
    cd_readmongo__id_filter("5f00000000000000000000aB", &f);
    cr_assert(bson_iter_init_find(&it, &f, "_id") && BSON_ITER_HOLDS_OID(&it));
    char hex[25];
    bson_oid_to_string(bson_iter_oid(&it), hex);
    cr_assert_str_eq(hex, "5f00000000000000000000ab");
    bson_destroy(&f);

    const char *strings[] = {"SKU-00001", "5f00000000000000000000a", "5f00000000000000000000zz", ""};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        bson_init(&f);
        cd_readmongo__id_filter(strings[i], &f);
        cr_assert(bson_iter_init_find(&it, &f, "_id") && BSON_ITER_HOLDS_UTF8(&it), "%s",
                  strings[i]);
        cr_assert_str_eq(bson_iter_utf8(&it, NULL), strings[i]);
        bson_destroy(&f);
    }
}

static int status_of(uint32_t domain, uint32_t code, int timed_out)
{
    bson_error_t e;

    bson_set_error(&e, domain, code, "x");
    return cd_readmongo__error_status(&e, timed_out);
}

Test(readmongo_error_status, maps_driver_errors)
{
    cr_assert_eq(status_of(MONGOC_ERROR_SERVER, 50, 0), 504);   /* MaxTimeMSExpired */
    cr_assert_eq(status_of(MONGOC_ERROR_SERVER, 2, 0), 400);    /* BadValue */
    cr_assert_eq(status_of(MONGOC_ERROR_SERVER, 15974, 0), 400); /* bad sort */
    cr_assert_eq(status_of(MONGOC_ERROR_SERVER, 238, 0), 400);  /* NotImplemented */
    cr_assert_eq(status_of(MONGOC_ERROR_SERVER, 91, 0), 503);   /* ShutdownInProgress */
    cr_assert_eq(status_of(MONGOC_ERROR_SERVER, 13, 0), 502);   /* Unauthorized */
    cr_assert_eq(status_of(MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE, 0),
                 503);
    cr_assert_eq(status_of(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, 1), 504);
    cr_assert_eq(status_of(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, 0), 503);
    cr_assert_eq(status_of(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT, 1), 503);
    cr_assert_eq(status_of(MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG, 0), 400);
    cr_assert_eq(status_of(MONGOC_ERROR_BSON, 1, 0), 502);
}

Test(readmongo_json_string, escapes)
{
    bson_string_t *b = bson_string_new(NULL);

    cd_readmongo__json_string(b, "a\"b\\c\n\x01");
    cr_assert_str_eq(b->str, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    bson_string_free(b, true);
}

Test(readmongo_valid_collection, names)
{
    cr_assert(cd_readmongo__valid_collection("users"));
    cr_assert(cd_readmongo__valid_collection("a.b-c_D9"));
    cr_assert(!cd_readmongo__valid_collection(""));
    cr_assert(!cd_readmongo__valid_collection("system.users"));
    cr_assert(!cd_readmongo__valid_collection(".x"));
    cr_assert(!cd_readmongo__valid_collection("a b"));
    cr_assert(!cd_readmongo__valid_collection("a$b"));
    cr_assert(!cd_readmongo__valid_collection("a%20"));
}
