/*
 * clusterd/buf.h - a growable text buffer for building answers (public,
 * installed; any process, any thread: a cd_buf is its owner's alone).
 *
 * On allocation failure it stops growing and sets oom; callers check it once
 * at the end instead of after every append.  Start from a zeroed cd_buf
 * ({0}); the text is b.p[0..b.len), NUL-terminated once anything was
 * appended; cd_buf_free releases it.  JSON strings: clusterd/json.h.
 */
#ifndef CLUSTERD_BUF_H
#define CLUSTERD_BUF_H

#include <stddef.h>

typedef struct cd_buf {
    char *p; /* NUL-terminated once anything was appended */
    size_t len, cap;
    int oom;
} cd_buf;

void cd_buf_printf(cd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends len bytes (the fast path for hot loops: no format parsing). */
void cd_buf_append(cd_buf *b, const void *data, size_t len);
/* Makes room for `more` bytes; 0, or -1 (and oom) when it cannot. */
int cd_buf_reserve(cd_buf *b, size_t more);
void cd_buf_free(cd_buf *b);

#endif
