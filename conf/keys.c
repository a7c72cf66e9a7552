/*
 * keys.c - the typed setters behind config key tables (master and workers).
 *
 * Each kind parses its value with core/util.h's parsers, checks the bounds
 * in the entry and writes the field at conf + offset.  The messages are the
 * ones [cluster] always gave ("bad duration '...' (expected e.g. 500ms,
 * 30s, 2m; at least 1ms)"), now shared by every service, so the same
 * mistake reads the same in any section.  Nothing here logs or allocates,
 * except the copy a CD_KEY_STRP key keeps.
 */
#include "conf/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

_Static_assert(sizeof(size_t) == sizeof(long long), "SIZE keys write size_t fields as long long");

const cd_conf_key *cd_conf_key_find(const cd_conf_key *keys, const char *key)
{
    for (; keys && keys->name; keys++)
        if (strcmp(keys->name, key) == 0)
            return keys;
    return NULL;
}

/* "1h", "2m", "30s" or "500ms": the shortest exact form of ms. */
static void fmt_ms(long long ms, char *out, size_t len)
{
    if (ms > 0 && ms % 3600000 == 0)
        snprintf(out, len, "%lldh", ms / 3600000);
    else if (ms > 0 && ms % 60000 == 0)
        snprintf(out, len, "%lldm", ms / 60000);
    else if (ms > 0 && ms % 1000 == 0)
        snprintf(out, len, "%llds", ms / 1000);
    else
        snprintf(out, len, "%lldms", ms);
}

/* "at least MIN" or "MIN..MAX", for messages. */
static void range(const cd_conf_key *k, int ms, char *out, size_t len)
{
    char lo[32], hi[32];
    if (ms) {
        fmt_ms(k->min, lo, sizeof lo);
        fmt_ms(k->max, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%lld", k->min);
        snprintf(hi, sizeof hi, "%lld", k->max);
    }
    if (k->max == CD_KEY_NOMAX)
        snprintf(out, len, "at least %s", lo);
    else
        snprintf(out, len, "%s..%s", lo, hi);
}

/* Writes v into the int or long long (or size_t) field of k. */
static int store(const cd_conf_key *k, void *field, long long v)
{
    if (k->size == sizeof(int)) {
        if (v < INT_MIN || v > INT_MAX)
            return -1;
        int i = (int)v;
        memcpy(field, &i, sizeof i);
        return 0;
    }
    if (k->size != 0 && k->size != sizeof(long long))
        return -1;
    memcpy(field, &v, sizeof v);
    return 0;
}

static int set_number(const cd_conf_key *k, void *field, const char *value, char *err, size_t errlen)
{
    long long v;
    int bad;
    if (k->kind == CD_KEY_INT)
        bad = cd_parse_int(value, k->min, k->max, &v) < 0;
    else if (k->kind == CD_KEY_MS)
        bad = cd_parse_duration_ms(value, &v) < 0 || v < k->min || v > k->max;
    else
        bad = cd_parse_size(value, &v) < 0 || v < k->min || v > k->max;
    if (!bad && store(k, field, v) == 0)
        return 0;
    char r[80];
    range(k, k->kind == CD_KEY_MS, r, sizeof r);
    if (k->kind == CD_KEY_INT)
        snprintf(err, errlen, "bad number '%s' (expected %s)", value, r);
    else if (k->kind == CD_KEY_MS)
        snprintf(err, errlen, "bad duration '%s' (expected e.g. 500ms, 30s, 2m; %s)", value, r);
    else
        snprintf(err, errlen, "bad size '%s' (expected e.g. 512, 64k, 1m; %s)", value, r);
    return -1;
}

static int set_bool(void *field, const char *value, char *err, size_t errlen)
{
    static const char *const yes[] = {"on", "yes", "true", "1"}, *const no[] = {"off", "no", "false", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
            int b = strcmp(value, yes[i]) == 0;
            memcpy(field, &b, sizeof b);
            return 0;
        }
    }
    snprintf(err, errlen, "bad value '%s' (expected on or off)", value);
    return -1;
}

static int set_string(const cd_conf_key *k, void *field, const char *value, char *err, size_t errlen)
{
    size_t n = strlen(value);
    if ((long long)n < k->min) {
        if (k->min == 1)
            snprintf(err, errlen, "must not be empty");
        else
            snprintf(err, errlen, "too short (at least %lld bytes)", k->min);
        return -1;
    }
    if (k->kind == CD_KEY_STRP) {
        char *copy = strdup(value), *old;
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        memcpy(&old, field, sizeof old);
        free(old);
        memcpy(field, &copy, sizeof copy);
        return 0;
    }
    size_t cap = k->size ? k->size : (size_t)k->max;
    if (n >= cap) {
        snprintf(err, errlen, "too long (at most %zu bytes)", cap ? cap - 1 : 0);
        return -1;
    }
    memcpy(field, value, n + 1);
    return 0;
}

int cd_conf_key_set(const cd_conf_key *keys, void *conf, const char *key, const char *value, char *err,
                    size_t errlen)
{
    const cd_conf_key *k = cd_conf_key_find(keys, key);
    if (!k)
        return -2;
    void *field = (char *)conf + k->offset;
    switch (k->kind) {
    case CD_KEY_INT:
    case CD_KEY_MS:
    case CD_KEY_SIZE: return set_number(k, field, value, err, errlen);
    case CD_KEY_BOOL: return set_bool(field, value, err, errlen);
    case CD_KEY_STR:
    case CD_KEY_STRP: return set_string(k, field, value, err, errlen);
    case CD_KEY_FUNC:
        if (k->set)
            return k->set(field, value, err, errlen) < 0 ? -1 : 0;
        break;
    default: break;
    }
    snprintf(err, errlen, "key '%s' has no setter", key);
    return -1;
}
