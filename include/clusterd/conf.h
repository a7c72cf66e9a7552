/*
 * clusterd/conf.h - config keys as tables (public, installed; master and
 * workers).
 *
 * A section's keys are one array of cd_conf_key, in the manner of nginx's
 * ngx_command_t: each names a key, how its value is written (kind) and
 * where it goes (offsetof into the section's conf struct), so one set of
 * typed setters serves the [cluster] section and every service type, and
 * every key of a kind is checked and reported in the same words.
 *
 *     static const cd_conf_key keys[] = {
 *         CD_CONF_KEY("max_delay", CD_KEY_MS, dummy_conf, max_delay_ms, 0, 3600000),
 *         CD_CONF_KEY("body", CD_KEY_STRP, dummy_conf, body, 0, 0),
 *         CD_CONF_KEY_FUNC("origins", set_origins),
 *         {0},
 *     };
 *
 * Use the two macros (or designated initializers): they fill `size` from
 * the field itself, which is how a setter knows whether it writes an int, a
 * long long or a size_t.  Messages name neither the key nor the file: the
 * caller prefixes "file:line: key: ".
 *
 * A service type points its `keys` member (clusterd/service.h) at such a
 * table; clusterd applies every key of the section but `type`, `route`
 * and `module` through it, and an unknown key is refused with file:line.
 */
#ifndef CLUSTERD_CONF_H
#define CLUSTERD_CONF_H

#include <limits.h>
#include <stddef.h>

enum {
    /* int or long long (by size); a decimal integer in [min, max]. */
    CD_KEY_INT = 1,
    /* int or long long milliseconds; a duration "500ms", "30s", "2m", "1h"
     * or bare seconds, in [min, max] milliseconds. */
    CD_KEY_MS,
    /* int, long long or size_t bytes; "512", "64k", "1m", "2g", in [min, max]. */
    CD_KEY_SIZE,
    /* int, set to 1 by on/yes/true/1 and to 0 by off/no/false/0. */
    CD_KEY_BOOL,
    /* char array of `size` bytes (max when size is 0); the value must fit
     * with its NUL and be at least min bytes long. */
    CD_KEY_STR,
    /* char *, owned: the old string is freed and replaced by a copy (the
     * type's conf_free frees the last one); at least min bytes long. */
    CD_KEY_STRP,
    /* set() decides; it gets the conf struct plus offset (the whole struct
     * when offset is 0). */
    CD_KEY_FUNC,
};

/* No upper bound, for INT/MS/SIZE. */
#define CD_KEY_NOMAX LLONG_MAX

typedef struct cd_conf_key {
    const char *name;
    int kind;           /* CD_KEY_* */
    size_t offset;      /* offsetof(your conf struct, field) */
    long long min, max; /* bounds (INT/MS/SIZE; STR/STRP: min length; STR: max = array size if size is 0) */
    /* CD_KEY_FUNC only: 0, or -1 with a message in err (without the key). */
    int (*set)(void *conf, const char *value, char *err, size_t errlen);
    size_t size; /* sizeof the field (the macros fill it) */
} cd_conf_key; /* arrays end with {0} */

#define CD_CONF_KEY(name, kind, type, field, min, max)                                                      \
    {(name), (kind), offsetof(type, field), (min), (max), NULL, sizeof(((type *)0)->field)}
#define CD_CONF_KEY_FUNC(name, fn) {(name), CD_KEY_FUNC, 0, 0, 0, (fn), 0}
/* A function key that gets one field (conf + offsetof(type, field)). */
#define CD_CONF_KEY_FUNC_AT(name, fn, type, field)                                                          \
    {(name), CD_KEY_FUNC, offsetof(type, field), 0, 0, (fn), sizeof(((type *)0)->field)}

/* While a key is set: the directory of the config file being read ("."
 * for a file named without one), so that a key naming a file or directory
 * can take it relative to the config, wherever clusterd was started. */
const char *cd_conf_dir(void);

/* While a section's keys are set and checked: 1 when the config's
 * [cluster] listen is a loopback address (127.0.0.0/8, ::1), so a service
 * can tell what it would expose beyond the host. */
int cd_conf_listen_loopback(void);
/* From a key's setter or conf_check: reports a config that is valid but
 * risky (no file:line: clusterd adds the section).  `clusterd -t` prints
 * it and the master logs it when it starts; workers, which parse the same
 * bytes again, do not repeat it.  Nothing else changes. */
void cd_conf_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
