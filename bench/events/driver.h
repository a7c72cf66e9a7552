/*
 * driver.h - what the two halves of the C fan-out driver share: driver.c
 * (the clients: Engine.IO v4 / Socket.IO over a hand-framed WebSocket, one
 * epoll loop) and driver_run.c (the phases, CPU from /proc, the JSON
 * result).  One context, drv_t, passed first everywhere.
 */
#ifndef CD_BENCH_EVENTS_DRIVER_H
#define CD_BENCH_EVENTS_DRIVER_H
#include <stddef.h>
#include <stdint.h>

#define MAX_MSGS (1 << 20)
#define MAX_FRAME (16u << 20)
#define EXPIRE_MS 2000.0
#define MAX_WINDOW 1024
#define ROOM "bench"

enum { ST_TCP, ST_HEAD, ST_OPEN, ST_CONNECT, ST_WHOAMI, ST_JOIN, ST_READY };

typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf_t;

typedef struct client {
    int fd, st, worker, publisher, want_out;
    long last;
    unsigned hello;
    const char *lost;
    buf_t in, msg, out; /* unparsed input, a fragmented message, unsent output */
} client_t;

typedef struct {
    double t, server_ms, driver_ms, busy_ms;
} snap_t;

typedef struct drv {
    int port, pid, clients, rate, window, payload, ep, closing, nserver;
    double rate_secs, sat_secs, warmup_secs, deadline, t_start;
    client_t *c; /* clients[0..N-1] receivers, c[N] the publisher */
    int server[1000];
    double *sent_at, *lat, last_recv;
    uint32_t *got;
    long seq, dupes, echoes, strays;
    size_t nlat, caplat;
    int recording, saturating;
    long inflight[MAX_WINDOW];
    int ninflight, stopped;
    double t_end; /* saturate: no emit from then on */
    uint64_t rnd;
    char *emit, *pad; /* the publisher's packet; its padding */
} drv_t;

double now_ms(void);
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints {"failed": why} and exits 1: the run cannot go on. */
void fail(drv_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* One masked frame of opcode op to c, written now unless output waits. */
void send_frame(drv_t *d, client_t *c, int op, const char *p, size_t n);
/* One epoll_wait of at most ms and what it brought; fails past the deadline. */
void poll_once(drv_t *d, int ms);
/* Connects clients [from, to) and waits until each joined the room, within ms. */
void connect_all(drv_t *d, int from, int to, double ms);
/* Saturate: emits until the window is full (driver_run.c). */
void refill(drv_t *d);

#endif
