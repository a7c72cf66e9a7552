/*
 * Unit tests for what a route adds (issue 11): parameters (http/router.c
 * matches them, request.c decodes them), and the per-route options of
 * http/routeconf.c: CORS (cors.c: preflight answered 204 by the router,
 * Access-Control-Allow-Origin on answers), gzip (gzip.c: by Accept-Encoding
 * and size, Vary always) and conditional GET (etag.c: ETag, 304).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "feat_fixture.h"

static void fini(void) { feat_teardown(); }
TestSuite(http_routes, .init = setup, .fini = fini);

/* ---- the router on its own ---- */

Test(http_routes, parameters_match_one_segment_and_the_longest_literal_wins)
{
    cd_route s[] = {{.prefix = "/users", .len = 6}, {.prefix = "/users/:id", .len = 10},
                    {.prefix = "/users/me", .len = 9}, {.prefix = "/users/:id/posts/:post", .len = 22}};
    const cd_route **r;
    cr_assert_eq(cd_router_build(s, 4, &r), 0);
    cd_route_match m;
    cr_assert_eq(cd_router_find(r, 4, "/users/me", &m), &s[2]);
    cr_assert_eq(cd_router_find(r, 4, "/users/42", &m), &s[1]);
    cr_assert_eq(m.nparams, 1);
    cr_assert_eq(m.params[0].off, 7);
    cr_assert_eq(m.params[0].len, 2);
    cr_assert_eq(m.params[0].name_len, 2);
    cr_assert_eq(strncmp(m.params[0].name, "id", 2), 0);
    cr_assert_eq(m.matched, 9);
    cr_assert_eq(cd_router_find(r, 4, "/users/42/x", &m), &s[1], "prefix semantics: the rest is the subpath");
    cr_assert_eq(m.matched, 9);
    cr_assert_eq(cd_router_find(r, 4, "/users/42/posts/7", &m), &s[3]);
    cr_assert_eq(m.nparams, 2);
    cr_assert_eq(m.params[1].off, 16);
    cr_assert_eq(cd_router_find(r, 4, "/users", &m), &s[0], "an empty segment is no parameter");
    cr_assert_eq(cd_router_find(r, 4, "/users/", &m), &s[0]);
    cr_assert_eq(cd_router_find(r, 4, "/users/me/x", &m), &s[2]);
    cr_assert_null(cd_router_find(r, 4, "/usersx", &m));
    cr_assert_eq(cd_router_match(r, 4, "/users/9"), &s[1], "cd_router_match is find without details");
    free(r);
}

Test(http_routes, route_check)
{
    cr_assert_eq(cd_router_check("/a"), 0);
    cr_assert_eq(cd_router_check("/users/:id/posts/:p_2"), 0);
    cr_assert_eq(cd_router_check("/a:b"), -EINVAL, "a parameter is a whole segment");
    cr_assert_eq(cd_router_check("/a/:"), -EINVAL);
    cr_assert_eq(cd_router_check("/a/:b-c"), -EINVAL);
    cr_assert_eq(cd_router_check("/:a/:b/:c/:d/:e/:f/:g/:h"), 0);
    cr_assert_eq(cd_router_check("/:a/:b/:c/:d/:e/:f/:g/:h/:i"), -EINVAL, "at most 8");
}

/* ---- parameters through a request ---- */

static void param_handle(void *arg, cd_request *r)
{
    (void)arg;
    const char *id = cd_request_param(r, "id"), *no = cd_request_param(r, "nope");
    char out[256];
    int n = snprintf(out, sizeof out, "id=[%s] sub=[%s] no=%s", id ? id : "(null)", cd_request_subpath(r),
                     no ? no : "(null)");
    cd_request_respond(r, 200, "text/plain", out, (size_t)n);
}

static cd_route param_route[] = {
    {.prefix = "/users/:id", .len = 10, .name = "u", .methods = CD_M_GET, .handle = param_handle}};

Test(http_routes, a_parameter_is_read_percent_decoded)
{
    feat_routes(param_route, 1);
    put("GET /users/42/posts?x=1 HTTP/1.1\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "id=[42] sub=[/posts] no=(null)"), "%s", got);
    put("GET /users/a%20b%2Fc HTTP/1.1\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "id=[a b/c] sub=[]"), "%s", got);
    put("GET /users/%zz HTTP/1.1\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 400"), "a bad escape: %s", got);
    cr_assert(strstr(got, "bad route parameter"), "%s", got);
}

Test(http_routes, a_parameter_decoding_to_nul_is_refused)
{
    feat_routes(param_route, 1);
    put("GET /users/a%00 HTTP/1.1\r\n\r\nGET /users/a%2 HTTP/1.1\r\n\r\n");
    pump(2, 1000);
    cr_assert_eq(count(got, "HTTP/1.1 400"), 2, "%s", got);
}

/* ---- CORS ---- */

static void plain_handle(void *arg, cd_request *r)
{
    const char *body = arg ? arg : "ok";
    cd_request_respond(r, 200, "text/plain", body, strlen(body));
}

static cd_route_opts cors_opts = {.cors_origins = "https://a.example https://b.example", .cors_headers = "X-A",
                                  .cors_max_age = 600, .gzip_min_size = 1024};
static cd_route cors_route[] = {{.prefix = "/c", .len = 2, .name = "c", .methods = CD_M_GET | CD_M_POST,
                                 .handle = plain_handle, .opts = &cors_opts},
                                {.prefix = "/n", .len = 2, .name = "n", .methods = CD_M_GET, .handle = plain_handle}};

Test(http_routes, cors_preflight_is_answered_by_the_router)
{
    feat_routes(cors_route, 2);
    put("OPTIONS /c/x HTTP/1.1\r\nOrigin: https://b.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 204"), "%s", got);
    cr_assert(strstr(got, "Access-Control-Allow-Origin: https://b.example\r\n"), "%s", got);
    cr_assert(strstr(got, "Vary: Origin\r\n"), "%s", got);
    cr_assert(strstr(got, "Access-Control-Allow-Methods: GET, POST\r\n"), "the route's methods: %s", got);
    cr_assert(strstr(got, "Access-Control-Allow-Headers: X-A\r\n"), "%s", got);
    cr_assert(strstr(got, "Access-Control-Max-Age: 600\r\n"), "%s", got);
    cr_assert_null(strstr(got, "Credentials"), "%s", got);

    put("OPTIONS /c HTTP/1.1\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 204"), "%s", got);
    cr_assert_null(strstr(got, "Access-Control"), "an origin not listed gets nothing: %s", got);

    put("OPTIONS /c HTTP/1.1\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 405"), "not a preflight: the route's methods decide: %s", got);
    put("OPTIONS /n HTTP/1.1\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 405"), "CORS off: %s", got);
    cr_assert_null(strstr(got, "Access-Control"), "%s", got);
}

Test(http_routes, cors_answers_carry_the_allowed_origin)
{
    feat_routes(cors_route, 2);
    put("GET /c HTTP/1.1\r\nOrigin: https://a.example\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 200"), "%s", got);
    cr_assert(strstr(got, "Access-Control-Allow-Origin: https://a.example\r\n"), "%s", got);
    put("GET /c HTTP/1.1\r\nOrigin: https://c.example\r\n\r\n");
    pump(1, 1000);
    cr_assert_null(strstr(got, "Access-Control"), "%s", got);
    put("GET /c HTTP/1.1\r\n\r\n");
    pump(1, 1000);
    cr_assert_null(strstr(got, "Access-Control"), "%s", got);

    cors_opts.cors_origins = "*";
    put("GET /c HTTP/1.1\r\nOrigin: https://any.example\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "Access-Control-Allow-Origin: *\r\n"), "%s", got);
    cors_opts.cors_credentials = 1;
    put("GET /c HTTP/1.1\r\nOrigin: https://any.example\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "Access-Control-Allow-Origin: https://any.example\r\n"), "echoed with credentials: %s",
              got);
    cr_assert(strstr(got, "Access-Control-Allow-Credentials: true\r\n"), "%s", got);
    cors_opts.cors_origins = "https://a.example https://b.example";
    cors_opts.cors_credentials = 0;
}

/* ---- gzip ---- */

static char big[4000];
static cd_route_opts gz_opts = {.gzip = 1, .gzip_min_size = 1000};
static cd_route gz_route[] = {
    {.prefix = "/big", .len = 4, .name = "big", .methods = CD_M_GET, .handle = plain_handle, .arg = big, .opts = &gz_opts},
    {.prefix = "/small", .len = 6, .name = "small", .methods = CD_M_GET, .handle = plain_handle, .opts = &gz_opts},
};

static void fill_big(void)
{
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = "abcdefgh"[(i * 7 + i / 13) % 8];
    big[sizeof big - 1] = '\0';
}

/* The body of the answer in got, gunzipped into out. */
static size_t gunzip_body(char *out, size_t cap)
{
    const char *body = strstr(got, "\r\n\r\n") + 4;
    const char *cl = strstr(got, "Content-Length: ");
    cr_assert_not_null(cl);
    size_t len = strtoul(cl + 16, NULL, 10);
    cr_assert_eq((size_t)(got + got_len - body), len);
    z_stream z = {0};
    cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)body;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = z.total_out;
    inflateEnd(&z);
    return n;
}

Test(http_routes, gzip_by_accept_encoding_and_size)
{
    fill_big();
    feat_routes(gz_route, 2);
    put("GET /big HTTP/1.1\r\nAccept-Encoding: br, gzip;q=0.8\r\n\r\n");
    pump(0, 100);
    cr_assert(strstr(got, "Content-Encoding: gzip\r\n"), "%s", got);
    cr_assert(strstr(got, "Vary: Accept-Encoding\r\n"), "%s", got);
    char out[8192];
    size_t n = gunzip_body(out, sizeof out);
    cr_assert_eq(n, strlen(big));
    cr_assert_eq(memcmp(out, big, n), 0);

    put("GET /big HTTP/1.1\r\n\r\n");
    pump(0, 100);
    cr_assert_null(strstr(got, "Content-Encoding"), "not asked for");
    cr_assert(strstr(got, "Vary: Accept-Encoding\r\n"), "Vary all the same: %s", got);
    cr_assert(strstr(got, "Content-Length: 3999\r\n"), "%s", got);
    put("GET /big HTTP/1.1\r\nAccept-Encoding: gzip;q=0, *\r\n\r\n");
    pump(0, 100);
    cr_assert_null(strstr(got, "Content-Encoding"), "refused by name: %s", got);
    put("GET /small HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n");
    pump(1, 1000);
    cr_assert_null(strstr(got, "Content-Encoding"), "under gzip_min_size: %s", got);
    cr_assert(strstr(got, "\r\n\r\nok"), "%s", got);
}

Test(http_routes, accept_encoding_parsing)
{
    cr_assert(cd_http__accepts_gzip("gzip"));
    cr_assert(cd_http__accepts_gzip("deflate, GZIP"));
    cr_assert(cd_http__accepts_gzip("x-gzip"));
    cr_assert(cd_http__accepts_gzip("*"));
    cr_assert(cd_http__accepts_gzip("gzip; q=0.001"));
    cr_assert_not(cd_http__accepts_gzip(NULL));
    cr_assert_not(cd_http__accepts_gzip(""));
    cr_assert_not(cd_http__accepts_gzip("br, deflate"));
    cr_assert_not(cd_http__accepts_gzip("gzip;q=0"));
    cr_assert_not(cd_http__accepts_gzip("gzip;q=0.000, *"));
    cr_assert_not(cd_http__accepts_gzip("*;q=0"));
    cr_assert_not(cd_http__accepts_gzip("gzipx"));
}

/* ---- ETag ---- */

static cd_route_opts etag_opts = {.etag = 1, .gzip_min_size = 1024};
static cd_route etag_route[] = {{.prefix = "/e", .len = 2, .name = "e", .methods = CD_M_GET | CD_M_HEAD | CD_M_POST,
                                 .handle = plain_handle, .arg = "the body", .opts = &etag_opts}};

Test(http_routes, etag_and_if_none_match)
{
    feat_routes(etag_route, 1);
    put("GET /e HTTP/1.1\r\n\r\n");
    pump(1, 1000);
    const char *e = strstr(got, "\r\nETag: \"");
    cr_assert_not_null(e, "%s", got);
    char tag[64];
    snprintf(tag, sizeof tag, "%.*s", (int)strcspn(e + 8, "\r"), e + 8);
    char want[64];
    cd_http__etag("the body", 8, 0, want);
    cr_assert_str_eq(tag, want);

    char req[256];
    snprintf(req, sizeof req, "GET /e HTTP/1.1\r\nIf-None-Match: \"x\", W/%s\r\n\r\n", tag);
    put(req);
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 304"), "%s", got);
    cr_assert(strstr(got, tag), "the 304 carries the tag: %s", got);
    cr_assert(strstr(got, "\r\n\r\n") == got + got_len - 4, "no body: %s", got);
    cr_assert_null(strstr(got, "Content-Length"), "%s", got);

    put("GET /e HTTP/1.1\r\nIf-None-Match: \"other\"\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 200"), "%s", got);
    cr_assert(strstr(got, "\r\n\r\nthe body"), "%s", got);
    put("POST /e HTTP/1.1\r\nIf-None-Match: *\r\nContent-Length: 0\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 200"), "a POST is not conditional: %s", got);
    cr_assert_null(strstr(got, "ETag"), "%s", got);
    put("HEAD /e HTTP/1.1\r\nIf-None-Match: *\r\n\r\n");
    pump(1, 1000);
    cr_assert(strstr(got, "HTTP/1.1 304"), "%s", got);
}

Test(http_routes, etag_match_parsing)
{
    cr_assert(cd_http__etag_match("\"a\"", "\"a\""));
    cr_assert(cd_http__etag_match(" \"b\" , W/\"a\"", "\"a\""));
    cr_assert(cd_http__etag_match("*", "\"a\""));
    cr_assert_not(cd_http__etag_match("\"ab\"", "\"a\""));
    cr_assert_not(cd_http__etag_match("a", "\"a\""));
    cr_assert_not(cd_http__etag_match("\"a", "\"a\""));
    cr_assert_not(cd_http__etag_match("", "\"a\""));
    char a[CD_ETAG_MAX], b[CD_ETAG_MAX];
    cd_http__etag("x", 1, 0, a);
    cd_http__etag("x", 1, 1, b);
    cr_assert_str_neq(a, b, "the gzip encoding has its own tag");
}

/* ---- the options' key table (routeconf.c) ---- */

Test(http_routes, route_options_parse_and_default_off)
{
    void *o = NULL;
    char err[256] = "";
    cr_assert_eq(cd_route_opts_set(&o, "body", "x", err, sizeof err), -2, "not an HTTP key");
    cr_assert_null(o, "nothing allocated for it");
    cr_assert_eq(cd_route_opts_set(&o, "gzip", "on", err, sizeof err), 0, "%s", err);
    cd_route_opts *r = o;
    cr_assert_eq(r->gzip, 1);
    cr_assert_eq(r->gzip_min_size, 1024, "the default");
    cr_assert_null(r->cors_origins, "CORS stays off");
    cr_assert_eq(r->etag, 0);
    cr_assert_eq(cd_route_opts_set(&o, "gzip_min_size", "4k", err, sizeof err), 0, "%s", err);
    cr_assert_eq(r->gzip_min_size, 4096);
    cr_assert_eq(cd_route_opts_set(&o, "cors_origins", "https://a.example, http://b.example:8080", err, sizeof err), 0,
                 "%s", err);
    cr_assert_str_eq(r->cors_origins, "https://a.example, http://b.example:8080");
    cr_assert_eq(cd_route_opts_set(&o, "cors_origins", "*", err, sizeof err), 0, "%s", err);
    cr_assert_eq(cd_route_opts_set(&o, "cors_origins", "a.example", err, sizeof err), -1);
    cr_assert(strstr(err, "a.example"), "%s", err);
    cr_assert_eq(cd_route_opts_set(&o, "cors_origins", " , ", err, sizeof err), -1);
    cr_assert_eq(cd_route_opts_set(&o, "cors_max_age", "-1", err, sizeof err), -1);
    cr_assert_eq(cd_route_opts_set(&o, "etag", "maybe", err, sizeof err), -1);
    cr_assert_str_eq(r->cors_origins, "*", "a refused value changes nothing");
    cd_route_opts_free(o);
}
