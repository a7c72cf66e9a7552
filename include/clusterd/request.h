/*
 * clusterd/request.h - the request API services use (public, installed;
 * worker process, loop thread).
 *
 * The HTTP layer (http/server.c) reads and parses a request, finds its
 * route (http/router.h) and calls the route's handler with a cd_request.
 * The handler reads what it needs through the functions below and must
 * answer every request exactly once with cd_request_respond() (or
 * cd_request_respond_error(), or take the connection with
 * cd_http_upgrade()), either before returning or later from a loop
 * callback (a timer, an ev_async from a thread).  Only the loop thread may
 * touch a cd_request.  If the client went away meanwhile, answering just
 * frees the request, so a handler never needs a cancellation path; one
 * that holds a request for long (a long-poll) may ask to be told
 * (cd_request_on_gone).
 */
#ifndef CLUSTERD_REQUEST_H
#define CLUSTERD_REQUEST_H

#include <stddef.h>
#include <sys/types.h> /* off_t */

typedef struct cd_request cd_request;

/* Method bits (cd_request_method, and the methods a route accepts). */
enum {
    CD_M_GET = 1u << 0,
    CD_M_HEAD = 1u << 1,
    CD_M_POST = 1u << 2,
    CD_M_PUT = 1u << 3,
    CD_M_DELETE = 1u << 4,
    CD_M_OPTIONS = 1u << 5,
    CD_M_PATCH = 1u << 6,
};

/* The request method as CD_M_* bit. */
unsigned cd_request_method(const cd_request *r);
/* The path (no query string), as sent (not percent-decoded), NUL-terminated. */
const char *cd_request_path(const cd_request *r);
/* The part of the path after the route's prefix ("" or "/..."). */
const char *cd_request_subpath(const cd_request *r);
/* The raw query string after '?', or "" (NUL-terminated). */
const char *cd_request_query(const cd_request *r);
/* Percent-decodes query parameter `key` into out (NUL-terminated).
 * Returns its length, -1 if absent, -2 if it does not fit or is malformed. */
int cd_request_query_param(const cd_request *r, const char *key, char *out, size_t outlen);
/* A request header by case-insensitive name, or NULL. */
const char *cd_request_header(const cd_request *r, const char *name);
/* A route parameter (route = /users/:id gives "id"), percent-decoded and
 * NUL-terminated, or NULL when the route has no such parameter.  Valid
 * until the request is answered.  (A value that does not decode, or
 * decodes to a NUL, is refused with 400 before the handler is called.) */
const char *cd_request_param(const cd_request *r, const char *name);
/* The request body (may be empty); valid until the request is answered. */
const char *cd_request_body(const cd_request *r, size_t *len);
/* Per-request slot for the handler's own pointer. */
void cd_request_set_data(cd_request *r, void *data);
void *cd_request_data(const cd_request *r);
/* Asks to be told when r's client goes away (its connection closes, or the
 * client shuts its side) before r is answered: cb(arg) runs at most once,
 * from the loop, never from inside a cd_* call of the handler's.  r stays
 * the handler's to answer (which then just frees it); cb may do so.  A NULL
 * cb cancels.  For requests held a long time (a long-poll), so the handler
 * can let go of what the client held at once. */
void cd_request_on_gone(cd_request *r, void (*cb)(void *arg), void *arg);

/* Answers the request: status, Content-Type (NULL for none), body.  The body
 * is copied.  Exactly once per request; the request is freed inside, so `r`
 * must not be used afterwards.  For HEAD the body is counted, not sent. */
void cd_request_respond(cd_request *r, int status, const char *content_type, const char *body,
                        size_t len);
/* Convenience: a JSON error body {"error":"<msg>","status":N}. */
void cd_request_respond_error(cd_request *r, int status, const char *msg);
/* Gives up on a request without answering it (the cancel path: a service
 * being destroyed with work still out).  The request is freed; a client
 * still connected is disconnected once earlier answers are written.  It is
 * not counted as answered and not logged.  Not from inside handle(). */
void cd_request_drop(cd_request *r);

/* ---- Response headers and streamed answers ---- */

/* Adds a response header to the answer of r (before it is answered or a
 * stream begins).  0, or -EINVAL: name not a token, value with CR/LF/NUL,
 * or a header the server owns (Content-Length, Transfer-Encoding,
 * Connection, Date, Keep-Alive, Upgrade, Server, X-Request-Id); -ENOMEM.
 * Content-Type set here is used when the answer gives none (the answer's
 * own content type wins, so it is never sent twice). */
int cd_response_header(cd_request *r, const char *name, const char *value);
/* Streamed answers, produced piece by piece: begin once (the status line
 * and headers are queued), write pieces, end once (which frees r).  On
 * HTTP/1.1 the body is chunked; an HTTP/1.0 client gets a body delimited
 * by closing the connection; a HEAD request gets the headers only (writes
 * are counted, not sent).  Writes are queued on the connection and sent as
 * the client reads; nothing blocks.  begin returns 0 or -EINVAL (already
 * begun); write returns 0, or -EPIPE once the client is gone (end r then;
 * nothing more will be sent), -ENOMEM.  An end without a begin answers
 * 204.  gzip and ETag (per-route options) apply to whole answers only. */
int cd_response_begin(cd_request *r, int status, const char *content_type);
int cd_response_write(cd_request *r, const void *data, size_t len);
void cd_response_end(cd_request *r);

/* Answers r with len bytes of the open file fd, from offset: status and
 * content_type as for cd_request_respond, with the headers set by
 * cd_response_header, Content-Length len.  The body is sent from the file
 * (sendfile) as the client reads; nothing blocks.  Takes fd: it is closed
 * once sent, or at once (HEAD, the client gone, an error).  Exactly once
 * per request, like cd_request_respond; frees r. */
void cd_response_file(cd_request *r, int status, const char *content_type, int fd, off_t offset, size_t len);

/* ---- Taking the connection away from HTTP (a WebSocket upgrade) ---- */

/* Receives the connection: fd is a non-blocking socket, now the callee's
 * (it closes it), and head[0..headlen) are the bytes the client sent after
 * the request (at most 16k; valid during the call only).  fd is -1 when the
 * client went away (or the server closed the connection) first; then only
 * arg is to be freed. */
typedef void (*cd_upgrade_cb)(void *arg, int fd, const char *head, size_t headlen);

/* Finishes the request without writing a response (it counts as a 101; the
 * callee writes its own "101 Switching Protocols") and frees it, so `r`
 * must not be used afterwards.  cb is called exactly once, never from
 * inside this function or the handler: from the loop, after the handler's
 * call has unwound and whatever earlier responses were queued on the
 * connection have been written.  The connection then no longer counts
 * towards max_connections.  Modelled on h2o's h2o_http1_upgrade. */
void cd_http_upgrade(cd_request *r, cd_upgrade_cb cb, void *arg);

#endif
