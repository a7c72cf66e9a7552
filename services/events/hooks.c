/*
 * hooks.c - Socket.IO handlers in any language: for each namespace with
 * hooks (connect_hook, event_hook, disconnect_hook), the events service
 * registers handlers through the public handler API (clusterd/socketio.h:
 * cd_sio_on, cd_sio_accept/refuse, cd_sio_ack_send, cd_sio_emit, ...)
 * that POST what happened to the application's backend and apply its JSON
 * answer (worker, loop thread).  Hooks are one more user of the API: what
 * they can do, a C handler module can, and the other way round.
 *
 *   connect     the socket stays pending until the answer: accepted (with
 *               the backend's "data" kept for the socket, its joins and
 *               emits applied) or refused with the backend's message
 *   event       the answer's joins, leaves, emits (to the socket, or to
 *               rooms on every worker), then the client's ack, then a
 *               disconnect if asked; the backend's "data" replaces the
 *               socket's
 *   disconnect  fire and forget
 *
 * Hook down or slow: the HTTP client (hookclient.c) times out after
 * hook_timeout and refuses calls over hook_max_in_flight at once, so
 * nothing waits longer than the timeout and nothing blocks.  A connect
 * then gets CONNECT_ERROR {"message":"hook unavailable"}, an event with
 * an ack the ack [{"error":"hook unavailable"}] (no internals: the log
 * has them).  Every call and failure is counted in /metrics
 * (clusterd_events_hook_calls_total / hook_failures_total{kind}); a hook
 * that starts failing is logged once, and once again when it answers.
 *
 * Lifetimes.  A call in flight holds the socket's handle: a pending
 * connect's handle stays valid until resolved (the API's promise); an
 * event's socket may go first, so each socket's calls are listed on its
 * state (cd_sio_set_data) and on_disconnect detaches them (the ack stays
 * valid until answered, so the client's ack is still answered: nowhere).
 * At destroy the client cancels what is in flight; the cancelled calls
 * touch nothing of the API, which is gone by then.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/hooks.h"

#define UNAVAILABLE "hook unavailable"
#define ERROR_ACK "[{\"error\":\"" UNAVAILABLE "\"}]"

typedef struct cd_events_hooks cd_events_hooks;
typedef struct hook_call hook_call;

/* One namespace with hooks: the data its handlers get. */
typedef struct hook_nsp {
    cd_events_hooks *h;
    int nsp;
    const char *name;
    const char *url[CD_HOOK_KINDS];
    int down[CD_HOOK_KINDS]; /* failing since the last success (logged once) */
} hook_nsp;

struct cd_events_hooks {
    cd_events_state *st;
    cd_sio_server *srv;
    cd_hookclient *hc;
    uint64_t calls[CD_HOOK_KINDS], failures[CD_HOOK_KINDS];
    hook_nsp nsps[CD_EVENTS_NSP_MAX];
};

/* A socket's state (cd_sio_set_data): the backend's data, its calls. */
typedef struct hook_sock {
    char *data;
    size_t data_len;
    hook_call *calls;
} hook_sock;

struct hook_call {
    hook_nsp *n;
    int kind;
    cd_sio_socket *s; /* NULL once the socket went (event) */
    hook_sock *hs;
    cd_sio_ack *ack;  /* event: the client's ack, or NULL */
    hook_call *prev, *next; /* on hs->calls */
};

static const char *const kind_name[CD_HOOK_KINDS] = {"connect", "event", "disconnect"};

static void metrics(cd_events_hooks *h, int kind)
{
    char labels[32];
    snprintf(labels, sizeof labels, "kind=\"%s\"", kind_name[kind]);
    cd_service *svc = h->st->svc;
    if (cd_service_metric(svc, "hook_calls_total", labels, h->calls[kind]) < 0 ||
        cd_service_metric(svc, "hook_failures_total", labels, h->failures[kind]) < 0)
        cd_debug("[%s] events: hook metrics refused", svc->name);
}

/* A call's outcome, counted, and logged when the hook's state changes. */
static void outcome(hook_nsp *n, int kind, const char *failure)
{
    cd_events_hooks *h = n->h;
    h->calls[kind]++;
    if (failure)
        h->failures[kind]++;
    metrics(h, kind);
    if (failure && !n->down[kind])
        cd_warn("[%s] events: %s hook %s of namespace %s failing: %s (clients get \"" UNAVAILABLE
                "\" until it answers)", h->st->svc->name, kind_name[kind], n->url[kind], n->name, failure);
    else if (!failure && n->down[kind])
        cd_notice("[%s] events: %s hook %s of namespace %s answers again", h->st->svc->name, kind_name[kind],
                  n->url[kind], n->name);
    n->down[kind] = failure != NULL;
}

static hook_sock *sock_state(cd_sio_socket *s)
{
    hook_sock *hs = cd_sio_data(s);
    if (!hs && (hs = calloc(1, sizeof *hs)))
        cd_sio_set_data(s, hs);
    return hs;
}

static void call_unlink(hook_call *c)
{
    if (!c->hs)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->hs->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->hs = NULL;
}

static void who(cd_sio_socket *s, const hook_sock *hs, cd_hook_who *w)
{
    w->sid = cd_sio_id(s);
    w->nsp = cd_sio_namespace(s);
    w->user = cd_sio_user(s);
    w->data = hs && hs->data ? hs->data : NULL;
    w->data_len = hs && hs->data ? hs->data_len : 0;
}

/* Checks an answer: what was wrong with it, or NULL (a is parsed). */
static const char *read_answer(const cd_hook_result *r, cd_hook_answer *a, char *why, size_t whylen)
{
    const char *perr = NULL;
    memset(a, 0, sizeof *a); /* freed whatever happens */
    if (r->err) {
        snprintf(why, whylen, "%s", r->err == -ETIMEDOUT ? "timed out (hook_timeout)" : r->detail);
        return why;
    }
    if (r->status < 200 || r->status > 299) {
        snprintf(why, whylen, "answered HTTP %ld", r->status);
        return why;
    }
    if (cd_events__hook_answer_parse(r->body, r->len, a, &perr) < 0) {
        snprintf(why, whylen, "a bad answer: %s", perr);
        return why;
    }
    return NULL;
}

static void set_data(hook_sock *hs, const cd_hook_answer *a)
{
    char *d;
    if (!hs || !a->data || !(d = malloc(a->data_len + 1)))
        return;
    memcpy(d, a->data, a->data_len);
    d[a->data_len] = '\0';
    free(hs->data);
    hs->data = d;
    hs->data_len = a->data_len;
}

/* The answer's joins, leaves and emits (s NULL: the socket went; the
 * broadcasts still go). */
static void apply(hook_nsp *n, cd_sio_socket *s, const cd_hook_answer *a)
{
    const char *sid = s ? cd_sio_id(s) : "-";
    for (size_t i = 0; s && i < a->njoin; i++)
        if (cd_sio_join(s, a->join[i]) < 0)
            cd_debug("events: hook: socket %s cannot join %s", sid, a->join[i]);
    for (size_t i = 0; s && i < a->nleave; i++)
        cd_sio_leave(s, a->leave[i]);
    for (size_t i = 0; i < a->nemit; i++) {
        const cd_hook_emit *e = &a->emit[i];
        cd_sio_args args = {.json = e->args, .json_len = e->args_len, .nbin = e->bins.n, .bin = e->bins.bin,
                            .bin_len = e->bins.len};
        int rc = 0;
        if (e->to) {
            cd_sio_target t = {.rooms = (const char *const *)e->rooms, .nrooms = e->nrooms,
                               .except = (const char *const *)e->except, .nexcept = e->nexcept};
            rc = cd_sio_broadcast(n->h->srv, n->name, &t, e->event, &args);
        } else if (s) {
            rc = cd_sio_emit(s, e->event, &args);
        }
        if (rc < 0)
            cd_debug("events: hook: emit of %s for socket %s refused (%d)", e->event, sid, rc);
    }
}

/* ---- connect ---- */

static void connect_done(void *arg, const cd_hook_result *r)
{
    hook_call *c = arg;
    if (r->err == -ECANCELED) { /* destroy: the API is gone */
        free(c);
        return;
    }
    cd_hook_answer a;
    char why[160];
    const char *failure = read_answer(r, &a, why, sizeof why);
    if (!failure && a.accept < 0)
        failure = "a bad answer: no accept";
    outcome(c->n, CD_HOOK_CONNECT, failure);
    if (failure) {
        cd_sio_refuse(c->s, UNAVAILABLE);
    } else if (!a.accept) {
        cd_sio_refuse(c->s, a.message ? a.message : "connection refused");
    } else {
        hook_sock *hs = sock_state(c->s);
        set_data(hs, &a);
        if (cd_sio_accept(c->s) < 0) { /* the client went meanwhile: the handle is freed */
            if (hs)
                free(hs->data);
            free(hs);
        } else {
            apply(c->n, c->s, &a);
            if (a.disconnect)
                cd_sio_disconnect(c->s, 0);
        }
    }
    cd_events__hook_answer_free(&a);
    free(c);
}

static void on_connect(cd_sio_socket *s, const char *auth, size_t auth_len, void *data)
{
    hook_nsp *n = data;
    const cd_events_conf *conf = n->h->st->conf;
    const char *values[64];
    size_t nh = conf->nforward_headers < 64 ? conf->nforward_headers : 64;
    for (size_t i = 0; i < nh; i++)
        values[i] = cd_sio_header(s, conf->forward_headers[i]);
    cd_hook_who w;
    who(s, NULL, &w);
    cd_buf b = {0};
    hook_call *c = calloc(1, sizeof *c);
    int rc = c ? cd_events__hook_body_connect(&b, &w, auth, auth_len, (const char *const *)conf->forward_headers,
                                              values, nh)
               : -ENOMEM;
    if (rc == 0) {
        c->n = n;
        c->kind = CD_HOOK_CONNECT;
        c->s = s;
        rc = cd_events__hook_post(n->h->hc, n->url[CD_HOOK_CONNECT], b.p, b.len, conf->hook_timeout_ms,
                                  CD_HOOK_ANSWER_MAX, connect_done, c);
    }
    cd_buf_free(&b);
    if (rc < 0) {
        free(c);
        outcome(n, CD_HOOK_CONNECT, rc == -EBUSY ? "hook_max_in_flight calls already waiting" : "out of memory");
        cd_sio_refuse(s, UNAVAILABLE);
    }
}

/* ---- events ---- */

static void error_ack(cd_sio_ack *ack)
{
    cd_sio_args e = {.json = ERROR_ACK, .json_len = sizeof ERROR_ACK - 1};
    if (ack)
        cd_sio_ack_send(ack, &e);
}

static void event_done(void *arg, const cd_hook_result *r)
{
    hook_call *c = arg;
    call_unlink(c);
    if (r->err == -ECANCELED) {
        free(c);
        return;
    }
    cd_hook_answer a;
    char why[160];
    const char *failure = read_answer(r, &a, why, sizeof why);
    outcome(c->n, CD_HOOK_EVENT, failure);
    if (failure) {
        error_ack(c->ack);
    } else {
        if (c->s)
            set_data(cd_sio_data(c->s), &a);
        apply(c->n, c->s, &a);
        if (c->ack) {
            cd_sio_args reply = {.json = a.ack, .json_len = a.ack_len, .nbin = a.ack_bins.n,
                                 .bin = a.ack_bins.bin, .bin_len = a.ack_bins.len};
            if (cd_sio_ack_send(c->ack, &reply) == -EINVAL)
                cd_debug("events: hook: the ack of an event of %s was refused (placeholders?)", c->n->name);
        }
        if (c->s && a.disconnect)
            cd_sio_disconnect(c->s, 0);
    }
    cd_events__hook_answer_free(&a);
    free(c);
}

static void on_event(cd_sio_socket *s, const char *event, const cd_sio_args *args, cd_sio_ack *ack, void *data)
{
    hook_nsp *n = data;
    hook_sock *hs = sock_state(s);
    hook_call *c = hs ? calloc(1, sizeof *c) : NULL;
    cd_hook_who w;
    who(s, hs, &w);
    cd_buf b = {0};
    int rc = c ? cd_events__hook_body_event(&b, &w, event, args, ack != NULL) : -ENOMEM;
    if (rc == 0) {
        *c = (hook_call){.n = n, .kind = CD_HOOK_EVENT, .s = s, .hs = hs, .ack = ack, .next = hs->calls};
        rc = cd_events__hook_post(n->h->hc, n->url[CD_HOOK_EVENT], b.p, b.len, n->h->st->conf->hook_timeout_ms,
                                  CD_HOOK_ANSWER_MAX, event_done, c);
    }
    cd_buf_free(&b);
    if (rc < 0) {
        free(c);
        outcome(n, CD_HOOK_EVENT, rc == -EBUSY ? "hook_max_in_flight calls already waiting" : "out of memory");
        error_ack(ack);
        return;
    }
    if (hs->calls)
        hs->calls->prev = c;
    hs->calls = c;
}

/* ---- disconnect ---- */

static void disconnect_done(void *arg, const cd_hook_result *r)
{
    hook_nsp *n = arg;
    if (r->err == -ECANCELED)
        return;
    cd_hook_answer a;
    char why[160];
    const char *failure = read_answer(r, &a, why, sizeof why);
    outcome(n, CD_HOOK_DISCONNECT, failure);
    cd_events__hook_answer_free(&a); /* nothing to apply: the socket is gone */
}

static void on_disconnect(cd_sio_socket *s, const char *reason, void *data)
{
    hook_nsp *n = data;
    hook_sock *hs = cd_sio_data(s);
    if (n->url[CD_HOOK_DISCONNECT]) {
        cd_hook_who w;
        who(s, hs, &w);
        cd_buf b = {0};
        int rc = cd_events__hook_body_disconnect(&b, &w, reason);
        if (rc == 0)
            rc = cd_events__hook_post(n->h->hc, n->url[CD_HOOK_DISCONNECT], b.p, b.len,
                                      n->h->st->conf->hook_timeout_ms, CD_HOOK_ANSWER_MAX, disconnect_done, n);
        cd_buf_free(&b);
        if (rc < 0)
            outcome(n, CD_HOOK_DISCONNECT, rc == -EBUSY ? "hook_max_in_flight calls already waiting" : "out of memory");
    }
    if (!hs)
        return;
    while (hs->calls) { /* their answers find no socket */
        hook_call *c = hs->calls;
        c->s = NULL;
        call_unlink(c);
    }
    free(hs->data);
    free(hs);
    cd_sio_set_data(s, NULL);
}

/* ---- lifetime ---- */

int cd_events__hooks_init(cd_events_state *st, char *err, size_t errlen)
{
    const cd_events_conf *conf = st->conf;
    int any = 0;
    for (size_t i = 0; i < conf->nnamespaces; i++)
        any |= cd_events__hooks_any(conf, (int)i);
    if (!any)
        return 0;
    cd_events_hooks *h = calloc(1, sizeof *h);
    if (!h || cd_events__hookclient_new(st->svc->loop, (size_t)conf->hook_max_in_flight, &h->hc) < 0) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->st = st;
    h->srv = st->sio;
    st->hooks = h;
    for (size_t i = 0; i < conf->nnamespaces; i++) {
        if (!cd_events__hooks_any(conf, (int)i))
            continue;
        hook_nsp *n = &h->nsps[i];
        *n = (hook_nsp){.h = h, .nsp = (int)i, .name = conf->namespaces[i]};
        for (int k = 0; k < CD_HOOK_KINDS; k++)
            n->url[k] = conf->hooks->url[k][i];
        cd_sio_handlers hd = {.on_connect = n->url[CD_HOOK_CONNECT] ? on_connect : NULL,
                              .on_event = n->url[CD_HOOK_EVENT] ? on_event : NULL,
                              .on_disconnect = on_disconnect};
        int rc = cd_sio_on(h->srv, n->name, &hd, n);
        if (rc < 0) {
            snprintf(err, errlen, "hooks of namespace %s: %s", n->name,
                     rc == -EEXIST ? "the handler module has handlers for it already" : strerror(-rc));
            cd_events__hooks_free(st);
            return -1;
        }
    }
    for (int k = 0; k < CD_HOOK_KINDS; k++)
        metrics(h, k); /* the series exist from the start, at 0 */
    return 0;
}

void cd_events__hooks_free(cd_events_state *st)
{
    cd_events_hooks *h = st->hooks;
    if (!h)
        return;
    cd_events__hookclient_free(h->hc);
    free(h);
    st->hooks = NULL;
}
