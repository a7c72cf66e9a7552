/*
 * log.h - line-oriented logging to stderr, shared by every process.
 *
 * Each line carries a syslog priority prefix that journald understands
 * ("<6>"), the level, the role (master, or worker/SLOT), the pid and the
 * message.  Helpers elsewhere return -errno and never log; the caller that
 * decides what to do logs once, naming the syscall (cd_log_errno).
 *
 * The role is process-wide state set once at start (cd_log_role); it is the
 * only mutable global besides signal flags.  What services may call is
 * public, in include/clusterd/log.h; setting the role and level is not.
 */
#ifndef CD_LOG_H
#define CD_LOG_H

#include <stdarg.h>

#include "clusterd/log.h" /* the levels, cd_log, cd_log_errno, cd_err..cd_debug */

/* Sets the role printed on every line: slot < 0 means master. */
void cd_log_role(int slot, unsigned generation);
/* Lines above this level are dropped (default INFO; CLUSTERD_LOG=debug). */
void cd_log_set_level(int level);

#endif
