/*
 * conn.h - what the files of http/ share inside the layer: a connection,
 * a request, and the calls between server.c (the state machine), parse.c
 * (llhttp), response.c (answers), request.c and upgrade.c.  Nothing outside
 * http/ includes it; the rest of the program sees server.h and request.h.
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
#define CD_HTTP_MAX_HEADERS 100

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
    unsigned method;
    int head;
    char *arena; /* url, then header names and values */
    size_t arena_len, arena_cap;
    size_t url_len;
    cd_http_hdr hdrs[CD_HTTP_MAX_HEADERS];
    int nhdrs;
    int in_name; /* inside a header name */
    char *path;  /* NUL-terminated copies made at headers-complete */
    char *query;
    const char *subpath;
    char *body;
    size_t body_len, body_cap;
    int expect_continue;
    void *data;
    int error_status; /* set when the request is refused while parsing */
    double start;     /* when it was dispatched (ev_time) */
    uint8_t llmethod, http_minor;
    char peer[48]; /* the client's address, for the access log */
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
    ev_tstamp body_until; /* body_deadline of the body being read (0: none) */
    char in[CD_HTTP_IN_BUF];
    size_t in_off, in_len; /* unparsed bytes are in[in_off..in_len) */
    char *out;
    size_t out_off, out_len, out_cap;
    int processing; /* cd_http__process is on the stack */
    ev_tstamp idle_since;
    struct sockaddr_storage peer;
    cd_conn *prev, *next;
};

/* server.c */
void cd_http__process(cd_conn *c);           /* drives c as far as it goes without waiting */
void cd_http__close(cd_conn *c);             /* closes and frees c (detaching its request) */
void cd_http__timer(cd_conn *c, double sec); /* (re)arms c's one timer */
void cd_http__body_timer(cd_conn *c);        /* the timer while a body is read */

/* parse.c */
const llhttp_settings_t *cd_http__settings(void);

/* request.c */
void cd_http__request_free(cd_request *r);
int cd_http__arena_append(cd_request *r, const char *at, size_t len, size_t limit);

/* response.c */
/* Answers r (extra: more header lines, or NULL); frees r. */
void cd_http__respond(cd_request *r, int status, const char *ctype, const char *body, size_t len,
                      const char *extra);
/* An answer without a request in service (the connection layer refused
 * what it read): answer and close. */
void cd_http__fail(cd_conn *c, int status, const char *msg);
/* Tells the owner r ended with status (on_done) and counts it out of
 * in_flight; does not free it. */
void cd_http__finish(cd_request *r, int status);
/* The client's address as text ("-" when unknown). */
void cd_http__peer_string(const struct sockaddr_storage *ss, char *out, size_t len);

/* upgrade.c */
void cd_http__handover(cd_conn *c); /* gives the socket to the upgrade callback */

#endif
