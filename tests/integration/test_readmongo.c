/*
 * test_readmongo.c - integration tests of the readmongo service: the real
 * clusterd binary talks through mongo-c-driver to a real FerretDB (SQLite
 * backend) that each test starts with scripts/ferretdb.sh on a free loopback
 * port, in its own temp dir, and stops at the end.  No mocks.  Runs in
 * criterion's test processes; every wait is bounded.
 *
 * Statuses are checked by real requests: 200 (filter, projection, sort,
 * limit, skip, by-id), 400, 403, 404, 503 (database down, queue full) and
 * 504 (maxTimeMS, frozen database); a refused request never costs the
 * worker, and error bodies never carry the driver's words (hosts, ports).
 * Checks that refused requests never reach the database use a service
 * whose database does not exist: a 400 or 403 from it can only have been
 * decided before any I/O.
 *
 * Without FerretDB (not installed, and no Go >= 1.24 to build it: see
 * scripts/ferretdb.sh check) the suite cannot run: main says why and exits
 * 77, which ctest reports as skipped (SKIP_RETURN_CODE), never as passed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define HTTP_TIMEOUT_MS 15000

typedef struct fixture {
    char dir[64]; /* FerretDB's state */
    int db_port;
    int db_started;
    int dead_port; /* [deadmongo]'s port, where nothing listens */
    th_server srv;
    int srv_started;
} fixture;

static fixture fx;

/* Runs scripts/ferretdb.sh with args; returns its exit status or -1. */
static int ferretdb_sh(const char *cmd, const char *dir, const char *port)
{
    char script[512];
    snprintf(script, sizeof script, "%s/scripts/ferretdb.sh", th_src_dir());
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* The server it starts must not hold criterion's pipes open. */
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execl("/bin/bash", "bash", script, cmd, dir, port, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int db_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", fx.db_port);
    return ferretdb_sh("start", fx.dir, port);
}

static pid_t db_pid(void)
{
    char path[128], buf[32] = "";
    snprintf(path, sizeof path, "%s/ferretdb.pid", fx.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = '\0';
    fclose(f);
    return (pid_t)atoi(buf);
}

/* ---- seeding, through the real driver ---- */

#define OID(n) "65a0000000000000000000" n

static void seed(void)
{
    bson_error_t e;
    char uri[128];

    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=5000", fx.db_port);
    mongoc_init();
    mongoc_client_t *c = mongoc_client_new(uri);
    cr_assert(c);
    mongoc_client_set_error_api(c, 2);

    /* items: n 0..9, known fields; two extra documents with string ids. */
    mongoc_collection_t *items = mongoc_client_get_collection(c, "cdtest", "items");
    static const char *const groups[] = {"a", "b", "c"};
    for (int i = 0; i < 10; i++) {
        char hex[25];
        bson_oid_t oid;
        snprintf(hex, sizeof hex, OID("%02d"), i);
        bson_oid_init_from_string(&oid, hex);
        bson_t *d = BCON_NEW("_id", BCON_OID(&oid), "n", BCON_INT32(i), "group",
                             BCON_UTF8(groups[i % 3]), "price", BCON_DOUBLE(i * 1.5), "sub", "{",
                             "x", BCON_INT32(i * 10), "}", "tags", "[", BCON_UTF8("t"),
                             BCON_UTF8(i % 2 ? "odd" : "even"), "]", "at",
                             BCON_DATE_TIME(1704067200000LL + i * 1000LL));
        cr_assert(mongoc_collection_insert_one(items, d, NULL, NULL, &e), "%s", e.message);
        bson_destroy(d);
    }
    bson_t *s1 = BCON_NEW("_id", BCON_UTF8("str-id"), "n", BCON_INT32(100), "group", BCON_UTF8("s"));
    bson_t *s2 = BCON_NEW("_id", BCON_UTF8("with space"), "n", BCON_INT32(101), "group", BCON_UTF8("s"));
    cr_assert(mongoc_collection_insert_one(items, s1, NULL, NULL, &e), "%s", e.message);
    cr_assert(mongoc_collection_insert_one(items, s2, NULL, NULL, &e), "%s", e.message);
    bson_destroy(s1);
    bson_destroy(s2);

    /* secret: exists, but is not in any allowlist. */
    mongoc_collection_t *secret = mongoc_client_get_collection(c, "cdtest", "secret");
    bson_t *d = BCON_NEW("password", BCON_UTF8("hunter2"));
    cr_assert(mongoc_collection_insert_one(secret, d, NULL, NULL, &e), "%s", e.message);
    bson_destroy(d);

    /* big: enough documents that a regex scan outlasts maxTimeMS=1ms. */
    mongoc_collection_t *big = mongoc_client_get_collection(c, "cdtest", "big");
    bson_t *docs[500];
    for (int b = 0; b < 6; b++) {
        for (int k = 0; k < 500; k++)
            docs[k] = BCON_NEW("n", BCON_INT32(b * 500 + k), "s", BCON_UTF8("some text to scan"));
        cr_assert(mongoc_collection_insert_many(big, (const bson_t **)docs, 500, NULL, NULL, &e),
                  "%s", e.message);
        for (int k = 0; k < 500; k++)
            bson_destroy(docs[k]);
    }
    mongoc_collection_destroy(items);
    mongoc_collection_destroy(secret);
    mongoc_collection_destroy(big);
    mongoc_client_destroy(c);
    mongoc_cleanup();
}

/* ---- the cluster ---- */

/* One worker, so every request of a test reaches the same worker.
 * [readmongo]: the live database, with ETags.  [slowmongo]: same database, maxTimeMS
 * 1ms.  [tinymongo]: one thread, queue of one.  [streammongo] and
 * [wholemongo]: the same answers, streamed past 1k or always whole.
 * [deadmongo]: a port where nothing listens. */
static const char conf_fmt[] =
    "[cluster]\n"
    "listen = 127.0.0.1:%d\n"
    "workers = 1\n"
    "graceful_timeout = 5s\n"
    "[dummy]\n"
    "type = dummy\n"
    "route = /dummy\n"
    "[readmongo]\n"
    "type = readmongo\n"
    "route = /readmongo\n"
    "etag = on\n"
    "uri = mongodb://127.0.0.1:%d/\n"
    "database = cdtest\n"
    "collections = items, empty\n"
    "concurrency = 2\n"
    "default_limit = 5\n"
    "max_limit = 8\n"
    "max_skip = 50\n"
    "max_filter_size = 1k\n"
    "max_filter_depth = 4\n"
    "[slowmongo]\n"
    "type = readmongo\n"
    "route = /slowmongo\n"
    "uri = mongodb://127.0.0.1:%d/\n"
    "database = cdtest\n"
    "collections = big\n"
    "max_time = 1ms\n"
    "[tinymongo]\n"
    "type = readmongo\n"
    "route = /tinymongo\n"
    "uri = mongodb://127.0.0.1:%d/\n"
    "database = cdtest\n"
    "collections = items\n"
    "concurrency = 1\n"
    "queue_size = 1\n"
    "[streammongo]\n"
    "type = readmongo\n"
    "route = /streammongo\n"
    "etag = on\n"
    "uri = mongodb://127.0.0.1:%d/\n"
    "database = cdtest\n"
    "collections = big\n"
    "max_limit = 3000\n"
    "max_response_size = 64k\n"
    "stream_chunk = 1k\n"
    "[wholemongo]\n"
    "type = readmongo\n"
    "route = /wholemongo\n"
    "uri = mongodb://127.0.0.1:%d/\n"
    "database = cdtest\n"
    "collections = big\n"
    "max_limit = 3000\n"
    "max_response_size = 64k\n"
    "stream_chunk = 64m\n"
    "[deadmongo]\n"
    "type = readmongo\n"
    "route = /deadmongo\n"
    "uri = mongodb://127.0.0.1:%d/\n"
    "database = cdtest\n"
    "collections = items\n";

static void setup(void)
{
    memset(&fx, 0, sizeof fx);
    snprintf(fx.dir, sizeof fx.dir, "/tmp/cd-readmongo-XXXXXX");
    cr_assert(mkdtemp(fx.dir), "mkdtemp");
    fx.db_port = th_free_port();
    cr_assert_eq(db_start(), 0, "scripts/ferretdb.sh start failed (log in %s)", fx.dir);
    fx.db_started = 1;
    seed();
    fx.dead_port = th_free_port(); /* bound then released: nothing listens */
    cr_assert_eq(th_start(&fx.srv, 1, "/dummy", NULL, conf_fmt, fx.db_port, fx.db_port,
                          fx.db_port, fx.db_port, fx.db_port, fx.dead_port),
                 0, "clusterd did not start");
    fx.srv_started = 1;
}

static void teardown(void)
{
    int clean = fx.srv_started ? th_finish(&fx.srv) : 0;
    if (fx.db_started) {
        pid_t pid = db_pid();
        if (pid > 0)
            kill(pid, SIGCONT); /* a failed test may leave it stopped */
        ferretdb_sh("stop", fx.dir, NULL);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", fx.dir);
    }
    cr_assert_eq(clean, 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(readmongo, .init = setup, .fini = teardown, .timeout = 240);

/* ---- HTTP helpers ---- */

/* Percent-encodes everything but unreserved characters. */
static void enc(char *out, size_t outlen, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* GET path; the response is left in r (free with th_response_free). */
static void get(th_response *r, const char *path)
{
    th_http(r, fx.srv.port, "GET", path, NULL, HTTP_TIMEOUT_MS);
}

/* GET /readmongo/items?<name>=<json, encoded>[&extra] */
static void get_json(th_response *r, const char *route, const char *coll, const char *name,
                     const char *json, const char *extra)
{
    char e[3000], path[3500];
    enc(e, sizeof e, json);
    snprintf(path, sizeof path, "%s/%s?%s=%s%s%s", route, coll, name, e, extra ? "&" : "",
             extra ? extra : "");
    get(r, path);
}

static bson_t *body_bson(const th_response *r)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)r->body, (ssize_t)r->body_len, &e);
    cr_assert(b, "body is not JSON (%s): %s", e.message, r->body ? r->body : "(none)");
    return b;
}

/* The "n" field of each returned document, in order, as "1,2,3". */
static void ns_of(const th_response *r, char *out, size_t outlen)
{
    bson_t *b = body_bson(r);
    bson_iter_t it, arr;
    size_t o = 0;

    out[0] = '\0';
    cr_assert(bson_iter_init_find(&it, b, "documents") && BSON_ITER_HOLDS_ARRAY(&it), "%s",
              r->body);
    bson_iter_recurse(&it, &arr);
    while (bson_iter_next(&arr)) {
        bson_iter_t d;
        bson_iter_recurse(&arr, &d);
        int n = bson_iter_find(&d, "n") ? bson_iter_as_int64(&d) : -1;
        o += (size_t)snprintf(out + o, outlen - o, "%s%d", o ? "," : "", n);
    }
    bson_destroy(b);
}

static long long int_field(const th_response *r, const char *key)
{
    bson_t *b = body_bson(r);
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, b, key), "no %s in %s", key, r->body);
    long long v = bson_iter_as_int64(&it);
    bson_destroy(b);
    return v;
}

static void expect_status(th_response *r, int status, const char *what)
{
    cr_expect_eq(r->status, status, "%s: status %d, want %d: %s", what, r->status, status,
                 r->body ? r->body : "(no body)");
    if (status >= 400 && r->body) {
        cr_expect(strstr(r->body, "\"error\""), "%s: no error message: %s", what, r->body);
        cr_expect(strstr(r->headers, "application/json"), "%s: not JSON", what);
    }
}

/* ---- tests ---- */

Test(readmongo, find_filter_projection_sort_limit_skip)
{
    th_response r;
    char ns[256];

    /* Filter + sort descending + skip + limit: exactly these, in order. */
    get_json(&r, "/readmongo", "items", "filter", "{\"n\":{\"$gte\":2,\"$lt\":100}}",
             "sort=%7B%22n%22%3A-1%7D&skip=1&limit=3");
    expect_status(&r, 200, "find");
    cr_assert(strstr(r.headers, "application/json"), "%s", r.headers);
    ns_of(&r, ns, sizeof ns);
    cr_expect_str_eq(ns, "8,7,6");
    cr_expect_eq(int_field(&r, "count"), 3);
    cr_expect_eq(int_field(&r, "limit"), 3);
    cr_expect_eq(int_field(&r, "skip"), 1);
    th_response_free(&r);

    /* Default limit (5), natural order by n ascending via sort. */
    get(&r, "/readmongo/items?sort=%7B%22n%22%3A1%7D");
    expect_status(&r, 200, "default limit");
    ns_of(&r, ns, sizeof ns);
    cr_expect_str_eq(ns, "0,1,2,3,4");
    cr_expect_eq(int_field(&r, "limit"), 5);
    th_response_free(&r);

    /* A limit above max_limit (8) is capped, and says so. */
    get(&r, "/readmongo/items?sort=%7B%22n%22%3A1%7D&limit=1000");
    expect_status(&r, 200, "capped limit");
    ns_of(&r, ns, sizeof ns);
    cr_expect_str_eq(ns, "0,1,2,3,4,5,6,7");
    cr_expect_eq(int_field(&r, "limit"), 8);
    th_response_free(&r);

    /* Relaxed extended JSON in: a date, an ObjectId, nested and array fields. */
    get_json(&r, "/readmongo", "items", "filter",
             "{\"at\":{\"$gte\":{\"$date\":\"2024-01-01T00:00:07Z\"}},\"tags\":\"odd\"}",
             "sort=%7B%22n%22%3A1%7D");
    expect_status(&r, 200, "date + array filter");
    ns_of(&r, ns, sizeof ns);
    cr_expect_str_eq(ns, "7,9");
    th_response_free(&r);

    get_json(&r, "/readmongo", "items", "filter", "{\"_id\":{\"$oid\":\"" OID("03") "\"}}", NULL);
    expect_status(&r, 200, "ObjectId filter");
    ns_of(&r, ns, sizeof ns);
    cr_expect_str_eq(ns, "3");
    th_response_free(&r);

    get_json(&r, "/readmongo", "items", "filter", "{\"sub.x\":{\"$in\":[20,50]},\"group\":\"c\"}",
             NULL);
    expect_status(&r, 200, "nested filter");
    ns_of(&r, ns, sizeof ns);
    cr_expect_str_eq(ns, "2,5");
    th_response_free(&r);

    /* Projection: only the named fields (and no _id) come back; relaxed
     * extended JSON out ($date, $oid). */
    get_json(&r, "/readmongo", "items", "projection", "{\"n\":1,\"at\":1,\"_id\":0}",
             "filter=%7B%22n%22%3A1%7D");
    expect_status(&r, 200, "projection");
    cr_expect(strstr(r.body, "\"$date\":\"2024-01-01T00:00:01.000Z\""), "%s", r.body);
    cr_expect(!strstr(r.body, "_id"), "%s", r.body);
    cr_expect(!strstr(r.body, "group"), "%s", r.body);
    th_response_free(&r);

    get_json(&r, "/readmongo", "items", "filter", "{\"n\":2}", NULL);
    expect_status(&r, 200, "full document");
    cr_expect(strstr(r.body, "\"$oid\":\"" OID("02") "\""), "%s", r.body);
    cr_expect(strstr(r.body, "\"price\":3.0"), "%s", r.body);
    th_response_free(&r);

    /* An allowlisted collection that does not exist is just empty. */
    get(&r, "/readmongo/empty");
    expect_status(&r, 200, "empty collection");
    cr_expect_eq(int_field(&r, "count"), 0);
    th_response_free(&r);

    /* The index lists the allowlist. */
    get(&r, "/readmongo");
    expect_status(&r, 200, "index");
    cr_expect(strstr(r.body, "\"items\"") && strstr(r.body, "\"empty\""), "%s", r.body);
    th_response_free(&r);
}

Test(readmongo, by_id)
{
    th_response r;

    get(&r, "/readmongo/items/" OID("04"));
    expect_status(&r, 200, "ObjectId");
    cr_expect_eq(int_field(&r, "n"), 4);
    th_response_free(&r);

    get(&r, "/readmongo/items/str-id");
    expect_status(&r, 200, "string id");
    cr_expect_eq(int_field(&r, "n"), 100);
    th_response_free(&r);

    get(&r, "/readmongo/items/with%20space?projection=%7B%22group%22%3A1%7D");
    expect_status(&r, 200, "percent-encoded string id, projection");
    cr_expect(strstr(r.body, "\"group\":\"s\"") && !strstr(r.body, "\"n\""), "%s", r.body);
    th_response_free(&r);

    get(&r, "/readmongo/items/" OID("99"));
    expect_status(&r, 404, "absent ObjectId");
    th_response_free(&r);

    get(&r, "/readmongo/items/no-such-id");
    expect_status(&r, 404, "absent string id");
    th_response_free(&r);
}

/* GET path with an If-None-Match header (none when inm is NULL): the
 * status, the ETag answered ("" when none) and the body's length. */
static int get_inm(const char *path, const char *inm, char *etag, size_t etaglen, size_t *body_len)
{
    char req[1024];
    size_t len;
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s%s%sConnection: close\r\n\r\n", path,
                     inm ? "If-None-Match: " : "", inm ? inm : "", inm ? "\r\n" : "");
    char *raw = th_raw(fx.srv.port, req, (size_t)n, HTTP_TIMEOUT_MS, &len);
    cr_assert(raw, "no answer to GET %s", path);
    int status = 0;
    sscanf(raw, "HTTP/1.1 %d", &status);
    char *end = strstr(raw, "\r\n\r\n");
    cr_assert(end, "no end of headers: %s", raw);
    *end = '\0';
    *body_len = len - (size_t)(end + 4 - raw);
    etag[0] = '\0';
    const char *h = strcasestr(raw, "\r\nETag: ");
    if (h)
        snprintf(etag, etaglen, "%.*s", (int)strcspn(h + 8, "\r\n"), h + 8);
    free(raw);
    return status;
}

/* readmongo opts in to conditional GET (etag = on in its section): an
 * answer carries an ETag over its bytes; asking again with it gets 304 and
 * no body while the data is the same; another query, or a stale tag, gets
 * the documents.  A section without the key sends no ETag. */
Test(readmongo, etag_then_304)
{
    char tag[128], again[128], other[128];
    size_t blen;
    const char *path = "/readmongo/items?limit=3&sort=%7B%22n%22%3A1%7D";

    cr_assert_eq(get_inm(path, NULL, tag, sizeof tag, &blen), 200);
    cr_assert(tag[0] == '"' && blen > 0, "no ETag: '%s'", tag);
    cr_expect_eq(get_inm(path, tag, again, sizeof again, &blen), 304);
    cr_expect_eq(blen, 0);
    cr_expect_str_eq(again, tag);
    cr_expect_eq(get_inm(path, "\"stale\"", again, sizeof again, &blen), 200);
    cr_expect_str_eq(again, tag);
    cr_expect_gt(blen, 0);
    cr_expect_eq(get_inm("/readmongo/items?limit=2&sort=%7B%22n%22%3A1%7D", tag, other, sizeof other, &blen), 200);
    cr_expect(other[0] && strcmp(other, tag) != 0, "same ETag for another answer: %s", other);

    cr_expect_eq(get_inm("/tinymongo/items?limit=3", NULL, other, sizeof other, &blen), 200);
    cr_expect_str_eq(other, "", "ETag without etag = on: %s", other);
}

Test(readmongo, client_errors)
{
    th_response r;
    static const struct {
        const char *name, *json;
    } bad[] = {
        {"filter", "{\"n\":"},                          /* not JSON */
        {"filter", "[1,2]"},                            /* not an object */
        {"filter", "{}{\"$where\":\"1\"}"},              /* trailing data */
        {"filter", "{\"$where\":\"sleep(1000)\"}"},      /* refused operators */
        {"filter", "{\"$expr\":{\"$function\":{\"body\":\"1\",\"args\":[],\"lang\":\"js\"}}}"},
        {"filter", "{\"$or\":[{\"a\":{\"$accumulator\":{}}}]}"},
        {"projection", "{\"x\":{\"$function\":{}}}"},
        {"filter", "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}"}, /* depth 5 > 4 */
        {"sort", "{\"n\":\"sideways\"}"},                /* rejected by the server */
        {"filter", "{\"n\":{\"$nosuchop\":1}}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        get_json(&r, "/readmongo", "items", bad[i].name, bad[i].json, NULL);
        expect_status(&r, 400, bad[i].json);
        th_response_free(&r);
    }

    char big[1200];
    memset(big, ' ', sizeof big - 3);
    big[0] = '{';
    big[sizeof big - 3] = '}';
    big[sizeof big - 2] = '\0';
    get_json(&r, "/readmongo", "items", "filter", big, NULL);
    expect_status(&r, 400, "filter over max_filter_size");
    th_response_free(&r);

    static const char *const paths[] = {
        "/readmongo/items?limit=abc", "/readmongo/items?limit=-1", "/readmongo/items?limit=0",
        "/readmongo/items?skip=51",   "/readmongo/items?filter=%zz",
        "/readmongo/items/" OID("01") "?filter=%7B%7D",
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        get(&r, paths[i]);
        expect_status(&r, 400, paths[i]);
        th_response_free(&r);
    }

    get(&r, "/readmongo/secret");
    expect_status(&r, 403, "collection not allowlisted");
    cr_expect(!strstr(r.body, "hunter2"));
    th_response_free(&r);
    get(&r, "/readmongo/secret/anything");
    expect_status(&r, 403, "by id in a collection not allowlisted");
    th_response_free(&r);
    get(&r, "/readmongo/system.users");
    expect_status(&r, 403, "system collection");
    th_response_free(&r);

    get(&r, "/readmongo/items/a/b");
    expect_status(&r, 404, "too many segments");
    th_response_free(&r);

    th_http(&r, fx.srv.port, "POST", "/readmongo/items", "{}", HTTP_TIMEOUT_MS);
    cr_expect_eq(r.status, 405, "POST: %d", r.status);
    th_response_free(&r);
}

/* Issue 9: a malformed parameter on the by-id path got its 400 from a
 * helper that freed the request, and the lookup went on with it: the
 * worker died (double free) once the query came back.  Each one must be a
 * 400, and the worker that answered it must still be the same process
 * after a later query on the same queue has come back; the ASan build's log
 * must hold no report (th_finish in the suite's fini checks). */
Test(readmongo, malformed_params_on_the_by_id_path_answer_400_and_the_worker_lives)
{
    static const char *const paths[] = {
        "/readmongo/items/" OID("01") "?sort=%",
        "/readmongo/items/" OID("01") "?skip=%",
        "/readmongo/items/" OID("01") "?filter=%",
        "/readmongo/items/" OID("01") "?projection=%",
        "/readmongo/items/abc?sort=%zz",
        "/readmongo/items/abc?skip=%4",
        "/readmongo/items/abc?projection=%7B%22a%22%3A&sort=%7B%7D",
        "/readmongo/items/abc?projection=%7B&sort=%",
    };
    th_response r;
    pid_t before[4], after[4];

    int nw = th_workers(&fx.srv, before, 4);
    cr_assert_eq(nw, 1);
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        get(&r, paths[i]);
        expect_status(&r, 400, paths[i]);
        th_response_free(&r);
        /* A lookup on the same queue and done list: it comes back after
         * anything the refused request might have left queued. */
        get(&r, "/readmongo/items/" OID("02"));
        expect_status(&r, 200, "the lookup after it");
        th_response_free(&r);
    }
    get(&r, "/dummy");
    cr_expect_eq(r.status, 200);
    th_response_free(&r);
    cr_expect_eq(th_workers(&fx.srv, after, 4), 1);
    cr_expect_eq(after[0], before[0], "the worker was replaced");
    cr_expect(!th_log_contains(&fx.srv, "killed by signal", 0), "a worker died");
}

/* Issue 9: error bodies showed the driver's messages ("Failed to connect
 * to target host: 127.0.0.1:PORT").  Clients get a generic reason with the
 * right status; the log has the driver's detail. */
Test(readmongo, database_errors_show_no_driver_internals)
{
    static const char *const paths[] = {
        "/deadmongo/items",
        "/deadmongo/items/" OID("01"),
        "/deadmongo/items?filter=%7B%22n%22%3A1%7D",
    };
    char port[16];
    th_response r;

    snprintf(port, sizeof port, "%d", fx.dead_port);
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        get(&r, paths[i]);
        expect_status(&r, 503, paths[i]);
        cr_assert(r.body, "%s: no body", paths[i]);
        cr_expect(strstr(r.body, "database unreachable"), "%s: %s", paths[i], r.body);
        cr_expect(!strstr(r.body, "127.0.0.1"), "%s: %s", paths[i], r.body);
        cr_expect(!strstr(r.body, port), "%s: %s", paths[i], r.body);
        cr_expect(!strstr(r.body, "Failed to"), "%s: %s", paths[i], r.body);
        cr_expect(!strstr(r.body, "server selection"), "%s: %s", paths[i], r.body);
        th_response_free(&r);
    }
    /* The log has the detail: which service, and the driver's words. */
    cr_expect(th_log_contains(&fx.srv, port, 2000), "the log does not name the port");

    /* A query the server refuses: 400 with a generic reason, not the
     * server's own message. */
    get_json(&r, "/readmongo", "items", "sort", "{\"n\":\"sideways\"}", NULL);
    expect_status(&r, 400, "bad sort");
    cr_expect(strstr(r.body, "query rejected by the database"), "%s", r.body);
    cr_expect(!strstr(r.body, "sideways"), "%s", r.body);
    th_response_free(&r);
}

Test(readmongo, refused_requests_never_reach_the_database)
{
    th_response r;
    long long t0;

    /* [deadmongo] points at a port where nothing listens: anything that
     * reached the driver would come back 503 after server selection. */
    get(&r, "/deadmongo/items");
    expect_status(&r, 503, "valid query, no database");
    th_response_free(&r);

    t0 = th_now_ms();
    get_json(&r, "/deadmongo", "items", "filter", "{\"$where\":\"1\"}", NULL);
    expect_status(&r, 400, "$where with no database");
    th_response_free(&r);
    get_json(&r, "/deadmongo", "items", "filter", "{\"n\":", NULL);
    expect_status(&r, 400, "bad JSON with no database");
    th_response_free(&r);
    get(&r, "/deadmongo/secret");
    expect_status(&r, 403, "disallowed collection with no database");
    th_response_free(&r);
    get(&r, "/deadmongo/secret/x");
    expect_status(&r, 403, "disallowed collection by id with no database");
    th_response_free(&r);
    /* Well under the server selection timeout (2s): nothing waited on I/O. */
    cr_expect_lt(th_now_ms() - t0, 1500, "refusals took %lld ms", th_now_ms() - t0);

    /* The same with the live database frozen: no refusal waits on it. */
    pid_t pid = db_pid();
    cr_assert_gt(pid, 0);
    cr_assert_eq(th_freeze(pid), 0, "the database did not stop");
    t0 = th_now_ms();
    get_json(&r, "/readmongo", "items", "filter", "{\"$where\":\"1\"}", NULL);
    expect_status(&r, 400, "$where, database frozen");
    th_response_free(&r);
    get(&r, "/readmongo/secret");
    expect_status(&r, 403, "secret, database frozen");
    th_response_free(&r);
    long long took = th_now_ms() - t0;
    kill(pid, SIGCONT);
    cr_expect_lt(took, 1500, "refusals took %lld ms with the database frozen", took);
}

Test(readmongo, max_time_exceeded_is_504)
{
    th_response r;
    int got504 = 0;

    /* maxTimeMS=1 against a scan of 3000 documents: FerretDB reports
     * MaxTimeMSExpired.  A few tries, in case one scan is fast enough. */
    for (int i = 0; i < 5 && !got504; i++) {
        get_json(&r, "/slowmongo", "big", "filter", "{\"s\":{\"$regex\":\"nomatch$\"}}", NULL);
        cr_expect(r.status == 504 || r.status == 200, "status %d: %s", r.status, r.body);
        got504 = r.status == 504;
        if (got504) /* a generic reason, not the server's message */
            cr_expect(strstr(r.body, "\"error\":\"query over the time budget\""), "%s", r.body);
        th_response_free(&r);
    }
    cr_expect(got504, "no 504 in 5 tries");
}

typedef struct pending {
    pthread_t t;
    const char *path;
    th_response r;
    long long took_ms;
} pending;

static void *pending_run(void *arg)
{
    pending *p = arg;
    long long t0 = th_now_ms();
    th_http(&p->r, fx.srv.port, "GET", p->path, NULL, HTTP_TIMEOUT_MS);
    p->took_ms = th_now_ms() - t0;
    return NULL;
}

/* Polls path until 200 or timeout_ms; returns the last status. */
static int wait_for_200(const char *path, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    int status = 0;
    while (th_now_ms() < deadline) {
        th_response r;
        get(&r, path);
        status = r.status;
        th_response_free(&r);
        if (status == 200)
            break;
        usleep(200 * 1000);
    }
    return status;
}

/* The budget of one query while the database is down: queue wait, server
 * selection or connect + socket timeout, with slack for a loaded machine. */
#define DOWN_BUDGET_MS 8000

Test(readmongo, database_frozen_then_killed_then_back)
{
    th_response r;
    enum { N = 4 };
    pending p[N];

    /* Warm: the pool has connections to the database. */
    cr_assert_eq(wait_for_200("/readmongo/items", 10000), 200);
    cr_assert_eq(wait_for_200("/tinymongo/items", 10000), 200);

    pid_t pid = db_pid();
    cr_assert_gt(pid, 0);
    cr_assert_eq(th_freeze(pid), 0, "the database did not stop");

    /* Pending readmongo requests on the only worker... */
    memset(p, 0, sizeof p);
    for (int i = 0; i < N; i++) {
        p[i].path = "/readmongo/items?limit=1";
        pthread_create(&p[i].t, NULL, pending_run, &p[i]);
    }
    usleep(300 * 1000);
    /* ...do not hold up the loop: /dummy answers at once. */
    long long t0 = th_now_ms();
    get(&r, "/dummy");
    long long dummy_ms = th_now_ms() - t0;
    cr_expect_eq(r.status, 200);
    cr_expect_lt(dummy_ms, 1000, "/dummy took %lld ms while readmongo waited", dummy_ms);
    th_response_free(&r);

    /* A full queue answers 503 at once: [tinymongo] has one thread and a
     * queue of one, so of three requests at least one finds it full. */
    pending q[3];
    memset(q, 0, sizeof q);
    for (int i = 0; i < 3; i++) {
        q[i].path = "/tinymongo/items?limit=1";
        pthread_create(&q[i].t, NULL, pending_run, &q[i]);
        usleep(50 * 1000);
    }

    for (int i = 0; i < N; i++) {
        pthread_join(p[i].t, NULL);
        cr_expect(p[i].r.status == 503 || p[i].r.status == 504, "frozen: status %d after %lld ms: %s",
                  p[i].r.status, p[i].took_ms, p[i].r.body ? p[i].r.body : "");
        cr_expect_lt(p[i].took_ms, DOWN_BUDGET_MS, "frozen: answered after %lld ms",
                     p[i].took_ms);
        th_response_free(&p[i].r);
    }
    int full = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(q[i].t, NULL);
        cr_expect(q[i].r.status == 503 || q[i].r.status == 504, "tiny: status %d",
                  q[i].r.status);
        if (q[i].r.body && strstr(q[i].r.body, "queue is full")) {
            full++;
            cr_expect_lt(q[i].took_ms, 1000, "queue full took %lld ms", q[i].took_ms);
        }
        th_response_free(&q[i].r);
    }
    cr_expect_geq(full, 1, "no request found the queue full");

    /* The database thaws: readmongo serves again, no restart. */
    cr_assert_eq(kill(pid, SIGCONT), 0);
    cr_expect_eq(wait_for_200("/readmongo/items", 15000), 200, "no recovery after SIGCONT");

    /* Killed outright: 503 within the budget... */
    cr_assert_eq(kill(pid, SIGKILL), 0);
    for (int i = 0; i < 50 && kill(pid, 0) == 0; i++)
        usleep(100 * 1000);
    t0 = th_now_ms();
    get(&r, "/readmongo/items");
    long long took = th_now_ms() - t0;
    expect_status(&r, 503, "database killed");
    cr_expect_lt(took, DOWN_BUDGET_MS, "killed: answered after %lld ms", took);
    th_response_free(&r);
    get(&r, "/dummy");
    cr_expect_eq(r.status, 200);
    th_response_free(&r);

    /* ...and back on the same port and data: served again, same worker. */
    pid_t workers_before[4];
    int nw = th_workers(&fx.srv, workers_before, 4);
    cr_assert_eq(db_start(), 0, "FerretDB did not restart");
    cr_expect_eq(wait_for_200("/readmongo/items", 15000), 200, "no recovery after restart");
    get(&r, "/readmongo/items/" OID("05"));
    expect_status(&r, 200, "by id after restart");
    th_response_free(&r);
    pid_t workers_after[4];
    cr_expect_eq(th_workers(&fx.srv, workers_after, 4), nw);
    cr_expect_eq(workers_after[0], workers_before[0], "the worker was replaced");
}

/* ---- streamed answers (issue 11) ---- */

typedef struct raw_answer {
    int status;
    char head[4096];
    char *body; /* as sent (chunked or not), NUL-terminated */
    size_t body_len;
} raw_answer;

/* GET path over HTTP/1.<minor>, the connection closed after it. */
static void get_raw(raw_answer *a, const char *path, int minor)
{
    char req[1024];
    size_t len;
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.%d\r\nHost: t\r\nConnection: close\r\n\r\n",
                     path, minor);
    char *raw = th_raw(fx.srv.port, req, (size_t)n, HTTP_TIMEOUT_MS, &len);
    cr_assert(raw, "no answer to GET %s", path);
    char *end = strstr(raw, "\r\n\r\n");
    cr_assert(end, "no end of headers: %s", raw);
    a->status = 0;
    sscanf(raw, "HTTP/1.%*d %d", &a->status);
    snprintf(a->head, sizeof a->head, "%.*s\r\n", (int)(end - raw), raw);
    a->body_len = len - (size_t)(end + 4 - raw);
    a->body = malloc(a->body_len + 1);
    cr_assert(a->body);
    memcpy(a->body, end + 4, a->body_len);
    a->body[a->body_len] = '\0';
    free(raw);
}

static int has_header(const raw_answer *a, const char *name)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    return strcasestr(a->head, pat) != NULL;
}

/* Decodes a chunked body in place; returns the number of chunks, or -1
 * when it is malformed or lacks its last (zero-length) chunk. */
static int dechunk(raw_answer *a)
{
    const char *p = a->body, *end = a->body + a->body_len;
    size_t o = 0;
    int chunks = 0;
    for (;;) {
        char *q;
        unsigned long n = strtoul(p, &q, 16);
        if (q == p || end - q < 2 || memcmp(q, "\r\n", 2) != 0)
            return -1;
        p = q + 2;
        if (n == 0) {
            if (end - p != 2 || memcmp(p, "\r\n", 2) != 0)
                return -1;
            a->body_len = o;
            a->body[o] = '\0';
            return chunks;
        }
        if ((size_t)(end - p) < n + 2 || memcmp(p + n, "\r\n", 2) != 0)
            return -1;
        memmove(a->body + o, p, n);
        o += n;
        p += n + 2;
        chunks++;
    }
}

/* A result past stream_chunk arrives chunked, in several chunks, with no
 * Content-Length or ETag; de-chunked it is byte for byte the whole answer
 * of the same query (another section, same data, never streaming), which
 * has a Content-Length.  Checked for a complete answer and for one cut at
 * max_response_size ("truncated":true). */
Test(readmongo, large_results_stream_the_same_bytes)
{
    static const char *const queries[] = {
        "big?limit=500&sort=%7B%22n%22%3A1%7D",
        "big?limit=3000&sort=%7B%22n%22%3A1%7D",
    };
    for (size_t i = 0; i < 2; i++) {
        char path[256];
        raw_answer s, w;
        snprintf(path, sizeof path, "/streammongo/%s", queries[i]);
        get_raw(&s, path, 1);
        snprintf(path, sizeof path, "/wholemongo/%s", queries[i]);
        get_raw(&w, path, 1);
        cr_assert_eq(s.status, 200, "%s", s.head);
        cr_assert_eq(w.status, 200, "%s", w.head);
        cr_expect(strcasestr(s.head, "\r\nTransfer-Encoding: chunked\r\n"), "not chunked: %s",
                  s.head);
        cr_expect(!has_header(&s, "Content-Length") && !has_header(&s, "ETag"), "%s", s.head);
        cr_expect(has_header(&w, "Content-Length") && !has_header(&w, "Transfer-Encoding"),
                  "%s", w.head);
        int chunks = dechunk(&s);
        cr_assert_gt(chunks, 2, "chunks %d: %.200s", chunks, s.body);
        cr_assert_eq(s.body_len, w.body_len, "streamed %zu bytes, whole %zu", s.body_len,
                     w.body_len);
        cr_assert(memcmp(s.body, w.body, w.body_len) == 0, "bodies differ");
        bson_error_t e;
        bson_t *b = bson_new_from_json((const uint8_t *)s.body, (ssize_t)s.body_len, &e);
        cr_assert(b, "streamed body is not JSON: %s", e.message);
        bson_iter_t it;
        cr_assert(bson_iter_init_find(&it, b, "truncated") && BSON_ITER_HOLDS_BOOL(&it));
        cr_expect_eq(bson_iter_bool(&it), i == 1, "truncated");
        cr_assert(bson_iter_init_find(&it, b, "count"));
        if (i == 0)
            cr_expect_eq(bson_iter_as_int64(&it), 500);
        else
            cr_expect(bson_iter_as_int64(&it) > 500 && bson_iter_as_int64(&it) < 3000);
        /* Documents stop at max_response_size; the envelope's close (count,
         * "truncated") goes after, as for a whole answer. */
        cr_expect_leq(s.body_len, 64 * 1024 + 64, "over max_response_size: %zu", s.body_len);
        bson_destroy(b);
        free(s.body);
        free(w.body);
    }
}

/* A result that fits in one chunk is answered whole, as before: a
 * Content-Length and (etag = on) an ETag; asked again with it, 304. */
Test(readmongo, small_results_stay_whole_with_etag)
{
    raw_answer a;
    get_raw(&a, "/streammongo/big?limit=2&sort=%7B%22n%22%3A1%7D", 1);
    cr_assert_eq(a.status, 200, "%s", a.head);
    cr_expect(has_header(&a, "Content-Length") && has_header(&a, "ETag"), "%s", a.head);
    cr_expect(!has_header(&a, "Transfer-Encoding"), "%s", a.head);
    free(a.body);

    char tag[128];
    size_t blen;
    const char *path = "/streammongo/big?limit=2&sort=%7B%22n%22%3A1%7D";
    cr_assert_eq(get_inm(path, NULL, tag, sizeof tag, &blen), 200);
    cr_expect_eq(get_inm(path, tag, tag, sizeof tag, &blen), 304);
}

/* An HTTP/1.0 client gets a large result delimited by the close: no
 * chunked coding, no Content-Length, the same bytes as the whole answer. */
Test(readmongo, large_results_close_delimited_on_http10)
{
    raw_answer s, w;
    get_raw(&s, "/streammongo/big?limit=500&sort=%7B%22n%22%3A1%7D", 0);
    get_raw(&w, "/wholemongo/big?limit=500&sort=%7B%22n%22%3A1%7D", 0);
    cr_assert_eq(s.status, 200, "%s", s.head);
    cr_expect(!has_header(&s, "Transfer-Encoding") && !has_header(&s, "Content-Length"), "%s",
              s.head);
    cr_assert_eq(s.body_len, w.body_len, "streamed %zu bytes, whole %zu", s.body_len, w.body_len);
    cr_expect(memcmp(s.body, w.body, w.body_len) == 0, "bodies differ");
    free(s.body);
    free(w.body);
}

/* ---- main: the suite, or why it is skipped ---- */

int main(int argc, char *argv[])
{
    return th_main_with_ferretdb(argc, argv);
}
