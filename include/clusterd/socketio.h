/*
 * clusterd/socketio.h - server-side Socket.IO handlers in C (public,
 * installed; worker process, loop thread).
 *
 * What Node's `io.of(nsp).on("connection", socket => socket.on(...))` is
 * to a socket.io server, this is to clusterd's events service: a handler
 * module, named by the events section (`handlers = chat` or a path to a
 * .so), is loaded by the events service in every worker at init; its
 * exported `cd_sio_module_info` says which ABI it was built for and its
 * setup() registers handlers per namespace with cd_sio_on().  Namespaces
 * without handlers keep the service's relay behaviour (join/leave/whoami,
 * events relayed to the sender's rooms).
 *
 * Everything runs on the worker's loop and must not block: blocking work
 * goes to a thread pool (clusterd/pool.h, the loop is cd_sio_loop()), and
 * the handler answers later (cd_sio_accept/refuse, cd_sio_ack_send) from
 * the pool item's done callback.
 *
 * Handles.  A cd_sio_socket is valid from on_connect (without one: its
 * first event) until on_disconnect returns (without one: until it would
 * have run), or, refused, until cd_sio_refuse returns.  A socket whose
 * connect is pending stays valid until the handler resolves it, even if
 * the client went away meanwhile (cd_sio_accept then does nothing but
 * free it).  A cd_sio_ack is valid until answered, exactly once, even
 * after its socket disconnected (the answer then goes nowhere).
 *
 * Arguments travel as the JSON array text of an event's arguments (the
 * event name excluded) plus binary attachments, which the JSON references
 * as {"_placeholder":true,"num":N}, exactly as socket.io's parser encodes
 * them; clusterd checks the JSON is well-formed and relays the bytes.
 * What a handler sends is checked as a client's packet is (one JSON
 * array, nested at most 32 deep, valid UTF-8, placeholders numbering the
 * attachments 0..nbin-1 once each): -EINVAL otherwise, nothing sent.
 * What a handler is given (auth, args, reply) is valid during the call
 * only: copy what you keep.
 *
 * Reaching sockets on other workers: cd_sio_broadcast (rooms, a socket id,
 * "user:<sub>", or the whole namespace, with except) goes over the bus to
 * every worker, like the backend endpoints.  A cd_sio_socket is always a
 * socket of this worker.
 */
#ifndef CLUSTERD_SOCKETIO_H
#define CLUSTERD_SOCKETIO_H

#include <stddef.h>

#include "clusterd/service.h" /* CLUSTERD_ABI_VERSION */

struct ev_loop;
typedef struct cd_sio_server cd_sio_server; /* one events service, in this worker */
typedef struct cd_sio_socket cd_sio_socket; /* one socket of this worker */
typedef struct cd_sio_ack cd_sio_ack;       /* a client's request for an ack */

/* An event's arguments: `json` is a JSON array (e.g. ["hi",{"n":1}]),
 * attachments in order.  json_len 0 / json NULL means no arguments ([]). */
typedef struct cd_sio_args {
    const char *json;
    size_t json_len;
    size_t nbin;
    const void *const *bin;
    const size_t *bin_len;
} cd_sio_args;

/* Whom a broadcast reaches: the namespace's sockets in any of rooms (none:
 * all of them), minus those in any of except.  A socket id and
 * "user:<sub>" are rooms like the others. */
typedef struct cd_sio_target {
    const char *const *rooms;
    size_t nrooms;
    const char *const *except;
    size_t nexcept;
} cd_sio_target;

/* One namespace's handlers (each may be NULL). */
typedef struct cd_sio_handlers {
    /* A client asks to connect.  auth: the CONNECT payload (a JSON object's
     * text) or NULL.  Resolve it exactly once, now or later, with
     * cd_sio_accept or cd_sio_refuse.  NULL on_connect: accepted.  With
     * auth = jwt the token was checked before (cd_sio_user is its sub). */
    void (*on_connect)(cd_sio_socket *s, const char *auth, size_t auth_len, void *data);
    /* An event from the client.  ack is NULL when the client asked for
     * none; else answer it exactly once with cd_sio_ack_send.  NULL
     * on_event: the event is relayed as without handlers. */
    void (*on_event)(cd_sio_socket *s, const char *event, const cd_sio_args *args, cd_sio_ack *ack,
                     void *data);
    /* The socket is gone; reason as socket.io names it: "client namespace
     * disconnect", "server namespace disconnect", "transport close",
     * "transport error", "parse error" (the client broke the protocol),
     * "ping timeout", "forced server close" (another socket of the same
     * session was disconnected with close_transport), "server shutting
     * down".  Called from the loop soon after the socket went, never from
     * inside a cd_sio_* call; meanwhile the socket's functions answer
     * -ENOTCONN.  Its pending emitWithAcks have had cb(-ENOTCONN) first. */
    void (*on_disconnect)(cd_sio_socket *s, const char *reason, void *data);
} cd_sio_handlers;

/* What a handler module exports as `cd_sio_module_info`. */
typedef struct cd_sio_module {
    unsigned abi; /* CLUSTERD_ABI_VERSION; first, always */
    /* Called once per worker at the events service's init.  0, or -1 with
     * a message in err (a boot failure, logged with the section). */
    int (*setup)(cd_sio_server *srv, char *err, size_t errlen);
    /* The service is being destroyed (may be NULL). */
    void (*teardown)(cd_sio_server *srv);
} cd_sio_module;

/* ---- the server ---- */

/* Registers h (copied) for namespace nsp, which must be configured
 * (`namespaces`).  data is passed to each handler.  0, -ENOENT (no such
 * namespace), -EEXIST (already has handlers). */
int cd_sio_on(cd_sio_server *srv, const char *nsp, const cd_sio_handlers *h, void *data);
/* The worker's loop (for clusterd/pool.h, clusterd/timer.h). */
struct ev_loop *cd_sio_loop(cd_sio_server *srv);
/* The events service itself (its section name, its worker: service.h). */
cd_service *cd_sio_service(cd_sio_server *srv);
/* Emits event to the target's sockets of namespace nsp on every worker.
 * 0 or -errno (-ENOENT namespace, -EINVAL bad JSON or event name,
 * -EAGAIN the bus is backed up, -EMSGSIZE). */
int cd_sio_broadcast(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *event,
                     const cd_sio_args *args);
/* socketsJoin / socketsLeave / disconnectSockets on every worker. */
int cd_sio_sockets_join(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room);
int cd_sio_sockets_leave(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room);
int cd_sio_sockets_disconnect(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, int close_transport);

/* ---- a socket (this worker's) ---- */

/* Resolves a pending connect: accept (CONNECT answered with the sid; the
 * socket is in its rooms) or refuse (CONNECT_ERROR {"message":msg}; the
 * handle is freed).  0, or -ENOTCONN when the client went away meanwhile
 * (the handle is freed; on_disconnect is not called), -EINVAL when s is
 * not pending.  Until then the socket is not connected: emit, join and
 * leave answer -EAGAIN. */
int cd_sio_accept(cd_sio_socket *s);
int cd_sio_refuse(cd_sio_socket *s, const char *message);
const char *cd_sio_id(const cd_sio_socket *s);        /* the Socket.IO sid */
const char *cd_sio_namespace(const cd_sio_socket *s);
const char *cd_sio_user(const cd_sio_socket *s);      /* the token's sub, or NULL */
/* A header of the request that opened the session, among those the
 * section's `forward_headers` keeps (case-insensitive), or NULL (also
 * once the socket is gone). */
const char *cd_sio_header(const cd_sio_socket *s, const char *name);
/* The handler's own pointer, per socket. */
void cd_sio_set_data(cd_sio_socket *s, void *data);
void *cd_sio_data(const cd_sio_socket *s);
/* Emits to this socket.  0 or -errno (-EINVAL bad JSON or a reserved event
 * name, -ENOTCONN the socket is disconnecting, -EAGAIN not accepted yet). */
int cd_sio_emit(cd_sio_socket *s, const char *event, const cd_sio_args *args);
/* emitWithAck: cb(arg, 0, reply) once the client acks, or cb(arg,
 * -ETIMEDOUT, NULL) after timeout seconds, or cb(arg, -ENOTCONN, NULL)
 * when the socket goes first; exactly once, from the loop, never from
 * inside this call.  0 or -errno (then cb is never called; -EINVAL also
 * for a timeout that is not > 0 or a NULL cb). */
int cd_sio_emit_with_ack(cd_sio_socket *s, const char *event, const cd_sio_args *args, double timeout,
                         void (*cb)(void *arg, int err, const cd_sio_args *reply), void *arg);
/* Rooms of this socket (local; other workers need no news of it).  0,
 * -ENOSPC (max_rooms), -EINVAL (a reserved name: "", a sid, user:...). */
int cd_sio_join(cd_sio_socket *s, const char *room);
int cd_sio_leave(cd_sio_socket *s, const char *room);
/* Server-side disconnect: DISCONNECT sent ("io server disconnect" on the
 * client), on_disconnect called with "server namespace disconnect"; with
 * close_transport the whole session closes too.  A pending socket is
 * refused instead.  Use s no more after it (but in on_disconnect). */
void cd_sio_disconnect(cd_sio_socket *s, int close_transport);

/* ---- acks ---- */

/* Answers a client's ack with reply (NULL: no arguments).  Frees ack.
 * 0, -EINVAL (bad JSON: the ack is still freed, nothing sent), or
 * -ENOTCONN (the socket is gone; freed). */
int cd_sio_ack_send(cd_sio_ack *ack, const cd_sio_args *reply);

/* ---- the implementation's side ----
 *
 * What follows is for clusterd's events service; a handler module has no
 * use for it.  Every handle (server, socket, ack) begins with a pointer to
 * the events service's table of the functions above, and the cd_sio_*
 * functions the clusterd executable exports only call through it
 * (services/sio.c): a handler module resolves them from the executable
 * and links nothing of the events module, which is loaded RTLD_LOCAL. */
typedef struct cd_sio_ops {
    int (*on)(cd_sio_server *srv, const char *nsp, const cd_sio_handlers *h, void *data);
    struct ev_loop *(*loop)(cd_sio_server *srv);
    cd_service *(*service)(cd_sio_server *srv);
    int (*broadcast)(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *event,
                     const cd_sio_args *args);
    int (*sockets_join)(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room);
    int (*sockets_leave)(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room);
    int (*sockets_disconnect)(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, int close_transport);
    int (*accept)(cd_sio_socket *s);
    int (*refuse)(cd_sio_socket *s, const char *message);
    const char *(*id)(const cd_sio_socket *s);
    const char *(*nsp)(const cd_sio_socket *s);
    const char *(*user)(const cd_sio_socket *s);
    const char *(*header)(const cd_sio_socket *s, const char *name);
    void (*set_data)(cd_sio_socket *s, void *data);
    void *(*data)(const cd_sio_socket *s);
    int (*emit)(cd_sio_socket *s, const char *event, const cd_sio_args *args);
    int (*emit_with_ack)(cd_sio_socket *s, const char *event, const cd_sio_args *args, double timeout,
                         void (*cb)(void *arg, int err, const cd_sio_args *reply), void *arg);
    int (*join)(cd_sio_socket *s, const char *room);
    int (*leave)(cd_sio_socket *s, const char *room);
    void (*disconnect)(cd_sio_socket *s, int close_transport);
    int (*ack_send)(cd_sio_ack *ack, const cd_sio_args *reply);
} cd_sio_ops;

/* Loads the handler module `name` names (the events section's `handlers`):
 * an absolute path, or a bare name (NAME or NAME.so) searched where
 * service modules are (CLUSTERD_MODULE_DIR, next to clusterd, the install's
 * module directory), then in confdir (the config file's folder; may be
 * NULL).  Each file is mapped once, and again when it changes (a reload),
 * as service modules are.  Checks its `cd_sio_module_info`: present, its
 * abi CLUSTERD_ABI_VERSION (both numbers named otherwise), a setup().
 * The module, or NULL with the reason in err.  Master (the config check)
 * and workers (the service's init). */
const cd_sio_module *cd_sio_module_load(const char *name, const char *confdir, char *err, size_t errlen);

#endif
