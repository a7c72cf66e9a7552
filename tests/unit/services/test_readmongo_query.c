/*
 * test_readmongo_query.c - unit tests of the readmongo service's request
 * checks and error mapping (services/readmongo/readmongo_query.c): what is
 * refused before anything reaches the database; and the error bodies the
 * query threads write (exec.c).  Runs in criterion's test processes; no
 * database, no loop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <mongoc/mongoc.h>
#include <stdlib.h>
#include <string.h>

#include "services/readmongo/exec.h"
#include "services/readmongo/readmongo.h"

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

Test(readmongo_error_body, escapes_the_message)
{
    cd_readmongo_job *job = calloc(1, sizeof *job);

    cd_readmongo__job_fail(job, 400, "a\"b\\c\n\x01");
    cr_assert_eq(job->status, 400);
    cr_assert_str_eq(job->body, "{\"error\":\"a\\\"b\\\\c\\u000a\\u0001\",\"status\":400}");
    cr_assert_eq(job->body_len, strlen(job->body));
    cd_readmongo__job_fail(job, 503, "database unreachable");
    cr_assert_str_eq(job->body, "{\"error\":\"database unreachable\",\"status\":503}");
    cd_readmongo__job_free(job);
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

Test(readmongo_check_doc, looks_inside_codewscope_scopes)
{
    char err[256];
    bson_t *scope = BCON_NEW("$where", BCON_UTF8("1"));
    bson_t *doc = bson_new();
    bson_append_code_with_scope(doc, "f", -1, "x", scope);

    cr_assert_eq(cd_readmongo__check_doc("filter", doc, 16, err, sizeof err), -EPERM);
    /* The scope is a level of its own: {} 1, scope 2. */
    bson_t *plain = BCON_NEW("a", BCON_INT32(1));
    bson_t *doc2 = bson_new();
    bson_append_code_with_scope(doc2, "f", -1, "x", plain);
    cr_assert_eq(cd_readmongo__check_doc("filter", doc2, 2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cd_readmongo__check_doc("filter", doc2, 1, err, sizeof err), -ELOOP);
    /* Through the JSON parser too ($code/$scope is extended JSON). */
    bson_t out;
    cr_assert_eq(parse("{\"a\":{\"$code\":\"x\",\"$scope\":{\"b\":{\"$function\":1}}}}", 4096,
                       16, &out, err, sizeof err),
                 -EPERM, "%s", err);
    bson_destroy(&out);
    bson_destroy(scope);
    bson_destroy(doc);
    bson_destroy(plain);
    bson_destroy(doc2);
}

/* ---- cd_readmongo__check_request: the whole request, no cd_request ---- */

static cd_readmongo_conf test_conf(void)
{
    static char *colls[] = {"users", "items"};
    cd_readmongo_conf c = {
        .database = "demo",
        .collections = colls,
        .ncollections = 2,
        .default_limit = 5,
        .max_limit = 8,
        .max_skip = 50,
        .max_time_ms = 1000,
        .max_filter_size = 1024,
        .max_filter_depth = 4,
    };
    return c;
}

static int check_req(const char *subpath, const char *query, cd_readmongo_query *q,
                     cd_readmongo_refusal *r)
{
    cd_readmongo_conf c = test_conf();
    return cd_readmongo__check_request(&c, subpath, query, q, r);
}

/* Issue 9: on the by-id path, a malformed parameter was answered by a
 * helper (which freed the request) and the lookup went on.  Now every such
 * request is a refusal, and nothing is answered by the check itself. */
Test(readmongo_check_request, malformed_params_on_the_by_id_path_are_refusals)
{
    static const char *const queries[] = {
        "sort=%", "skip=%", "filter=%", "projection=%", "sort=%zz", "filter=%7B%7D",
        "skip=1", "sort=%7B%7D", "projection=%7B", "projection=%7B%22%24where%22%3A1%7D",
    };
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        cd_readmongo_query q;
        cd_readmongo_refusal r;
        cr_expect_eq(check_req("/users/abc", queries[i], &q, &r), -1, "%s", queries[i]);
        cr_expect_eq(r.status, 400, "%s: %d", queries[i], r.status);
        cr_expect(r.msg[0], "%s: no message", queries[i]);
        cd_readmongo__query_free(&q); /* harmless after a refusal */
    }
}

Test(readmongo_check_request, queries_and_refusals)
{
    cd_readmongo_query q;
    cd_readmongo_refusal r;
    bson_iter_t it;

    cr_assert_eq(check_req("", "", &q, &r), 0);
    cr_assert_eq(q.kind, CD_RM_INDEX);
    cr_assert_eq(check_req("/", "filter=%", &q, &r), 0, "the index takes no parameters");

    cr_assert_eq(check_req("/users/65a000000000000000000001", "projection=%7B%22n%22%3A1%7D", &q,
                           &r),
                 0, "%s", r.msg);
    cr_assert_eq(q.kind, CD_RM_GET);
    cr_assert_str_eq(q.coll, "users");
    cr_assert(bson_iter_init_find(&it, &q.filter, "_id") && BSON_ITER_HOLDS_OID(&it));
    cr_assert(bson_iter_init_find(&it, &q.opts, "projection"));
    cr_assert(bson_iter_init_find(&it, &q.opts, "limit") && bson_iter_as_int64(&it) == 1);
    cd_readmongo__query_free(&q);

    cr_assert_eq(check_req("/items", "filter=%7B%22n%22%3A2%7D&sort=%7B%22n%22%3A-1%7D&skip=3&limit=100",
                           &q, &r),
                 0, "%s", r.msg);
    cr_assert_eq(q.kind, CD_RM_FIND);
    cr_assert_eq(q.limit, 8, "capped by max_limit");
    cr_assert_eq(q.skip, 3);
    cr_assert(bson_iter_init_find(&it, &q.filter, "n") && bson_iter_as_int64(&it) == 2);
    cr_assert(bson_iter_init_find(&it, &q.opts, "sort"));
    cr_assert(bson_iter_init_find(&it, &q.opts, "maxTimeMS") && bson_iter_as_int64(&it) == 1000);
    cd_readmongo__query_free(&q);

    cr_assert_eq(check_req("/items", "limit=", &q, &r), -1);
    cr_assert_eq(r.status, 400);
    cr_assert_eq(check_req("/items", "limit=0", &q, &r), -1);
    cr_assert_eq(check_req("/items", "skip=51", &q, &r), -1);
    cr_assert_eq(check_req("/items", "filter=%7B%22%24where%22%3A1%7D", &q, &r), -1);
    cr_assert(strstr(r.msg, "$where"), "%s", r.msg);
    cr_assert_eq(check_req("/secret", "", &q, &r), -1);
    cr_assert_eq(r.status, 403);
    cr_assert_eq(check_req("/secret/x", "filter=%", &q, &r), -1);
    cr_assert_eq(r.status, 403, "the allowlist comes first");
    cr_assert_eq(check_req("/items/a/b", "", &q, &r), -1);
    cr_assert_eq(r.status, 404);
    char longpath[300];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    cr_assert_eq(check_req(longpath, "", &q, &r), -1);
    cr_assert_eq(r.status, 414);
}
