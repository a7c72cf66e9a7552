/*
 * accesslog.h - an access log that never blocks the event loop (worker).
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
