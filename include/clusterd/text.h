/*
 * clusterd/text.h - small text helpers a service needs for what clients
 * send it: hex digits, percent-decoding, query parameters, UTF-8
 * validation (public, installed; any process, any thread).
 *
 * They are the ones the HTTP layer itself uses (cd_request_query_param is
 * cd_query_param over the request's query string), so a service that
 * parses a path, a query or a message decides exactly as the server does.
 * Pure functions: nothing allocates, nothing logs; results are lengths or
 * negative values as each says.
 */
#ifndef CLUSTERD_TEXT_H
#define CLUSTERD_TEXT_H

#include <stddef.h>

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

#endif
