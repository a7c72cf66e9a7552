/*
 * test_static.c - the static service through the real binary: a root made
 * here (files, an index, a dotfile, a symlink out, a 16 MB file), served
 * at "/" beside a dummy at /dummy (the longest prefix wins).  GET, HEAD,
 * validators and 304, ranges (206, 416, several = whole), every escape we
 * know refused with 404 and no byte of what lies outside, large files
 * intact and in order on a keep-alive connection, a client that does not
 * read not holding the worker, and -t naming file:line of a bad root
 * (a relative root is taken from the config file's directory).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define BIG_SIZE (16 * 1024 * 1024 + 17)

#define CONF                                                                                                 \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "keepalive_timeout = 5s\n"                                                                               \
    "[www]\n"                                                                                                \
    "type = static\n"                                                                                        \
    "route = /\n"                                                                                            \
    "root = %s\n"                                                                                            \
    "max_age = 1m\n"                                                                                         \
    "[dummy]\n"

static th_server srv;
static char base[64], root[128];
static char *big;

static void put(const char *rel, const char *data, size_t len)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s", p);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void init(void)
{
    snprintf(base, sizeof base, "/tmp/cd-static-it-XXXXXX");
    cr_assert(mkdtemp(base));
    snprintf(root, sizeof root, "%s/www", base);
    char p[256];
    cr_assert(mkdir(root, 0755) == 0);
    snprintf(p, sizeof p, "%s/www/sub", base);
    cr_assert(mkdir(p, 0755) == 0);
    put("secret.txt", "outside secret", 14);
    put("www/index.html", "<h1>root</h1>", 13);
    put("www/a.txt", "hello", 5);
    put("www/style.css", "b{}", 3);
    put("www/sub/index.html", "sub index", 9);
    put("www/.env", "dot secret", 10);
    snprintf(p, sizeof p, "%s/www/out", base);
    cr_assert(symlink("../secret.txt", p) == 0);
    big = malloc(BIG_SIZE);
    cr_assert(big);
    for (size_t i = 0; i < BIG_SIZE; i++)
        big[i] = (char)(i * 2654435761u >> 13);
    put("www/big.bin", big, BIG_SIZE);
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, CONF, root), 0);
}

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    cr_expect(system(cmd) == 0);
    free(big);
}

TestSuite(static_files, .init = init, .fini = fini, .timeout = 60);

typedef struct answer {
    char *raw;
    size_t len;
    int status;
    const char *body; /* into raw */
    size_t body_len;
} answer;

/* One request with extra header lines (each ending "\r\n"), on its own
 * connection. */
static answer ask(const char *method, const char *path, const char *headers)
{
    char req[1024];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", method, path,
                     headers ? headers : "");
    answer a = {0};
    a.raw = th_raw(srv.port, req, (size_t)n, 10000, &a.len);
    cr_assert(a.raw, "%s %s: no answer", method, path);
    sscanf(a.raw, "HTTP/1.1 %d", &a.status);
    char *end = strstr(a.raw, "\r\n\r\n");
    cr_assert(end, "%s %s: no header end", method, path);
    *end = '\0'; /* headers become a string of their own */
    a.body = end + 4;
    a.body_len = a.len - (size_t)(a.body - a.raw);
    return a;
}

/* The value of header name in a's headers, copied into out ("" if none). */
static const char *header(const answer *a, const char *name, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t n = strlen(name);
    for (const char *p = strstr(a->raw, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ')
                v++;
            size_t l = strcspn(v, "\r");
            snprintf(out, outlen, "%.*s", (int)l, v);
            break;
        }
    }
    return out;
}

Test(static_files, get_head_index_and_headers)
{
    char h[128];
    answer a = ask("GET", "/", NULL);
    cr_expect_eq(a.status, 200);
    cr_expect_eq(a.body_len, 13);
    cr_expect(strncmp(a.body, "<h1>root</h1>", 13) == 0);
    cr_expect_str_eq(header(&a, "Content-Type", h, sizeof h), "text/html; charset=utf-8");
    cr_expect_str_eq(header(&a, "Content-Length", h, sizeof h), "13");
    cr_expect_str_eq(header(&a, "Cache-Control", h, sizeof h), "public, max-age=60");
    cr_expect_str_eq(header(&a, "Accept-Ranges", h, sizeof h), "bytes");
    cr_expect(header(&a, "ETag", h, sizeof h)[0] == '"', "ETag %s", h);
    cr_expect(strstr(header(&a, "Last-Modified", h, sizeof h), " GMT"), "Last-Modified %s", h);
    free(a.raw);

    a = ask("GET", "/sub/", NULL);
    cr_expect_eq(a.status, 200);
    cr_expect(a.body_len == 9 && strncmp(a.body, "sub index", 9) == 0);
    free(a.raw);
    a = ask("GET", "/style.css", NULL);
    cr_expect_str_eq(header(&a, "Content-Type", h, sizeof h), "text/css; charset=utf-8");
    free(a.raw);

    a = ask("HEAD", "/a.txt", NULL);
    cr_expect_eq(a.status, 200);
    cr_expect_str_eq(header(&a, "Content-Length", h, sizeof h), "5");
    cr_expect_eq(a.body_len, 0, "HEAD sent %zu body bytes", a.body_len);
    free(a.raw);

    a = ask("POST", "/a.txt", NULL);
    cr_expect_eq(a.status, 405);
    free(a.raw);
    /* the other routes still win over "/" */
    a = ask("GET", "/dummy", NULL);
    cr_expect_eq(a.status, 200);
    cr_expect(strstr(a.body, "dummy") != NULL);
    free(a.raw);
}

Test(static_files, conditional_get_answers_304)
{
    char etag[128], lm[64], h[160];
    answer a = ask("GET", "/a.txt", NULL);
    header(&a, "ETag", etag, sizeof etag);
    header(&a, "Last-Modified", lm, sizeof lm);
    free(a.raw);
    cr_assert(etag[0] && lm[0]);

    snprintf(h, sizeof h, "If-None-Match: %s\r\n", etag);
    a = ask("GET", "/a.txt", h);
    cr_expect_eq(a.status, 304);
    cr_expect_eq(a.body_len, 0);
    char got[128];
    cr_expect_str_eq(header(&a, "ETag", got, sizeof got), etag);
    free(a.raw);

    snprintf(h, sizeof h, "If-Modified-Since: %s\r\n", lm);
    a = ask("GET", "/a.txt", h);
    cr_expect_eq(a.status, 304);
    free(a.raw);

    a = ask("GET", "/a.txt", "If-None-Match: \"stale\"\r\n");
    cr_expect_eq(a.status, 200);
    cr_expect_eq(a.body_len, 5);
    free(a.raw);
}

Test(static_files, ranges)
{
    char h[128];
    answer a = ask("GET", "/big.bin", "Range: bytes=100-199\r\n");
    cr_expect_eq(a.status, 206);
    cr_expect(strncmp(a.raw, "HTTP/1.1 206 Partial Content", 28) == 0, "%.40s", a.raw);
    cr_expect_str_eq(header(&a, "Content-Range", h, sizeof h), "bytes 100-199/16777233");
    cr_expect_eq(a.body_len, 100);
    cr_expect(memcmp(a.body, big + 100, 100) == 0);
    free(a.raw);

    a = ask("GET", "/big.bin", "Range: bytes=-10\r\n");
    cr_expect_eq(a.status, 206);
    cr_expect_eq(a.body_len, 10);
    cr_expect(memcmp(a.body, big + BIG_SIZE - 10, 10) == 0);
    free(a.raw);

    a = ask("GET", "/a.txt", "Range: bytes=5-\r\n");
    cr_expect_eq(a.status, 416);
    cr_expect_str_eq(header(&a, "Content-Range", h, sizeof h), "bytes */5");
    free(a.raw);

    a = ask("GET", "/a.txt", "Range: bytes=0-0,2-3\r\n");
    cr_expect_eq(a.status, 200, "several ranges: the whole file");
    cr_expect_eq(a.body_len, 5);
    free(a.raw);

    a = ask("GET", "/a.txt", "Range: bytes=1-2\r\nIf-Range: \"stale\"\r\n");
    cr_expect_eq(a.status, 200, "If-Range no longer matching: the whole file");
    free(a.raw);
}

Test(static_files, escapes_are_refused)
{
    static const char *const refused[] = {
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/%2e%2e/%2e%2e/etc/passwd",
        "/sub%2F..%2F..%2Fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/sub%5C..%5C..%5Csecret.txt",
        "/a.txt%00.html",
        "/%00",
        "/out",
        "/.env",
        "/sub/%2eenv/../../.env",
        "/%252e%252e/secret.txt",
        "/etc/passwd",
        "/nothing.html",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        answer a = ask("GET", refused[i], NULL);
        cr_expect_eq(a.status, 404, "%s: %d", refused[i], a.status);
        cr_expect(!memmem(a.body, a.body_len, "secret", 6), "%s served a secret", refused[i]);
        cr_expect(!strstr(a.body, base), "%s: the answer names the root", refused[i]);
        free(a.raw);
    }
    /* a raw backslash: refused by the HTTP parser or by the resolver */
    answer a = ask("GET", "/sub\\..\\..\\secret.txt", NULL);
    cr_expect(a.status == 400 || a.status == 404, "%d", a.status);
    cr_expect(!memmem(a.body, a.body_len, "secret", 6));
    free(a.raw);
    a = ask("GET", "/%zz", NULL);
    cr_expect_eq(a.status, 400);
    free(a.raw);
}

/* Reads one whole answer with Content-Length from fd into a malloc'd body. */
static char *read_answer(int fd, size_t *body_len, char *first, size_t *first_len)
{
    static char buf[1 << 16];
    size_t have = *first_len;
    memcpy(buf, first, have);
    char *end;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        cr_assert(n > 0, "connection ended in the headers");
        have += (size_t)n;
    }
    char *cl = strcasestr(buf, "Content-Length:");
    cr_assert(cl && cl < end);
    size_t len = strtoul(cl + 15, NULL, 10), hlen = (size_t)(end + 4 - buf);
    char *body = malloc(len + 1);
    size_t got = have - hlen < len ? have - hlen : len;
    memcpy(body, end + 4, got);
    size_t rest = have - hlen - got; /* bytes of the next answer */
    memmove(first, end + 4 + got, rest);
    *first_len = rest;
    while (got < len) {
        ssize_t n = recv(fd, body + got, len - got, 0);
        cr_assert(n > 0, "connection ended in the body (%zu of %zu)", got, len);
        got += (size_t)n;
    }
    *body_len = len;
    return body;
}

Test(static_files, large_file_intact_in_order_without_blocking_the_worker)
{
    /* Two pipelined requests on one connection, and the client reads
     * nothing yet: the worker must keep serving others meanwhile. */
    int fd = th_connect(srv.port);
    cr_assert(fd >= 0);
    int small = 64 * 1024; /* no autotuning: the file cannot fit in the socket buffers */
    cr_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    const char *req = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    usleep(200 * 1000);
    long long t0 = th_now_ms();
    th_response r;
    th_http(&r, srv.port, "GET", "/a.txt", NULL, 3000);
    cr_expect_eq(r.status, 200, "another client waited behind one that does not read");
    cr_expect(th_now_ms() - t0 < 2000);
    th_response_free(&r);

    char first[1 << 16];
    size_t first_len = 0, len;
    char *body = read_answer(fd, &len, first, &first_len);
    cr_expect_eq(len, BIG_SIZE);
    cr_expect(memcmp(body, big, BIG_SIZE) == 0, "the large file arrived changed");
    free(body);
    body = read_answer(fd, &len, first, &first_len);
    cr_expect(len == 5 && memcmp(body, "hello", 5) == 0, "the second answer is not a.txt's");
    free(body);
    close(fd);
}

Test(static_files, check_names_the_line_of_a_bad_root)
{
    char conf[256], out[4096];
    snprintf(conf, sizeof conf, "%s/bad.ini", base);
    FILE *f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f, "[cluster]\nlisten = 127.0.0.1:1\n[www]\ntype = static\nroot = %s/a.txt\n", root);
    fclose(f);
    const char *bin = getenv("CLUSTERD_BIN");
    const char *argv[] = {bin ? bin : "./clusterd", "-t", "-c", conf, NULL};
    cr_expect_neq(th_run(argv, out, sizeof out), 0);
    char want[300];
    snprintf(want, sizeof want, "bad.ini:5: root: '%s/a.txt' is not a directory", root);
    cr_expect(strstr(out, want), "got: %s", out);

    f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f, "[cluster]\nlisten = 127.0.0.1:1\n[www]\ntype = static\n");
    fclose(f);
    cr_expect_neq(th_run(argv, out, sizeof out), 0);
    cr_expect(strstr(out, "bad.ini:3: [www]: root is required"), "got: %s", out);

    /* a relative root is the config file's neighbour, wherever clusterd runs */
    f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f, "[cluster]\nlisten = 127.0.0.1:1\n[www]\ntype = static\nroot = www\n");
    fclose(f);
    cr_expect_eq(th_run(argv, out, sizeof out), 0, "got: %s", out);
    f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f, "[cluster]\nlisten = 127.0.0.1:1\n[www]\ntype = static\nroot = nowhere\n");
    fclose(f);
    cr_expect_neq(th_run(argv, out, sizeof out), 0);
    snprintf(want, sizeof want, "bad.ini:5: root: '%s/nowhere': No such file or directory", base);
    cr_expect(strstr(out, want), "got: %s", out);
}
