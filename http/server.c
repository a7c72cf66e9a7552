/*
 * server.c - HTTP/1.1 connections: read, parse with llhttp, route, hand to
 * a handler, write the answer (worker process, loop thread).  The context
 * and its hooks are described in server.h; this file is the connection
 * state machine, its timers and the drain.
 *
 * One request per connection is in service at a time.  When llhttp reports
 * a complete message it pauses (parse.c), we hand the request to its
 * route's handler and stop parsing; pipelined bytes wait in the input
 * buffer.  When the handler answers (response.c) and the answer is written,
 * the parser resumes on what is buffered.  That gives in-order pipelining
 * and natural back-pressure for free.
 *
 * A request is copied out of the input buffer as llhttp reports it, so the
 * input buffer is a small fixed window and a request can outlive its
 * connection: if the client goes away while a handler is still working,
 * the request is detached (conn = NULL) and freed when the handler answers.
 *
 * Timers (one per connection): header_timeout from the first byte of a
 * request to its last header (not reset by progress, against slowloris);
 * in the body, body_timeout between two reads and body_deadline for the
 * whole body, whichever ends first (a client that sends a byte now and then
 * never stalls long enough for body_timeout alone, so only a total bound
 * frees its slot; a deadline rather than a minimum rate, because a rate
 * still lets a client hold the slot for max_body_size / rate); then
 * keepalive_timeout while idle between requests and while a response
 * cannot be written.  The same timer, armed at zero, hands an upgraded
 * connection over (upgrade.c).  It is re-armed only for an earlier
 * deadline (cd_http__timer says how), so requests on a busy keep-alive
 * connection do not touch libev's timer heap.
 *
 * A request that belongs to another worker (steer.c) pauses the parser
 * after its head too; the connection then moves there, or, when it cannot,
 * its body is read here as any other.  A connection moved here is adopted
 * with the bytes read so far (cd_http_conn_adopt) and parsed from them.
 *
 * Memory (as nginx's ngx_http_set_keepalive): an idle connection holds no
 * buffer.  Bytes are read into the loop's one read buffer (loop_in) and
 * parsed from there; llhttp copies every piece into the request, so when
 * nothing is left unparsed the connection goes back to holding none.  Only
 * bytes that must wait (pipelined behind a request in service, or the rest
 * after a head that is moved or upgraded) are kept, in a 16 KiB buffer of
 * the connection's own, freed once they are parsed (in_settle).  Answers
 * are written into the loop's one output buffer (loop_out) and only what
 * the socket does not take is kept, in a buffer of the connection's own
 * (response.c), freed once it is written and the connection is idle,
 * and the request when it is answered, so a keep-alive connection waiting
 * for its next request costs its cd_conn (sizeof: 504 bytes on x86-64,
 * kept under 512 below) plus the kernel's socket.
 *
 * Drain: once the owner calls cd_http_begin_drain, answers say
 * Connection: close, and cd_http_drain closes connections left idle.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "http/conn.h"
#include "http/routeconf.h"

/* What every connection of this thread reads into (one loop per thread);
 * bytes never stay here past the cd_http__process that parses them. */
static _Thread_local char loop_in[CD_HTTP_IN_BUF];

_Static_assert(sizeof(void *) != 8 || sizeof(cd_conn) <= 512, "an idle connection is its cd_conn: keep it small");

/* Bytes read from c stay in c->in only while they wait: at the end of a
 * cd_http__process, what is left in loop_in moves to a buffer of c's own,
 * and an emptied buffer is freed.  0, or -ENOMEM (the bytes are lost). */
static int in_settle(cd_conn *c)
{
    size_t left = c->in_len - c->in_off;
    if (left == 0) {
        if (c->in != loop_in)
            free(c->in);
        c->in = NULL;
        c->in_off = c->in_len = 0;
        return 0;
    }
    if (c->in != loop_in)
        return 0; /* its own already */
    char *own = malloc(CD_HTTP_IN_BUF);
    if (!own)
        return -ENOMEM;
    memcpy(own, loop_in + c->in_off, left);
    c->in = own;
    c->in_off = 0;
    c->in_len = left;
    return 0;
}

/* The timer is lazy (libev's "be smart about timeouts", as nginx's timer
 * tree): c->deadline says when the connection times out (0: never), and the
 * ev_timer is only re-armed when the deadline comes before the one it is
 * armed for, and only when the connection is about to wait (at the end of
 * cd_http__process): a request read, answered and written in one go arms
 * nothing.  A later deadline (the next request's header_timeout, the
 * body_timeout pushed on by a read, keepalive_timeout) is only stored, and
 * stopping is clearing it: an expiry that finds its deadline moved on
 * re-arms for what is left (conn_timer_cb).  A keep-alive request so costs
 * no timer operation (it cost three starts and four stops). */
static void timer_sync(cd_conn *c)
{
    if (c->deadline == 0)
        return;
    struct ev_loop *loop = c->ctx->loop;
    double sec = c->deadline - ev_now(loop);
    if (sec < 0)
        sec = 0;
    if (ev_is_active(&c->timer) && ev_timer_remaining(loop, &c->timer) <= sec)
        return; /* it fires first, and finds the deadline later */
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, sec, 0.);
    ev_timer_start(loop, &c->timer);
}

void cd_http__timer(cd_conn *c, double sec)
{
    c->deadline = ev_now(c->ctx->loop) + sec;
    if (!c->processing)
        timer_sync(c);
}

void cd_http__timer_stop(cd_conn *c) { c->deadline = 0; }

/* The same in milliseconds; 0 or less stops it. */
static void set_timer(cd_conn *c, long long ms)
{
    if (ms > 0)
        cd_http__timer(c, (double)ms / 1000.0);
    else
        cd_http__timer_stop(c);
}

/* While a body is read: the timer ends at the next of body_timeout from
 * now and the body's deadline. */
void cd_http__body_timer(cd_conn *c)
{
    double left = c->body_until - ev_now(c->ctx->loop);
    double t = (double)c->ctx->body_timeout_ms / 1000.0;
    if (left < t)
        t = left > 0 ? left : 0;
    cd_http__timer(c, t);
}

static void set_io(cd_conn *c, int events)
{
    if ((c->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&c->io))
        return;
    ev_io_stop(c->ctx->loop, &c->io);
    if (events) {
        ev_io_set(&c->io, c->fd, events);
        ev_io_start(c->ctx->loop, &c->io);
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
    if (cd_http__out_borrowed(c) || c->out_cap > 65536) /* do not keep a big buffer on an idle connection */
        cd_http__out_drop(c);
    return c->file_left > 0 ? cd_http__file_flush(c) : 1; /* a file answer's body (file.c) */
}

/* A 405 with the route's methods in Allow. */
static void wrong_method(cd_request *r, const cd_route *route)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    char allow[128] = "Allow: ";
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (route->methods & (1u << i)) {
            if (allow[7])
                strcat(allow, ", ");
            strcat(allow, names[i]);
        }
    strcat(allow, "\r\n");
    char body[256];
    int n = cd_json_error(body, sizeof body, 405, "method not allowed here");
    cd_http__respond(r, 405, "application/json", body, n > 0 ? (size_t)n : 0, allow);
}

/* Hands a complete request to its route's handler (or answers it ourselves). */
static void dispatch(cd_conn *c)
{
    cd_http_ctx *ctx = c->ctx;
    cd_request *r = c->req;
    c->state = CS_SERVICE;
    cd_http__timer_stop(c);
    ctx->in_flight++;
    r->start = ev_now(ctx->loop); /* no clock read: the loop woke with these bytes */
    if (ctx->on_log) /* the connection may be gone when it is answered */
        cd_http__peer_string(&c->peer, r->peer, sizeof r->peer);
    cd_http__reqid(ctx, r);
    const cd_route *route = r->found; /* matched when the head was in (parse.c) */
    const cd_route_match *m = &r->match;
    if (!route) {
        cd_request_respond_error(r, 404, "no route for this path");
        return;
    }
    const cd_route_opts *o = route->opts;
    if (o && o->cors_origins) {
        r->route = route;
        if (cd_http__cors_preflight(r))
            return;
        cd_http__cors_simple(r);
    }
    if (!(route->methods & r->method)) {
        r->route = NULL; /* as before: refused by the router, not the route's */
        wrong_method(r, route);
        return;
    }
    r->route = route;
    r->subpath = r->path + m->matched;
    if (m->nparams && cd_http__params(r, m) < 0) {
        r->route = NULL; /* refused before its service saw it */
        cd_request_respond_error(r, 400, "bad route parameter");
        return;
    }
    route->handle(route->arg, r);
}

/* Parses what is buffered; dispatches at most one request, or moves the
 * connection to the worker its request belongs to.  Returns 0, or -1 when
 * c is gone (moved). */
static int conn_parse(cd_conn *c)
{
    const char *data = c->in + c->in_off;
    size_t len = c->in_len - c->in_off;
    if (llhttp_get_errno(&c->parser) == HPE_PAUSED)
        llhttp_resume(&c->parser);
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK) {
        c->in_off = c->in_len = 0; /* all copied out */
        return 0;
    }
    if (err == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        c->in_off = (size_t)(pos - c->in);
        uint32_t to = c->steer_to; /* set: paused after the head of another worker's request */
        c->steer_to = 0;
        if (to && cd_http__move(c, to))
            return -1;
        if (c->in_off == c->in_len)
            c->in_off = c->in_len = 0;
        if (to)
            cd_http__headers_done(c); /* it stays: its body is read here */
        else
            dispatch(c);
        return 0;
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
    cd_http__fail(c, status, msg);
    return 0;
}

/* Drives the connection as far as it can go without waiting. */
void cd_http__process(cd_conn *c)
{
    cd_http_ctx *ctx = c->ctx;
    c->processing = 1;
    for (;;) {
        if (c->out_off < c->out_len || c->file_left > 0) {
            int f = conn_flush(c);
            if (f < 0) {
                c->processing = 0;
                cd_http__close(c);
                return;
            }
            if (f == 0) {
                set_io(c, EV_WRITE);
                set_timer(c, ctx->keepalive_timeout_ms > 0 ? ctx->keepalive_timeout_ms : 5000);
                break;
            }
        }
        if (c->state == CS_CLOSING) {
            c->processing = 0;
            cd_http__close(c);
            return;
        }
        if (c->state == CS_UPGRADE) {
            /* Queued answers are out: hand over from the timer, soon. */
            set_io(c, 0);
            cd_http__timer(c, 0.);
            break;
        }
        if (c->state == CS_SERVICE) {
            cd_http__timer_stop(c); /* a streamed answer's writes are out */
            /* Keep reading into the buffer (pipelined requests wait there)
             * until it is full: toggling the watcher per request would cost
             * epoll_ctl calls for nothing. */
            set_io(c, c->peer_closed || c->in_len == CD_HTTP_IN_BUF ? 0 : EV_READ);
            break;
        }
        if (c->in_off < c->in_len) {
            if (conn_parse(c) < 0)
                return; /* moved to another worker: c is gone */
            continue;
        }
        /* Need more bytes. */
        if (c->state == CS_IDLE) {
            /* While draining, cd_http_drain closes it after a grace period. */
            c->idle_since = ev_now(ctx->loop);
            cd_http__out_drop(c); /* all written: an idle connection keeps no buffer */
            set_timer(c, ctx->keepalive_timeout_ms > 0 ? ctx->keepalive_timeout_ms : ctx->header_timeout_ms);
        }
        set_io(c, EV_READ);
        break;
    }
    c->processing = 0;
    timer_sync(c); /* it waits now: for its deadline, if it has one */
    if (in_settle(c) < 0) {
        cd_err("fd %d: out of memory keeping %zu unparsed bytes; closing", c->fd, c->in_len - c->in_off);
        cd_http__close(c);
    } else if (cd_http__out_settle(c) < 0) {
        cd_err("fd %d: out of memory keeping %zu unwritten bytes; closing", c->fd, c->out_len - c->out_off);
        cd_http__close(c);
    }
}

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    cd_conn *c = io->data;
    if (revents & EV_READ) {
        if (c->in && c->in_len == CD_HTTP_IN_BUF) {
            /* Cannot happen while parsing (everything is copied out); be safe. */
            cd_http__fail(c, 431, "request headers too large");
        } else {
            char *buf = c->in ? c->in : loop_in; /* nothing waits: the loop's buffer */
            ssize_t n = recv(c->fd, buf + c->in_len, CD_HTTP_IN_BUF - c->in_len, 0);
            if (n == 0 && c->state == CS_SERVICE) {
                /* Half-closed while its request is being served: answer, then
                 * close.  A handler that asked is told (it may answer, and
                 * c go, inside); without it, the next EOF gets here again. */
                c->peer_closed = 1;
                if (!cd_http__gone(c->req))
                    cd_http__process(c);
                return;
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                if (c->state == CS_READING)
                    cd_debug("fd %d: client closed mid-request", c->fd);
                cd_http__close(c);
                return;
            }
            if (n > 0) {
                c->in = buf;
                c->in_len += (size_t)n;
                if (c->state == CS_READING && c->body_until > 0) /* in the body */
                    cd_http__body_timer(c);
            }
        }
    }
    cd_http__process(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    cd_conn *c = t->data;
    if (c->deadline == 0)
        return; /* stopped since it was armed */
    double left = c->deadline - ev_now(loop);
    if (left > 0.001) { /* the deadline moved on: wait for what is left */
        ev_timer_set(t, left, 0.);
        ev_timer_start(loop, t);
        return;
    }
    c->deadline = 0;
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
        llhttp_init(&c->parser, HTTP_REQUEST, cd_http__settings()); /* forget the half request */
        c->parser.data = c;
        cd_http__fail(c, 408, "request not received in time");
        cd_http__process(c);
        return;
    }
    if (c->state == CS_UPGRADE) {
        if (c->out_off == c->out_len)
            cd_http__handover(c);
        else if (!ev_is_active(&c->io))
            cd_http__process(c); /* earlier answers are queued: write them first */
        else
            cd_http__close(c); /* they could not be written within keepalive_timeout */
        return;
    }
    cd_http__close(c); /* idle past keepalive_timeout, or a client not reading */
}

void cd_http__close(cd_conn *c)
{
    cd_http_ctx *ctx = c->ctx;
    ev_io_stop(ctx->loop, &c->io);
    if (ev_is_active(&c->timer))
        ev_timer_stop(ctx->loop, &c->timer);
    if (c->fd >= 0)
        close(c->fd);
    cd_request *held = NULL; /* told it is gone at the end, once c is */
    if (c->req) {
        if (c->state == CS_SERVICE)
            (held = c->req)->conn = NULL; /* the handler still owns it; answering frees it */
        else
            cd_http__request_free(c->req);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        ctx->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctx->nconns--;
    cd_upgrade_cb up_cb = c->up_cb; /* closed before its hand-over */
    void *up_arg = c->up_arg;
    cd_http__file_close(c);
    if (c->in != loop_in)
        free(c->in);
    cd_http__out_drop(c);
    free(c);
    /* A slot is free again: the owner may accept again. */
    if (ctx->on_capacity && ctx->nconns < ctx->max_connections)
        ctx->on_capacity(ctx->owner);
    if (up_cb)
        up_cb(up_arg, -1, NULL, 0);
    cd_http__gone(held);
}

/* A new connection of ctx on fd (closed when out of memory: NULL). */
static cd_conn *conn_open(cd_http_ctx *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    cd_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->ctx = ctx;
    c->fd = fd;
    c->state = CS_IDLE;
    if (peer && peerlen <= sizeof c->peer)
        memcpy(&c->peer, peer, peerlen);
    llhttp_init(&c->parser, HTTP_REQUEST, cd_http__settings());
    c->parser.data = c;
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->io.data = c;
    ev_init(&c->timer, conn_timer_cb);
    c->timer.data = c;
    c->next = ctx->conns;
    if (ctx->conns)
        ctx->conns->prev = c;
    ctx->conns = c;
    ctx->nconns++;
    ctx->accepted++;
    c->idle_since = ev_now(ctx->loop);
    return c;
}

void cd_http_conn_new(cd_http_ctx *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    cd_conn *c = conn_open(ctx, fd, peer, peerlen);
    if (!c) {
        cd_err("out of memory for a connection; closing it");
        return;
    }
    /* New connections usually carry their request already: try at once. */
    ssize_t n = recv(fd, loop_in, sizeof loop_in, 0);
    if (n > 0) {
        c->in = loop_in;
        c->in_len = (size_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        cd_http__close(c);
        return;
    }
    cd_http__process(c);
}

int cd_http_conn_adopt(cd_http_ctx *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen, const char *bytes,
                       size_t len, int moved)
{
    if (len == 0 && !moved) {
        cd_http_conn_new(ctx, fd, peer, peerlen);
        return 0;
    }
    if (len > CD_HTTP_IN_BUF) {
        close(fd);
        return -EMSGSIZE;
    }
    cd_conn *c = conn_open(ctx, fd, peer, peerlen);
    if (!c)
        return -ENOMEM;
    if (len) {
        memcpy(loop_in, bytes, len); /* parsed now; what must wait is kept then */
        c->in = loop_in;
        c->in_len = len;
    }
    c->moved = moved;
    cd_http__process(c);
    return 0;
}

void cd_http_init(cd_http_ctx *ctx, struct ev_loop *loop, const cd_conf *conf)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->loop = loop;
    ctx->max_header_size = conf->max_header_size;
    ctx->max_body_size = conf->max_body_size;
    ctx->header_timeout_ms = conf->header_timeout_ms;
    ctx->body_timeout_ms = conf->body_timeout_ms;
    ctx->body_deadline_ms = conf->body_deadline_ms;
    ctx->keepalive_timeout_ms = conf->keepalive_timeout_ms;
    ctx->max_connections = conf->max_connections;
}

void cd_http_begin_drain(cd_http_ctx *ctx)
{
    ctx->draining = 1;
    ctx->drain_started = ev_now(ctx->loop);
}

void cd_http_drain(cd_http_ctx *ctx, ev_tstamp idle_grace)
{
    ev_tstamp now = ev_now(ctx->loop);
    cd_conn *next;
    for (cd_conn *c = ctx->conns; c; c = next) {
        next = c->next;
        if (c->state != CS_IDLE || c->out_off < c->out_len || c->file_left > 0 || c->in_len > c->in_off)
            continue; /* busy: it answers with Connection: close */
        ev_tstamp since = c->idle_since > ctx->drain_started ? c->idle_since : ctx->drain_started;
        if (now - since >= idle_grace)
            cd_http__close(c);
    }
}

void cd_http_close_all(cd_http_ctx *ctx)
{
    while (ctx->conns)
        cd_http__close(ctx->conns);
}
