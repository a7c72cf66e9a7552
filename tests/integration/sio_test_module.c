/*
 * sio_test_module.c - a Socket.IO handler module for test_sio_api.c
 * (tests/socketio/sio_api.js drives it with the real socket.io-client),
 * built by CMake next to clusterd as sio-test.so from include/clusterd/
 * only, as a user's module is.  It calls every function of
 * clusterd/socketio.h.
 *
 * Namespace "/" has handlers; "/plain" has none (the service's own
 * join/leave/whoami and relay, unchanged).  CONNECT: the auth payload's
 * "mode" decides: "refuse" (CONNECT_ERROR), "later" (accepted from a timer
 * 200 ms on), "vanish" (accepted 1 s on, after the client has gone: the
 * -ENOTCONN is reported), anything else accepted at once; an accepted
 * socket gets "welcome" [sid, user, X-Test header, worker slot].
 * What the handlers see on one worker, the test reads on any: they report
 * to the room "observers" with cd_sio_broadcast ("seen-pending",
 * "seen-enotconn", "seen-disconnect" [sid, reason], "seen-ask-failed"
 * [sid, "ENOTCONN"]).
 *
 * Events (arguments are plain strings where rooms are named):
 *   whoami            ack {"sid","worker"}
 *   echo ...          ack with the same arguments (binary included)
 *   emit-back ...     emits "echoed" with the same arguments
 *   ask ...           emitWithAck "question" (same arguments, 1 s); the
 *                     outcome is emitted: "answered" with the reply's
 *                     arguments, or "ask-failed" ["ETIMEDOUT"]
 *   join r / leave r  cd_sio_join / cd_sio_leave, ack [rc]
 *   to-room r x n     broadcast "room-msg" [r, n] to room r except room x
 *                     ("" for none), ack [rc]
 *   pull r t / push r t   sockets in room r join / leave room t, ack [rc]
 *   kick r            sockets in room r are disconnected, ack [rc]
 *   count             ack [events this socket sent] (per-socket data)
 *   bye               cd_sio_disconnect(s, 0)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clusterd/log.h>
#include <clusterd/socketio.h>
#include <clusterd/timer.h>

static cd_sio_server *server;

/* Per-socket data. */
typedef struct sock_data {
    long events;
} sock_data;

/* The idx-th argument when it is a plain string (no escapes) into out;
 * 0, or -1. */
static int arg_str(const cd_sio_args *a, int idx, char *out, size_t cap)
{
    const char *p = a->json, *end = a->json + a->json_len;
    if (!p || p == end || *p != '[')
        return -1;
    p++;
    for (int i = 0; p < end; i++) {
        if (i == idx) {
            if (*p != '"')
                return -1;
            const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
            if (!q || (size_t)(q - p - 1) >= cap)
                return -1;
            memcpy(out, p + 1, (size_t)(q - p - 1));
            out[q - p - 1] = '\0';
            return 0;
        }
        int depth = 0, str = 0;
        for (; p < end; p++) { /* to the ',' ending this element */
            if (str) {
                if (*p == '\\')
                    p++;
                else if (*p == '"')
                    str = 0;
            } else if (*p == '"') {
                str = 1;
            } else if (*p == '[' || *p == '{') {
                depth++;
            } else if ((*p == ']' || *p == '}') && depth-- == 0) {
                return -1;
            } else if (*p == ',' && depth == 0) {
                p++;
                break;
            }
        }
    }
    return -1;
}

/* Tells the observers (every worker) what a handler saw. */
static void report(const char *what, const char *a, const char *b)
{
    char json[512];
    snprintf(json, sizeof json, "[\"%s\",\"%s\"]", a, b ? b : "");
    cd_sio_args args = {.json = json, .json_len = strlen(json)};
    const char *rooms[] = {"observers"};
    cd_sio_target to = {.rooms = rooms, .nrooms = 1};
    int rc = cd_sio_broadcast(server, "/", &to, what, &args);
    if (rc < 0)
        cd_err("sio-test: broadcast %s: %s", what, strerror(-rc));
}

static void ack_int(cd_sio_ack *ack, int v)
{
    char json[32];
    snprintf(json, sizeof json, "[%d]", v);
    cd_sio_args args = {.json = json, .json_len = strlen(json)};
    if (ack)
        cd_sio_ack_send(ack, &args);
}

static void welcome(cd_sio_socket *s)
{
    sock_data *d = calloc(1, sizeof *d);
    cd_sio_set_data(s, d);
    const char *user = cd_sio_user(s), *hdr = cd_sio_header(s, "x-test");
    char json[512];
    snprintf(json, sizeof json, "[\"%s\",\"%s\",\"%s\",%d,\"%s\"]", cd_sio_id(s), user ? user : "",
             hdr ? hdr : "", cd_sio_service(server)->slot, cd_sio_namespace(s));
    cd_sio_args args = {.json = json, .json_len = strlen(json)};
    int rc = cd_sio_emit(s, "welcome", &args);
    if (rc < 0)
        cd_err("sio-test: welcome: %s", strerror(-rc));
}

/* A connect resolved from a timer. */
typedef struct later {
    cd_sio_socket *s;
    cd_timer *t;
    char tag[64];
} later;

static void later_cb(cd_timer *t, void *arg)
{
    later *l = arg;
    cd_sio_socket *s = l->s;
    char sid[64];
    snprintf(sid, sizeof sid, "%s", cd_sio_id(s));
    int rc = cd_sio_accept(s);
    if (rc == -ENOTCONN)
        report("seen-enotconn", l->tag, sid);
    else if (rc == 0)
        welcome(s);
    else
        cd_err("sio-test: accept: %s", strerror(-rc));
    cd_timer_free(t);
    free(l);
}

static void on_connect(cd_sio_socket *s, const char *auth, size_t auth_len, void *data)
{
    (void)data;
    char mode[32] = "", tag[64] = "";
    if (auth) { /* {"mode":"...","tag":"..."}: found by their text */
        char *a = strndup(auth, auth_len);
        const char *m = a ? strstr(a, "\"mode\":\"") : NULL, *t = a ? strstr(a, "\"tag\":\"") : NULL;
        if (m)
            sscanf(m + 8, "%31[^\"]", mode);
        if (t)
            sscanf(t + 7, "%63[^\"]", tag);
        free(a);
    }
    if (strcmp(mode, "refuse") == 0) {
        cd_sio_refuse(s, "not welcome: \"refuse\" asked");
        return;
    }
    if (strcmp(mode, "later") == 0 || strcmp(mode, "vanish") == 0) {
        later *l = calloc(1, sizeof *l);
        l->s = s;
        snprintf(l->tag, sizeof l->tag, "%s", tag);
        l->t = cd_timer_new(cd_sio_service(server), later_cb, l);
        cd_timer_start(l->t, mode[0] == 'l' ? 200 : 1000, 0);
        if (mode[0] == 'v')
            report("seen-pending", tag, cd_sio_id(s));
        return;
    }
    if (cd_sio_accept(s) == 0)
        welcome(s);
}

/* emitWithAck's outcome. */
static void asked(void *arg, int err, const cd_sio_args *reply)
{
    char *sid = arg; /* told through its sid's room: the socket may be gone */
    if (err == 0) {
        const char *rooms[] = {sid};
        cd_sio_target to = {.rooms = rooms, .nrooms = 1};
        int rc = cd_sio_broadcast(server, "/", &to, "answered", reply);
        if (rc < 0)
            cd_err("sio-test: answered: %s", strerror(-rc));
    } else {
        const char *rooms[] = {sid};
        cd_sio_target to = {.rooms = rooms, .nrooms = 1};
        cd_sio_args args = {.json = err == -ETIMEDOUT ? "[\"ETIMEDOUT\"]" : "[\"ENOTCONN\"]", .json_len = 0};
        args.json_len = strlen(args.json);
        cd_sio_broadcast(server, "/", &to, "ask-failed", &args);
        if (err == -ENOTCONN) /* the socket went first: only the observers can hear of it */
            report("seen-ask-failed", sid, "ENOTCONN");
    }
    free(sid);
}

static void on_event(cd_sio_socket *s, const char *event, const cd_sio_args *args, cd_sio_ack *ack, void *data)
{
    (void)data;
    sock_data *d = cd_sio_data(s);
    if (d)
        d->events++;
    char a[160] = "", b[160] = "", c[160] = "";
    arg_str(args, 0, a, sizeof a);
    arg_str(args, 1, b, sizeof b);
    arg_str(args, 2, c, sizeof c);
    int rc = 0;
    if (strcmp(event, "whoami") == 0) {
        char json[128];
        snprintf(json, sizeof json, "[{\"sid\":\"%s\",\"worker\":%d}]", cd_sio_id(s), cd_sio_service(server)->slot);
        cd_sio_args r = {.json = json, .json_len = strlen(json)};
        if (ack)
            cd_sio_ack_send(ack, &r);
        return;
    } else if (strcmp(event, "echo") == 0) {
        if (ack)
            cd_sio_ack_send(ack, args);
        return;
    } else if (strcmp(event, "emit-back") == 0) {
        rc = cd_sio_emit(s, "echoed", args);
    } else if (strcmp(event, "ask") == 0) {
        char *sid = strdup(cd_sio_id(s));
        rc = cd_sio_emit_with_ack(s, "question", args, 1.0, asked, sid);
        if (rc < 0)
            free(sid);
    } else if (strcmp(event, "join") == 0 || strcmp(event, "leave") == 0) {
        rc = event[0] == 'j' ? cd_sio_join(s, a) : cd_sio_leave(s, a);
    } else if (strcmp(event, "to-room") == 0) {
        char json[400];
        snprintf(json, sizeof json, "[\"%s\",\"%s\"]", a, c);
        cd_sio_args m = {.json = json, .json_len = strlen(json)};
        const char *rooms[] = {a}, *except[] = {b};
        cd_sio_target to = {.rooms = rooms, .nrooms = 1, .except = except, .nexcept = b[0] ? 1 : 0};
        rc = cd_sio_broadcast(server, "/", &to, "room-msg", &m);
    } else if (strcmp(event, "pull") == 0 || strcmp(event, "push") == 0) {
        const char *rooms[] = {a};
        cd_sio_target to = {.rooms = rooms, .nrooms = 1};
        rc = event[1] == 'u' && event[2] == 'l' ? cd_sio_sockets_join(server, "/", &to, b)
                                                : cd_sio_sockets_leave(server, "/", &to, b);
    } else if (strcmp(event, "kick") == 0) {
        const char *rooms[] = {a};
        cd_sio_target to = {.rooms = rooms, .nrooms = 1};
        rc = cd_sio_sockets_disconnect(server, "/", &to, 0);
    } else if (strcmp(event, "count") == 0) {
        rc = d ? (int)d->events : -1;
    } else if (strcmp(event, "bye") == 0) {
        if (ack)
            ack_int(ack, 0);
        cd_sio_disconnect(s, 0);
        return;
    } else {
        rc = -ENOSYS;
    }
    ack_int(ack, rc);
}

static void on_disconnect(cd_sio_socket *s, const char *reason, void *data)
{
    (void)data;
    report("seen-disconnect", cd_sio_id(s), reason);
    free(cd_sio_data(s));
}

static int setup(cd_sio_server *srv, char *err, size_t errlen)
{
    static const cd_sio_handlers h = {.on_connect = on_connect, .on_event = on_event, .on_disconnect = on_disconnect};
    server = srv;
    int rc = cd_sio_on(srv, "/", &h, NULL);
    if (rc == 0 && cd_sio_on(srv, "/", &h, NULL) != -EEXIST)
        rc = -EINVAL;
    if (rc == 0 && cd_sio_on(srv, "/nowhere", &h, NULL) != -ENOENT)
        rc = -EINVAL;
    if (rc < 0 || !cd_sio_loop(srv)) {
        snprintf(err, errlen, "sio-test: cd_sio_on: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

static void teardown(cd_sio_server *srv)
{
    (void)srv;
    server = NULL;
}

const cd_sio_module cd_sio_module_info = {.abi = CLUSTERD_ABI_VERSION, .setup = setup, .teardown = teardown};
