/*
 * accesslog.h - the access log: the format of a line, and a log file that
 * never blocks the event loop (worker process).
 *
 * cd_accesslog_format writes one finished request as a line, in the
 * combined log format (plus the duration) or as JSON; the HTTP server hands
 * its owner a cd_access_entry through the on_log hook (http/server.h), and
 * the owner formats it and appends it.
 *
 * The loop appends lines to an in-memory buffer; a writer thread owns the
 * file and does every write(2), so a slow disk delays the log, never a
 * request.  When the writer falls behind by more than two buffers, lines are
 * dropped and counted rather than queued without bound.  Reopening (USR1,
 * for logrotate) is done by the writer too.
 */
#ifndef CD_ACCESSLOG_H
#define CD_ACCESSLOG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* One finished request, as the access log sees it.  Strings are NUL-
 * terminated and only valid during the on_log call. */
typedef struct cd_access_entry {
    double time;            /* when it finished (the loop's time, epoch seconds) */
    const char *peer;       /* the client's address, or "-" */
    const char *method;     /* "GET", or "-" when the request line was not read */
    const char *url;        /* as sent, or "-" */
    int http_minor;         /* HTTP/1.x */
    int status;
    size_t bytes;           /* body bytes answered */
    double duration;        /* seconds since it was dispatched, 0 if it was not */
    const char *route;      /* the name of the route that took it, or "-" */
    const char *user_agent; /* NULL when absent */
    const char *referer;    /* NULL when absent */
    const char *request_id; /* X-Request-Id (http/reqid.c), NULL when none */
} cd_access_entry;

/* Writes e as one line ending in '\n' into out (NUL-terminated, cut to
 * fit): JSON lines when json (with the worker's slot), else the combined
 * log format followed by the duration and the request id ("-" if none).
 * Text from the client is escaped as in a JSON string, which is also safe
 * inside the combined format's quotes.  Returns the line's length. */
size_t cd_accesslog_format(char *out, size_t cap, const cd_access_entry *e, int json, int slot);

typedef struct cd_accesslog {
    char *path;
    int fd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *cur;      /* filled by the loop */
    size_t cur_len;
    char *pending;  /* handed to the writer (NULL when it is free) */
    size_t pending_len;
    char *spare;    /* the writer's buffer, given back when written */
    int reopen, stop;
    uint64_t dropped;
} cd_accesslog;

/* Opens path for appending and starts the writer.  Returns 0 or -errno. */
int cd_accesslog_open(cd_accesslog *al, const char *path);
/* Appends one line (the loop thread only). */
void cd_accesslog_append(cd_accesslog *al, const char *line, size_t len);
/* Hands what is buffered to the writer (call from a timer, ~1/s). */
void cd_accesslog_flush(cd_accesslog *al);
/* Asks the writer to reopen the file (USR1). */
void cd_accesslog_reopen(cd_accesslog *al);
/* Flushes, stops the writer and closes the file. */
void cd_accesslog_close(cd_accesslog *al);

#endif
