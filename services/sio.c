/*
 * sio.c - the Socket.IO handler API of clusterd/socketio.h as the clusterd
 * executable exports it (worker, loop thread; the loader also in the
 * master): thin trampolines, and the loading of handler modules.
 *
 * The API is implemented by the events service (services/events/
 * sio_api.c), a module loaded RTLD_LOCAL, whose symbols a handler module
 * cannot see.  So, as services/service.c calls through the host table the
 * worker fills, every function here calls through the table of functions
 * (cd_sio_ops) that each handle - server, socket, ack - carries in its
 * first field: a handler module resolves cd_sio_* from the executable, as
 * service modules resolve cd_*, and links nothing of clusterd's.
 *
 * cd_sio_module_load finds the module file as `module =` does
 * (services/registry.c: the module directories, each file mapped once and
 * afresh when it changed), then next to the config, and checks the ABI of
 * its cd_sio_module_info before any of its code runs.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "clusterd/socketio.h"
#include "services/registry.h"

/* The table in a handle's first field. */
#define OPS(h) (*(const cd_sio_ops *const *)(const void *)(h))

int cd_sio_on(cd_sio_server *srv, const char *nsp, const cd_sio_handlers *h, void *data)
{
    return OPS(srv)->on(srv, nsp, h, data);
}

struct ev_loop *cd_sio_loop(cd_sio_server *srv)
{
    return OPS(srv)->loop(srv);
}

cd_service *cd_sio_service(cd_sio_server *srv)
{
    return OPS(srv)->service(srv);
}

int cd_sio_broadcast(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *event,
                     const cd_sio_args *args)
{
    return OPS(srv)->broadcast(srv, nsp, to, event, args);
}

int cd_sio_sockets_join(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room)
{
    return OPS(srv)->sockets_join(srv, nsp, to, room);
}

int cd_sio_sockets_leave(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room)
{
    return OPS(srv)->sockets_leave(srv, nsp, to, room);
}

int cd_sio_sockets_disconnect(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, int close_transport)
{
    return OPS(srv)->sockets_disconnect(srv, nsp, to, close_transport);
}

int cd_sio_accept(cd_sio_socket *s)
{
    return OPS(s)->accept(s);
}

int cd_sio_refuse(cd_sio_socket *s, const char *message)
{
    return OPS(s)->refuse(s, message);
}

const char *cd_sio_id(const cd_sio_socket *s)
{
    return OPS(s)->id(s);
}

const char *cd_sio_namespace(const cd_sio_socket *s)
{
    return OPS(s)->nsp(s);
}

const char *cd_sio_user(const cd_sio_socket *s)
{
    return OPS(s)->user(s);
}

const char *cd_sio_header(const cd_sio_socket *s, const char *name)
{
    return OPS(s)->header(s, name);
}

void cd_sio_set_data(cd_sio_socket *s, void *data)
{
    OPS(s)->set_data(s, data);
}

void *cd_sio_data(const cd_sio_socket *s)
{
    return OPS(s)->data(s);
}

int cd_sio_emit(cd_sio_socket *s, const char *event, const cd_sio_args *args)
{
    return OPS(s)->emit(s, event, args);
}

int cd_sio_emit_with_ack(cd_sio_socket *s, const char *event, const cd_sio_args *args, double timeout,
                         void (*cb)(void *arg, int err, const cd_sio_args *reply), void *arg)
{
    return OPS(s)->emit_with_ack(s, event, args, timeout, cb, arg);
}

int cd_sio_join(cd_sio_socket *s, const char *room)
{
    return OPS(s)->join(s, room);
}

int cd_sio_leave(cd_sio_socket *s, const char *room)
{
    return OPS(s)->leave(s, room);
}

void cd_sio_disconnect(cd_sio_socket *s, int close_transport)
{
    OPS(s)->disconnect(s, close_transport);
}

int cd_sio_ack_send(cd_sio_ack *ack, const cd_sio_args *reply)
{
    return OPS(ack)->ack_send(ack, reply);
}

const cd_sio_module *cd_sio_module_load(const char *name, const char *confdir, char *err, size_t errlen)
{
    char path[1300];
    void *h = cd_module_load(name, confdir, path, sizeof path, err, errlen);
    if (!h)
        return NULL;
    const char *base = strrchr(path, '/') + 1;
    const cd_sio_module *m = dlsym(h, "cd_sio_module_info");
    if (!m) {
        snprintf(err, errlen, "handler module %.200s has no symbol cd_sio_module_info", base);
        return NULL;
    }
    if (m->abi != CLUSTERD_ABI_VERSION) {
        snprintf(err, errlen, "handler module %.200s was built for clusterd ABI %u, this clusterd speaks ABI %d",
                 base, m->abi, CLUSTERD_ABI_VERSION);
        return NULL;
    }
    if (!m->setup) {
        snprintf(err, errlen, "handler module %.200s: cd_sio_module_info has no setup()", base);
        return NULL;
    }
    return m;
}
