/*
 * util.h - small parsers and socket helpers shared by every process.
 * All return 0 or a negative value (-errno for syscalls); none logs.  The
 * text helpers services use too (hex, percent-decoding, query parameters,
 * UTF-8) are public API: clusterd/text.h, included here; util.c defines
 * both.
 */
#ifndef CD_UTIL_H
#define CD_UTIL_H

#include <stddef.h>
#include <sys/socket.h>

#include "clusterd/text.h"

/* "500ms", "30s", "2m", "1h", or a bare number of seconds -> milliseconds.
 * Returns 0 or -1 (syntax, negative, overflow). */
int cd_parse_duration_ms(const char *s, long long *out);
/* "512", "64k", "1m", "2g" (binary units, case-insensitive, optional "b")
 * -> bytes.  Returns 0 or -1. */
int cd_parse_size(const char *s, long long *out);
/* A decimal integer in [min, max].  Returns 0 or -1. */
int cd_parse_int(const char *s, long long min, long long max, long long *out);
/* "host:port" / "[v6]:port" / ":port" / "port" -> sockaddr.  Returns 0 or -1. */
int cd_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* Sets O_NONBLOCK / FD_CLOEXEC on fd (on != 0) or clears them. -errno. */
int cd_set_nonblock(int fd, int on);
int cd_set_cloexec(int fd, int on);

/* A non-blocking SO_REUSEPORT TCP listener bound to addr; returns fd or -errno. */
int cd_listen_reuseport(const struct sockaddr *addr, socklen_t len, int backlog);

/* The local time now as "YYYY-MM-DD HH:MM:SS" (for status lines). */
void cd_now_string(char *out, size_t len);

/* Trims ASCII whitespace in place; returns s. */
char *cd_trim(char *s);

#endif
