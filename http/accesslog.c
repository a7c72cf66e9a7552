/*
 * accesslog.c - see accesslog.h.
 */
#include "http/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"

#define AL_BUF (256 * 1024)  /* one buffer */
#define AL_HANDOFF (64 * 1024) /* hand a buffer over once it holds this much */

/* ---- the line ---- */

static void esc(char *out, size_t cap, const char *s)
{
    cd_json_escape(out, cap, s, s ? strlen(s) : 0);
}

size_t cd_accesslog_format(char *out, size_t cap, const cd_access_entry *e, int json, int slot)
{
    char url[1024], ua[256], ref[256], tbuf[64];
    esc(url, sizeof url, e->url);
    esc(ua, sizeof ua, e->user_agent);
    esc(ref, sizeof ref, e->referer);
    char rid[136]; /* an id is [A-Za-z0-9._-]; escaped anyway, whoever filled it */
    esc(rid, sizeof rid, e->request_id);
    time_t t = (time_t)e->time;
    struct tm tm;
    gmtime_r(&t, &tm);
    int n;
    if (json) {
        strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        n = snprintf(out, cap,
                     "{\"time\":\"%s\",\"remote\":\"%s\",\"method\":\"%s\",\"url\":\"%s\",\"status\":%d,"
                     "\"bytes\":%zu,\"duration\":%.6f,\"service\":\"%s\",\"user_agent\":\"%s\",\"referer\":\"%s\","
                     "\"request_id\":\"%s\",\"slot\":%d}\n",
                     tbuf, e->peer, e->method, url, e->status, e->bytes, e->duration, e->route, ua, ref,
                     rid[0] ? rid : "-", slot);
    } else {
        strftime(tbuf, sizeof tbuf, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        n = snprintf(out, cap, "%s - - [%s] \"%s %s HTTP/1.%d\" %d %zu \"%s\" \"%s\" %.6f %s\n", e->peer, tbuf,
                     e->method, url, e->http_minor, e->status, e->bytes, ref[0] ? ref : "-", ua[0] ? ua : "-",
                     e->duration, rid[0] ? rid : "-");
    }
    if (n < 0 || cap == 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ---- the writer ---- */

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* a full disk loses log lines, not requests */
        p += w;
        n -= (size_t)w;
    }
}

static void *writer(void *arg)
{
    cd_accesslog *al = arg;
    pthread_mutex_lock(&al->mu);
    for (;;) {
        while (!al->pending && !al->reopen && !al->stop)
            pthread_cond_wait(&al->cv, &al->mu);
        char *buf = al->pending;
        size_t len = al->pending_len;
        int reopen = al->reopen, stop = al->stop;
        al->reopen = 0;
        pthread_mutex_unlock(&al->mu);
        if (buf && al->fd >= 0)
            write_all(al->fd, buf, len);
        if (reopen) {
            int fd = open(al->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0) {
                close(al->fd);
                al->fd = fd;
            }
        }
        pthread_mutex_lock(&al->mu);
        if (buf) {
            al->spare = buf;
            al->pending = NULL;
        }
        if (stop && !al->pending)
            break;
    }
    pthread_mutex_unlock(&al->mu);
    return NULL;
}

int cd_accesslog_open(cd_accesslog *al, const char *path)
{
    memset(al, 0, sizeof *al);
    al->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (al->fd < 0)
        return -errno;
    al->path = strdup(path);
    al->cur = malloc(AL_BUF);
    al->spare = malloc(AL_BUF);
    if (!al->path || !al->cur || !al->spare) {
        close(al->fd);
        free(al->path);
        free(al->cur);
        free(al->spare);
        return -ENOMEM;
    }
    pthread_mutex_init(&al->mu, NULL);
    pthread_cond_init(&al->cv, NULL);
    int rc = pthread_create(&al->thread, NULL, writer, al);
    if (rc != 0) {
        close(al->fd);
        free(al->path);
        free(al->cur);
        free(al->spare);
        return -rc;
    }
    return 0;
}

void cd_accesslog_flush(cd_accesslog *al)
{
    if (al->cur_len == 0)
        return;
    pthread_mutex_lock(&al->mu);
    if (!al->pending && al->spare) {
        al->pending = al->cur;
        al->pending_len = al->cur_len;
        al->cur = al->spare;
        al->spare = NULL;
        al->cur_len = 0;
        pthread_cond_signal(&al->cv);
    }
    pthread_mutex_unlock(&al->mu);
}

void cd_accesslog_append(cd_accesslog *al, const char *line, size_t len)
{
    if (al->cur_len + len > AL_BUF) {
        cd_accesslog_flush(al);
        if (al->cur_len + len > AL_BUF) {
            al->dropped++; /* the writer is two buffers behind */
            return;
        }
    }
    memcpy(al->cur + al->cur_len, line, len);
    al->cur_len += len;
    if (al->cur_len >= AL_HANDOFF)
        cd_accesslog_flush(al);
}

void cd_accesslog_reopen(cd_accesslog *al)
{
    cd_accesslog_flush(al);
    pthread_mutex_lock(&al->mu);
    al->reopen = 1;
    pthread_cond_signal(&al->cv);
    pthread_mutex_unlock(&al->mu);
}

void cd_accesslog_close(cd_accesslog *al)
{
    if (!al->path)
        return;
    /* Whatever is buffered goes out before the thread ends. */
    for (int i = 0; i < 1000 && al->cur_len; i++) {
        cd_accesslog_flush(al);
        if (al->cur_len) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    pthread_mutex_lock(&al->mu);
    al->stop = 1;
    pthread_cond_signal(&al->cv);
    pthread_mutex_unlock(&al->mu);
    pthread_join(al->thread, NULL);
    pthread_mutex_destroy(&al->mu);
    pthread_cond_destroy(&al->cv);
    close(al->fd);
    free(al->path);
    free(al->cur);
    free(al->spare);
    free(al->pending);
    al->path = NULL;
}
