/*
 * chat.c - a chat on clusterd's Socket.IO handler API (examples/chat; a
 * handler module the events service loads in every worker, run on the
 * worker's loop).  Its page is conf/www/chat-handlers.html.
 *
 * Events a client sends (arguments positional, strings and booleans only,
 * read by chat_args.c), each answered through its ack:
 *   nick  [name]          -> {ok:true, nick} | {ok:false, error:"nick taken"}
 *   join  [room]          -> {ok:true, room}; the room's others get "joined" {room, nick}
 *   leave [room]          -> {ok:true, room}; the room's others get "left" {room, nick}
 *   typing [room, bool]   -> the room's others get "typing" {room, nick, typing}
 *   message [room, text]  -> {ok:true, id, time}; the room's others get
 *                            "message" {id, room, nick, text, time}
 * On connect the client gets "welcome" {worker, id}; on disconnect the
 * rooms it was in get "left".  Join, leave, typing and message need a nick
 * first ({ok:false, error:"set a nick first"}).
 *
 * Every notice goes to the room "except" the sender's own sid room, with
 * cd_sio_broadcast, so it reaches the room's members on every worker and
 * never the sender.  Message ids are "<worker slot>-<counter>", unique in
 * the cluster while it runs; time is the server's clock (ms since the epoch).
 *
 * Nicknames are unique on the host, across workers, without any shared
 * table: a nick is held by binding a Unix socket to the abstract address
 * "\0clusterd-chat/<master pid>/<nick, lowercased>".  bind() is atomic, so of two
 * workers claiming one nick at once exactly one wins, and the kernel
 * releases it when the socket is closed, at disconnect or when a worker
 * dies, so a crash never leaves a nick taken.  It costs one descriptor per
 * named user; it does not span hosts (a fleet would need a shared store);
 * the abstract namespace is per network namespace.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <clusterd/buf.h>
#include <clusterd/json.h>
#include <clusterd/log.h>
#include <clusterd/service.h>
#include <clusterd/socketio.h>

#include "chat_args.h"

#define NICK_MAX 32  /* bytes */
#define ROOM_MAX 64  /* bytes */
#define ROOMS_MAX 8  /* rooms one user may be in */
#define TEXT_MAX 1000

/* One connected socket's state (cd_sio_data). */
typedef struct chat_user {
    int nick_fd; /* the abstract socket holding the nick, or -1 */
    char nick[NICK_MAX + 1];
    int nrooms;
    char rooms[ROOMS_MAX][ROOM_MAX + 1];
} chat_user;

typedef struct chat {
    cd_sio_server *srv;
    int slot;               /* this worker's slot, in message ids and "welcome" */
    unsigned long long seq; /* messages sent from this worker */
    int failing;            /* the last notice could not be sent */
} chat;

static chat the_chat; /* one events service per worker loads this module */

/* ---- nicknames, held by abstract Unix sockets ---- */

/* Whether name is a nick: 1..NICK_MAX letters, digits, '_', '-' or '.'. */
static int nick_ok(const char *name, size_t len)
{
    if (len == 0 || len > NICK_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i]))
            return 0;
    return 1;
}

/* Claims nick host-wide: its socket, -EADDRINUSE (taken) or -errno. */
static int nick_claim(const char *nick)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "clusterd-chat/%ld/", (long)getppid());
    for (const char *p = nick; *p && (size_t)n + 2 < sizeof a.sun_path; p++)
        a.sun_path[1 + n++] = (char)tolower((unsigned char)*p);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* ---- answers and notices ---- */

static int ack_json(cd_sio_ack *ack, const char *json)
{
    if (ack) {
        cd_sio_args a = {.json = json, .json_len = strlen(json)};
        cd_sio_ack_send(ack, &a);
    }
    return 0;
}

static int ack_error(cd_sio_ack *ack, const char *error)
{
    char json[160];
    snprintf(json, sizeof json, "[{\"ok\":false,\"error\":\"%s\"}]", error);
    return ack_json(ack, json);
}

/* Sends event with the single argument `obj` (a JSON object) to room's
 * members on every worker but the socket s itself. */
static void notify(cd_sio_socket *s, const char *room, const char *event, const cd_buf *obj)
{
    if (obj->oom) {
        cd_err("chat: out of memory for a %s notice", event);
        return;
    }
    const char *rooms[] = {room};
    const char *except[] = {cd_sio_id(s)};
    cd_sio_target to = {.rooms = rooms, .nrooms = 1, .except = except, .nexcept = 1};
    cd_buf arr = {0};
    cd_buf_printf(&arr, "[%s]", obj->p);
    cd_sio_args a = {.json = arr.p, .json_len = arr.len};
    int rc = arr.oom ? -ENOMEM : cd_sio_broadcast(the_chat.srv, cd_sio_namespace(s), &to, event, &a);
    /* -EAGAIN: the bus is backed up; a chat drops the notice.  Logged once
     * when notices start failing and once when they go again. */
    if (rc < 0 && !the_chat.failing)
        cd_warn("chat: notices are being dropped (%s to room %s: %s)", event, room, strerror(-rc));
    else if (rc == 0 && the_chat.failing)
        cd_notice("chat: notices go again");
    the_chat.failing = rc < 0;
    cd_buf_free(&arr);
}

/* {"room":..,"nick":..} and `extra` members, then notify. */
static void notice(cd_sio_socket *s, const chat_user *u, const char *room, const char *event, const char *extra)
{
    cd_buf b = {0};
    cd_buf_printf(&b, "{\"room\":");
    cd_json_str(&b, room, strlen(room));
    cd_buf_printf(&b, ",\"nick\":");
    cd_json_str(&b, u->nick, strlen(u->nick));
    cd_buf_printf(&b, "%s}", extra ? extra : "");
    notify(s, room, event, &b);
    cd_buf_free(&b);
}

static int room_index(const chat_user *u, const char *room)
{
    for (int i = 0; i < u->nrooms; i++)
        if (strcmp(u->rooms[i], room) == 0)
            return i;
    return -1;
}

/* ---- events ---- */

static int ev_nick(cd_sio_socket *s, chat_user *u, const chat_args *a, cd_sio_ack *ack)
{
    if (a->n != 1 || a->v[0].is_bool || !nick_ok(a->v[0].s, a->v[0].len))
        return ack_error(ack, "a nick is 1 to 32 letters, digits, '_', '-' or '.'");
    /* The same nick in another case is still this user's: no new claim. */
    if (u->nick_fd < 0 || strcasecmp(u->nick, a->v[0].s) != 0) {
        if (u->nrooms)
            return ack_error(ack, "leave your rooms to change your nick");
        int fd = nick_claim(a->v[0].s);
        if (fd == -EADDRINUSE)
            return ack_error(ack, "nick taken");
        if (fd < 0) {
            cd_warn("chat: claiming a nick for %s: %s", cd_sio_id(s), strerror(-fd));
            return ack_error(ack, "try again later");
        }
        if (u->nick_fd >= 0)
            close(u->nick_fd);
        u->nick_fd = fd;
    }
    memcpy(u->nick, a->v[0].s, a->v[0].len + 1); /* nick_ok: at most NICK_MAX */
    cd_buf b = {0};
    cd_buf_printf(&b, "[{\"ok\":true,\"nick\":");
    cd_json_str(&b, u->nick, strlen(u->nick));
    cd_buf_printf(&b, "}]");
    ack_json(ack, b.oom ? "[{\"ok\":true}]" : b.p);
    cd_buf_free(&b);
    return 0;
}

/* join or leave [room]. */
static int ev_room(cd_sio_socket *s, chat_user *u, int join, const chat_args *a, cd_sio_ack *ack)
{
    if (a->n != 1 || a->v[0].is_bool || a->v[0].len == 0 || a->v[0].len > ROOM_MAX)
        return ack_error(ack, "a room is 1 to 64 bytes");
    const char *room = a->v[0].s;
    int i = room_index(u, room);
    if (join && i < 0) {
        if (u->nrooms == ROOMS_MAX)
            return ack_error(ack, "in too many rooms");
        int rc = cd_sio_join(s, room);
        if (rc < 0)
            return ack_error(ack, rc == -EINVAL ? "reserved room name" : "cannot join");
        memcpy(u->rooms[u->nrooms++], room, a->v[0].len + 1); /* at most ROOM_MAX */
        notice(s, u, room, "joined", NULL);
    } else if (!join && i >= 0) {
        cd_sio_leave(s, room);
        notice(s, u, room, "left", NULL);
        memmove(u->rooms[i], u->rooms[i + 1], (size_t)(u->nrooms - i - 1) * sizeof u->rooms[0]);
        u->nrooms--;
    }
    cd_buf b = {0};
    cd_buf_printf(&b, "[{\"ok\":true,\"room\":");
    cd_json_str(&b, room, strlen(room));
    cd_buf_printf(&b, "}]");
    ack_json(ack, b.oom ? "[{\"ok\":true}]" : b.p);
    cd_buf_free(&b);
    return 0;
}

static int ev_typing(cd_sio_socket *s, chat_user *u, const chat_args *a, cd_sio_ack *ack)
{
    if (a->n != 2 || a->v[0].is_bool || !a->v[1].is_bool)
        return ack_error(ack, "typing takes [room, true|false]");
    if (room_index(u, a->v[0].s) < 0)
        return ack_error(ack, "not in that room");
    notice(s, u, a->v[0].s, "typing", a->v[1].b ? ",\"typing\":true" : ",\"typing\":false");
    return ack_json(ack, "[{\"ok\":true}]");
}

static int ev_message(cd_sio_socket *s, chat_user *u, const chat_args *a, cd_sio_ack *ack)
{
    if (a->n != 2 || a->v[0].is_bool || a->v[1].is_bool || a->v[1].len == 0 || a->v[1].len > TEXT_MAX)
        return ack_error(ack, "message takes [room, text of 1 to 1000 bytes]");
    if (room_index(u, a->v[0].s) < 0)
        return ack_error(ack, "not in that room");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char id_time[96];
    snprintf(id_time, sizeof id_time, ",\"id\":\"%d-%llu\",\"time\":%lld", the_chat.slot, ++the_chat.seq, ms);
    cd_buf extra = {0};
    cd_buf_printf(&extra, "%s,\"text\":", id_time);
    cd_json_str(&extra, a->v[1].s, a->v[1].len);
    if (extra.oom) {
        cd_buf_free(&extra);
        return ack_error(ack, "try again later");
    }
    notice(s, u, a->v[0].s, "message", extra.p);
    cd_buf_free(&extra);
    char json[128];
    snprintf(json, sizeof json, "[{\"ok\":true%s}]", id_time);
    return ack_json(ack, json);
}

static void on_event(cd_sio_socket *s, const char *event, const cd_sio_args *args, cd_sio_ack *ack, void *data)
{
    (void)data;
    chat_user *u = cd_sio_data(s);
    static chat_args a; /* 4 KiB: kept off the stack; the loop runs one handler at a time */
    if (args->nbin || chat_args_parse(args->json, args->json_len, &a) < 0)
        ack_error(ack, "bad arguments: strings and booleans only");
    else if (strcmp(event, "nick") == 0)
        ev_nick(s, u, &a, ack);
    else if (u->nick_fd < 0)
        ack_error(ack, "set a nick first");
    else if (strcmp(event, "join") == 0 || strcmp(event, "leave") == 0)
        ev_room(s, u, event[0] == 'j', &a, ack);
    else if (strcmp(event, "typing") == 0)
        ev_typing(s, u, &a, ack);
    else if (strcmp(event, "message") == 0)
        ev_message(s, u, &a, ack);
    else
        ack_error(ack, "unknown event");
}

/* ---- connect, disconnect ---- */

static void on_connect(cd_sio_socket *s, const char *auth, size_t auth_len, void *data)
{
    (void)auth, (void)auth_len, (void)data;
    chat_user *u = calloc(1, sizeof *u);
    if (!u) {
        cd_sio_refuse(s, "server busy");
        return;
    }
    u->nick_fd = -1;
    cd_sio_set_data(s, u);
    if (cd_sio_accept(s) < 0) { /* gone meanwhile: no on_disconnect */
        free(u);
        return;
    }
    char json[96];
    snprintf(json, sizeof json, "[{\"worker\":%d,\"id\":\"%s\"}]", the_chat.slot, cd_sio_id(s));
    cd_sio_args a = {.json = json, .json_len = strlen(json)};
    cd_sio_emit(s, "welcome", &a);
}

static void on_disconnect(cd_sio_socket *s, const char *reason, void *data)
{
    (void)data;
    chat_user *u = cd_sio_data(s);
    if (!u)
        return;
    if (u->nick_fd >= 0)
        close(u->nick_fd); /* the nick is free before the others hear "left" */
    /* At a stop everyone is leaving: no notices for a room of leavers. */
    for (int i = 0; strcmp(reason, "server shutting down") != 0 && i < u->nrooms; i++)
        notice(s, u, u->rooms[i], "left", NULL);
    free(u);
    cd_sio_set_data(s, NULL);
}

static int setup(cd_sio_server *srv, char *err, size_t errlen)
{
    static const cd_sio_handlers h = {.on_connect = on_connect, .on_event = on_event, .on_disconnect = on_disconnect};
    the_chat.srv = srv;
    the_chat.slot = cd_sio_service(srv)->slot;
    int rc = cd_sio_on(srv, "/", &h, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "chat: namespace /: %s", rc == -ENOENT ? "not configured" : strerror(-rc));
        return -1;
    }
    return 0;
}

const cd_sio_module cd_sio_module_info = {.abi = CLUSTERD_ABI_VERSION, .setup = setup};
