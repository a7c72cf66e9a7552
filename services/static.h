/*
 * static.h - the pure parts of the static service (services/static_path.c):
 * the path resolver, the Content-Type table, Range and conditional-request
 * parsing.  Declared apart so the unit tests and the fuzz target call them
 * as the service does (worker process, loop thread; no state, no logging).
 */
#ifndef CD_SERVICES_STATIC_H
#define CD_SERVICES_STATIC_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Percent-decodes path (a request's subpath as sent: "" or "/...") once
 * into out as a path relative to the root ("" for the root itself), with
 * empty and "." segments dropped.  Returns its length, or
 *   -EINVAL  malformed encoding (a '%' not followed by two hex digits): 400;
 *   -EPERM   refused: NUL (also %00), a backslash (also %5C), an encoded
 *            slash (%2F), a ".." segment (however encoded), or, unless
 *            allow_dot, a segment starting with '.': 404;
 *   -ENAMETOOLONG  it does not fit in out: 404 (or 414).
 * A percent sign that decodes from "%25" stays a literal '%': decoding is
 * done once, so "%252e%252e" is the file named "%2e%2e", never "..". */
int cd_static_decode(const char *path, char *out, size_t outlen, int allow_dot);

/* Opens rel (as cd_static_decode made it) beneath the directory rootfd,
 * read-only and non-blocking, never leaving the directory: openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so a symlink may point within
 * the root but not out of it; where the kernel has no openat2 (ENOSYS),
 * cd_static_walk.  Returns the fd or -errno (-EXDEV/-ELOOP: it would have
 * left the root). */
int cd_static_open(int rootfd, const char *rel);
/* The fallback: one component at a time with O_NOFOLLOW, so no symlink is
 * followed at all (stricter than openat2: links inside the root are
 * refused too).  Returns the fd or -errno. */
int cd_static_walk(int rootfd, const char *rel);

/* Resolves a request: decode, open, and for a directory its index file
 * (index NULL or "": a directory is -ENOENT; no listing ever).  On success
 * returns an fd of a regular file, fills st and sets *type to its
 * Content-Type (cd_static_mime of the name served).  Errors as above, plus
 * -ENOENT for anything that is not a regular file. */
int cd_static_resolve(int rootfd, const char *path, const char *index, int allow_dot, struct stat *st,
                      const char **type);

/* The Content-Type for a file name, by its extension (case-insensitive);
 * application/octet-stream when unknown. */
const char *cd_static_mime(const char *name);

/* Parses a Range header for a file of size bytes.  Returns 0 to answer the
 * whole file (no header, another unit, malformed, or several ranges), 1 for
 * one satisfiable range [*first, *last] (clipped to the file), or -1 when
 * it cannot be satisfied (416). */
int cd_static_range(const char *h, off_t size, off_t *first, off_t *last);

/* The ETag of a file (from inode, size and mtime), quoted, into out. */
void cd_static_etag(const struct stat *st, char *out, size_t outlen);
/* An HTTP date (IMF-fixdate) of t into out (at least 30 bytes). */
void cd_static_http_date(time_t t, char *out, size_t outlen);

/* Whether a request with these validators (either NULL) may be answered
 * 304 for a file with this ETag and mtime: If-None-Match (a list, weak
 * comparison, or "*") when present, else If-Modified-Since. */
int cd_static_not_modified(const char *if_none_match, const char *if_modified_since, const char *etag,
                           time_t mtime);

#endif
