/*
 * reference.c - the reference server of the socket.io-protocol test suite
 * as a clusterd Socket.IO handler module (examples/sio-reference; loaded by
 * the events service in every worker, runs on the worker's loop).
 *
 * The suite (github.com/socketio/socket.io-protocol, test-suite/, vendored
 * in tests/sio-protocol) checks a server written in Node as:
 *
 *   io.on("connection", (socket) => {
 *     socket.emit("auth", socket.handshake.auth);
 *     socket.on("message", (...args) => socket.emit("message-back", ...args));
 *     socket.on("message-with-ack", (...args) => { const ack = args.pop(); ack(...args); });
 *   });
 *   io.of("/custom").on("connection", (socket) => socket.emit("auth", socket.handshake.auth));
 *
 * This file is that server in C: on connect it accepts and emits "auth"
 * with the CONNECT payload ({} when the client sent none); "message" comes
 * back as "message-back" with the same arguments, binary attachments
 * included (the cd_sio_args the handler got is handed to cd_sio_emit as
 * is: its JSON references the attachments by number, exactly as the
 * packet that goes out must); "message-with-ack" is answered with an ack
 * carrying its arguments.  "/custom" gets the same handlers (the Node
 * server only emits "auth" there; nothing in the suite tells the two
 * apart).
 *
 * Any other event that asks for an ack is answered with no arguments: an
 * ack handle must be answered exactly once (Node would leave it
 * unanswered).  Nothing here keeps state, so it needs no per-socket data
 * and works unchanged on any number of workers.
 *
 * Config (examples/sio-reference/sio-reference.ini):
 *   [events]  handlers = sio-reference   namespaces = /, /custom
 *             ping_interval = 300ms      ping_timeout = 200ms
 * Build: part of clusterd's CMake build (build/sio-reference.so, next to
 * the binary, where `handlers = sio-reference` finds it), or out of tree
 * with this folder's Makefile (pkg-config clusterd).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clusterd/log.h>
#include <clusterd/socketio.h>

/* The "auth" event's arguments: [<the CONNECT payload>], or [{}]. */
static void emit_auth(cd_sio_socket *s, const char *auth, size_t auth_len)
{
    if (!auth || auth_len == 0) {
        auth = "{}";
        auth_len = 2;
    }
    char small[512];
    char *json = auth_len + 3 <= sizeof small ? small : malloc(auth_len + 3);
    if (!json) {
        cd_err("sio-reference: out of memory for the auth event of %s", cd_sio_id(s));
        return;
    }
    json[0] = '[';
    memcpy(json + 1, auth, auth_len);
    json[auth_len + 1] = ']';
    json[auth_len + 2] = '\0';
    cd_sio_args args = {.json = json, .json_len = auth_len + 2};
    int rc = cd_sio_emit(s, "auth", &args);
    if (rc < 0 && rc != -ENOTCONN)
        cd_err("sio-reference: emitting auth to %s: %s", cd_sio_id(s), strerror(-rc));
    if (json != small)
        free(json);
}

static void on_connect(cd_sio_socket *s, const char *auth, size_t auth_len, void *data)
{
    (void)data;
    if (cd_sio_accept(s) < 0)
        return; /* the client went away meanwhile: s is freed */
    emit_auth(s, auth, auth_len);
}

static void on_event(cd_sio_socket *s, const char *event, const cd_sio_args *args, cd_sio_ack *ack, void *data)
{
    (void)data;
    int rc = 0;
    if (strcmp(event, "message") == 0) {
        rc = cd_sio_emit(s, "message-back", args);
        if (ack)
            cd_sio_ack_send(ack, NULL);
    } else if (ack) {
        /* "message-with-ack" answers with its arguments; any other event
         * with an ack is answered with none. */
        rc = cd_sio_ack_send(ack, strcmp(event, "message-with-ack") == 0 ? args : NULL);
    }
    if (rc < 0 && rc != -ENOTCONN)
        cd_err("sio-reference: answering %s from %s: %s", event, cd_sio_id(s), strerror(-rc));
}

static int setup(cd_sio_server *srv, char *err, size_t errlen)
{
    static const cd_sio_handlers h = {.on_connect = on_connect, .on_event = on_event};
    static const char *const nsps[] = {"/", "/custom"};
    for (size_t i = 0; i < sizeof nsps / sizeof nsps[0]; i++) {
        int rc = cd_sio_on(srv, nsps[i], &h, NULL);
        if (rc < 0) {
            snprintf(err, errlen, "sio-reference: namespace %s: %s (list / and /custom in namespaces)", nsps[i],
                     rc == -ENOENT ? "not configured" : strerror(-rc));
            return -1;
        }
    }
    return 0;
}

const cd_sio_module cd_sio_module_info = {.abi = CLUSTERD_ABI_VERSION, .setup = setup};
