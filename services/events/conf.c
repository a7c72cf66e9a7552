/*
 * conf.c - the [section] of an events service: its keys (a cd_conf_key
 * table, clusterd/conf.h: clusterd parses and bounds them), their defaults,
 * the cross-key checks, and the lookups the running service makes in the
 * result (Origin allowlist, namespaces).  Master and workers: the master
 * validates the config, each worker parses the same bytes again and reads
 * the result only.
 *
 * The defaults are Socket.IO's own, so clients behave as they do against
 * Node.  The checks that matter most: a broadcast (one message plus the
 * names of the rooms it goes to) must fit in one bus message, and with
 * auth = jwt the key file must hold a key of the configured algorithm's
 * kind (auth.c loads it here too, so a wrong key is a -t error, not a
 * worker that fails to boot).  Files are named relative to the config
 * file's folder (cd_conf_dir, valid only while a key is set, so the
 * setters resolve them at once); the publish token is read at conf_check,
 * and every worker reads it again when it parses the config.  Without one,
 * the backend endpoints are open to whoever reaches the listen address:
 * fine on loopback, a warning (cd_conf_warn, shown by clusterd -t) if not.
 * adapter = redis adds the Redis adapter's keys (redis_uri checked by
 * redis_msg.c's parser, redis_prefix, redis_timeout: redis_adapter.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "services/events/events.h"
#include "services/events/hooks.h"
#include "services/events/redis.h"

#define BUS_MSG_MAX (1 << 20) /* ipc/bus.c's largest message */
#define NSP_LEN_MAX 64        /* longest namespace name, in bytes (fits a metric label) */

void *cd_events__conf_new(void)
{
    cd_events_conf *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    /* Socket.IO's own defaults, so clients behave as they do with Node. */
    c->ping_interval_ms = 25000;
    c->ping_timeout_ms = 20000;
    c->max_message_size = 1000000;
    c->max_send_queue = 4 << 20;
    c->max_clients = 10000;
    c->max_rooms = 64;
    c->hook_timeout_ms = 5000;
    c->hook_max_in_flight = 256;
    c->transports = CD_EVENTS_T_POLLING | CD_EVENTS_T_WEBSOCKET;
    c->auth = CD_EVENTS_AUTH_NONE;
    c->jwt_alg = CD_EVENTS_JWT_HS256;
    c->namespaces = calloc(1, sizeof *c->namespaces);
    c->jwt_rooms_claim = strdup("rooms");
    c->adapter = CD_EVENTS_ADAPTER_LOCAL;
    c->redis_uri = strdup("redis://127.0.0.1:6379/0");
    c->redis_prefix = strdup("socket.io");
    c->redis_timeout_ms = 2000;
    if (!c->namespaces || !c->jwt_rooms_claim || !c->redis_uri || !c->redis_prefix ||
        !(c->namespaces[0] = strdup("/"))) {
        cd_events__conf_free(c);
        return NULL;
    }
    c->nnamespaces = 1;
    return c;
}

static void free_list(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

static int nomem(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Origins: "https://a.example, http://localhost:3000"; "*" or empty: any. */
static int set_origins(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    char *copy = strdup(value), *save = NULL;
    if (!copy)
        return nomem(err, errlen);
    free_list(&c->origins, &c->norigins);
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        if (strcmp(t, "*") == 0) {
            free_list(&c->origins, &c->norigins);
            break;
        }
        char **n = realloc(c->origins, (c->norigins + 1) * sizeof *n);
        if (!n || !(n[c->norigins] = strdup(t))) {
            if (n)
                c->origins = n;
            free(copy);
            return nomem(err, errlen);
        }
        c->origins = n;
        c->norigins++;
    }
    free(copy);
    return 0;
}

/* A namespace as a client names it in a packet ("/chat,..."): it starts
 * with "/", and holds no ',' (which ends it there), no '?' (a query) and
 * nothing that is not printable ASCII. */
static const char *bad_nsp(const char *t)
{
    size_t len = strlen(t);
    if (t[0] != '/')
        return "must start with '/'";
    if (len > NSP_LEN_MAX)
        return "is longer than 64 bytes";
    for (size_t i = 0; i < len; i++)
        if (t[i] < 0x21 || t[i] > 0x7e || t[i] == ',' || t[i] == '?' || t[i] == '"' || t[i] == '\\')
            return "holds a character other than printable ASCII but , ? \" \\";
    return NULL;
}

/* namespaces = /, /chat: exactly the list (no "/" unless listed). */
static int set_namespaces(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    char **list = NULL, *copy = strdup(value), *save = NULL;
    size_t n = 0;
    int rc = -1;
    if (!copy)
        return nomem(err, errlen);
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        const char *why = bad_nsp(t);
        if (why) {
            snprintf(err, errlen, "namespace '%.*s' %s", NSP_LEN_MAX, t, why);
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i], t) == 0) {
                snprintf(err, errlen, "namespace '%s' is listed twice", t);
                goto out;
            }
        if (n == CD_EVENTS_NSP_MAX) {
            snprintf(err, errlen, "more than %d namespaces", CD_EVENTS_NSP_MAX);
            goto out;
        }
        char **grown = realloc(list, (n + 1) * sizeof *grown);
        if (!grown || !(grown[n] = strdup(t))) {
            list = grown ? grown : list;
            nomem(err, errlen);
            goto out;
        }
        list = grown;
        n++;
    }
    if (n == 0) {
        snprintf(err, errlen, "no namespace listed (the default is /)");
        goto out;
    }
    free_list(&c->namespaces, &c->nnamespaces);
    c->namespaces = list;
    c->nnamespaces = n;
    list = NULL;
    n = 0;
    rc = 0;
out:
    free_list(&list, &n);
    free(copy);
    return rc;
}

/* transports = polling, websocket: a non-empty subset. */
static int set_transports(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    char *copy = strdup(value), *save = NULL;
    int bits = 0;
    if (!copy)
        return nomem(err, errlen);
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        if (strcmp(t, "polling") == 0)
            bits |= CD_EVENTS_T_POLLING;
        else if (strcmp(t, "websocket") == 0)
            bits |= CD_EVENTS_T_WEBSOCKET;
        else {
            snprintf(err, errlen, "unknown transport '%.32s' (polling, websocket)", t);
            free(copy);
            return -1;
        }
    }
    free(copy);
    if (!bits) {
        snprintf(err, errlen, "no transport listed (polling, websocket)");
        return -1;
    }
    c->transports = bits;
    return 0;
}

static int set_auth(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    if (strcmp(value, "none") == 0)
        c->auth = CD_EVENTS_AUTH_NONE;
    else if (strcmp(value, "jwt") == 0)
        c->auth = CD_EVENTS_AUTH_JWT;
    else {
        snprintf(err, errlen, "expected none or jwt");
        return -1;
    }
    return 0;
}

/* adapter = local | redis (redis.h) */
static int set_adapter(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    if (strcmp(value, "local") == 0)
        c->adapter = CD_EVENTS_ADAPTER_LOCAL;
    else if (strcmp(value, "redis") == 0)
        c->adapter = CD_EVENTS_ADAPTER_REDIS;
    else {
        snprintf(err, errlen, "expected local or redis");
        return -1;
    }
    return 0;
}

static int set_redis_uri(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    cd_events_redis_uri u;
    if (cd_events__redis_uri_parse(value, &u) < 0) {
        snprintf(err, errlen, "expected redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]");
        return -1;
    }
    char *v = strdup(value);
    if (!v)
        return nomem(err, errlen);
    free(c->redis_uri);
    c->redis_uri = v;
    return 0;
}

static int set_jwt_alg(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    if (strcmp(value, "HS256") == 0)
        c->jwt_alg = CD_EVENTS_JWT_HS256;
    else if (strcmp(value, "RS256") == 0)
        c->jwt_alg = CD_EVENTS_JWT_RS256;
    else if (strcmp(value, "ES256") == 0)
        c->jwt_alg = CD_EVENTS_JWT_ES256;
    else {
        snprintf(err, errlen, "expected HS256, RS256 or ES256");
        return -1;
    }
    return 0;
}

/* A file named relative to the config's folder, resolved now (cd_conf_dir
 * is only valid while the key is being set). */
static int set_path(char **field, const char *value, char *err, size_t errlen)
{
    if (!value[0]) {
        snprintf(err, errlen, "empty path");
        return -1;
    }
    char *p;
    if (value[0] == '/')
        p = strdup(value);
    else if (asprintf(&p, "%s/%s", cd_conf_dir(), value) < 0)
        p = NULL;
    if (!p)
        return nomem(err, errlen);
    free(*field);
    *field = p;
    return 0;
}

static int set_jwt_key_file(void *conf, const char *value, char *err, size_t errlen)
{
    return set_path(&((cd_events_conf *)conf)->jwt_key_file, value, err, errlen);
}

static int set_publish_token_file(void *conf, const char *value, char *err, size_t errlen)
{
    return set_path(&((cd_events_conf *)conf)->publish_token_file, value, err, errlen);
}

/* handlers = chat | /path/x.so: a Socket.IO handler module (sio_api.c),
 * a bare name searched in the module directories, then next to the
 * config (whose folder is kept: cd_conf_dir is only valid now). */
static int set_handlers(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    if (!value[0]) {
        snprintf(err, errlen, "empty module name");
        return -1;
    }
    char *v = strdup(value), *d = strdup(cd_conf_dir());
    if (!v || !d) {
        free(v);
        free(d);
        return nomem(err, errlen);
    }
    free(c->handlers);
    free(c->handlers_dir);
    c->handlers = v;
    c->handlers_dir = d;
    return 0;
}

#define FORWARD_HEADERS_MAX 32
/* forward_headers = Cookie, User-Agent: header names (RFC 9110 tokens). */
static int set_forward_headers(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    char *copy = strdup(value), *save = NULL;
    if (!copy)
        return nomem(err, errlen);
    free_list(&c->forward_headers, &c->nforward_headers);
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        const char *why = c->nforward_headers == FORWARD_HEADERS_MAX ? "more than 32 headers" : NULL;
        for (const char *q = t; !why && *q; q++)
            if (!strchr("!#$%&'*+-.^_`|~", *q) && !((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
                                                     (*q >= 'A' && *q <= 'Z')))
                why = "is not a header name";
        char **n = why ? NULL : realloc(c->forward_headers, (c->nforward_headers + 1) * sizeof *n);
        if (why || !n || !(n[c->nforward_headers] = strdup(t))) {
            if (n)
                c->forward_headers = n;
            if (why)
                snprintf(err, errlen, "'%.64s' %s", t, why);
            free(copy);
            return why ? -1 : nomem(err, errlen);
        }
        c->forward_headers = n;
        c->nforward_headers++;
    }
    free(copy);
    return 0;
}

/* Bounds: pings from 100 ms (a test's pace) to 1 h; a message from 1k to
 * Socket.IO's own default maxPayload; a queue of at least one message
 * (conf_check) up to 1g; a claim name of at least one byte. */
const cd_conf_key cd_events__keys[] = {
    CD_CONF_KEY("ping_interval", CD_KEY_MS, cd_events_conf, ping_interval_ms, 100, 3600000),
    CD_CONF_KEY("ping_timeout", CD_KEY_MS, cd_events_conf, ping_timeout_ms, 100, 3600000),
    CD_CONF_KEY("max_message_size", CD_KEY_SIZE, cd_events_conf, max_message_size, 1024, 1000000),
    CD_CONF_KEY("max_send_queue", CD_KEY_SIZE, cd_events_conf, max_send_queue, 1024, 1LL << 30),
    CD_CONF_KEY("max_clients", CD_KEY_INT, cd_events_conf, max_clients, 1, 1000000),
    CD_CONF_KEY("max_rooms", CD_KEY_INT, cd_events_conf, max_rooms, 1, 1024),
    CD_CONF_KEY_FUNC("origins", set_origins),
    CD_CONF_KEY_FUNC("namespaces", set_namespaces),
    CD_CONF_KEY_FUNC("transports", set_transports),
    CD_CONF_KEY_FUNC("auth", set_auth),
    CD_CONF_KEY_FUNC("jwt_alg", set_jwt_alg),
    CD_CONF_KEY_FUNC("jwt_key_file", set_jwt_key_file),
    CD_CONF_KEY("jwt_rooms_claim", CD_KEY_STRP, cd_events_conf, jwt_rooms_claim, 1, 0),
    CD_CONF_KEY_FUNC("publish_token_file", set_publish_token_file),
    CD_CONF_KEY_FUNC("connect_hook", cd_events__set_connect_hook), /* hook_proto.c */
    CD_CONF_KEY_FUNC("event_hook", cd_events__set_event_hook),
    CD_CONF_KEY_FUNC("disconnect_hook", cd_events__set_disconnect_hook),
    CD_CONF_KEY("hook_timeout", CD_KEY_MS, cd_events_conf, hook_timeout_ms, 100, 600000),
    CD_CONF_KEY("hook_max_in_flight", CD_KEY_INT, cd_events_conf, hook_max_in_flight, 1, 100000),
    CD_CONF_KEY_FUNC("handlers", set_handlers),
    CD_CONF_KEY_FUNC("forward_headers", set_forward_headers),
    CD_CONF_KEY_FUNC("adapter", set_adapter),
    CD_CONF_KEY_FUNC("redis_uri", set_redis_uri),
    CD_CONF_KEY("redis_prefix", CD_KEY_STRP, cd_events_conf, redis_prefix, 1, 0),
    CD_CONF_KEY("redis_timeout", CD_KEY_MS, cd_events_conf, redis_timeout_ms, 100, 60000),
    {0},
};

static int set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

/* The publish token: the file's bytes, one trailing newline stripped. */
static int read_publish_token(cd_events_conf *c, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int rc = cd_events__read_file(c->publish_token_file, 4096, &buf, &len);
    if (rc < 0) {
        snprintf(err, errlen, "publish_token_file %s: %s", c->publish_token_file,
                 rc == -EFBIG ? "larger than 4k" : rc == -EINVAL ? "not a file" : strerror(-rc));
        return -1;
    }
    if (len && buf[len - 1] == '\n')
        buf[--len] = '\0';
    if (len && buf[len - 1] == '\r')
        buf[--len] = '\0';
    if (!len || memchr(buf, '\n', len)) {
        free(buf);
        snprintf(err, errlen, "publish_token_file %s: the token must be one non-empty line",
                 c->publish_token_file);
        return -1;
    }
    free(c->publish_token);
    c->publish_token = buf;
    c->publish_token_len = len;
    return 0;
}

static int check_auth(cd_events_conf *c, char *err, size_t errlen)
{
    if (c->auth != CD_EVENTS_AUTH_JWT)
        return 0;
    if (!c->jwt_key_file)
        return set_err(err, errlen, "auth = jwt needs jwt_key_file");
    /* Load the key as a worker will: a key of the wrong kind fails here. */
    cd_events_auth *a;
    char why[256];
    if (cd_events__auth_new(c, &a, why, sizeof why) < 0) {
        snprintf(err, errlen, "jwt_key_file %s: %s", c->jwt_key_file, why);
        return -1;
    }
    cd_events__auth_free(a);
    return 0;
}

int cd_events__conf_check(void *conf, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    if (c->max_send_queue < c->max_message_size)
        return set_err(err, errlen, "max_send_queue must be at least max_message_size");
    /* A broadcast must fit in one bus message (1m) with its room list. */
    if (c->max_message_size + c->max_rooms * (2 + CD_EVENTS_ROOM_MAX) + 64 > BUS_MSG_MAX)
        return set_err(err, errlen, "max_message_size plus max_rooms room names must fit in a 1m bus "
                                    "message: lower one of them");
    if (check_auth(c, err, errlen) < 0)
        return -1;
    if (cd_events__hooks_conf_check(c, err, errlen) < 0) /* namespaces named by the hooks */
        return -1;
    if (c->publish_token_file && read_publish_token(c, err, errlen) < 0)
        return -1;
    /* The handler module, loaded as a worker will: a missing file, a
     * module of another ABI fails here, at -t. */
    if (c->handlers && !cd_sio_module_load(c->handlers, c->handlers_dir, err, errlen))
        return -1;
    if (!c->publish_token_file && !cd_conf_listen_loopback())
        cd_conf_warn("publish_token_file is not set while [cluster] listen is not loopback: anyone who can "
                     "reach it may publish, join, leave and disconnect through the backend endpoints");
    return 0;
}

void cd_events__conf_free(void *conf)
{
    cd_events_conf *c = conf;
    if (!c)
        return;
    free_list(&c->origins, &c->norigins);
    free_list(&c->namespaces, &c->nnamespaces);
    free(c->jwt_key_file);
    free(c->jwt_rooms_claim);
    cd_events__hooks_conf_free(c);
    free(c->publish_token_file);
    free(c->publish_token);
    free(c->handlers);
    free(c->handlers_dir);
    free(c->redis_uri);
    free(c->redis_prefix);
    free_list(&c->forward_headers, &c->nforward_headers);
    free(c);
}

int cd_events__origin_allowed(const cd_events_conf *conf, const char *origin)
{
    if (!conf->norigins || !origin) /* non-browser clients send none */
        return 1;
    for (size_t i = 0; i < conf->norigins; i++)
        if (strcasecmp(conf->origins[i], origin) == 0)
            return 1;
    return 0;
}

int cd_events__nsp_index(const cd_events_conf *c, const char *nsp, size_t len)
{
    for (size_t i = 0; i < c->nnamespaces; i++)
        if (strlen(c->namespaces[i]) == len && memcmp(c->namespaces[i], nsp, len) == 0)
            return (int)i;
    return -1;
}
