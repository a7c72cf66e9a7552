/*
 * conf.h - the configuration: parsed once, read-only afterwards.
 *
 * The master loads the file (cd_conf_load_file); the text it validated is
 * kept in the cd_conf and handed to each exec'd worker in a sealed memfd
 * (cd_conf_memfd, cd_conf_load_fd), which parses the same bytes again so
 * master and workers never disagree even if the file changed on disk
 * meanwhile.  Every error names file:line.
 *
 * conf/ knows the [cluster] keys (conf/cluster.c) but no service type: it
 * keeps each service section's type name and its (key, value, line)
 * entries, and hands the section to the binder registered once per process
 * (cd_conf_set_binder; clusterd registers services/registry.c's).  The
 * binder finds the type, builds its conf from the entries and may refuse
 * them.  Without a binder (clusterctl) sections keep only what was read.
 */
#ifndef CD_CONF_H
#define CD_CONF_H

#include <stddef.h>
#include <sys/socket.h>

struct cd_service_type; /* services/service.h; opaque here */

/* A section name: 1..31 of [A-Za-z0-9_.-] (what the metrics snapshot keeps
 * per service, ipc/channel.h); anything else is a file:line error. */
#define CD_CONF_NAME_MAX 31

/* One `key = value` of a service section, as read. */
typedef struct cd_conf_entry {
    char *key, *value;
    int line;
} cd_conf_entry;

typedef struct cd_conf_service {
    char *name;  /* section name */
    char *route; /* path prefix */
    size_t route_len;
    int line;    /* the line of its [section] header */
    char *type_name;       /* its `type =` value, or the section name */
    int type_line;         /* the line of `type =`, or 0 when there is none */
    cd_conf_entry *entries; /* its keys but type and route, in file order */
    size_t nentries;

    /* Set by the binder (all zero without one). */
    const struct cd_service_type *type;
    void *conf;                    /* the type's own parsed config */
    void (*conf_free)(void *conf); /* how cd_conf_free releases conf */
    int uses_bus;                  /* the type talks across workers */
    void *route_opts;                    /* its HTTP options (http/routeconf.h), NULL: none */
    void (*route_opts_free)(void *opts); /* how cd_conf_free releases them */
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
    long long drain_delay_ms; /* a graceful stop: /healthz/ready says 503 this long before listeners stop */
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
    char *warnings; /* "[section]: why\n" lines from services' cd_conf_warn, or NULL */
} cd_conf;

/* Binds a service section to its type: fills type, conf, conf_free and
 * uses_bus from the section's entries.  Returns 0, or -1 with
 * "path:line: why" in err (cd_conf_fail words it); on failure whatever it
 * set is still released by cd_conf_free. */
typedef int (*cd_conf_bind_fn)(cd_conf_service *svc, const char *path, char *err, size_t errlen);
/* Registers the binder for this process (once, at start; NULL removes it). */
void cd_conf_set_binder(cd_conf_bind_fn fn);

/* Writes "path:line: " (or "path: " when line is 0) and the message into
 * err.  Returns -1, for `return cd_conf_fail(...)`. */
int cd_conf_fail(char *err, size_t errlen, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Reads and parses path.  Returns 0 and *out, or -1 with "file:line: why"
 * (or "file: why") in err.  Caller frees with cd_conf_free. */
int cd_conf_load_file(const char *path, cd_conf **out, char *err, size_t errlen);
/* Parses text (len bytes) as if read from path.  Same contract. */
int cd_conf_load_text(const char *path, const char *text, size_t len, cd_conf **out, char *err,
                      size_t errlen);
void cd_conf_free(cd_conf *c);

/* The config text in a sealed memfd (conf/memfd.c): a new fd (close-on-exec)
 * whose content can no longer change, or -errno. */
int cd_conf_memfd(const char *text, size_t len);
/* Reads the whole of fd (from offset 0; fd stays open) and parses it as if
 * read from path.  Same contract as cd_conf_load_text; a read error is
 * "path: fstat(config memfd) failed: why" or "path: pread(...) ...". */
int cd_conf_load_fd(int fd, const char *path, cd_conf **out, char *err, size_t errlen);

/* The runtime dir when the config names none: $RUNTIME_DIRECTORY (systemd),
 * else /tmp/clusterd.PORT. */
void cd_conf_default_runtime_dir(const struct sockaddr_storage *addr, char *out, size_t len);
/* The config file when none is named (-c, CLUSTERD_CONF): conf/services.ini
 * when it exists here (a checkout), else the installed one
 * (/etc/clusterd/services.ini, or the build's sysconfdir). */
const char *cd_conf_default_path(void);
/* The runtime dir a config file implies, read leniently (for clusterctl, which
 * must find a running master even when the file on disk is now invalid).
 * Returns 0 or -1 (unreadable file, bad listen). */
int cd_conf_runtime_dir(const char *path, char *out, size_t len);

/* The number of workers to run: c->workers, or the CPU count for auto. */
int cd_conf_workers(const cd_conf *c);

#endif
