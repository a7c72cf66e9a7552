/*
 * parse.c - the llhttp callbacks that build a request from the bytes of a
 * connection (worker process, loop thread; they run inside llhttp_execute,
 * called by server.c).
 *
 * Each piece llhttp reports is copied into the request at once (request.c
 * has the layout), so the bytes read are a small fixed window, and once
 * parsed need no buffer at all (server.c reads into the loop's one buffer;
 * an idle connection keeps none).  The limits are checked here, where the
 * bytes arrive: the URL and headers against max_header_size (414, 431), at
 * most 100 headers (431), header names against RFC 9110's token characters
 * (400), the body against max_body_size, declared or chunked (413).  A refusal sets
 * error_status and stops llhttp; server.c answers it.
 *
 * On a complete message the parser pauses (HPE_PAUSED), so server.c
 * dispatches exactly one request and pipelined bytes wait in the buffer.
 * It also pauses right after the head of a request that belongs to
 * another worker (steer.c), so the body stays unread for that worker.
 * The header timer starts with the first byte of a request; at the end of
 * the headers the body timers take over (server.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http/conn.h"

static cd_request *cur(llhttp_t *p) { return ((cd_conn *)p->data)->req; }

static int on_message_begin(llhttp_t *p)
{
    cd_conn *c = p->data;
    cd_request *r = cd_http__request_new();
    if (!r)
        return -1;
    r->ctx = c->ctx;
    r->conn = c;
    c->req = r;
    c->state = CS_READING;
    c->body_until = 0;
    /* header_timeout runs from the first byte of the request. */
    cd_http__timer(c, (double)c->ctx->header_timeout_ms / 1000.0);
    return 0;
}

static size_t header_limit(llhttp_t *p) { return ((cd_conn *)p->data)->ctx->max_header_size; }

/* Ends the current string in the arena with a NUL. */
static int arena_nul(cd_request *r, size_t limit)
{
    if (cd_http__arena_append(r, "", 0, limit) < 0 || r->arena_len + 1 >= limit)
        return -1;
    r->arena_len++; /* arena_append left a NUL at arena[arena_len] */
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    cd_request *r = cur(p);
    if (cd_http__arena_append(r, at, len, header_limit(p)) < 0) {
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
        if (r->nhdrs == CD_HTTP_MAX_HEADERS) {
            r->error_status = 431;
            return -1;
        }
        cd_http_hdr *h = &r->hdrs[r->nhdrs++];
        h->name = r->arena_len;
        h->name_len = h->value = h->value_len = 0;
        r->in_name = 1;
    }
    if (cd_http__arena_append(r, at, len, header_limit(p)) < 0) {
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
    if (cd_http__arena_append(r, at, len, header_limit(p)) < 0) {
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

/* Splits the URL into NUL-terminated path and query copies (no fragment),
 * both in one allocation (r->path's; r->query points into it).  An
 * absolute-form URL keeps its path.  Returns 0 or -1 (no memory). */
static int split_url(cd_request *r)
{
    const char *u = r->arena ? r->arena : "";
    if (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) {
        const char *slash = strchr(strstr(u, "//") + 2, '/');
        u = slash ? slash : "/";
    }
    const char *q = strchr(u, '?');
    size_t plen = q ? (size_t)(q - u) : strlen(u);
    const char *hash = memchr(u, '#', plen);
    if (hash)
        plen = (size_t)(hash - u);
    size_t qlen = q && !hash ? strcspn(q + 1, "#") : 0;
    char *m = malloc(plen + 1 + qlen + 1);
    if (!m)
        return -1;
    memcpy(m, u, plen);
    m[plen] = '\0';
    if (qlen)
        memcpy(m + plen + 1, q + 1, qlen);
    m[plen + 1 + qlen] = '\0';
    r->path = m;
    r->query = m + plen + 1;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    cd_conn *c = p->data;
    cd_request *r = c->req;
    r->method = method_bit(p->method);
    r->head = p->method == HTTP_HEAD;
    r->llmethod = p->method;
    r->http_minor = p->http_minor;
    if (split_url(r) < 0)
        return -1;
    r->found = cd_router_find(c->ctx->routes, c->ctx->nroutes, r->path, &r->match);
    if (p->content_length > c->ctx->max_body_size && (p->flags & F_CONTENT_LENGTH)) {
        r->error_status = 413;
        return -1;
    }
    const char *expect = cd_request_header(r, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0)
        r->expect_continue = 1;
    /* Another worker's request: stop right after the head, before the 100
     * Continue and the body (server.c moves it, steer.c). */
    if ((c->steer_to = cd_http__steer(c)) != 0)
        return HPE_PAUSED;
    cd_http__headers_done(c);
    return 0;
}

void cd_http__headers_done(cd_conn *c)
{
    llhttp_t *p = &c->parser;
    /* Headers are in: from now on the timer guards the body (when there is
     * none, on_message_complete follows at once and dispatch stops it). */
    c->body_until = ev_now(c->ctx->loop) + (double)c->ctx->body_deadline_ms / 1000.0;
    cd_http__body_timer(c);
    if (c->req->expect_continue && (p->flags & (F_CONTENT_LENGTH | F_CHUNKED)) && c->out_len == c->out_off) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t wr = send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)wr; /* best effort: a client that misses it sends the body anyway */
    }
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    cd_conn *c = p->data;
    cd_request *r = c->req;
    size_t limit = c->ctx->max_body_size;
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
    c->keepalive = llhttp_should_keep_alive(p) && !c->ctx->draining && c->ctx->keepalive_timeout_ms > 0;
    c->upgrade = p->upgrade;
    return HPE_PAUSED;
}

const llhttp_settings_t *cd_http__settings(void)
{
    static llhttp_settings_t settings;
    static int ready;
    if (ready)
        return &settings;
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
    ready = 1;
    return &settings;
}
