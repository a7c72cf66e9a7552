/*
 * harness_ws.h - a raw WebSocket and Socket.IO client for the integration
 * tests of the events service (harness_ws.c): it sends and checks exact
 * Engine.IO/Socket.IO packets, where tests/socketio's socket.io-client
 * would hide them.  Frames go masked with a zero key (the payload as it
 * is); every wait is bounded (5 s per frame).  Errors are -1, never an
 * abort: the test decides.  First used by test_events_backend.c.
 */
#ifndef CD_TEST_HARNESS_WS_H
#define CD_TEST_HARNESS_WS_H

#include <stddef.h>

/* Opens a WebSocket to `target` on 127.0.0.1:port and reads the Engine.IO
 * open packet.  Returns the fd, or -1. */
int thw_open(int port, const char *target);
/* Sends one frame (opcode 1 text, 2 binary, 8 close).  0 or -1. */
int thw_send(int fd, int opcode, const void *payload, size_t len);
int thw_text(int fd, const char *s);
/* The next frame that is not an Engine.IO ping (pings are answered):
 * opcode in *op, payload NUL-terminated in buf (at most cap - 1 bytes).
 * Returns its length, or -1 (EOF, timeout, too long). */
long thw_next(int fd, int *op, char *buf, size_t cap);
/* Frames until a text frame starting with prefix: its length, or -1 (a
 * close, EOF, timeout). */
long thw_expect(int fd, const char *prefix, char *buf, size_t cap);
/* Frames until the server's close: its code (0 without one), or -1 at EOF
 * or timeout. */
int thw_close_code(int fd);
/* A Socket.IO socket: thw_open, then CONNECT to nsp ("" = "/") with
 * payload (NULL: none).  The socket's sid goes to sid (cap bytes).
 * Returns the fd, or -1 (refused, or any failure). */
int thw_sio_open(int port, const char *nsp, const char *payload, char *sid, size_t cap);
/* Sends "42<nsp,><id>[args]" and reads the ack ("43<nsp,><id>[...]") into
 * buf.  Returns its length or -1. */
long thw_sio_call(int fd, const char *nsp, int id, const char *args, char *buf, size_t cap);

#endif
