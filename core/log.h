/*
 * log.h - line-oriented logging to stderr, shared by every process.
 *
 * Each line carries a syslog priority prefix that journald understands
 * ("<6>"), the level, the role (master, or worker/SLOT), the pid and the
 * message.  Helpers elsewhere return -errno and never log; the caller that
 * decides what to do logs once, naming the syscall (cd_log_errno).
 *
 * The role is process-wide state set once at start (cd_log_role); it is the
 * only mutable global besides signal flags.
 */
#ifndef CD_LOG_H
#define CD_LOG_H

#include <stdarg.h>

enum cd_log_level { CD_LOG_ERR = 3, CD_LOG_WARN = 4, CD_LOG_NOTICE = 5, CD_LOG_INFO = 6, CD_LOG_DEBUG = 7 };

/* Sets the role printed on every line: slot < 0 means master. */
void cd_log_role(int slot, unsigned generation);
/* Lines above this level are dropped (default INFO; CLUSTERD_LOG=debug). */
void cd_log_set_level(int level);

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
