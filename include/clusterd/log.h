/*
 * clusterd/log.h - logging from a service (public, installed; any
 * process, any thread).
 *
 * Each line goes to stderr (journald under systemd) with a syslog priority
 * prefix ("<6>"), the level, the process's role (master, or worker/SLOT),
 * the pid and the message, so a service's lines sit among clusterd's own.
 * The rule clusterd follows, and asks of services: helpers return -errno
 * and never log; the code that decides what to do logs once, naming the
 * syscall that failed (cd_log_errno).  A line is written with one write(),
 * so threads do not interleave within a line.
 */
#ifndef CLUSTERD_LOG_H
#define CLUSTERD_LOG_H

enum cd_log_level { CD_LOG_ERR = 3, CD_LOG_WARN = 4, CD_LOG_NOTICE = 5, CD_LOG_INFO = 6, CD_LOG_DEBUG = 7 };

/* Logs one line at level (lines above the configured level are dropped:
 * default INFO, CLUSTERD_LOG=debug). */
void cd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs "<msg>: <syscall>() failed: <strerror(err)> (errno err)". */
void cd_log_errno(int level, int err, const char *syscall, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define cd_err(...) cd_log(CD_LOG_ERR, __VA_ARGS__)
#define cd_warn(...) cd_log(CD_LOG_WARN, __VA_ARGS__)
#define cd_notice(...) cd_log(CD_LOG_NOTICE, __VA_ARGS__)
#define cd_info(...) cd_log(CD_LOG_INFO, __VA_ARGS__)
#define cd_debug(...) cd_log(CD_LOG_DEBUG, __VA_ARGS__)

#endif
