/*
 * response.c - answers: the status line, headers and body of a response
 * queued on its connection, error bodies, and the end of a request's life
 * (worker process, loop thread).
 *
 * A response is built whole into the connection's output buffer (headers
 * and body copied; a HEAD answer has the Content-Length of the body it does
 * not send) and written by server.c, which then resumes parsing: answers
 * leave in request order.  The head is queued by cd_http__queue_head, which
 * streamed answers (stream.c) share; it is put together from constant
 * pieces, the cached Date and hand-formatted numbers, and copied once (no
 * printf per answer).  Every response carries Server, Date
 * (cached, refreshed once a second), X-Request-Id (reqid.c), the
 * service's own headers (headers.c), and Content-Length (not on a 304; a
 * streamed answer is chunked instead); Connection: close when the
 * connection ends after it (the client asked, HTTP/1.0 without keep-alive,
 * keepalive_timeout 0, a refused request, an upgrade request answered
 * without the upgrade, a client that half-closed, a draining server).
 *
 * Answers are written into the loop's one output buffer while they leave
 * at once; only what the socket does not take is kept in a buffer of the
 * connection's own (cd_http__out_settle, at the end of cd_http__process).
 *
 * A route with gzip or etag on (routeconf.h) passes its whole answers
 * through respond_opts first: the ETag and a 304 (etag.c), then the gzip
 * encoding (gzip.c).  A route without options pays one pointer test.
 *
 * When a request ends (answered, refused, or upgraded) the context's owner
 * hears of it through its hooks (server.h): on_done to count it, on_log
 * for the access log.  A request whose client went away is still counted
 * and logged, and freed here; only its bytes go nowhere.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/json.h"
#include "http/conn.h"
#include "http/routeconf.h"

#define CD_SERVER_NAME "clusterd/0.1"

static const char *status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static const char *date_header(cd_http_ctx *ctx)
{
    ev_tstamp now = ev_now(ctx->loop);
    if (now - ctx->date_at >= 1.0 || ctx->date[0] == '\0') {
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ctx->date, sizeof ctx->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        ctx->date_at = (ev_tstamp)t;
    }
    return ctx->date;
}

/* What answers are written into while they leave at once (one connection
 * at a time holds it: loop_out_by); what the socket does not take moves to
 * a buffer of the connection's own at the end of cd_http__process
 * (cd_http__out_settle), as
 * nginx writes first and buffers only on EAGAIN.  An answer so costs no
 * allocation. */
static _Thread_local char loop_out[CD_HTTP_OUT_BUF];
static _Thread_local cd_conn *loop_out_by;

int cd_http__out_borrow(cd_conn *c)
{
    if (loop_out_by || c->out)
        return 0;
    loop_out_by = c;
    c->out = loop_out;
    c->out_cap = sizeof loop_out;
    return 1;
}

int cd_http__out_borrowed(const cd_conn *c) { return c->out && c->out == loop_out; }

void cd_http__out_drop(cd_conn *c)
{
    if (cd_http__out_borrowed(c))
        loop_out_by = NULL;
    else
        free(c->out);
    c->out = NULL;
    c->out_cap = 0;
}

int cd_http__out_settle(cd_conn *c)
{
    if (!cd_http__out_borrowed(c))
        return 0;
    size_t left = c->out_len - c->out_off;
    if (left == 0) {
        cd_http__out_drop(c);
        c->out_off = c->out_len = 0;
        return 0;
    }
    size_t cap = 1024;
    while (cap < left)
        cap *= 2;
    char *own = malloc(cap);
    if (!own)
        return -ENOMEM;
    memcpy(own, c->out + c->out_off, left);
    loop_out_by = NULL;
    c->out = own;
    c->out_cap = cap;
    c->out_off = 0;
    c->out_len = left;
    return 0;
}

static int out_reserve(cd_conn *c, size_t more)
{
    if (!c->out && more <= CD_HTTP_OUT_BUF && cd_http__out_borrow(c))
        return 0; /* the loop's buffer (server.c) */
    if (c->out_len + more <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + more <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 1024;
    while (cap < c->out_len + more)
        cap *= 2;
    char *n;
    if (cd_http__out_borrowed(c)) { /* outgrown: a buffer of its own */
        if (!(n = malloc(cap)))
            return -1;
        memcpy(n, c->out, c->out_len);
        cd_http__out_drop(c);
    } else if (!(n = realloc(c->out, cap))) {
        return -1;
    }
    c->out = n;
    c->out_cap = cap;
    return 0;
}

int cd_http__out_put(cd_conn *c, const char *s, size_t len)
{
    if (out_reserve(c, len) < 0) {
        c->keepalive = 0;
        return -1;
    }
    memcpy(c->out + c->out_len, s, len);
    c->out_len += len;
    return 0;
}

/* Decimal digits of v into the end of buf (no NUL); returns where they start. */
static char *udec(char *end, unsigned long long v)
{
    do
        *--end = (char)('0' + v % 10);
    while (v /= 10);
    return end;
}

/* One piece of a response head. */
typedef struct piece {
    const char *s;
    size_t n;
} piece;

#define LIT(s) ((piece){s, sizeof s - 1})

/* The head is assembled from pieces (the constant ones, the cached Date,
 * the numbers formatted by hand) and copied into the output once: no
 * printf on the path of every answer. */
int cd_http__queue_head(cd_conn *c, const cd_request *r, const char *reqid, int status, const char *ctype,
                        size_t len, const char *extra)
{
    const char *ct = ctype ? ctype : r ? r->rh_ctype : NULL;
    char code[24], clen[24];
    char *code_at = udec(code + sizeof code, (unsigned long long)(status < 0 ? 0 : status));
    piece p[20];
    int k = 0;
    p[k++] = LIT("HTTP/1.1 ");
    p[k++] = (piece){code_at, (size_t)(code + sizeof code - code_at)};
    p[k++] = LIT(" ");
    const char *text = status_text(status);
    p[k++] = (piece){text, strlen(text)};
    p[k++] = LIT("\r\nServer: " CD_SERVER_NAME "\r\nDate: ");
    const char *date = date_header(c->ctx);
    p[k++] = (piece){date, strlen(date)};
    p[k++] = LIT("\r\n");
    if (len == (size_t)-1) { /* streamed */
        if (r && r->http_minor >= 1)
            p[k++] = LIT("Transfer-Encoding: chunked\r\n");
        else
            c->keepalive = 0; /* HTTP/1.0: the end of the body is the end of the connection */
    } else if (status != 304) {
        char *at = udec(clen + sizeof clen, len);
        p[k++] = LIT("Content-Length: ");
        p[k++] = (piece){at, (size_t)(clen + sizeof clen - at)};
        p[k++] = LIT("\r\n");
    }
    if (!c->keepalive)
        p[k++] = LIT("Connection: close\r\n");
    else if (c->parser.http_minor == 0)
        p[k++] = LIT("Connection: keep-alive\r\n");
    if (ct) {
        p[k++] = LIT("Content-Type: ");
        p[k++] = (piece){ct, strlen(ct)};
        p[k++] = LIT("\r\n");
    }
    if (reqid && reqid[0]) {
        p[k++] = LIT("X-Request-Id: ");
        p[k++] = (piece){reqid, strlen(reqid)};
        p[k++] = LIT("\r\n");
    }
    if (r && r->rh_len)
        p[k++] = (piece){r->rh, r->rh_len};
    if (extra)
        p[k++] = (piece){extra, strlen(extra)};
    p[k++] = LIT("\r\n");
    size_t total = 0;
    for (int i = 0; i < k; i++)
        total += p[i].n;
    if (out_reserve(c, total) < 0) {
        c->keepalive = 0;
        return -1;
    }
    char *w = c->out + c->out_len;
    for (int i = 0; i < k; i++) {
        memcpy(w, p[i].s, p[i].n);
        w += p[i].n;
    }
    c->out_len += total;
    return 0;
}

/* Queues a complete response on c. */
static void queue_response(cd_conn *c, const cd_request *r, const char *reqid, int status, const char *ctype,
                           const char *body, size_t len, int head, const char *extra)
{
    size_t at = c->out_len - c->out_off; /* what was queued before, to undo a half answer */
    if (cd_http__queue_head(c, r, reqid, status, ctype, len, extra) < 0 ||
        (!head && len && cd_http__out_put(c, body, len) < 0)) {
        if (c->out_len - c->out_off > at) /* never leave a half answer behind */
            c->out_len = c->out_off + at;
        c->keepalive = 0;
        c->state = CS_CLOSING;
    }
}

void cd_http__peer_string(const struct sockaddr_storage *ss, char *out, size_t len)
{
    const void *addr = NULL;
    if (ss->ss_family == AF_INET)
        addr = &((const struct sockaddr_in *)ss)->sin_addr;
    else if (ss->ss_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (!addr || !inet_ntop(ss->ss_family, addr, out, (socklen_t)len))
        snprintf(out, len, "-");
}

/* Tells the owner of a request that ended (seconds < 0: refused before
 * dispatch, not timed). */
static void done(cd_http_ctx *ctx, const cd_route *route, int status, double seconds)
{
    if (ctx->on_done)
        ctx->on_done(ctx->owner, route, status, seconds);
}

void cd_http__log(cd_http_ctx *ctx, const cd_conn *c, const cd_request *r, const char *reqid, int status,
                  size_t bytes)
{
    char peer[64] = "-";
    if (c)
        cd_http__peer_string(&c->peer, peer, sizeof peer);
    else if (r && r->peer[0])
        snprintf(peer, sizeof peer, "%s", r->peer);
    int parsed = r && r->path; /* its headers were complete */
    cd_access_entry e = {
        .time = ev_now(ctx->loop),
        .peer = peer,
        .method = parsed ? llhttp_method_name((llhttp_method_t)r->llmethod) : "-",
        .url = r && r->arena_len ? r->arena : "-",
        .http_minor = r ? r->http_minor : 1,
        .status = status,
        .bytes = bytes,
        .duration = r && r->start > 0 ? r->took : 0,
        .route = r && r->route ? r->route->name : "-",
        .user_agent = parsed ? cd_request_header(r, "User-Agent") : NULL,
        .referer = parsed ? cd_request_header(r, "Referer") : NULL,
        .request_id = reqid,
    };
    ctx->on_log(ctx->owner, &e);
}

void cd_http__finish(cd_request *r, int status)
{
    /* The one clock read of a request: it started at the loop's time when
     * it was dispatched (server.c), so this is also what the log shows. */
    r->took = r->start > 0 ? ev_time() - r->start : -1.0;
    if (r->start > 0 && r->took < 0)
        r->took = 0; /* the wall clock stepped back */
    done(r->ctx, r->route, status, r->took);
    if (r->ctx->in_flight)
        r->ctx->in_flight--;
}

cd_conn *cd_http__answer_start(cd_request *r, int status, size_t bytes)
{
    cd_http_ctx *ctx = r->ctx;
    cd_conn *c = r->conn;
    cd_http__finish(r, status);
    if (ctx->on_log)
        cd_http__log(ctx, c, r, r->reqid, status, bytes);
    if (c) {
        c->req = NULL;
        if (ctx->draining || c->upgrade || c->peer_closed)
            c->keepalive = 0;
    }
    return c;
}

void cd_http__answer_done(cd_request *r, cd_conn *c)
{
    if (c && c->state == CS_SERVICE)
        c->state = c->keepalive ? CS_IDLE : CS_CLOSING;
    cd_http__request_free(r);
    if (c && !c->processing)
        cd_http__process(c);
}

void cd_http__respond(cd_request *r, int status, const char *ctype, const char *body, size_t len,
                      const char *extra)
{
    cd_conn *c = cd_http__answer_start(r, status, r->head ? 0 : len);
    if (c)
        queue_response(c, r, r->reqid, status, ctype, body, len, r->head, extra);
    cd_http__answer_done(r, c);
}

/* Whether the service set header `name` itself (cd_response_header). */
static int has_own_header(const cd_request *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = r->rh, *end = r->rh + r->rh_len; p && p < end;) {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':')
            return 1;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* An answer on a route with gzip or etag on (etag.c, gzip.c say why). */
static void respond_opts(cd_request *r, const cd_route_opts *o, int status, const char *ctype, const char *body,
                         size_t len)
{
    int gz = 0;
    if (o->gzip) {
        cd_response_header(r, "Vary", "Accept-Encoding");
        gz = len >= o->gzip_min_size && len > 0 && status >= 200 && status < 300 && status != 204 &&
             status != 206 && !has_own_header(r, "Content-Encoding") &&
             cd_http__accepts_gzip(cd_request_header(r, "Accept-Encoding"));
    }
    if (o->etag && status == 200 && (r->method & (CD_M_GET | CD_M_HEAD)) && !has_own_header(r, "ETag")) {
        char tag[CD_ETAG_MAX];
        cd_http__etag(body, len, gz, tag);
        cd_response_header(r, "ETag", tag);
        const char *inm = cd_request_header(r, "If-None-Match");
        if (inm && cd_http__etag_match(inm, tag)) {
            cd_http__respond(r, 304, NULL, "", 0, NULL);
            return;
        }
    }
    char *z = NULL;
    size_t zlen = 0;
    if (gz && cd_http__gzip(body, len, &z, &zlen) == 0 && cd_response_header(r, "Content-Encoding", "gzip") == 0) {
        cd_http__respond(r, status, ctype, z, zlen, NULL);
        free(z);
        return;
    }
    free(z);
    cd_http__respond(r, status, ctype, body, len, NULL);
}

void cd_request_respond(cd_request *r, int status, const char *content_type, const char *body, size_t len)
{
    const cd_route_opts *o = r->route ? r->route->opts : NULL;
    if (o && (o->gzip || o->etag) && !r->streaming) {
        respond_opts(r, o, status, content_type, body, len);
        return;
    }
    cd_http__respond(r, status, content_type, body, len, NULL);
}

void cd_request_drop(cd_request *r)
{
    cd_conn *c = r->conn;
    if (r->ctx->in_flight)
        r->ctx->in_flight--;
    cd_http__request_free(r);
    if (c) {
        c->req = NULL;
        c->keepalive = 0;
        c->state = CS_CLOSING;
        if (!c->processing)
            cd_http__process(c);
    }
}

void cd_request_respond_error(cd_request *r, int status, const char *msg)
{
    char body[512];
    int n = cd_json_error(body, sizeof body, status, msg);
    cd_http__respond(r, status, "application/json", body, n > 0 ? (size_t)n : 0, NULL);
}

void cd_http__fail(cd_conn *c, int status, const char *msg)
{
    c->keepalive = 0;
    cd_request *partial = c->req && c->state == CS_READING ? c->req : NULL;
    char body[512];
    int n = cd_json_error(body, sizeof body, status, msg);
    size_t len = n > 0 ? (size_t)n : 0;
    char id[CD_REQID_MAX + 1] = "";
    if (partial) /* the client's id when its headers were read */
        cd_http__reqid(c->ctx, partial), memcpy(id, partial->reqid, sizeof id);
    else
        cd_http__reqid_new(c->ctx, id);
    done(c->ctx, NULL, status, -1.0);
    if (c->ctx->on_log)
        cd_http__log(c->ctx, c, partial, id, status, len);
    if (partial) {
        cd_http__request_free(partial);
        c->req = NULL;
    }
    queue_response(c, NULL, id, status, "application/json", body, len, c->parser.method == HTTP_HEAD, NULL);
    c->state = CS_CLOSING;
}
