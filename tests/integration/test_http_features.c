/*
 * Integration tests of the HTTP features services get (issue 11) through
 * the real binary: per-section options on dummy services (CORS, gzip,
 * ETag), a route with a parameter, the request id in the answer and in the
 * access log, and a config that sets them wrong refused at -t with
 * file:line.  Raw requests over loopback (the harness), bounded waits.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "tests/integration/harness.h"

#define BIG "0123456789abcdefghijklmnopqrstuvwxyz"
#define BIG8 BIG BIG BIG BIG BIG BIG BIG BIG /* 288 bytes */

#define CONF                                                                                                 \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "workers = 1\n"                                                                                          \
    "access_log = %s\n"                                                                                      \
    "[big]\ntype = dummy\nroute = /big\nbody_file = %s\n"                                                     \
    "gzip = on\ngzip_min_size = 1k\netag = on\n"                                                             \
    "cors_origins = https://a.example\ncors_max_age = 60\ncors_headers = X-A, X-B\n"                         \
    "[users]\ntype = dummy\nroute = /users/:id\nbody = user\n"                                               \
    "[plain]\ntype = dummy\nroute = /plain\nbody = plain\n"

static th_server srv;
static char access_path[128], body_path[128];

static void init(void)
{
    snprintf(access_path, sizeof access_path, "/tmp/clusterd-h11-access-%ld.log", (long)getpid());
    snprintf(body_path, sizeof body_path, "/tmp/clusterd-h11-body-%ld.txt", (long)getpid());
    FILE *f = fopen(body_path, "w");
    cr_assert_not_null(f);
    fputs(BIG8 BIG8 BIG8 BIG8, f); /* 1152 bytes: over gzip_min_size */
    fclose(f);
    cr_assert_eq(th_start(&srv, 1, "/plain", NULL, CONF, access_path, body_path), 0);
}

static void fini(void)
{
    unlink(access_path);
    unlink(body_path);
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

TestSuite(http_features, .init = init, .fini = fini, .timeout = 60);

/* One request (Connection: close) with extra header lines; the whole answer. */
static char *ask(const char *method, const char *path, const char *headers, size_t *len)
{
    char req[1024];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n", method, path,
             headers ? headers : "");
    char *out = th_raw(srv.port, req, strlen(req), 5000, len);
    cr_assert_not_null(out);
    return out;
}

static const char *body_of(const char *resp) { return strstr(resp, "\r\n\r\n") + 4; }

Test(http_features, gzip_etag_and_304)
{
    size_t len;
    char *r = ask("GET", "/big", "Accept-Encoding: gzip\r\n", &len);
    cr_assert(strstr(r, "HTTP/1.1 200"), "%s", r);
    cr_assert(strstr(r, "Content-Encoding: gzip\r\n"), "%s", r);
    cr_assert(strstr(r, "Vary: Accept-Encoding\r\n"), "%s", r);
    const char *b = body_of(r);
    char out[4096];
    z_stream z = {0};
    cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)b;
    z.avail_in = (uInt)(r + len - b);
    z.next_out = (Bytef *)out;
    z.avail_out = sizeof out;
    cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
    cr_assert_eq(z.total_out, strlen(BIG8) * 4);
    cr_assert_eq(memcmp(out, BIG8 BIG8 BIG8 BIG8, z.total_out), 0);
    inflateEnd(&z);
    const char *e = strstr(r, "\r\nETag: ");
    cr_assert_not_null(e, "%s", r);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Accept-Encoding: gzip\r\nIf-None-Match: %.*s\r\n", (int)strcspn(e + 8, "\r"), e + 8);
    free(r);

    r = ask("GET", "/big", hdr, &len);
    cr_assert(strstr(r, "HTTP/1.1 304"), "%s", r);
    cr_assert_str_empty(body_of(r));
    free(r);
    r = ask("GET", "/big", NULL, &len);
    cr_assert(strstr(r, "HTTP/1.1 200"), "%s", r);
    cr_assert_null(strstr(r, "Content-Encoding"), "%s", r);
    cr_assert_str_eq(body_of(r), BIG8 BIG8 BIG8 BIG8);
    free(r);
    r = ask("GET", "/plain", "Accept-Encoding: gzip\r\nIf-None-Match: *\r\n", &len);
    cr_assert(strstr(r, "HTTP/1.1 200"), "options off: %s", r);
    cr_assert_null(strstr(r, "Vary"), "%s", r);
    cr_assert_null(strstr(r, "ETag"), "%s", r);
    free(r);
}

Test(http_features, cors_preflight_and_answers)
{
    size_t len;
    char *r = ask("OPTIONS", "/big", "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n", &len);
    cr_assert(strstr(r, "HTTP/1.1 204"), "%s", r);
    cr_assert(strstr(r, "Access-Control-Allow-Origin: https://a.example\r\n"), "%s", r);
    cr_assert(strstr(r, "Access-Control-Allow-Methods: GET, HEAD\r\n"), "%s", r);
    cr_assert(strstr(r, "Access-Control-Allow-Headers: X-A, X-B\r\n"), "%s", r);
    cr_assert(strstr(r, "Access-Control-Max-Age: 60\r\n"), "%s", r);
    free(r);
    r = ask("GET", "/big", "Origin: https://a.example\r\n", &len);
    cr_assert(strstr(r, "HTTP/1.1 200"), "%s", r);
    cr_assert(strstr(r, "Access-Control-Allow-Origin: https://a.example\r\n"), "%s", r);
    free(r);
    r = ask("OPTIONS", "/plain", "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n", &len);
    cr_assert(strstr(r, "HTTP/1.1 405"), "CORS off for [plain]: %s", r);
    free(r);
}

Test(http_features, a_route_with_a_parameter)
{
    size_t len;
    char *r = ask("GET", "/users/42", NULL, &len);
    cr_assert(strstr(r, "HTTP/1.1 200"), "%s", r);
    cr_assert_str_eq(body_of(r), "user");
    free(r);
    r = ask("GET", "/users", NULL, &len);
    cr_assert(strstr(r, "HTTP/1.1 404"), "%s", r);
    free(r);
}

Test(http_features, the_request_id_is_echoed_and_logged)
{
    size_t len;
    char *r = ask("GET", "/plain", "X-Request-Id: it-h11-0001\r\n", &len);
    cr_assert(strstr(r, "\r\nX-Request-Id: it-h11-0001\r\n"), "%s", r);
    free(r);
    r = ask("GET", "/plain", "X-Request-Id: bad id\r\n", &len);
    const char *h = strstr(r, "\r\nX-Request-Id: ");
    cr_assert_not_null(h, "%s", r);
    cr_assert_neq(strncmp(h + 16, "bad", 3), 0, "%s", r);
    free(r);
    /* The access log is written about once a second. */
    int found = 0;
    for (long long until = th_now_ms() + 5000; !found && th_now_ms() < until;) {
        FILE *f = fopen(access_path, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, "\"GET /plain HTTP/1.1\" 200") && strstr(line, " it-h11-0001\n"))
                found = 1;
        if (f)
            fclose(f);
        if (!found)
            usleep(100000);
    }
    cr_assert(found, "the id ends the access log line");
}

Test(http_features, bad_options_are_refused_with_file_and_line)
{
    char path[400];
    snprintf(path, sizeof path, "%s/bad.ini", srv.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "[cluster]\nlisten = 127.0.0.1:1\n[d]\ntype = dummy\ngzip = maybe\n");
    fclose(f);
    const char *bin = getenv("CLUSTERD_BIN") ? getenv("CLUSTERD_BIN") : "./clusterd";
    char out[4096];
    const char *argv[] = {bin, "-t", "-c", path, NULL};
    cr_assert_neq(th_run(argv, out, sizeof out), 0);
    cr_assert(strstr(out, "bad.ini:5") && strstr(out, "gzip"), "%s", out);
    f = fopen(path, "w");
    fprintf(f, "[cluster]\nlisten = 127.0.0.1:1\n[d]\ntype = dummy\nroute = /a:b\n");
    fclose(f);
    cr_assert_neq(th_run(argv, out, sizeof out), 0);
    cr_assert(strstr(out, "bad.ini:3") && strstr(out, "route"), "%s", out);
    f = fopen(path, "w");
    fprintf(f, "[cluster]\nlisten = 127.0.0.1:1\n[d]\ntype = dummy\ncors_origins = nope\n");
    fclose(f);
    cr_assert_neq(th_run(argv, out, sizeof out), 0);
    cr_assert(strstr(out, "bad.ini:5") && strstr(out, "origin"), "%s", out);
}
