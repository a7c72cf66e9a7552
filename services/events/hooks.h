/*
 * hooks.h - the events service's HTTP hooks (issue 17): Socket.IO
 * handlers in any language, as an HTTP backend clusterd calls (the way
 * Centrifugo's proxy works).  Internal to services/events/, shared with
 * its unit tests and fuzz targets:
 *
 *   hookclient.c  a non-blocking HTTP client on the worker's loop
 *                 (libcurl's multi interface driven by libev): POST a JSON
 *                 body, a timeout, a bound on requests in flight
 *   hook_proto.c  pure: the *_hook keys, the JSON bodies sent to the
 *                 backend, the parser of its answers (outside input:
 *                 tests/fuzz/fuzz_events_hook.c)
 *   hooks.c       the handlers: for each namespace with hooks it registers
 *                 cd_sio_handlers through the public API (clusterd/
 *                 socketio.h), calls the hooks and applies their answers;
 *                 failures counted in /metrics, logged once per change
 *
 * The protocol is docs/socketio-hooks.md's.
 */
#ifndef CD_EVENTS_HOOKS_H
#define CD_EVENTS_HOOKS_H

#include <ev.h>
#include <stddef.h>

#include "clusterd/buf.h"
#include "clusterd/socketio.h"
#include "services/events/events.h"

/* ---- the HTTP client (hookclient.c; worker, loop thread) ---- */

typedef struct cd_hookclient cd_hookclient;
typedef struct cd_hook_req cd_hook_req;
/* How a request ended: err 0 and the answer (status, body NUL-terminated,
 * len bytes), or err -errno (-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH,
 * -EMSGSIZE an answer over max_answer, -ECANCELED the client was freed,
 * -EIO anything else) with curl's words for it in detail. */
typedef struct cd_hook_result {
    int err;
    long status;
    const char *body;
    size_t len;
    const char *detail;
} cd_hook_result;
typedef void (*cd_hook_cb)(void *arg, const cd_hook_result *res);
/* A client on loop allowing max_in_flight requests at once.  0, -ENOMEM. */
int cd_events__hookclient_new(struct ev_loop *loop, size_t max_in_flight, cd_hookclient **out);
/* Frees it; requests still in flight are called back with -ECANCELED
 * first (which must not call into the client). */
void cd_events__hookclient_free(cd_hookclient *hc);
size_t cd_events__hookclient_in_flight(const cd_hookclient *hc);
/* POSTs [body, body + len) (copied) as application/json to url; cb(arg,
 * result) once, from the loop, when it ends (timeout_ms for all of it).
 * 0; -EBUSY (max_in_flight already), -ENOMEM: then cb is never called. */
int cd_events__hook_post(cd_hookclient *hc, const char *url, const char *body, size_t len, long timeout_ms,
                         size_t max_answer, cd_hook_cb cb, void *arg);

/* ---- the protocol (hook_proto.c, pure) ---- */

enum { CD_HOOK_CONNECT, CD_HOOK_EVENT, CD_HOOK_DISCONNECT, CD_HOOK_KINDS };
/* Most names in an answer's join, leave, an emit's rooms or except; most
 * emits in one answer. */
#define CD_HOOK_LIST_MAX 64
/* Longest event name and refusal message in an answer, in bytes. */
#define CD_HOOK_NAME_MAX 255
/* Largest answer read from a hook. */
#define CD_HOOK_ANSWER_MAX (1 << 20)

/* The hooks of a section: the URL of each kind per namespace index (NULL:
 * none), resolved by _hooks_conf_check from the keys as written. */
typedef struct cd_events_hooks_conf {
    char *spec[CD_HOOK_KINDS];       /* connect_hook, ...: "/chat=URL, /=URL" */
    char *url[CD_HOOK_KINDS][CD_EVENTS_NSP_MAX]; /* [kind][namespace index] */
} cd_events_hooks_conf;
/* The keys' setters (conf.c's table): connect_hook, event_hook,
 * disconnect_hook.  They check the shape NSP=URL (http:// or https://). */
int cd_events__set_connect_hook(void *conf, const char *value, char *err, size_t errlen);
int cd_events__set_event_hook(void *conf, const char *value, char *err, size_t errlen);
int cd_events__set_disconnect_hook(void *conf, const char *value, char *err, size_t errlen);
/* conf_check's part: every NSP named is in `namespaces`, once per key;
 * fills url[][].  0, or -1 with why in err. */
int cd_events__hooks_conf_check(cd_events_conf *c, char *err, size_t errlen);
void cd_events__hooks_conf_free(cd_events_conf *c);
/* Whether namespace index nsp has any hook. */
int cd_events__hooks_any(const cd_events_conf *c, int nsp);

/* Who a call is about: the socket's sid, namespace, user (NULL: none) and
 * the data the backend gave it (raw JSON, NULL: none). */
typedef struct cd_hook_who {
    const char *sid, *nsp, *user;
    const char *data;
    size_t data_len;
} cd_hook_who;
/* The bodies.  auth: the CONNECT payload's JSON (NULL: null); headers:
 * nh names and values (a NULL value is left out).  Attachments go as
 * "attachments":[base64...] beside args, which keep socket.io's
 * placeholders.  0 or -ENOMEM (b is then to be freed). */
int cd_events__hook_body_connect(cd_buf *b, const cd_hook_who *w, const char *auth, size_t auth_len,
                                 const char *const *hnames, const char *const *hvalues, size_t nh);
int cd_events__hook_body_event(cd_buf *b, const cd_hook_who *w, const char *event, const cd_sio_args *args,
                               int ack);
int cd_events__hook_body_disconnect(cd_buf *b, const cd_hook_who *w, const char *reason);

/* Binary attachments decoded from an answer's "attachments" (base64). */
typedef struct cd_hook_bins {
    size_t n;
    const void *bin[CD_EVENTS_ATTACH_MAX]; /* malloc'd */
    size_t len[CD_EVENTS_ATTACH_MAX];
} cd_hook_bins;
typedef struct cd_hook_emit {
    char *event;
    const char *args; /* the raw JSON array in the answer, or NULL (none) */
    size_t args_len;
    cd_hook_bins bins;
    int to;           /* a "to" was given: a broadcast, not this socket */
    char **rooms, **except;
    size_t nrooms, nexcept;
} cd_hook_emit;
/* A parsed answer; raw values point into the body it was parsed from. */
typedef struct cd_hook_answer {
    int accept;          /* "accept": 1 true, 0 false, -1 absent */
    char *message;       /* "message" (a refusal's), or NULL */
    const char *data;    /* "data" (any JSON value, raw), or NULL */
    size_t data_len;
    const char *ack;     /* "ack" (an array, raw), or NULL */
    size_t ack_len;
    cd_hook_bins ack_bins; /* "ack_attachments" */
    char **join, **leave;
    size_t njoin, nleave;
    cd_hook_emit *emit;
    size_t nemit;
    int disconnect;      /* "disconnect": true */
} cd_hook_answer;
/* Parses a hook's answer: one JSON object (valid UTF-8, nesting at most
 * CD_EVENTS_JSON_DEPTH), nothing after it but whitespace; an empty body is
 * {}.  Members of the wrong type, room names of 0 or over
 * CD_EVENTS_ROOM_MAX bytes, lists over CD_HOOK_LIST_MAX, event names empty,
 * reserved or over CD_HOOK_NAME_MAX, bad base64, over 16 attachments are
 * errors.  Unknown members are ignored.  0, or -EINVAL (*why says what,
 * for the log) or -ENOMEM.  Call _answer_free whatever it returned. */
int cd_events__hook_answer_parse(const char *body, size_t len, cd_hook_answer *a, const char **why);
void cd_events__hook_answer_free(cd_hook_answer *a);

/* ---- the handlers (hooks.c; worker, loop thread) ---- */

/* Registers the handlers of every namespace with hooks (after
 * cd_events__sio_init).  0, or -1 with why in err (a namespace that also
 * has a handler module's handlers; nothing of it is left then). */
int cd_events__hooks_init(cd_events_state *st, char *err, size_t errlen);
/* After cd_events__sio_destroy: requests in flight cancelled, all freed. */
void cd_events__hooks_free(cd_events_state *st);

#endif
