/*
 * cluster.c - the [cluster] section: its keys as one table, its defaults
 * and its cross-key checks (master and workers; clusterctl reads two keys
 * leniently through cd_conf_runtime_dir).
 *
 * Plain numbers, durations and sizes go through the typed setters of
 * conf/keys.c; the few keys with a grammar of their own (listen, workers
 * with its "auto", paths) are function keys here, worded as they always were.
 */
#include "conf/cluster.h"

#include <arpa/inet.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/keys.h"
#include "core/util.h"

static int set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

static int set_listen(void *conf, const char *value, char *err, size_t errlen)
{
    cd_conf *c = conf;
    if (strlen(value) >= sizeof c->listen || cd_parse_listen(value, &c->addr, &c->addrlen) < 0) {
        snprintf(err, errlen, "bad address '%s' (expected host:port)", value);
        return -1;
    }
    strcpy(c->listen, value);
    return 0;
}

static int set_runtime_dir(void *field, const char *value, char *err, size_t errlen)
{
    /* Room for the socket names below it. */
    const size_t cap = sizeof ((cd_conf *)0)->runtime_dir - 20;
    if (value[0] != '/' || strlen(value) >= cap) {
        snprintf(err, errlen, "expected an absolute path of at most %zu characters", cap - 1);
        return -1;
    }
    strcpy(field, value);
    return 0;
}

static int set_access_log(void *field, const char *value, char *err, size_t errlen)
{
    if (strlen(value) >= sizeof ((cd_conf *)0)->access_log || (value[0] && value[0] != '/'))
        return set_err(err, errlen, "expected an absolute path, or nothing for off");
    strcpy(field, value);
    return 0;
}

static int set_access_log_format(void *field, const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "combined") != 0 && strcmp(value, "json") != 0)
        return set_err(err, errlen, "expected combined or json");
    *(int *)field = value[0] == 'j';
    return 0;
}

static const cd_conf_key workers_number[] = {
    CD_CONF_KEY("workers", CD_KEY_INT, cd_conf, workers, 1, 1024),
    {0},
};

static int set_workers(void *conf, const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "auto") == 0) {
        ((cd_conf *)conf)->workers = 0;
        return 0;
    }
    return cd_conf_key_set(workers_number, conf, "workers", value, err, errlen);
}

static const cd_conf_key cluster_keys[] = {
    CD_CONF_KEY_FUNC("listen", set_listen),
    CD_CONF_KEY_FUNC_AT("runtime_dir", set_runtime_dir, cd_conf, runtime_dir),
    CD_CONF_KEY("pidfile", CD_KEY_STR, cd_conf, pidfile, 0, 0),
    CD_CONF_KEY("user", CD_KEY_STR, cd_conf, user, 1, 0),
    CD_CONF_KEY("group", CD_KEY_STR, cd_conf, group, 1, 0),
    CD_CONF_KEY_FUNC_AT("access_log", set_access_log, cd_conf, access_log),
    CD_CONF_KEY_FUNC_AT("access_log_format", set_access_log_format, cd_conf, access_log_json),
    CD_CONF_KEY("rlimit_nofile", CD_KEY_INT, cd_conf, rlimit_nofile, 64, 1 << 24),
    CD_CONF_KEY_FUNC("workers", set_workers),
    CD_CONF_KEY("max_requests", CD_KEY_INT, cd_conf, max_requests, 0, 1LL << 40),
    CD_CONF_KEY("max_requests_jitter", CD_KEY_INT, cd_conf, max_requests_jitter, 0, 1LL << 40),
    CD_CONF_KEY("max_rss", CD_KEY_SIZE, cd_conf, max_rss, 0, 1LL << 40),
    CD_CONF_KEY("backlog", CD_KEY_INT, cd_conf, backlog, 1, 65535),
    CD_CONF_KEY("max_connections", CD_KEY_INT, cd_conf, max_connections, 1, 1000000),
    CD_CONF_KEY("graceful_timeout", CD_KEY_MS, cd_conf, graceful_timeout_ms, 0, CD_KEY_NOMAX),
    CD_CONF_KEY("drain_delay", CD_KEY_MS, cd_conf, drain_delay_ms, 0, 3600 * 1000),
    CD_CONF_KEY("header_timeout", CD_KEY_MS, cd_conf, header_timeout_ms, 1, CD_KEY_NOMAX),
    CD_CONF_KEY("body_timeout", CD_KEY_MS, cd_conf, body_timeout_ms, 1, CD_KEY_NOMAX),
    CD_CONF_KEY("body_deadline", CD_KEY_MS, cd_conf, body_deadline_ms, 1, CD_KEY_NOMAX),
    CD_CONF_KEY("keepalive_timeout", CD_KEY_MS, cd_conf, keepalive_timeout_ms, 0, CD_KEY_NOMAX),
    CD_CONF_KEY("heartbeat_interval", CD_KEY_MS, cd_conf, heartbeat_interval_ms, 10, CD_KEY_NOMAX),
    CD_CONF_KEY("heartbeat_timeout", CD_KEY_MS, cd_conf, heartbeat_timeout_ms, 100, CD_KEY_NOMAX),
    CD_CONF_KEY("upgrade_timeout", CD_KEY_MS, cd_conf, upgrade_timeout_ms, 100, CD_KEY_NOMAX),
    CD_CONF_KEY("max_header_size", CD_KEY_SIZE, cd_conf, max_header_size, 256, 1 << 20),
    CD_CONF_KEY("max_body_size", CD_KEY_SIZE, cd_conf, max_body_size, 0, 1LL << 30),
    {0},
};

const cd_conf_key *cd_conf__cluster_keys(void)
{
    return cluster_keys;
}

int cd_conf__cluster_key(cd_conf *c, const char *key, const char *value, int line, char *err, size_t errlen)
{
    char why[256] = "";
    int rc = cd_conf_key_set(cluster_keys, c, key, value, why, sizeof why);
    if (rc == -2)
        return cd_conf_fail(err, errlen, c->path, line, "unknown key '%s' in [cluster]", key);
    if (rc < 0)
        return cd_conf_fail(err, errlen, c->path, line, "%s: %s", key, why[0] ? why : "bad value");
    return 0;
}

void cd_conf__defaults(cd_conf *c)
{
    strcpy(c->listen, "127.0.0.1:8080");
    cd_parse_listen(c->listen, &c->addr, &c->addrlen);
    c->workers = 0;
    c->backlog = 511;
    c->graceful_timeout_ms = 30000;
    c->header_timeout_ms = 10000;
    c->body_timeout_ms = 10000;
    c->body_deadline_ms = 60000;
    c->keepalive_timeout_ms = 75000;
    c->heartbeat_interval_ms = 1000;
    c->heartbeat_timeout_ms = 10000;
    c->upgrade_timeout_ms = 30000;
    c->max_header_size = 16 * 1024;
    c->max_body_size = 1024 * 1024;
    c->max_connections = 65536; /* per worker; the worker lowers it to what its fd limit allows */
}

int cd_conf__cluster_check(cd_conf *c, char *err, size_t errlen)
{
    if (c->runtime_dir[0] == '\0')
        cd_conf_default_runtime_dir(&c->addr, c->runtime_dir, sizeof c->runtime_dir);
    if (c->heartbeat_timeout_ms <= c->heartbeat_interval_ms)
        return cd_conf_fail(err, errlen, c->path, 0, "heartbeat_timeout must be longer than heartbeat_interval");
    return 0;
}

void cd_conf_default_runtime_dir(const struct sockaddr_storage *addr, char *out, size_t len)
{
    const char *rd = getenv("RUNTIME_DIRECTORY"); /* systemd's RuntimeDirectory= */
    if (rd && rd[0] == '/' && strlen(rd) + 20 < len && !strchr(rd, ':')) {
        snprintf(out, len, "%s", rd);
        return;
    }
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr; /* same port offset for v6 */
    snprintf(out, len, "/tmp/clusterd.%u", (unsigned)ntohs(in->sin_port));
}

/* Only what clusterctl needs: [cluster] listen and runtime_dir, ignoring the rest. */
typedef struct rd_state {
    char listen[128];
    char runtime_dir[200];
} rd_state;

static int rd_handler(void *user, const char *section, const char *name, const char *value)
{
    rd_state *st = user;
    if (strcmp(section, "cluster") == 0 && strcmp(name, "listen") == 0)
        snprintf(st->listen, sizeof st->listen, "%s", value);
    if (strcmp(section, "cluster") == 0 && strcmp(name, "runtime_dir") == 0)
        snprintf(st->runtime_dir, sizeof st->runtime_dir, "%s", value);
    return 1;
}

int cd_conf_runtime_dir(const char *path, char *out, size_t len)
{
    rd_state st = {"127.0.0.1:8080", ""};
    if (ini_parse(path, rd_handler, &st) < 0)
        return -1;
    if (st.runtime_dir[0]) {
        snprintf(out, len, "%s", st.runtime_dir);
        return 0;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    if (cd_parse_listen(st.listen, &ss, &sl) < 0)
        return -1;
    cd_conf_default_runtime_dir(&ss, out, len);
    return 0;
}

int cd_conf_workers(const cd_conf *c)
{
    if (c->workers > 0)
        return c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
