/*
 * fuzz_events_ws.c - WebSocket input through the events service's real
 * connection code, in-process: http/websocket.c (wslay and its callbacks,
 * the send-queue limit, the close handshake and linger) under
 * services/events/ (Engine.IO in engineio.c, Socket.IO and acks in
 * socketio.c, rooms.c, the bus fan-out in broadcast.c).
 *
 * Once: a config from cd_conf_load_text with one [events] section (small
 * limits, so the fuzzer reaches them), a libev loop, and a cd_service the
 * way a worker builds one, but with no host (services/service.h): broadcasts
 * fail with -ENOTSUP, which the service answers like any bus failure.
 *
 * Per input: init the service, make a socketpair, hand one end to the
 * service as an upgraded connection (cd_events__adopt_fd, what the
 * upgrade path does once HTTP hands the fd over), write the input into the
 * other end as the client, turn the loop a bounded number of times, then
 * close and destroy.  Nothing survives an input: the service state, the
 * fds and every watcher go (checked: the loop has no active watcher left).
 *
 * Input: one control byte, then the bytes the client sends after its
 * upgrade request (WebSocket frames; the seeds mask with the key 00000000,
 * so payloads read as plain text).  Control bits:
 *   0x01  the client reads what the server sends (else never: the server's
 *         socket buffer is small, so its queue fills and max_send_queue acts)
 *   0x02  write in 7-byte pieces, a loop turn after each (partial frames)
 *   0x04  half-close the client's side at the end (EOF), else just close
 *   0x08  deliver a bus broadcast to rooms "r" and "a" at the end
 *   0x40  with 0x08, then bus commands: everyone joins "a", the members of
 *         "r" leave it, those of "r" and "a" are disconnected (0x80: with
 *         their transports)
 *   0x10  the first half of the bytes came with the upgrade request: the
 *         HTTP layer read them, the session gets them as `pre`
 *   0x20  a second, well-behaved client (never read, not checked) has
 *         joined "r" and "a" first (and sent a binary event with one
 *         attachment), so broadcasts and room changes meet another member
 *
 * Namespace "/h" has handlers (the API of clusterd/socketio.h, sio_api.c),
 * registered here after init: CONNECT accepted (refused when its auth
 * payload's length is odd); events "ask" (emitWithAck with a 1 ms timeout,
 * so the client's ACK / BINARY_ACK may match it or come too late), "ack"
 * (acked with its own arguments, binary included), "emit" (emitted back),
 * "join", "bye" (disconnect; with attachments, the transport too); any
 * other event's ack answered empty.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "services/registry.h"
#include "core/log.h"
#include "core/util.h"
#include "services/events/events.h"
#include "services/service.h"

static const char conf_text[] = "[cluster]\n"
                                "listen = 127.0.0.1:1\n"
                                "[events]\n"
                                "type = events\n"
                                "route = /socket.io\n"
                                "max_message_size = 4k\n"
                                "max_send_queue = 16k\n"
                                "max_rooms = 4\n"
                                "namespaces = /, /h\n";

static cd_conf *conf;
static struct ev_loop *loop;
static cd_service svc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    cd_log_set_level(CD_LOG_WARN);
    cd_conf_set_binder(cd_service_bind); /* as clusterd does first thing */
    if (cd_conf_load_text("fuzz.ini", conf_text, sizeof conf_text - 1, &conf, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_events_ws: %s\n", err);
        abort();
    }
    loop = ev_loop_new(EVFLAG_AUTO);
    if (!loop)
        abort();
    const cd_conf_service *cs = &conf->services[0];
    svc.type = cs->type;
    svc.name = cs->name;
    svc.route = cs->route;
    svc.route_len = cs->route_len;
    svc.conf = cs->conf;
    svc.loop = loop;
    return 0;
}

/* What the client reads, when it reads, is checked as a client would: the
 * 101 head, then unmasked frames; text frames are valid UTF-8 (RFC 6455
 * clients drop the connection otherwise) carrying Engine.IO packets, and
 * the Socket.IO ones a client parses (CONNECT, EVENT, ACK) are
 * well-formed.  Reset per input. */
static struct {
    unsigned char buf[1 << 18];
    size_t len;
    int head_done;
} out;

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x)) {                                                                                          \
            fprintf(stderr, "fuzz_events_ws: check failed: %s\n", #x);                                       \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

static void check_text(const char *p, size_t n)
{
    CHECK(cd_utf8_valid(p, n));
    CHECK(n >= 1 && p[0] >= '0' && p[0] <= '6');
    if (p[0] == '4' && n >= 2 && p[1] != '4') { /* CONNECT_ERROR is not for clients to parse here */
        cd_sio_packet sp;
        CHECK(cd_events__sio_parse(p + 1, n - 1, &sp) == 0);
    }
}

/* Parses the complete frames in out.buf; keeps a partial one. */
static void check_output(void)
{
    size_t o = 0;
    if (!out.head_done) {
        unsigned char *e = memmem(out.buf, out.len, "\r\n\r\n", 4);
        if (!e)
            return;
        CHECK(memcmp(out.buf, "HTTP/1.1 101 ", 13) == 0);
        out.head_done = 1;
        o = (size_t)(e - out.buf) + 4;
    }
    for (;;) {
        unsigned char *f = out.buf + o;
        size_t avail = out.len - o, h = 2;
        if (avail < 2)
            break;
        CHECK((f[1] & 0x80) == 0); /* a server never masks */
        uint64_t len = f[1] & 0x7f;
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            h = 10;
        }
        CHECK(len < sizeof out.buf - 16);
        if (avail - h < len)
            break;
        int op = f[0] & 0x0f;
        CHECK((f[0] & 0x80) && (f[0] & 0x70) == 0); /* whole, no RSV bits */
        if (op == 1)
            check_text((const char *)f + h, (size_t)len);
        else if (op == 8 && len > 2)
            CHECK(cd_utf8_valid((const char *)f + h + 2, (size_t)len - 2));
        else /* 2: a binary packet's attachment */
            CHECK(op == 2 || op == 8 || op == 9 || op == 10);
        o += h + (size_t)len;
    }
    memmove(out.buf, out.buf + o, out.len - o);
    out.len -= o;
}

static void client_drain(int fd)
{
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(fd, out.buf + out.len, sizeof out.buf - out.len, MSG_DONTWAIT);
        if (n <= 0)
            break;
        out.len += (size_t)n;
        check_output();
    }
}

static void turn(int fd, int reads, int times)
{
    for (int i = 0; i < times; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        if (reads)
            client_drain(fd);
    }
}

/* ---- the handlers of "/h" ---- */

static void h_connect(cd_sio_socket *s, const char *auth, size_t auth_len, void *data)
{
    (void)auth, (void)data;
    if (auth_len % 2)
        cd_sio_refuse(s, "odd \"auth\"");
    else
        cd_sio_accept(s);
}

static void h_asked(void *arg, int err, const cd_sio_args *reply)
{
    (void)arg;
    CHECK((err == 0) == (reply != NULL));
    CHECK(err == 0 || err == -ETIMEDOUT || err == -ENOTCONN);
}

static void h_event(cd_sio_socket *s, const char *event, const cd_sio_args *args, cd_sio_ack *ack, void *data)
{
    (void)data;
    if (strcmp(event, "ask") == 0)
        cd_sio_emit_with_ack(s, "q", args, 0.001, h_asked, NULL);
    else if (strcmp(event, "emit") == 0)
        cd_sio_emit(s, "e", args);
    else if (strcmp(event, "join") == 0)
        cd_sio_join(s, "r");
    else if (strcmp(event, "bye") == 0) {
        if (ack)
            cd_sio_ack_send(ack, NULL);
        cd_sio_disconnect(s, args->nbin > 0);
        return;
    }
    if (ack)
        cd_sio_ack_send(ack, strcmp(event, "ack") == 0 ? args : NULL);
}

static void h_disconnect(cd_sio_socket *s, const char *reason, void *data)
{
    (void)data;
    CHECK(reason && cd_sio_id(s) && cd_sio_emit(s, "x", NULL) == -ENOTCONN);
}

static const cd_sio_handlers handlers = {.on_connect = h_connect, .on_event = h_event, .on_disconnect = h_disconnect};

/* Hands op on target t to the service as the bus would. */
static void deliver(cd_service *s, const cd_events_target *t, const cd_events_bus_op *op)
{
    char msg[256];
    long n = cd_events__bus_encode(msg, sizeof msg, "/", 1, t, op);
    if (n > 0)
        s->bus_cb(s, msg, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    data++, size--;
    int reads = ctl & 1;
    out.len = 0;
    out.head_done = 0;
    if (svc.type->init(&svc, err, sizeof err) < 0)
        abort();
    if (cd_sio_on(((cd_events_state *)svc.state)->sio, "/h", &handlers, NULL) < 0)
        abort();
    int peer[2] = {-1, -1};
    if (ctl & 0x20) {
        /* "40", then join "r" and "a" with acks, then a binary event and
         * its attachment: frames masked with 0. */
        static const char script[] = "\x81\x82\0\0\0\0" "40"
                                     "\x81\x8f\0\0\0\0" "421[\"join\",\"r\"]"
                                     "\x81\x8f\0\0\0\0" "422[\"join\",\"a\"]"
                                     "\x81\xa8\0\0\0\0" "451-[\"up\",{\"_placeholder\":true,\"num\":0}]"
                                     "\x82\x83\0\0\0\0" "\x00\x01\x02";
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, peer) < 0 || cd_set_nonblock(peer[0], 1) < 0)
            abort();
        if (cd_events__adopt_fd(&svc, peer[0], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", script, sizeof script - 1) < 0)
            abort();
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    /* Small buffers, so a client that never reads backs the server up. */
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    if (cd_set_nonblock(sv[0], 1) < 0 || cd_set_nonblock(sv[1], 1) < 0)
        abort();
    size_t off = 0, piece = ctl & 2 ? 7 : size;
    if (ctl & 0x10 && size >= 2)
        off = size / 2;
    /* The accept key of RFC 6455's example: any well-formed one will do. */
    if (cd_events__adopt_fd(&svc, sv[0], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", (const char *)data, off) < 0)
        abort();

    for (int rounds = 0; off < size && rounds < 4096; rounds++) {
        size_t n = size - off < piece ? size - off : piece;
        ssize_t w = send(sv[1], data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            off += (size_t)w;
        else if (rounds > 16 && w < 0)
            break; /* the server stopped reading (closing, or backed up) */
        turn(sv[1], reads, 1);
    }
    turn(sv[1], reads, 4);

    if (ctl & 8 && svc.bus_cb) {
        static const char *const rooms[] = {"r", "a"};
        static const size_t lens[] = {1, 1};
        static const char pkt[] = "42[\"news\",{\"n\":1}]";
        cd_events_target t = {.nrooms = 2, .rooms = rooms, .room_lens = lens};
        cd_events_packet p = {.text = pkt, .text_len = sizeof pkt - 1};
        cd_events_bus_op op = {.op = CD_EVENTS_BUS_PACKET, .packet = &p};
        deliver(&svc, &t, &op);
        if (ctl & 0x40) { /* the backend's commands, acting while the rooms are walked */
            cd_events_target all = {0}, in_r = {.nrooms = 1, .rooms = rooms, .room_lens = lens};
            cd_events_bus_op join = {.op = CD_EVENTS_BUS_JOIN, .room = "a", .room_len = 1};
            cd_events_bus_op leave = {.op = CD_EVENTS_BUS_LEAVE, .room = "r", .room_len = 1};
            cd_events_bus_op bye = {.op = CD_EVENTS_BUS_DISCONNECT, .close = !!(ctl & 0x80)};
            deliver(&svc, &all, &join);
            deliver(&svc, &in_r, &leave);
            deliver(&svc, &t, &bye);
        }
        turn(sv[1], reads, 2);
    }
    if (ctl & 4) {
        shutdown(sv[1], SHUT_WR);
        turn(sv[1], 1, 4);
    }
    close(sv[1]);
    if (peer[1] >= 0)
        close(peer[1]);
    turn(-1, 0, 2);
    svc.type->destroy(&svc);
    /* ev_run returns whether active watchers remain (libev 4.25+). */
    if (svc.state || ev_run(loop, EVRUN_NOWAIT)) {
        fprintf(stderr, "fuzz_events_ws: watchers left after destroy\n");
        abort();
    }
    return 0;
}
