/*
 * conn.h - what the files of http/ share inside the layer: a connection,
 * a request, and the calls between server.c (the state machine), parse.c
 * (llhttp), response.c (answers), stream.c (streamed answers), file.c
 * (answers whose body is a file, sent with sendfile), headers.c
 * (a service's headers), reqid.c, request.c, upgrade.c, steer.c (moving
 * a connection to the worker its request belongs to), and cors.c, gzip.c
 * and etag.c (the per-route options).  Nothing outside http/ includes it
 * but the unit tests; the rest of the program sees server.h and request.h.
 *
 * Ownership: a connection owns its current request (c->req) while the
 * request is read; once dispatched the handler owns it until it answers,
 * and if the connection closes meanwhile the request is detached
 * (r->conn = NULL) and freed by the answer.
 */
#ifndef CD_HTTP_CONN_H
#define CD_HTTP_CONN_H

#include <ev.h>
#include <llhttp.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/request.h"
#include "http/router.h"
#include "http/server.h"

#define CD_HTTP_IN_BUF 16384
#define CD_HTTP_OUT_BUF 16384
#define CD_HTTP_MAX_HEADERS 100
#define CD_REQID_MAX 64

enum cd_conn_state {
    CS_IDLE,    /* waiting for the first byte of a request */
    CS_READING, /* inside a request */
    CS_SERVICE, /* a handler holds the request */
    CS_CLOSING, /* write what is queued, then close */
    CS_UPGRADE, /* write what is queued, then hand the socket over (upgrade.c) */
};

typedef struct cd_http_hdr {
    size_t name, name_len, value, value_len; /* offsets into the arena */
} cd_http_hdr;

struct cd_request {
    cd_conn *conn; /* NULL once the client is gone */
    cd_http_ctx *ctx;
    const cd_route *route; /* set when a handler takes it */
    /* The route its path matches (NULL: none), found once, when the head is
     * in: the steer hook (steer.c) and the dispatch (server.c) both use it. */
    const cd_route *found;
    cd_route_match match;
    unsigned method;
    int head;
    char *arena; /* url, then header names and values */
    size_t arena_len, arena_cap;
    size_t url_len;
    int nhdrs;
    int in_name; /* inside a header name */
    char *path;  /* NUL-terminated copies made at headers-complete, */
    char *query; /* both in path's allocation */
    const char *subpath;
    char *body;
    size_t body_len, body_cap;
    int expect_continue;
    void *data;
    void (*gone_cb)(void *arg); /* cd_request_on_gone, told at most once */
    void *gone_arg;
    int error_status; /* set when the request is refused while parsing */
    double start;     /* when it was dispatched (ev_now: the loop's time) */
    double took;      /* seconds from start to its answer (cd_http__finish) */
    uint8_t llmethod, http_minor;
    char peer[48]; /* the client's address, for the access log */
    char reqid[CD_REQID_MAX + 1]; /* X-Request-Id (reqid.c), set at dispatch */

    /* The answer's own headers (headers.c): "Name: value\r\n" lines set by
     * cd_response_header, and a Content-Type for answers that give none. */
    char *rh;
    size_t rh_len, rh_cap;
    char *rh_ctype;
    /* Route parameters (router.c matches, request.c decodes). */
    int nparams;
    const char *pname[CD_ROUTE_MAX_PARAMS]; /* into the route's prefix */
    size_t pname_len[CD_ROUTE_MAX_PARAMS];
    char *pval[CD_ROUTE_MAX_PARAMS]; /* decoded, in pbuf */
    char *pbuf;
    /* A streamed answer (stream.c): begun, chunked framing, body bytes. */
    int streaming, chunked, stream_failed;
    int stream_status;
    size_t streamed;
    /* Last, and not cleared when a request begins (parse.c): hdrs[0..nhdrs)
     * are set as the headers come. */
    cd_http_hdr hdrs[CD_HTTP_MAX_HEADERS];
};

struct cd_conn {
    cd_http_ctx *ctx;
    int fd;
    enum cd_conn_state state;
    ev_io io;
    ev_timer timer;
    llhttp_t parser;
    cd_request *req;
    int keepalive;   /* answer this request with keep-alive */
    int peer_closed; /* the client shut its side while a request was in service */
    int upgrade;     /* the request asked for an upgrade */
    cd_upgrade_cb up_cb; /* set by cd_http_upgrade until the hand-over */
    void *up_arg;
    ev_tstamp deadline;   /* when the timer's timeout is due, ev_now time (0: none); server.c */
    ev_tstamp body_until; /* body_deadline of the body being read (0: none) */
    /* Unparsed bytes are in[in_off..in_len).  in is NULL while nothing
     * waits (an idle connection holds no buffer), the loop's read buffer
     * while what was just read is parsed, or a CD_HTTP_IN_BUF buffer of its
     * own while bytes wait (pipelined, or after a paused head): server.c. */
    char *in;
    size_t in_off, in_len;
    char *out; /* NULL on an idle connection; the loop's buffer while an answer leaves at once (server.c) */
    size_t out_off, out_len, out_cap;
    int processing; /* cd_http__process is on the stack */
    int moved;         /* moved here (steer.c): its next request is served here, not steered */
    uint32_t steer_to; /* the worker its request belongs to, set at headers-complete (steer.c) */
    /* A file answer's body (file.c), sent once out is: file_left bytes of
     * file_fd from file_off; file_fd is open only while file_left > 0. */
    int file_fd;
    off_t file_off;
    size_t file_left;
    ev_tstamp idle_since;
    struct sockaddr_storage peer;
    cd_conn *prev, *next;
};

/* server.c */
void cd_http__process(cd_conn *c);           /* drives c as far as it goes without waiting */
void cd_http__close(cd_conn *c);             /* closes and frees c (detaching its request) */
void cd_http__timer(cd_conn *c, double sec); /* c times out sec from now (lazily armed) */
void cd_http__timer_stop(cd_conn *c);        /* c has no timeout now */
void cd_http__body_timer(cd_conn *c);        /* the timer while a body is read */
/* c's output (NULL) becomes the loop's buffer, when no connection holds
 * it: 1, else 0.  What is left in it moves to c's own buffer at the end of
 * cd_http__process (response.c has the buffer). */
int cd_http__out_borrow(cd_conn *c);
int cd_http__out_borrowed(const cd_conn *c); /* c->out is the loop's buffer */
void cd_http__out_drop(cd_conn *c);          /* frees c->out, or gives it back */
/* At the end of cd_http__process: what is still queued in the loop's
 * buffer moves to one of c's own.  0, or -ENOMEM. */
int cd_http__out_settle(cd_conn *c);

/* parse.c */
const llhttp_settings_t *cd_http__settings(void);
/* The rest of headers-complete once a request stays here: 100 Continue
 * when asked for, and the body's timers. */
void cd_http__headers_done(cd_conn *c);

/* request.c */
cd_request *cd_http__request_new(void);    /* cleared but for hdrs; NULL without memory */
void cd_http__request_free(cd_request *r); /* frees it (or keeps it for the next) */
/* Decodes the parameters m found in r's path (r->pval).  0, -1 when one
 * does not decode (a bad escape, or a NUL), -2 without memory. */
int cd_http__params(cd_request *r, const cd_route_match *m);
int cd_http__arena_append(cd_request *r, const char *at, size_t len, size_t limit);
/* r's client went away while r is in service: tells its owner (the
 * cd_request_on_gone callback, which may answer r).  1 when it did. */
int cd_http__gone(cd_request *r);

/* response.c */
/* Appends len bytes to c's output.  0, or -1 (no memory; keepalive is
 * cleared, the caller decides what else). */
int cd_http__out_put(cd_conn *c, const char *s, size_t len);
/* Queues a status line and headers for r (NULL: none) on c.  len is the
 * Content-Length, or (size_t)-1 for a streamed body (chunked on HTTP/1.1,
 * close-delimited on 1.0).  extra: more header lines, or NULL. */
int cd_http__queue_head(cd_conn *c, const cd_request *r, const char *reqid, int status, const char *ctype,
                        size_t len, const char *extra);
/* Answers r (extra: more header lines, or NULL); frees r. */
void cd_http__respond(cd_request *r, int status, const char *ctype, const char *body, size_t len,
                      const char *extra);
/* An answer without a request in service (the connection layer refused
 * what it read): answer and close. */
void cd_http__fail(cd_conn *c, int status, const char *msg);
/* Tells the owner r ended with status (on_done) and counts it out of
 * in_flight; does not free it. */
void cd_http__finish(cd_request *r, int status);
/* Every answer (whole, file, stream end) starts and ends the same way:
 * start counts and logs it (bytes: the body bytes sent) and detaches r from
 * its connection, returned (NULL when the client is gone) with keepalive
 * off if it must close after this answer; done moves the connection on and
 * frees r. */
cd_conn *cd_http__answer_start(cd_request *r, int status, size_t bytes);
void cd_http__answer_done(cd_request *r, cd_conn *c);
/* The client's address as text ("-" when unknown). */
void cd_http__peer_string(const struct sockaddr_storage *ss, char *out, size_t len);

/* Hands the access log what it keeps of a request (r may be NULL or a
 * request refused half-read; c NULL when the client is gone). */
void cd_http__log(cd_http_ctx *ctx, const cd_conn *c, const cd_request *r, const char *reqid, int status,
                  size_t bytes);

/* headers.c */
/* The header name is a token and the value has no CR, LF or NUL: 0 or -EINVAL. */
int cd_http__header_valid(const char *name, const char *value);
/* The header is one the server writes itself (Content-Length, ...). */
int cd_http__header_owned(const char *name);

/* reqid.c */
/* Sets r->reqid: the client's X-Request-Id if valid, else a new one. */
void cd_http__reqid(cd_http_ctx *ctx, cd_request *r);
/* A new id ("<pid hex>-<seconds hex>-<counter hex>") into out. */
void cd_http__reqid_new(cd_http_ctx *ctx, char out[CD_REQID_MAX + 1]);
/* Whether s is a valid id: 1..64 of [A-Za-z0-9._-]. */
int cd_http__reqid_valid(const char *s);

/* file.c */
/* Sends the file body queued on c (file_left > 0) after out: 1 when all of
 * it is out (the file closed), 0 when the socket is full or c had its fair
 * share, -1 when the connection is dead (the file closed). */
int cd_http__file_flush(cd_conn *c);
/* Closes the file of an answer not (fully) sent. */
void cd_http__file_close(cd_conn *c);

/* cors.c (for a route with cors_origins) */
/* Answers r (204) when it is a CORS preflight and returns 1; else 0. */
int cd_http__cors_preflight(cd_request *r);
/* Adds Access-Control-Allow-Origin and co. when r's Origin is allowed. */
void cd_http__cors_simple(cd_request *r);

/* gzip.c */
/* Whether an Accept-Encoding value (NULL: absent) admits gzip. */
int cd_http__accepts_gzip(const char *accept_encoding);
/* Compresses body into a new buffer (*out, the caller frees).  0 or -ENOMEM. */
int cd_http__gzip(const char *body, size_t len, char **out, size_t *outlen);

/* etag.c */
#define CD_ETAG_MAX 48
/* A strong ETag of body (gz: of its gzip encoding), quotes included. */
void cd_http__etag(const char *body, size_t len, int gz, char out[CD_ETAG_MAX]);
/* Whether an If-None-Match value matches tag (weak comparison, or "*"). */
int cd_http__etag_match(const char *if_none_match, const char *tag);

/* steer.c */
/* Writes r's head back as llhttp parsed it: the request line (HTTP/1.0 or
 * 1.1), the headers in order as "Name: value", the blank line.  Returns
 * its length, -EMSGSIZE over cap, or -EINVAL when it would not read back
 * the same (not HTTP/1.x; a CR, LF or NUL inside).  Pure. */
long cd_http__head_write(const cd_request *r, int http_major, char *out, size_t cap);
/* At headers-complete: the worker c's request must be served by (the
 * on_steer hook), or 0 for here (always for the first request of a
 * connection moved here). */
uint32_t cd_http__steer(cd_conn *c);
/* c is paused right after the head of a request for worker `to`: moves it
 * there (on_move).  1 when it went (c is freed), 0 when it stays here. */
int cd_http__move(cd_conn *c, uint32_t to);

/* upgrade.c */
void cd_http__handover(cd_conn *c); /* gives the socket to the upgrade callback */

#endif
