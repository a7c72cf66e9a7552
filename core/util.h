/*
 * util.h - small parsers and socket helpers shared by every process.
 * All return 0 or a negative value (-errno for syscalls); none logs.
 */
#ifndef CD_UTIL_H
#define CD_UTIL_H

#include <stddef.h>
#include <sys/socket.h>

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

/* The value of a hex digit, or -1. */
int cd_hexval(int ch);
/* Percent-decodes s[0..n) into out, NUL-terminated; with plus_space, '+' is
 * a space (query strings).  Returns the length, -EINVAL for a bad escape or
 * an encoded NUL, -ENAMETOOLONG when it does not fit in outlen. */
long cd_percent_decode(const char *s, size_t n, char *out, size_t outlen, int plus_space);

/* Finds parameter `key` in a raw query string ("a=1&b=x+y") and
 * percent-decodes its first occurrence ('+' is a space) into out,
 * NUL-terminated.  Returns its length (0 for "key" without '='), -1 when
 * absent, -2 when it does not fit or is badly encoded. */
int cd_query_param(const char *query, const char *key, char *out, size_t outlen);

/* The length of the UTF-8 sequence at p (1 to 4), where avail bytes can be
 * read, or 0 when they do not start with a valid one (RFC 3629 table 4: no
 * overlong forms, no surrogates, nothing above U+10FFFF, no truncation). */
size_t cd_utf8_seq(const char *p, size_t avail);
/* Whether [p, p + len) is valid UTF-8. */
int cd_utf8_valid(const char *p, size_t len);

/* The local time now as "YYYY-MM-DD HH:MM:SS" (for status lines). */
void cd_now_string(char *out, size_t len);

/* Trims ASCII whitespace in place; returns s. */
char *cd_trim(char *s);

#endif
