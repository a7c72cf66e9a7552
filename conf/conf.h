/*
 * conf.h - the configuration: parsed once, read-only afterwards.
 *
 * The master loads the file (cd_conf_load_file); the text it validated is
 * kept in the cd_conf and handed to each exec'd worker, which parses the same
 * bytes again (cd_conf_load_text) so master and workers never disagree even
 * if the file changed on disk meanwhile.  Every error names file:line.
 */
#ifndef CD_CONF_H
#define CD_CONF_H

#include <stddef.h>
#include <sys/socket.h>

#include "services/service.h"

/* A section name: 1..31 of [A-Za-z0-9_.-] (what the metrics snapshot keeps
 * per service, ipc/channel.h); anything else is a file:line error. */
#define CD_CONF_NAME_MAX 31

typedef struct cd_conf_service {
    char *name;  /* section name */
    char *route; /* path prefix */
    size_t route_len;
    const cd_service_type *type;
    void *conf; /* the type's own parsed config */
    int line;   /* the line of its [section] header */
} cd_conf_service;

typedef struct cd_conf {
    char *path; /* for messages */
    char *text; /* the exact bytes parsed, NUL-terminated */
    size_t text_len;

    char listen[128];
    char runtime_dir[200]; /* sockets (bus, control); default $RUNTIME_DIRECTORY, else /tmp/clusterd.PORT */
    char pidfile[200];     /* "" = none */
    char user[64];         /* workers run as this user ("" = unchanged) */
    char group[64];        /* and group ("" = the user's) */
    long long rlimit_nofile; /* 0 = unchanged */
    char access_log[200];    /* "" = off */
    int access_log_json;     /* 0 = combined format, 1 = JSON lines */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int workers; /* 0 = auto (number of CPUs) */
    int backlog;
    long long graceful_timeout_ms;
    long long header_timeout_ms;
    long long body_timeout_ms;  /* longest pause between two reads of a request body */
    long long body_deadline_ms; /* a whole body, from the end of its headers */
    long long keepalive_timeout_ms;
    long long heartbeat_interval_ms;
    long long heartbeat_timeout_ms;
    long long upgrade_timeout_ms; /* a binary upgrade rolls back if the new workers are not READY by then */
    size_t max_header_size;
    size_t max_body_size;
    int max_connections;
    long long max_requests;        /* recycle a worker after this many (0 = never) */
    long long max_requests_jitter; /* plus a random 0..jitter, so workers do not recycle together */
    size_t max_rss;                /* recycle a worker whose RSS is above this (0 = never) */

    cd_conf_service *services;
    size_t nservices;
} cd_conf;

/* Reads and parses path.  Returns 0 and *out, or -1 with "file:line: why"
 * (or "file: why") in err.  Caller frees with cd_conf_free. */
int cd_conf_load_file(const char *path, cd_conf **out, char *err, size_t errlen);
/* Parses text (len bytes) as if read from path.  Same contract. */
int cd_conf_load_text(const char *path, const char *text, size_t len, cd_conf **out, char *err,
                      size_t errlen);
void cd_conf_free(cd_conf *c);

/* The runtime dir when the config names none: $RUNTIME_DIRECTORY (systemd),
 * else /tmp/clusterd.PORT. */
void cd_conf_default_runtime_dir(const struct sockaddr_storage *addr, char *out, size_t len);
/* The runtime dir a config file implies, read leniently (for clusterctl, which
 * must find a running master even when the file on disk is now invalid).
 * Returns 0 or -1 (unreadable file, bad listen). */
int cd_conf_runtime_dir(const char *path, char *out, size_t len);

/* The number of workers to run: c->workers, or the CPU count for auto. */
int cd_conf_workers(const cd_conf *c);

#endif
