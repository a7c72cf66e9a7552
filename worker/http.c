/*
 * http.c - HTTP/1.1 connections in a worker: read, parse with llhttp,
 * route, hand to a service, write the answer (worker process, loop thread).
 *
 * One request per connection is in service at a time.  When llhttp reports
 * a complete message we pause it (HPE_PAUSED from on_message_complete), hand
 * the request to its service and stop reading; pipelined bytes wait in the
 * input buffer.  When the service answers and the answer is written, the
 * parser resumes on what is buffered.  That gives in-order pipelining and
 * natural back-pressure for free.
 *
 * A request is copied out of the input buffer as llhttp reports it (URL and
 * headers into one arena bounded by max_header_size, the body into its own
 * buffer bounded by max_body_size), so the input buffer is a small fixed
 * window and a request can outlive its connection: if the client goes away
 * while a service is still working, the request is detached (conn = NULL)
 * and freed when the service answers.
 *
 * Timers (one per connection): header_timeout from the first byte of a
 * request to its last header (not reset by progress, against slowloris);
 * in the body, body_timeout between two reads and body_deadline for the
 * whole body, whichever ends first (a client that sends a byte now and then
 * never stalls long enough for body_timeout alone, so only a total bound
 * frees its slot; a deadline rather than a minimum rate, because a rate
 * still lets a client hold the slot for max_body_size / rate); then
 * keepalive_timeout while idle between requests and while a response
 * cannot be written.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <llhttp.h>
#include <netinet/in.h>

#include "core/log.h"
#include "core/util.h"
#include "worker/worker.h"

#define CD_SERVER_NAME "clusterd/0.1"
#define IN_BUF 16384
#define MAX_HEADERS 100

enum conn_state {
    CS_IDLE,      /* waiting for the first byte of a request */
    CS_READING,   /* inside a request */
    CS_SERVICE,   /* a service holds the request */
    CS_CLOSING,   /* write what is queued, then close */
    CS_UPGRADE,   /* write what is queued, then hand the socket over (cd_http_upgrade) */
};

typedef struct hdr {
    size_t name, name_len, value, value_len; /* offsets into the arena */
} hdr;

struct cd_request {
    cd_conn *conn; /* NULL once the client is gone */
    cd_worker *w;
    cd_service *svc;
    unsigned method;
    int head;
    char *arena; /* url, then header names and values */
    size_t arena_len, arena_cap;
    size_t url_len;
    hdr hdrs[MAX_HEADERS];
    int nhdrs;
    int in_name; /* inside a header name */
    char *path;   /* NUL-terminated copies made at headers-complete */
    char *query;
    const char *subpath;
    char *body;
    size_t body_len, body_cap;
    int expect_continue;
    void *data;
    int error_status; /* set when the request is refused while parsing */
    double start;     /* when it was dispatched (ev_time) */
    uint8_t llmethod, http_minor;
    char peer[48];    /* the client's address, for the access log */
};

struct cd_conn {
    cd_worker *w;
    int fd;
    enum conn_state state;
    ev_io io;
    ev_timer timer;
    llhttp_t parser;
    cd_request *req;
    int keepalive; /* answer this request with keep-alive */
    int peer_closed; /* the client shut its side while a request was in service */
    int upgrade;
    cd_upgrade_cb up_cb; /* set by cd_http_upgrade until the hand-over */
    void *up_arg;
    ev_tstamp body_until; /* body_deadline of the body being read (0: none) */
    char in[IN_BUF];
    size_t in_off, in_len; /* unparsed bytes are in[in_off..in_len) */
    char *out;
    size_t out_off, out_len, out_cap;
    int processing; /* conn_process is on the stack */
    ev_tstamp idle_since;
    struct sockaddr_storage peer;
    cd_conn *prev, *next;
};

static llhttp_settings_t settings;
static int settings_ready;

static void conn_process(cd_conn *c);
static void conn_close(cd_conn *c);
static void body_timer(cd_conn *c);

/* ---- requests ---- */

static void request_free(cd_request *r)
{
    if (!r)
        return;
    free(r->arena);
    free(r->path);
    free(r->query);
    free(r->body);
    free(r);
}

static int arena_append(cd_request *r, const char *at, size_t len, size_t limit)
{
    if (r->arena_len + len + 1 > limit)
        return -1;
    if (r->arena_len + len + 1 > r->arena_cap) {
        size_t cap = r->arena_cap ? r->arena_cap : 512;
        while (cap < r->arena_len + len + 1)
            cap *= 2;
        if (cap > limit + 1)
            cap = limit + 1;
        char *n = realloc(r->arena, cap);
        if (!n)
            return -1;
        r->arena = n;
        r->arena_cap = cap;
    }
    memcpy(r->arena + r->arena_len, at, len);
    r->arena_len += len;
    r->arena[r->arena_len] = '\0';
    return 0;
}

unsigned cd_request_method(const cd_request *r) { return r->method; }
const char *cd_request_path(const cd_request *r) { return r->path; }
const char *cd_request_subpath(const cd_request *r) { return r->subpath; }
const char *cd_request_query(const cd_request *r) { return r->query ? r->query : ""; }
void cd_request_set_data(cd_request *r, void *data) { r->data = data; }
void *cd_request_data(const cd_request *r) { return r->data; }

const char *cd_request_body(const cd_request *r, size_t *len)
{
    *len = r->body_len;
    return r->body ? r->body : "";
}

const char *cd_request_header(const cd_request *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->nhdrs; i++)
        if (r->hdrs[i].name_len == n && strncasecmp(r->arena + r->hdrs[i].name, name, n) == 0)
            return r->arena + r->hdrs[i].value;
    return NULL;
}

int cd_request_query_param(const cd_request *r, const char *key, char *out, size_t outlen)
{
    return cd_query_param(cd_request_query(r), key, out, outlen);
}

/* ---- responses ---- */

static const char *status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
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

static const char *date_header(cd_worker *w)
{
    ev_tstamp now = ev_now(w->loop);
    if (now - w->date_at >= 1.0 || w->date[0] == '\0') {
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_at = (ev_tstamp)t;
    }
    return w->date;
}

static int out_reserve(cd_conn *c, size_t more)
{
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
    char *n = realloc(c->out, cap);
    if (!n)
        return -1;
    c->out = n;
    c->out_cap = cap;
    return 0;
}

/* Queues a complete response on c. */
static void queue_response(cd_conn *c, int status, const char *ctype, const char *body, size_t len, int head,
                           const char *extra)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nServer: " CD_SERVER_NAME "\r\nDate: %s\r\n%s%s%sContent-Length: %zu\r\n%s%s\r\n",
                     status, status_text(status), date_header(c->w), ctype ? "Content-Type: " : "",
                     ctype ? ctype : "", ctype ? "\r\n" : "", len,
                     c->keepalive ? (c->parser.http_minor == 0 ? "Connection: keep-alive\r\n" : "")
                                  : "Connection: close\r\n",
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof hdr)
        return;
    size_t blen = head ? 0 : len;
    if (out_reserve(c, (size_t)n + blen) < 0) {
        c->keepalive = 0;
        c->state = CS_CLOSING;
        return;
    }
    memcpy(c->out + c->out_len, hdr, (size_t)n);
    c->out_len += (size_t)n;
    if (blen) {
        memcpy(c->out + c->out_len, body, blen);
        c->out_len += blen;
    }
}

/* Counts an answer: by class, by service (svc NULL: no route), by latency
 * (start 0: refused before dispatch, not timed). */
static void count(cd_worker *w, const cd_service *svc, int status, double start)
{
    w->stats.requests++;
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        return;
    w->stats.status[cls]++;
    size_t idx = svc ? (size_t)(svc - w->services) : (size_t)w->unrouted_idx;
    if (idx < CD_STATS_SERVICES)
        w->stats.svc[idx].status[cls]++;
    if (start > 0) {
        double dt = ev_time() - start;
        int b = 0;
        while (b < CD_LAT_BUCKETS - 1 && dt > cd_lat_bounds[b])
            b++;
        w->stats.lat_bucket[b]++;
        w->stats.lat_sum_us += (uint64_t)(dt * 1e6);
    }
}

static void count_status(cd_worker *w, int status) { count(w, NULL, status, 0); }

static void peer_string(const struct sockaddr_storage *ss, char *out, size_t len)
{
    const void *addr = NULL;
    if (ss->ss_family == AF_INET)
        addr = &((const struct sockaddr_in *)ss)->sin_addr;
    else if (ss->ss_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (!addr || !inet_ntop(ss->ss_family, addr, out, (socklen_t)len))
        snprintf(out, len, "-");
}

/* s escaped for inside a JSON string (also safe in the combined log
 * format's quoted fields): quote, backslash and control bytes. */
static size_t esc(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
    return o;
}

/* One access-log line (worker loop; the file is written by another thread). */
static void log_access(cd_worker *w, const cd_conn *c, const cd_request *r, int status, size_t bytes)
{
    char peer[64] = "-";
    if (c)
        peer_string(&c->peer, peer, sizeof peer);
    else if (r && r->peer[0])
        snprintf(peer, sizeof peer, "%s", r->peer);
    const char *method = r && r->path ? llhttp_method_name((llhttp_method_t)r->llmethod) : "-";
    char url[1024], ua[256], ref[256];
    esc(url, sizeof url, r && r->arena ? r->arena : "-");
    esc(ua, sizeof ua, r && r->path ? cd_request_header(r, "User-Agent") : NULL);
    esc(ref, sizeof ref, r && r->path ? cd_request_header(r, "Referer") : NULL);
    double dt = r && r->start > 0 ? ev_time() - r->start : 0;
    char tbuf[64];
    time_t now = (time_t)ev_now(w->loop);
    struct tm tm;
    gmtime_r(&now, &tm);
    char line[2048];
    int n;
    if (w->conf->access_log_json) {
        strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"remote\":\"%s\",\"method\":\"%s\",\"url\":\"%s\",\"status\":%d,"
                     "\"bytes\":%zu,\"duration\":%.6f,\"service\":\"%s\",\"user_agent\":\"%s\",\"referer\":\"%s\","
                     "\"slot\":%d}\n",
                     tbuf, peer, method, url, status, bytes, dt, r && r->svc ? r->svc->name : "-", ua, ref, w->slot);
    } else {
        strftime(tbuf, sizeof tbuf, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        n = snprintf(line, sizeof line, "%s - - [%s] \"%s %s HTTP/1.%d\" %d %zu \"%s\" \"%s\" %.6f\n", peer, tbuf,
                     method, url, r ? r->http_minor : 1, status, bytes, ref[0] ? ref : "-", ua[0] ? ua : "-", dt);
    }
    if (n > 0)
        cd_accesslog_append(&w->access_log, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void respond(cd_request *r, int status, const char *content_type, const char *body, size_t len,
                    const char *extra)
{
    cd_worker *w = r->w;
    cd_conn *c = r->conn;
    count(w, r->svc, status, r->start);
    if (w->access_log_open)
        log_access(w, c, r, status, r->head ? 0 : len);
    if (w->stats.in_flight)
        w->stats.in_flight--;
    if (c) {
        c->req = NULL;
        if (w->draining || c->upgrade || c->peer_closed)
            c->keepalive = 0;
        queue_response(c, status, content_type, body, len, r->head, extra);
        if (c->state == CS_SERVICE)
            c->state = c->keepalive ? CS_IDLE : CS_CLOSING;
    }
    request_free(r);
    if (c && !c->processing)
        conn_process(c);
}

void cd_request_respond(cd_request *r, int status, const char *content_type, const char *body, size_t len)
{
    respond(r, status, content_type, body, len, NULL);
}

/* {"error":"<msg>","status":N} with msg escaped; returns the length. */
static int error_body(char *body, size_t size, int status, const char *msg)
{
    char msg_esc[300];
    esc(msg_esc, sizeof msg_esc, msg);
    int n = snprintf(body, size, "{\"error\":\"%s\",\"status\":%d}", msg_esc, status);
    return n > 0 && (size_t)n < size ? n : 0;
}

int cd_request_upgrade(cd_request *r, char *buf, size_t cap, size_t *len)
{
    cd_worker *w = r->w;
    cd_conn *c = r->conn;
    count(w, r->svc, 101, r->start);
    if (w->stats.in_flight)
        w->stats.in_flight--;
    request_free(r);
    *len = 0;
    if (!c)
        return -1;
    c->req = NULL;
    size_t left = c->in_len - c->in_off;
    if (left > cap || c->out_off < c->out_len) {
        if (c->processing)
            c->state = CS_CLOSING; /* conn_process closes it */
        else
            conn_close(c);
        return -1;
    }
    memcpy(buf, c->in + c->in_off, left);
    *len = left;
    int fd = c->fd;
    c->fd = -1; /* now the service's */
    ev_io_stop(w->loop, &c->io);
    if (c->processing) {
        /* Called from handle(), with conn_process on the stack: let it free
         * the connection when it unwinds. */
        c->state = CS_CLOSING;
        c->in_off = c->in_len = 0;
        c->out_off = c->out_len = 0;
    } else {
        conn_close(c);
    }
    return fd;
}

/* ---- the upgrade by callback ---- */

/* The client went away before its connection could be handed over: the
 * callback still runs once (fd -1), from a zero timer of its own. */
typedef struct upgrade_gone {
    ev_timer t; /* first member */
    cd_upgrade_cb cb;
    void *arg;
} upgrade_gone;

static void upgrade_gone_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    upgrade_gone *g = (upgrade_gone *)t;
    cd_upgrade_cb cb = g->cb;
    void *arg = g->arg;
    free(g);
    cb(arg, -1, NULL, 0);
}

void cd_http_upgrade(cd_request *r, cd_upgrade_cb cb, void *arg)
{
    cd_worker *w = r->w;
    cd_conn *c = r->conn;
    count(w, r->svc, 101, r->start);
    if (w->stats.in_flight)
        w->stats.in_flight--;
    request_free(r);
    if (!c) {
        upgrade_gone *g = calloc(1, sizeof *g);
        if (!g) {
            cd_err("out of memory handing over an upgraded connection");
            return;
        }
        g->cb = cb;
        g->arg = arg;
        ev_timer_init(&g->t, upgrade_gone_cb, 0., 0.);
        ev_timer_start(w->loop, &g->t);
        return;
    }
    c->req = NULL;
    c->up_cb = cb;
    c->up_arg = arg;
    c->state = CS_UPGRADE;
    ev_io_stop(w->loop, &c->io);
    /* The hand-over runs from the connection's timer, so never inside the
     * handler; conn_process re-arms it once queued answers are out. */
    ev_timer_stop(w->loop, &c->timer);
    ev_timer_set(&c->timer, 0., 0.);
    ev_timer_start(w->loop, &c->timer);
}

/* Gives the socket and the bytes after the request to the upgrade callback
 * (from the connection's timer: nothing of the handler is on the stack). */
static void conn_handover(cd_conn *c)
{
    char head[IN_BUF];
    size_t n = c->in_len - c->in_off;
    memcpy(head, c->in + c->in_off, n);
    int fd = c->fd;
    cd_upgrade_cb cb = c->up_cb;
    void *arg = c->up_arg;
    c->fd = -1; /* now the callee's */
    c->up_cb = NULL;
    conn_close(c);
    cb(arg, fd, head, n);
}

void cd_request_respond_error(cd_request *r, int status, const char *msg)
{
    char body[512];
    int n = error_body(body, sizeof body, status, msg);
    respond(r, status, "application/json", body, (size_t)n, NULL);
}

/* An error found by the connection layer itself: answer and close. */
static void conn_fail(cd_conn *c, int status, const char *msg)
{
    c->keepalive = 0;
    cd_request *partial = c->req && c->state == CS_READING ? c->req : NULL;
    char body[512];
    int n = error_body(body, sizeof body, status, msg);
    count_status(c->w, status);
    if (c->w->access_log_open)
        log_access(c->w, c, partial, status, (size_t)n);
    if (partial) {
        request_free(partial);
        c->req = NULL;
    }
    queue_response(c, status, "application/json", body, (size_t)n, c->parser.method == HTTP_HEAD, NULL);
    c->state = CS_CLOSING;
}

/* ---- llhttp callbacks (run inside llhttp_execute) ---- */

static cd_request *cur(llhttp_t *p) { return ((cd_conn *)p->data)->req; }

static int on_message_begin(llhttp_t *p)
{
    cd_conn *c = p->data;
    cd_request *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->w = c->w;
    r->conn = c;
    c->req = r;
    c->state = CS_READING;
    c->body_until = 0;
    /* header_timeout runs from the first byte of the request. */
    ev_timer_stop(c->w->loop, &c->timer);
    ev_timer_set(&c->timer, (double)c->w->conf->header_timeout_ms / 1000.0, 0.);
    ev_timer_start(c->w->loop, &c->timer);
    return 0;
}

static size_t header_limit(llhttp_t *p) { return ((cd_conn *)p->data)->w->conf->max_header_size; }

/* Ends the current string in the arena with a NUL. */
static int arena_nul(cd_request *r, size_t limit)
{
    if (arena_append(r, "", 0, limit) < 0 || r->arena_len + 1 >= limit)
        return -1;
    r->arena_len++; /* arena_append left a NUL at arena[arena_len] */
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    cd_request *r = cur(p);
    if (arena_append(r, at, len, header_limit(p)) < 0) {
        r->error_status = 414;
        return -1;
    }
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    cd_request *r = cur(p);
    r->url_len = r->arena_len;
    if (arena_nul(r, header_limit(p)) < 0) {
        r->error_status = 414;
        return -1;
    }
    return 0;
}

/* RFC 9110 §5.6.2: tchar, what a field name is made of.  A table: every
 * header name byte of every request goes through it. */
static const unsigned char tchar[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    cd_request *r = cur(p);
    /* llhttp's default (non-strict) build lets spaces into a name, also
     * before the colon ("Name : v"); RFC 9112 §5.1 says 400, and a proxy
     * that reads such a header differently is a request-smuggling vector. */
    for (size_t i = 0; i < len; i++)
        if (!tchar[(unsigned char)at[i]]) {
            r->error_status = 400;
            return -1;
        }
    if (!r->in_name) { /* a new header; a name may come in several pieces */
        if (r->nhdrs == MAX_HEADERS) {
            r->error_status = 431;
            return -1;
        }
        hdr *h = &r->hdrs[r->nhdrs++];
        h->name = r->arena_len;
        h->name_len = h->value = h->value_len = 0;
        r->in_name = 1;
    }
    if (arena_append(r, at, len, header_limit(p)) < 0) {
        r->error_status = 431;
        return -1;
    }
    r->hdrs[r->nhdrs - 1].name_len += len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    cd_request *r = cur(p);
    r->in_name = 0;
    if (arena_nul(r, header_limit(p)) < 0) {
        r->error_status = 431;
        return -1;
    }
    r->hdrs[r->nhdrs - 1].value = r->arena_len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    cd_request *r = cur(p);
    if (arena_append(r, at, len, header_limit(p)) < 0) {
        r->error_status = 431;
        return -1;
    }
    r->hdrs[r->nhdrs - 1].value_len += len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    cd_request *r = cur(p);
    if (arena_nul(r, header_limit(p)) < 0) {
        r->error_status = 431;
        return -1;
    }
    return 0;
}

static unsigned method_bit(uint8_t m)
{
    switch (m) {
    case HTTP_GET: return CD_M_GET;
    case HTTP_HEAD: return CD_M_HEAD;
    case HTTP_POST: return CD_M_POST;
    case HTTP_PUT: return CD_M_PUT;
    case HTTP_DELETE: return CD_M_DELETE;
    case HTTP_OPTIONS: return CD_M_OPTIONS;
    case HTTP_PATCH: return CD_M_PATCH;
    default: return 0;
    }
}

static int on_headers_complete(llhttp_t *p)
{
    cd_conn *c = p->data;
    cd_request *r = c->req;
    r->method = method_bit(p->method);
    r->head = p->method == HTTP_HEAD;
    r->llmethod = p->method;
    r->http_minor = p->http_minor;
    /* Split the URL: path and query.  An absolute-form URL keeps its path. */
    char *url = r->arena ? r->arena : "";
    const char *u = url;
    if (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) {
        const char *slash = strchr(strstr(u, "//") + 2, '/');
        u = slash ? slash : "/";
    }
    const char *q = strchr(u, '?');
    size_t plen = q ? (size_t)(q - u) : strlen(u);
    const char *hash = memchr(u, '#', plen);
    if (hash)
        plen = (size_t)(hash - u);
    r->path = strndup(u, plen);
    r->query = strdup(q ? q + 1 : "");
    if (!r->path || !r->query)
        return -1;
    char *h = strchr(r->query, '#');
    if (h)
        *h = '\0';
    if (p->content_length > c->w->conf->max_body_size && (p->flags & F_CONTENT_LENGTH)) {
        r->error_status = 413;
        return -1;
    }
    const char *expect = cd_request_header(r, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0)
        r->expect_continue = 1;
    /* Headers are in: from now on the timer guards the body (when there is
     * none, on_message_complete follows at once and dispatch stops it). */
    c->body_until = ev_now(c->w->loop) + (double)c->w->conf->body_deadline_ms / 1000.0;
    body_timer(c);
    if (r->expect_continue && (p->flags & (F_CONTENT_LENGTH | F_CHUNKED)) && c->out_len == c->out_off) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t wr = send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)wr; /* best effort: a client that misses it sends the body anyway */
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    cd_conn *c = p->data;
    cd_request *r = c->req;
    size_t limit = c->w->conf->max_body_size;
    if (r->body_len + len > limit) {
        r->error_status = 413;
        return -1;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *n = realloc(r->body, cap);
        if (!n)
            return -1;
        r->body = n;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    cd_conn *c = p->data;
    c->keepalive = llhttp_should_keep_alive(p) && !c->w->draining && c->w->conf->keepalive_timeout_ms > 0;
    c->upgrade = p->upgrade;
    return HPE_PAUSED;
}

static void settings_init(void)
{
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_url_complete = on_url_complete;
    settings.on_header_field = on_header_field;
    settings.on_header_field_complete = on_header_field_complete;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    settings_ready = 1;
}

/* ---- the connection state machine ---- */

static void set_timer(cd_conn *c, long long ms)
{
    ev_timer_stop(c->w->loop, &c->timer);
    if (ms > 0) {
        ev_timer_set(&c->timer, (double)ms / 1000.0, 0.);
        ev_timer_start(c->w->loop, &c->timer);
    }
}

/* While a body is read: the timer ends at the next of body_timeout from
 * now and the body's deadline. */
static void body_timer(cd_conn *c)
{
    double left = c->body_until - ev_now(c->w->loop);
    double t = (double)c->w->conf->body_timeout_ms / 1000.0;
    if (left < t)
        t = left > 0 ? left : 0;
    ev_timer_stop(c->w->loop, &c->timer);
    ev_timer_set(&c->timer, t, 0.);
    ev_timer_start(c->w->loop, &c->timer);
}

static void set_io(cd_conn *c, int events)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&c->io))
        return;
    ev_io_stop(c->w->loop, &c->io);
    if (events) {
        ev_io_set(&c->io, c->fd, events);
        ev_io_start(c->w->loop, &c->io);
    }
}

/* Writes what is queued.  Returns 1 when all is out, 0 when the socket is
 * full, -1 when the connection is dead. */
static int conn_flush(cd_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > 65536) { /* do not keep a big buffer on an idle connection */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return 1;
}

/* Hands a complete request to its service (or answers it ourselves). */
static void dispatch(cd_conn *c)
{
    cd_worker *w = c->w;
    cd_request *r = c->req;
    c->state = CS_SERVICE;
    ev_timer_stop(w->loop, &c->timer);
    w->stats.in_flight++;
    r->start = ev_time();
    if (w->access_log_open) /* the connection may be gone when it is answered */
        peer_string(&c->peer, r->peer, sizeof r->peer);
    cd_service *s = cd_router_match(w->routes, w->nservices, r->path);
    if (!s) {
        cd_request_respond_error(r, 404, "no route for this path");
        return;
    }
    if (!(s->type->methods & r->method)) {
        static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
        char allow[128] = "Allow: ";
        for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
            if (s->type->methods & (1u << i)) {
                if (allow[7])
                    strcat(allow, ", ");
                strcat(allow, names[i]);
            }
        strcat(allow, "\r\n");
        char body[256];
        int n = error_body(body, sizeof body, 405, "method not allowed here");
        respond(r, 405, "application/json", body, (size_t)n, allow);
        return;
    }
    r->svc = s;
    r->subpath = r->path + (s->route_len == 1 ? 0 : s->route_len);
    s->type->handle(s, r);
}

/* Parses what is buffered; dispatches at most one request. */
static void conn_parse(cd_conn *c)
{
    const char *data = c->in + c->in_off;
    size_t len = c->in_len - c->in_off;
    if (llhttp_get_errno(&c->parser) == HPE_PAUSED)
        llhttp_resume(&c->parser);
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK) {
        c->in_off = c->in_len = 0; /* all copied out */
        return;
    }
    if (err == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        c->in_off = (size_t)(pos - c->in);
        if (c->in_off == c->in_len)
            c->in_off = c->in_len = 0;
        dispatch(c);
        return;
    }
    int status = 400;
    const char *msg = "malformed request";
    if (c->req && c->req->error_status) {
        status = c->req->error_status;
        msg = status == 400 ? "malformed request"
              : status == 413 ? "request body too large"
              : status == 414 ? "request URI too long"
              : "request headers too large";
    } else if (err == HPE_INVALID_VERSION) {
        status = 505;
        msg = "HTTP version not supported";
    }
    cd_debug("fd %d: %s (%s: %s)", c->fd, msg, llhttp_errno_name(err), llhttp_get_error_reason(&c->parser));
    c->in_off = c->in_len = 0;
    conn_fail(c, status, msg);
}

/* Drives the connection as far as it can go without waiting. */
static void conn_process(cd_conn *c)
{
    cd_worker *w = c->w;
    c->processing = 1;
    for (;;) {
        if (c->out_off < c->out_len) {
            int f = conn_flush(c);
            if (f < 0) {
                c->processing = 0;
                conn_close(c);
                return;
            }
            if (f == 0) {
                set_io(c, EV_WRITE);
                set_timer(c, w->conf->keepalive_timeout_ms > 0 ? w->conf->keepalive_timeout_ms : 5000);
                break;
            }
        }
        if (c->state == CS_CLOSING) {
            c->processing = 0;
            conn_close(c);
            return;
        }
        if (c->state == CS_UPGRADE) {
            /* Queued answers are out: hand over from the timer, soon. */
            set_io(c, 0);
            ev_timer_stop(w->loop, &c->timer);
            ev_timer_set(&c->timer, 0., 0.);
            ev_timer_start(w->loop, &c->timer);
            break;
        }
        if (c->state == CS_SERVICE) {
            /* Keep reading into the buffer (pipelined requests wait there)
             * until it is full: toggling the watcher per request would cost
             * epoll_ctl calls for nothing. */
            set_io(c, c->peer_closed || c->in_len == sizeof c->in ? 0 : EV_READ);
            break;
        }
        if (c->in_off < c->in_len) {
            conn_parse(c);
            continue;
        }
        /* Need more bytes. */
        if (c->state == CS_IDLE) {
            /* While draining, cd_http_drain closes it after a grace period. */
            c->idle_since = ev_now(w->loop);
            set_timer(c, w->conf->keepalive_timeout_ms > 0 ? w->conf->keepalive_timeout_ms
                                                           : w->conf->header_timeout_ms);
        }
        set_io(c, EV_READ);
        break;
    }
    c->processing = 0;
}

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    cd_conn *c = io->data;
    if (revents & EV_READ) {
        if (c->in_len == sizeof c->in) {
            /* Cannot happen while parsing (everything is copied out); be safe. */
            conn_fail(c, 431, "request headers too large");
        } else {
            ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
            if (n == 0 && c->state == CS_SERVICE) {
                /* Half-closed while its request is being served: answer, then close. */
                c->peer_closed = 1;
                conn_process(c);
                return;
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                if (c->state == CS_READING)
                    cd_debug("fd %d: client closed mid-request", c->fd);
                conn_close(c);
                return;
            }
            if (n > 0) {
                c->in_len += (size_t)n;
                if (c->state == CS_READING && c->body_until > 0) /* in the body */
                    body_timer(c);
            }
        }
    }
    conn_process(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_conn *c = t->data;
    if (c->state == CS_READING) {
        /* A client that stalls mid-request: tell it, then close. */
        if (c->body_until == 0)
            cd_debug("fd %d: request headers not received within header_timeout", c->fd);
        else if (ev_now(loop) + 0.001 >= c->body_until)
            cd_info("fd %d: request body not received within body_deadline (%zu bytes in)", c->fd,
                    c->req ? c->req->body_len : 0);
        else
            cd_info("fd %d: request body stalled for body_timeout (%zu bytes in)", c->fd,
                    c->req ? c->req->body_len : 0);
        c->body_until = 0;
        llhttp_init(&c->parser, HTTP_REQUEST, &settings); /* forget the half request */
        c->parser.data = c;
        conn_fail(c, 408, "request not received in time");
        conn_process(c);
        return;
    }
    if (c->state == CS_UPGRADE) {
        if (c->out_off == c->out_len)
            conn_handover(c);
        else if (!ev_is_active(&c->io))
            conn_process(c); /* earlier answers are queued: write them first */
        else
            conn_close(c); /* they could not be written within keepalive_timeout */
        return;
    }
    conn_close(c); /* idle past keepalive_timeout, or a client not reading */
}

static void conn_close(cd_conn *c)
{
    cd_worker *w = c->w;
    ev_io_stop(w->loop, &c->io);
    ev_timer_stop(w->loop, &c->timer);
    if (c->fd >= 0)
        close(c->fd);
    if (c->req) {
        if (c->state == CS_SERVICE)
            c->req->conn = NULL; /* the service still owns it; respond() frees it */
        else
            request_free(c->req);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    w->stats.connections = (uint64_t)w->nconns;
    cd_upgrade_cb up_cb = c->up_cb; /* closed before its hand-over */
    void *up_arg = c->up_arg;
    free(c->out);
    free(c);
    /* A slot is free again: resume accepting if the limit had stopped us. */
    if (!w->draining && !w->accepting && w->nconns < w->conf->max_connections) {
        ev_io_start(w->loop, &w->accept_w);
        w->accepting = 1;
    }
    if (up_cb)
        up_cb(up_arg, -1, NULL, 0);
}

void cd_http_conn_new(cd_worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    if (!settings_ready)
        settings_init();
    cd_conn *c = calloc(1, sizeof *c);
    if (!c) {
        cd_err("out of memory for a connection; closing it");
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->state = CS_IDLE;
    if (peer && peerlen <= sizeof c->peer)
        memcpy(&c->peer, peer, peerlen);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->io.data = c;
    ev_init(&c->timer, conn_timer_cb);
    c->timer.data = c;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    w->stats.connections = (uint64_t)w->nconns;
    w->stats.accepted++;
    c->idle_since = ev_now(w->loop);
    /* New connections usually carry their request already: try at once. */
    ssize_t n = recv(fd, c->in, sizeof c->in, 0);
    if (n > 0) {
        c->in_len = (size_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        conn_close(c);
        return;
    }
    conn_process(c);
}

void cd_http_drain(cd_worker *w, ev_tstamp idle_grace)
{
    ev_tstamp now = ev_now(w->loop);
    cd_conn *next;
    for (cd_conn *c = w->conns; c; c = next) {
        next = c->next;
        if (c->state != CS_IDLE || c->out_off < c->out_len || c->in_len > c->in_off)
            continue; /* busy: it answers with Connection: close */
        ev_tstamp since = c->idle_since > w->drain_started ? c->idle_since : w->drain_started;
        if (now - since >= idle_grace)
            conn_close(c);
    }
}

void cd_http_close_all(cd_worker *w)
{
    while (w->conns)
        conn_close(w->conns);
}
