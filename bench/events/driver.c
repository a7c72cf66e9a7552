/*
 * driver.c - the C load driver of the Socket.IO fan-out benchmark: one
 * process, one epoll loop, N Socket.IO clients speaking Engine.IO v4
 * directly over WebSocket, so the driver is not what limits the servers
 * it measures (driver.js, on socket.io-client, takes a whole core).
 *
 *   driver --port P --pid ROOT [--clients N] [--rate R] [--rate-secs S]
 *          [--sat-secs S] [--window W] [--payload BYTES] [--warmup-secs S]
 *          [--deadline S]
 *
 * It does what driver.js does, phase by phase, over the same messages, and
 * prints the same JSON line (bench.js reads either): N receivers and one
 * publisher connect (GET /socket.io/?EIO=4&transport=websocket, the `0{..}`
 * open packet, `40` and its `40{"sid":..}` answer), ask `whoami` (ack: the
 * worker) and `join` the room "bench"; then
 *   check     one POST /socket.io/publish {"room","event":"hello"} must
 *             reach all N+1 clients
 *   rate      the publisher emits R events/s for S seconds (1 ms ticks)
 *   saturate  W events in flight for S seconds; an event is done when all
 *             N receivers have it, or 2 s after it was sent
 * Each event is 42["tick",{"s":SEQ,"t":MS,"p":"xx.."}]; receivers live in
 * this process, so latency (receipt - emit, CLOCK_MONOTONIC) needs no clock
 * sync.  CPU of the server's process tree (from /proc), of this process
 * (getrusage) and of the rest of the machine is taken over each phase.
 *
 * The client side of WebSocket is small and done by hand: masked client
 * frames, unmasked server frames parsed from what each read gave (a frame
 * split over reads waits in the client's buffer, several frames in one read
 * are all taken; fragmented messages are joined), pings answered at both
 * layers (WebSocket ping -> pong, Engine.IO `2` -> `3`).  Every wait is
 * bounded and the whole run has a deadline (and an alarm() behind it): on
 * failure it prints {"failed": why} and exits non-zero.
 *
 * This file holds the clients and the loop; driver_run.c the phases, the
 * CPU figures and the result.  Built by bench/events/run.sh (or bench.js)
 * with plain cc, no dependencies: cc -O2 -o driver driver.c driver_run.c.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void say(const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "[cdriver %02d:%02d:%02d.%03ld] ", tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The run cannot go on: one JSON line with the reason, and out. */
void fail(drv_t *d, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    say("FAILED: %s", why);
    printf("{\"failed\":\"%s\"}\n", why); /* why holds no quotes or backslashes (our own texts) */
    fflush(stdout);
    for (int i = 0; d && d->c && i <= d->clients; i++)
        if (d->c[i].fd >= 0)
            close(d->c[i].fd);
    exit(1);
}

static void put(drv_t *d, buf_t *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q)
            fail(d, "out of memory");
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void drop(buf_t *b, size_t n)
{
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
}

static void lose(drv_t *d, client_t *c, const char *why)
{
    if (c->lost)
        return;
    c->lost = why;
    if (!d->closing)
        say("client %ld on worker %d lost: %s", (long)(c - d->c), c->worker, why);
    epoll_ctl(d->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void watch(drv_t *d, client_t *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (c->want_out != out && epoll_ctl(d->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail(d, "epoll_ctl: %s", strerror(errno));
    c->want_out = out;
}

/* Writes what waits; what the socket does not take waits for EPOLLOUT. */
static void flush(drv_t *d, client_t *c)
{
    while (c->out.n && !c->lost) {
        ssize_t w = send(c->fd, c->out.p, c->out.n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w < 0) {
            lose(d, c, "write failed");
            return;
        }
        drop(&c->out, (size_t)w);
    }
    if (!c->lost && c->st != ST_TCP)
        watch(d, c, c->out.n > 0);
}

/* One masked client frame (RFC 6455 5.3) of opcode op. */
void send_frame(drv_t *d, client_t *c, int op, const char *p, size_t n)
{
    if (c->lost)
        return;
    unsigned char h[14];
    size_t hl = 2;
    h[0] = (unsigned char)(0x80 | op);
    if (n < 126) {
        h[1] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        h[1] = 0x80 | 126, h[2] = (unsigned char)(n >> 8), h[3] = (unsigned char)n, hl = 4;
    } else {
        h[1] = 0x80 | 127, hl = 10;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    }
    d->rnd ^= d->rnd << 13, d->rnd ^= d->rnd >> 7, d->rnd ^= d->rnd << 17; /* xorshift: a fresh mask */
    memcpy(h + hl, &d->rnd, 4);
    const unsigned char *m = h + hl;
    hl += 4;
    size_t at = c->out.n;
    put(d, &c->out, h, hl);
    put(d, &c->out, p, n);
    for (size_t i = 0; i < n; i++)
        c->out.p[at + hl + i] ^= m[i & 3];
    if (c->out.n == hl + n) /* nothing was waiting before: write now */
        flush(d, c);
}

static void send_text(drv_t *d, client_t *c, const char *s)
{
    send_frame(d, c, 1, s, strlen(s));
}

/* The integer after "key": in p[0..n), or -1. */
static long json_int(const char *p, size_t n, const char *key)
{
    size_t kl = strlen(key);
    const char *q = memmem(p, n, key, kl);
    if (!q || q + kl >= p + n || !isdigit((unsigned char)q[kl]))
        return -1;
    long v = 0;
    for (q += kl; q < p + n && isdigit((unsigned char)*q) && v < 1000000000L; q++)
        v = v * 10 + (*q - '0');
    return v;
}

static void on_tick(drv_t *d, client_t *c, const char *p, size_t n)
{
    if (c->publisher) {
        d->echoes++;
        return;
    }
    long s = json_int(p, n, "\"s\":");
    double now = now_ms();
    if (s < 0 || s >= d->seq) {
        d->strays++;
        return;
    }
    if (s <= c->last)
        d->dupes++;
    if (s > c->last)
        c->last = s;
    d->got[s]++;
    d->last_recv = now;
    if (d->recording) {
        if (d->nlat == d->caplat) {
            d->caplat = d->caplat ? 2 * d->caplat : 1 << 20;
            if (!(d->lat = realloc(d->lat, d->caplat * sizeof *d->lat)))
                fail(d, "out of memory");
        }
        d->lat[d->nlat++] = now - d->sent_at[s];
    }
    if (d->saturating && d->got[s] == (uint32_t)d->clients) {
        for (int i = 0; i < d->ninflight; i++)
            if (d->inflight[i] == s) {
                d->inflight[i] = d->inflight[--d->ninflight];
                refill(d);
                break;
            }
    }
}

/* A Socket.IO packet (after the Engine.IO `4`) for the default namespace. */
static void on_sio(drv_t *d, client_t *c, const char *p, size_t n)
{
    if (n && p[0] == '2') {
        if (n > 8 && memcmp(p + 1, "[\"tick\"", 7) == 0)
            on_tick(d, c, p, n);
        else if (n > 9 && memcmp(p + 1, "[\"hello\"", 8) == 0)
            c->hello++;
    } else if (n && p[0] == '0' && c->st == ST_CONNECT) {
        send_text(d, c, "421[\"whoami\"]");
        c->st = ST_WHOAMI;
    } else if (n > 1 && p[0] == '3' && p[1] == '1' && c->st == ST_WHOAMI) {
        long w = json_int(p, n, "\"worker\":");
        if (w < 0)
            fail(d, "whoami answered without a worker");
        c->worker = (int)w;
        send_text(d, c, "422[\"join\",\"" ROOM "\"]");
        c->st = ST_JOIN;
    } else if (n > 1 && p[0] == '3' && p[1] == '2' && c->st == ST_JOIN) {
        if (!memmem(p, n, "\"ok\":true", 9))
            fail(d, "join was refused");
        c->st = ST_READY;
    } else if (n && p[0] == '4') {
        fail(d, "the server refused the Socket.IO connect");
    } else if (n && p[0] == '1') {
        lose(d, c, "Socket.IO disconnect from the server");
    }
}

/* An Engine.IO packet: one whole WebSocket text message. */
static void on_message(drv_t *d, client_t *c, const char *p, size_t n)
{
    if (!n)
        return;
    if (p[0] == '4')
        on_sio(d, c, p + 1, n - 1);
    else if (p[0] == '2')
        send_text(d, c, "3");
    else if (p[0] == '0' && c->st == ST_OPEN)
        send_text(d, c, "40"), c->st = ST_CONNECT;
    else if (p[0] == '1')
        lose(d, c, "Engine.IO close from the server");
}

static void on_frame(drv_t *d, client_t *c, int fin, int op, const unsigned char *p, size_t n)
{
    if (op == 8) {
        lose(d, c, "WebSocket close from the server");
    } else if (op == 9) {
        send_frame(d, c, 10, (const char *)p, n);
    } else if (op == 0 || op == 1 || op == 2) {
        if (op && c->msg.n)
            lose(d, c, "a new message inside a fragmented one");
        else if (!op && !c->msg.n)
            lose(d, c, "a continuation frame without a message");
        else if (fin && !c->msg.n)
            on_message(d, c, (const char *)p, n);
        else if (put(d, &c->msg, p, n), fin) {
            on_message(d, c, (const char *)c->msg.p, c->msg.n);
            c->msg.n = 0;
        }
    }
}

/* Takes every whole frame in p[0..n); returns the bytes used. */
static size_t frames(drv_t *d, client_t *c, const unsigned char *p, size_t n)
{
    size_t off = 0;
    while (!c->lost && n - off >= 2) {
        const unsigned char *f = p + off;
        uint64_t len = f[1] & 0x7f;
        size_t h = 2;
        if (f[1] & 0x80) {
            lose(d, c, "a masked frame from the server");
            break;
        }
        if (len == 126) {
            if (n - off < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3], h = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0, h = 10;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
        }
        if (len > MAX_FRAME) {
            lose(d, c, "a frame over 16 MiB");
            break;
        }
        if (n - off - h < len)
            break;
        on_frame(d, c, f[0] >> 7, f[0] & 0x0f, f + h, (size_t)len);
        off += h + (size_t)len;
    }
    return off;
}

/* The 101 head: the first read(s) after the upgrade request. */
static void on_head(drv_t *d, client_t *c)
{
    unsigned char *e = memmem(c->in.p, c->in.n, "\r\n\r\n", 4);
    if (!e) {
        if (c->in.n > 8192)
            fail(d, "an upgrade answer head over 8 KiB");
        return;
    }
    if (c->in.n < 12 || memcmp(c->in.p, "HTTP/1.1 101", 12) != 0)
        fail(d, "the upgrade was refused: %.12s", (const char *)c->in.p);
    drop(&c->in, (size_t)(e + 4 - c->in.p));
    c->st = ST_OPEN;
    drop(&c->in, frames(d, c, c->in.p, c->in.n));
}

static void on_readable(drv_t *d, client_t *c)
{
    static unsigned char rb[1 << 16];
    for (;;) {
        ssize_t r = recv(c->fd, rb, sizeof rb, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0) {
            lose(d, c, r ? "read failed" : "the server closed the connection");
            return;
        }
        if (c->st == ST_HEAD) {
            put(d, &c->in, rb, (size_t)r);
            on_head(d, c);
        } else if (!c->in.n) { /* the usual case: parse in place, keep only a split frame's start */
            size_t used = frames(d, c, rb, (size_t)r);
            if (!c->lost && used < (size_t)r)
                put(d, &c->in, rb + used, (size_t)r - used);
        } else {
            put(d, &c->in, rb, (size_t)r);
            drop(&c->in, frames(d, c, c->in.p, c->in.n));
        }
        if (c->lost || (size_t)r < sizeof rb)
            return;
    }
}

static void on_connected(drv_t *d, client_t *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err)
        fail(d, "connect to 127.0.0.1:%d: %s", d->port, strerror(err));
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     d->port);
    c->st = ST_HEAD;
    put(d, &c->out, req, (size_t)n);
    flush(d, c);
}

/* One epoll_wait of at most ms, and what it brought; the deadline is checked here. */
void poll_once(drv_t *d, int ms)
{
    struct epoll_event ev[256];
    if (now_ms() - d->t_start > d->deadline * 1000)
        fail(d, "deadline of %.0f s reached", d->deadline);
    int n = epoll_wait(d->ep, ev, 256, ms);
    if (n < 0 && errno != EINTR)
        fail(d, "epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        client_t *c = ev[i].data.ptr;
        if (c->lost)
            continue;
        if (c->st == ST_TCP && (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            on_connected(d, c);
        else if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(d, c);
        if (!c->lost && (ev[i].events & EPOLLOUT) && c->st != ST_TCP)
            flush(d, c);
    }
}

static void start_client(drv_t *d, client_t *c, int publisher)
{
    memset(c, 0, sizeof *c);
    c->last = -1, c->worker = -1, c->publisher = publisher;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        fail(d, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as socket.io-client (ws) does */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)
        fail(d, "connect to 127.0.0.1:%d: %s", d->port, strerror(errno));
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(d->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fail(d, "epoll_ctl: %s", strerror(errno));
    c->want_out = 1;
}

/* Clients [from, to) connected and in the room within ms, or the run fails. */
void connect_all(drv_t *d, int from, int to, double ms)
{
    for (int i = from; i < to; i++)
        start_client(d, &d->c[i], i == d->clients);
    double end = now_ms() + ms;
    for (int i = from; i < to;) {
        if (d->c[i].lost)
            fail(d, "client %d lost while connecting: %s", i, d->c[i].lost);
        if (d->c[i].st == ST_READY) {
            i++;
            continue;
        }
        if (now_ms() > end)
            fail(d, "timeout (%.0f ms): connect", ms);
        poll_once(d, 5);
    }
}
