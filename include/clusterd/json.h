/*
 * clusterd/json.h - the one JSON string writer (public, installed; any
 * process, any thread).
 *
 * Every answer clusterd writes as JSON (control replies, health, metrics,
 * error bodies, the JSON access log) quotes text the same way: RFC 8259
 * with '"' and '\\' escaped and every control byte (and DEL) written as
 * \u00XX, so the output is one line whatever the input.  Bytes from 0x80
 * up pass through unchanged: text that was UTF-8 stays readable, and none
 * of these writers invents characters.  Nothing here allocates except
 * through a cd_buf, and nothing logs.
 */
#ifndef CLUSTERD_JSON_H
#define CLUSTERD_JSON_H

#include <stddef.h>

#include "clusterd/buf.h"

/* Appends s[0..len) to b as a quoted, escaped JSON string ("..."). */
void cd_json_str(cd_buf *b, const char *s, size_t len);

/* Writes s[0..len) escaped (no quotes) into out, NUL-terminated.  When it
 * does not fit, it stops before the first character that would not fit
 * whole: never half an escape, never half a UTF-8 sequence.  s may be NULL
 * (nothing).  Returns the bytes written, without the NUL (0 when cap is 0). */
size_t cd_json_escape(char *out, size_t cap, const char *s, size_t len);

/* Writes the error body {"error":"<msg>","status":N} into out, msg escaped
 * and shortened (on a whole character) to fit.  Returns its length, or -1
 * when even an empty message does not fit in cap. */
int cd_json_error(char *out, size_t cap, int status, const char *msg);

#endif
