/*
 * keys.h - config keys as tables (master and workers).  The table itself
 * (cd_conf_key, CD_KEY_*, the CD_CONF_KEY macros) is public API, in
 * include/clusterd/conf.h; what applies a table stays here, in conf/.
 */
#ifndef CD_CONF_KEYS_H
#define CD_CONF_KEYS_H

#include <stddef.h>

#include "clusterd/conf.h"

/* The entry for key in keys, or NULL. */
const cd_conf_key *cd_conf_key_find(const cd_conf_key *keys, const char *key);

/* Sets key to value in conf through its entry in keys.  Returns 0, -1 with
 * the reason in err (e.g. "bad duration 'x' (expected e.g. 500ms, 30s, 2m;
 * at least 1ms)"), or -2 when keys has no such key (err untouched: the
 * caller words that, naming the section). */
int cd_conf_key_set(const cd_conf_key *keys, void *conf, const char *key, const char *value, char *err,
                    size_t errlen);

#endif
