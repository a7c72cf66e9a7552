/*
 * log.c - see log.h.  One write(2) per line so lines from several processes
 * sharing stderr never interleave mid-line.
 */
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int log_slot = -1;
static unsigned log_gen;
static int log_level = CD_LOG_INFO;

static const char *level_name(int level)
{
    switch (level) {
    case CD_LOG_ERR: return "error";
    case CD_LOG_WARN: return "warn";
    case CD_LOG_NOTICE: return "notice";
    case CD_LOG_INFO: return "info";
    default: return "debug";
    }
}

void cd_log_role(int slot, unsigned generation)
{
    log_slot = slot;
    log_gen = generation;
    const char *env = getenv("CLUSTERD_LOG");
    if (env && strcmp(env, "debug") == 0)
        log_level = CD_LOG_DEBUG;
}

void cd_log_set_level(int level) { log_level = level; }

static void vlog(int level, const char *suffix, const char *fmt, va_list ap)
{
    if (level > log_level)
        return;
    char line[2048];
    int n;
    if (log_slot < 0)
        n = snprintf(line, sizeof line, "<%d>%s master[%d]: ", level, level_name(level), (int)getpid());
    else
        n = snprintf(line, sizeof line, "<%d>%s worker/%d.%u[%d]: ", level, level_name(level), log_slot,
                     log_gen, (int)getpid());
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    if (suffix) {
        size_t sl = strlen(suffix);
        if (len + sl > sizeof line - 2)
            sl = sizeof line - 2 - len;
        memcpy(line + len, suffix, sl);
        len += sl;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void cd_log(int level, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, fmt, ap);
    va_end(ap);
    errno = saved;
}

void cd_log_errno(int level, int err, const char *syscall, const char *fmt, ...)
{
    int saved = errno;
    char suffix[256];
    snprintf(suffix, sizeof suffix, ": %s() failed: %s (errno %d)", syscall, strerror(err), err);
    va_list ap;
    va_start(ap, fmt);
    vlog(level, suffix, fmt, ap);
    va_end(ap);
    errno = saved;
}
