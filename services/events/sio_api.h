/*
 * sio_api.h - the handles of the Socket.IO handler API inside the events
 * service, shared by sio_api.c (handles, dispatch, the module's life) and
 * sio_emit.c (what handlers send).  Worker, loop thread.
 */
#ifndef CD_EVENTS_SIO_API_H
#define CD_EVENTS_SIO_API_H

#include "services/events/events.h"

enum { H_CONNECTING, H_OPEN, H_GONE };

typedef struct nsp_handlers {
    int set;
    cd_sio_handlers h;
    void *data;
} nsp_handlers;

/* An emitWithAck waiting for the client's answer. */
typedef struct out_ack {
    ev_timer timer; /* its timeout */
    struct cd_sio_socket *h;
    long long id;
    void (*cb)(void *arg, int err, const cd_sio_args *reply);
    void *arg;
    struct out_ack *prev, *next; /* h->acks */
} out_ack;

struct cd_sio_server {
    const cd_sio_ops *ops;
    cd_events_state *st;
    const cd_sio_module *mod;
    nsp_handlers nsp[CD_EVENTS_NSP_MAX];
    cd_sio_socket *handles;            /* every handle not yet freed */
    cd_sio_socket *gone, **gone_tail;  /* awaiting on_disconnect, in order */
    ev_timer drain;                    /* runs them */
    cd_sio_ack *orphans;               /* client acks whose handle went */
};

struct cd_sio_socket {
    const cd_sio_ops *ops;
    cd_sio_server *srv;
    int state, nsp;
    cd_events_client *client;     /* CONNECTING: who asks (NULL once it went) */
    cd_events_identity *identity; /* CONNECTING: the socket's, once accepted */
    cd_events_socket *sock;       /* OPEN */
    const char *reason;           /* GONE */
    char *user;
    void *data;
    long long next_id;            /* emitWithAck's */
    out_ack *acks;
    cd_sio_ack *in_acks;
    cd_sio_socket *prev, *next;   /* srv->handles */
    cd_sio_socket *qnext;         /* the client's connecting list, or srv->gone */
    char sid[CD_EVENTS_SID_LEN + 1];
};

struct cd_sio_ack {
    const cd_sio_ops *ops;
    cd_sio_server *srv;
    cd_sio_socket *h; /* NULL once its handle went */
    long long id;
    cd_sio_ack *prev, *next; /* h->in_acks, or srv->orphans */
};

/* The functions behind clusterd/socketio.h (sio_api.c's table). */
extern const cd_sio_ops cd_events__sio_ops;

/* sio_api.c */
/* 0 when h's socket is open; -EAGAIN before it is accepted, -ENOTCONN once it is gone. */
int cd_events__sio_not_open(const cd_sio_socket *h);
const char *cd_events__sio_nsp(const cd_sio_socket *h);
/* Stops a pending emitWithAck's timer, takes it off h's list, frees it. */
void cd_events__sio_out_ack_free(cd_sio_socket *h, out_ack *a);
/* Takes a client ack off its list (its handle's, or the orphans). */
void cd_events__sio_ack_unlink(cd_sio_ack *a);

/* sio_emit.c: the table's functions that send. */
int cd_events__sio_broadcast(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *event,
                             const cd_sio_args *args);
int cd_events__sio_sockets_join(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room);
int cd_events__sio_sockets_leave(cd_sio_server *srv, const char *nsp, const cd_sio_target *to, const char *room);
int cd_events__sio_sockets_disconnect(cd_sio_server *srv, const char *nsp, const cd_sio_target *to,
                                      int close_transport);
int cd_events__sio_emit(cd_sio_socket *h, const char *event, const cd_sio_args *args);
int cd_events__sio_emit_with_ack(cd_sio_socket *h, const char *event, const cd_sio_args *args, double timeout,
                                 void (*cb)(void *arg, int err, const cd_sio_args *reply), void *arg);
int cd_events__sio_ack_send(cd_sio_ack *a, const cd_sio_args *reply);

#endif
