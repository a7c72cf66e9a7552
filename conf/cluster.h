/*
 * cluster.h - the [cluster] section, for conf/conf.c (internal to conf/).
 */
#ifndef CD_CONF_CLUSTER_H
#define CD_CONF_CLUSTER_H

#include <stddef.h>

#include "conf/conf.h"

/* The values a config has before its [cluster] section is read. */
void cd_conf__defaults(cd_conf *c);
/* Applies one [cluster] key.  Returns 0, or -1 with "path:line: why". */
int cd_conf__cluster_key(cd_conf *c, const char *key, const char *value, int line, char *err, size_t errlen);
/* The [cluster] key table (ends with {0}), for tools that list the keys
 * (tests/man checks clusterd.ini(5) against it). */
const struct cd_conf_key *cd_conf__cluster_keys(void);
/* After every section: defaults that depend on other keys, cross-key
 * checks.  Returns 0, or -1 with "path: why". */
int cd_conf__cluster_check(cd_conf *c, char *err, size_t errlen);

#endif
