/*
 * sio_api.c - the Socket.IO handler API (clusterd/socketio.h) inside the
 * events service (worker, loop thread): the server handle, socket and ack
 * handles, the handler module's life, and what socketio.c hands over to
 * the handlers (CONNECTs, events, acks, disconnects).  What handlers
 * send is sio_emit.c's; the handle structs are in sio_api.h.
 *
 * The handles.  A handler module sees cd_sio_server (one per service, in
 * st->sio), cd_sio_socket (one per socket of a namespace with handlers)
 * and cd_sio_ack (a client's request for an ack).  Each starts with the
 * table of the functions below: services/sio.c, in the executable, calls
 * through it (the module is RTLD_LOCAL).
 *
 * A socket handle is made at CONNECT when its namespace has on_connect
 * (state CONNECTING: no socket yet, on the client's `connecting` list;
 * the socket is made by cd_sio_accept, with the sid the handler already
 * saw), or with the socket otherwise.  It outlives the socket: when the
 * socket goes (socketio.c's socket_free, whatever the cause), the handle
 * is queued with socket.io's reason and a zero timer runs on_disconnect
 * from the loop, after failing its pending emitWithAcks with -ENOTCONN,
 * then frees it.  So nothing a handler does (emit into a full queue,
 * disconnect another socket) frees memory under the code that called it,
 * and a broadcast walking a room never meets a handler.  A CONNECTING
 * handle whose client goes stays until the handler resolves it
 * (-ENOTCONN).  Client acks live on their handle's list and become
 * orphans (answered into nothing) when it goes.
 *
 * emitWithAck (sent by sio_emit.c): ids per socket from 0, one libev
 * timer per pending ack (the timer heap is the wheel), the client's ACK or
 * BINARY_ACK matched here by id on the socket it was sent to.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/events/sio_api.h"

/* ---- handles ---- */

static cd_sio_socket *handle_new(cd_sio_server *srv, int nsp, const cd_events_identity *id)
{
    cd_sio_socket *h = calloc(1, sizeof *h);
    if (!h || (id && id->user && !(h->user = strdup(id->user)))) {
        free(h);
        return NULL;
    }
    h->ops = &cd_events__sio_ops;
    h->srv = srv;
    h->nsp = nsp;
    h->next = srv->handles;
    if (srv->handles)
        srv->handles->prev = h;
    srv->handles = h;
    return h;
}

static cd_sio_ack **ack_head(cd_sio_ack *a)
{
    return a->h ? &a->h->in_acks : &a->srv->orphans;
}

void cd_events__sio_ack_unlink(cd_sio_ack *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        *ack_head(a) = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
}

static void ack_link(cd_sio_ack *a)
{
    cd_sio_ack **head = ack_head(a);
    a->next = *head;
    if (*head)
        (*head)->prev = a;
    *head = a;
}

static void handle_free(cd_sio_socket *h)
{
    cd_sio_server *srv = h->srv;
    while (h->in_acks) { /* they are the handler's to answer, into nothing now */
        cd_sio_ack *a = h->in_acks;
        cd_events__sio_ack_unlink(a);
        a->h = NULL;
        ack_link(a);
    }
    if (h->prev)
        h->prev->next = h->next;
    else
        srv->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    if (h->identity) {
        cd_events__identity_free(h->identity);
        free(h->identity);
    }
    free(h->user);
    free(h);
}

void cd_events__sio_out_ack_free(cd_sio_socket *h, out_ack *a)
{
    ev_timer_stop(h->srv->st->svc->loop, &a->timer);
    if (a->prev)
        a->prev->next = a->next;
    else
        h->acks = a->next;
    if (a->next)
        a->next->prev = a->prev;
    free(a);
}

/* on_disconnect for every handle whose socket went, oldest first. */
static void drain(cd_sio_server *srv)
{
    while (srv->gone) {
        cd_sio_socket *h = srv->gone;
        srv->gone = h->qnext;
        if (!srv->gone)
            srv->gone_tail = &srv->gone;
        while (h->acks) {
            out_ack *a = h->acks;
            void (*cb)(void *, int, const cd_sio_args *) = a->cb;
            void *arg = a->arg;
            cd_events__sio_out_ack_free(h, a);
            cb(arg, -ENOTCONN, NULL);
        }
        const nsp_handlers *nh = &srv->nsp[h->nsp];
        if (nh->h.on_disconnect)
            nh->h.on_disconnect(h, h->reason, nh->data);
        handle_free(h);
    }
}

static void drain_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    drain(t->data);
}

void cd_events__sio_gone(cd_events_socket *s, const char *reason)
{
    cd_sio_socket *h = s->api;
    cd_sio_server *srv = h->srv;
    s->api = NULL;
    h->sock = NULL;
    h->state = H_GONE;
    h->reason = reason;
    h->qnext = NULL;
    *srv->gone_tail = h;
    srv->gone_tail = &h->qnext;
    if (!ev_is_active(&srv->drain)) {
        ev_timer_set(&srv->drain, 0., 0.);
        ev_timer_start(srv->st->svc->loop, &srv->drain);
    }
}

/* ---- what socketio.c hands over ---- */

int cd_events__sio_connecting(const cd_events_client *c, int nsp)
{
    for (const cd_sio_socket *h = c->connecting; h; h = h->qnext)
        if (h->nsp == nsp)
            return 1;
    return 0;
}

static void connecting_unlink(cd_events_client *c, cd_sio_socket *h)
{
    for (cd_sio_socket **pp = &c->connecting; *pp; pp = &(*pp)->qnext)
        if (*pp == h) {
            *pp = h->qnext;
            break;
        }
    h->qnext = NULL;
}

void cd_events__sio_client_gone(cd_events_client *c)
{
    while (c->connecting) {
        cd_sio_socket *h = c->connecting;
        c->connecting = h->qnext;
        h->qnext = NULL;
        h->client = NULL;
    }
}

int cd_events__sio_connect(cd_events_client *c, int nsp, cd_events_identity *id, const char *auth, size_t auth_len)
{
    cd_sio_server *srv = c->st->sio;
    const nsp_handlers *nh = srv ? &srv->nsp[nsp] : NULL;
    if (!nh || !nh->set || !nh->h.on_connect)
        return 0;
    cd_sio_socket *h = handle_new(srv, nsp, id);
    if (!h) {
        if (id) {
            cd_events__identity_free(id);
            free(id);
        }
        cd_events__fail(c, CD_WS_INTERNAL_ERROR, "out of memory");
        return 1;
    }
    h->state = H_CONNECTING;
    h->client = c;
    h->identity = id;
    cd_events__random_id(h->sid);
    h->qnext = c->connecting;
    c->connecting = h;
    nh->h.on_connect(h, auth, auth ? auth_len : 0, nh->data);
    return 1;
}

int cd_events__sio_attach(cd_events_socket *s, cd_sio_socket *h)
{
    cd_sio_server *srv = s->client->st->sio;
    if (!h) {
        if (!srv || !srv->nsp[s->nsp].set)
            return 0;
        if (!(h = handle_new(srv, s->nsp, s->identity)))
            return -ENOMEM;
        memcpy(h->sid, s->sid, sizeof h->sid);
    }
    h->state = H_OPEN;
    h->sock = s;
    s->api = h;
    return 0;
}

int cd_events__sio_event(cd_events_socket *s, const cd_sio_packet *p, const cd_events_packet *att)
{
    cd_sio_socket *h = s->api;
    const nsp_handlers *nh = &h->srv->nsp[s->nsp];
    if (!nh->h.on_event)
        return 0;
    char *name = malloc(p->name_len + 1), *json = malloc(p->args_len + 2);
    cd_sio_ack *ack = p->ack_id >= 0 ? calloc(1, sizeof *ack) : NULL;
    if (!name || !json || (p->ack_id >= 0 && !ack)) {
        cd_events__fail(s->client, CD_WS_INTERNAL_ERROR, "out of memory");
        goto out;
    }
    int nl = cd_events__json_string(p->name, p->name + p->name_len, name, p->name_len + 1, NULL);
    if (nl < 0 || cd_events__reserved_event(name)) {
        cd_debug("events: socket %s: an event name that is %s; dropped", s->sid, nl < 0 ? "not a string" : "reserved");
        goto out;
    }
    json[0] = '[';
    memcpy(json + 1, p->args, p->args_len);
    json[p->args_len + 1] = ']';
    cd_sio_args args = {.json = json, .json_len = p->args_len + 2};
    if (att && att->nattach)
        args.nbin = att->nattach, args.bin = (const void *const *)att->attach, args.bin_len = att->attach_len;
    if (ack) {
        *ack = (cd_sio_ack){.ops = &cd_events__sio_ops, .srv = h->srv, .h = h, .id = p->ack_id};
        ack_link(ack);
    }
    nh->h.on_event(h, name, &args, ack, nh->data);
    ack = NULL; /* the handler's now */
out:
    free(ack);
    free(name);
    free(json);
    return 1;
}

void cd_events__sio_ack_in(cd_events_socket *s, const cd_sio_packet *p, const cd_events_packet *att)
{
    cd_sio_socket *h = s->api;
    out_ack *a = h ? h->acks : NULL;
    while (a && a->id != p->ack_id)
        a = a->next;
    if (!a) {
        cd_debug("events: socket %s: an ack (id %lld) that answers nothing; ignored", s->sid, p->ack_id);
        return;
    }
    cd_sio_args reply = {.json = p->data, .json_len = p->data_len};
    if (att && att->nattach)
        reply.nbin = att->nattach, reply.bin = (const void *const *)att->attach, reply.bin_len = att->attach_len;
    void (*cb)(void *, int, const cd_sio_args *) = a->cb;
    void *arg = a->arg;
    cd_events__sio_out_ack_free(h, a);
    cb(arg, 0, &reply);
}

char *cd_events__headers_copy(const cd_events_conf *conf, const cd_request *req, size_t *len)
{
    size_t need = 0;
    *len = 0;
    for (size_t i = 0; i < conf->nforward_headers; i++) {
        const char *v = cd_request_header(req, conf->forward_headers[i]);
        if (v)
            need += strlen(conf->forward_headers[i]) + 1 + strlen(v) + 1;
    }
    char *b = need ? malloc(need) : NULL;
    if (!b)
        return NULL;
    for (size_t i = 0; i < conf->nforward_headers; i++) {
        const char *v = cd_request_header(req, conf->forward_headers[i]);
        if (!v)
            continue;
        size_t nl = strlen(conf->forward_headers[i]) + 1, vl = strlen(v) + 1;
        memcpy(b + *len, conf->forward_headers[i], nl);
        memcpy(b + *len + nl, v, vl);
        *len += nl + vl;
    }
    return b;
}

/* ---- the server ---- */

static int srv_on(cd_sio_server *srv, const char *nsp, const cd_sio_handlers *h, void *data)
{
    int i = nsp ? cd_events__nsp_index(srv->st->conf, nsp, strlen(nsp)) : -1;
    if (i < 0)
        return -ENOENT;
    if (srv->nsp[i].set)
        return -EEXIST;
    srv->nsp[i] = (nsp_handlers){.set = 1, .h = h ? *h : (cd_sio_handlers){0}, .data = data};
    return 0;
}

static struct ev_loop *srv_loop(cd_sio_server *srv)
{
    return srv->st->svc->loop;
}

static cd_service *srv_service(cd_sio_server *srv)
{
    return srv->st->svc;
}

/* ---- a socket ---- */

static int s_accept(cd_sio_socket *h)
{
    if (h->state != H_CONNECTING)
        return -EINVAL;
    cd_events_client *c = h->client;
    cd_events_identity *id = h->identity;
    h->identity = NULL;
    if (!c) {
        if (id) {
            cd_events__identity_free(id);
            free(id);
        }
        handle_free(h);
        return -ENOTCONN;
    }
    connecting_unlink(c, h);
    h->client = NULL;
    if (!cd_events__socket_open(c, h->nsp, id, h->sid, h)) {
        handle_free(h);
        return -ENOMEM;
    }
    return 0;
}

static int s_refuse(cd_sio_socket *h, const char *message)
{
    if (h->state != H_CONNECTING)
        return -EINVAL;
    cd_events_client *c = h->client;
    if (c) {
        connecting_unlink(c, h);
        cd_events__connect_error(c, h->nsp, message ? message : "refused");
    }
    handle_free(h);
    return c ? 0 : -ENOTCONN;
}

static const char *s_id(const cd_sio_socket *h)
{
    return h->sid;
}

const char *cd_events__sio_nsp(const cd_sio_socket *h)
{
    return cd_events__nsp_name(h->srv->st->conf, h->nsp);
}

static const char *s_user(const cd_sio_socket *h)
{
    return h->user;
}

static const char *s_header(const cd_sio_socket *h, const char *name)
{
    const cd_events_client *c = h->state == H_CONNECTING ? h->client : h->state == H_OPEN ? h->sock->client : NULL;
    if (!c || !name)
        return NULL;
    for (size_t o = 0; o < c->headers_len;) {
        const char *n = c->headers + o, *v = n + strlen(n) + 1;
        if (strcasecmp(n, name) == 0)
            return v;
        o = (size_t)(v + strlen(v) + 1 - c->headers);
    }
    return NULL;
}

static void s_set_data(cd_sio_socket *h, void *data)
{
    h->data = data;
}

static void *s_data(const cd_sio_socket *h)
{
    return h->data;
}

/* -EAGAIN before the socket is accepted, -ENOTCONN once it is gone. */
int cd_events__sio_not_open(const cd_sio_socket *h)
{
    return h->state == H_OPEN ? 0 : h->state == H_CONNECTING ? -EAGAIN : -ENOTCONN;
}

static int s_room(cd_sio_socket *h, const char *room, int join)
{
    int rc = cd_events__sio_not_open(h);
    size_t rl = room ? strlen(room) : 0;
    if (rc < 0)
        return rc;
    if (!room || rl > CD_EVENTS_ROOM_MAX || cd_events__room_reserved(room, rl))
        return -EINVAL;
    if (!join) {
        cd_events__room_leave(h->sock, room, rl);
        return 0;
    }
    rc = cd_events__room_join(h->sock, room, rl);
    return rc < 0 ? rc : 0;
}

static int s_join(cd_sio_socket *h, const char *room)
{
    return s_room(h, room, 1);
}

static int s_leave(cd_sio_socket *h, const char *room)
{
    return s_room(h, room, 0);
}

static void s_disconnect(cd_sio_socket *h, int close_transport)
{
    if (h->state == H_CONNECTING)
        s_refuse(h, "server namespace disconnect");
    else if (h->state == H_OPEN)
        cd_events__socket_disconnect(h->sock, close_transport);
}

const cd_sio_ops cd_events__sio_ops = {
    .on = srv_on,
    .loop = srv_loop,
    .service = srv_service,
    .broadcast = cd_events__sio_broadcast,
    .sockets_join = cd_events__sio_sockets_join,
    .sockets_leave = cd_events__sio_sockets_leave,
    .sockets_disconnect = cd_events__sio_sockets_disconnect,
    .accept = s_accept,
    .refuse = s_refuse,
    .id = s_id,
    .nsp = cd_events__sio_nsp,
    .user = s_user,
    .header = s_header,
    .set_data = s_set_data,
    .data = s_data,
    .emit = cd_events__sio_emit,
    .emit_with_ack = cd_events__sio_emit_with_ack,
    .join = s_join,
    .leave = s_leave,
    .disconnect = s_disconnect,
    .ack_send = cd_events__sio_ack_send,
};

/* ---- life ---- */

int cd_events__sio_init(cd_events_state *st, char *err, size_t errlen)
{
    cd_sio_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->ops = &cd_events__sio_ops;
    srv->st = st;
    srv->gone_tail = &srv->gone;
    ev_init(&srv->drain, drain_cb);
    srv->drain.data = srv;
    st->sio = srv;
    const cd_events_conf *conf = st->conf;
    if (!conf->handlers)
        return 0;
    char why[512] = "";
    if (!(srv->mod = cd_sio_module_load(conf->handlers, conf->handlers_dir, why, sizeof why))) {
        snprintf(err, errlen, "handlers: %s", why);
    } else if (srv->mod->setup(srv, why, sizeof why) < 0) {
        snprintf(err, errlen, "handlers %s: setup failed: %s", conf->handlers, why[0] ? why : "(no reason given)");
    } else {
        return 0;
    }
    st->sio = NULL;
    free(srv);
    return -1;
}

void cd_events__sio_destroy(cd_events_state *st)
{
    cd_sio_server *srv = st->sio;
    if (!srv)
        return;
    ev_timer_stop(st->svc->loop, &srv->drain);
    drain(srv); /* the clients are gone: every open socket's handle is queued */
    if (srv->mod && srv->mod->teardown)
        srv->mod->teardown(srv);
    while (srv->handles) /* CONNECTING ones the handler never resolved */
        handle_free(srv->handles);
    while (srv->orphans) {
        cd_sio_ack *a = srv->orphans;
        cd_events__sio_ack_unlink(a);
        free(a);
    }
    free(srv);
    st->sio = NULL;
}
