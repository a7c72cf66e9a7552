/*
 * conf_keys.c - prints every config key clusterd knows, one per line, for
 * tests/man/check_keys.sh, which compares them with clusterd.ini(5)
 * (docs/man/clusterd.ini.5.scd), so the manual and the code cannot drift.
 *
 * The keys come from the tables themselves: [cluster]'s (conf/cluster.c),
 * the HTTP options every service section takes (http/routeconf.c), and the
 * `keys` of each built-in type and of clusterd's own modules (linked in, as
 * the unit tests link them).  `type`, `route` and `module` are read by
 * conf/ itself, not through a table, so they are listed here by hand.
 *
 * Output: "SECTION KEY DEFAULT" where SECTION is cluster, service (keys of
 * every service section) or a type name, and DEFAULT is the value the key
 * has when it is not set, written as a config would write it ("30s",
 * "16k", "on"), or "-" when it cannot be read from the struct (function
 * keys, unset strings, negative numbers that mean "derived").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/conf.h"
#include "clusterd/service.h"
#include "conf/cluster.h"
#include "http/routeconf.h"

extern const cd_service_type cd_service_dummy;
extern const cd_service_type cd_service_metrics;
extern const cd_service_type cd_service_health;
extern const cd_service_type cd_service_static;
extern const cd_service_type cd_service_readmongo;
extern const cd_service_type cd_service_events;

static long long read_num(const void *field, size_t size)
{
    if (size == sizeof(long long))
        return *(const long long *)field;
    return *(const int *)field;
}

static void unit(char *out, size_t len, long long v, const long long *mult, const char *const *sfx, int n)
{
    if (v <= 0) { /* negative: unset, derived from something else */
        snprintf(out, len, v == 0 ? "0" : "-");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (v % mult[i] == 0) {
            snprintf(out, len, "%lld%s", v / mult[i], sfx[i]);
            return;
        }
    }
    snprintf(out, len, "%lld%s", v, sfx[n]);
}

/* The key's value in conf (a struct with its defaults), as a config writes it. */
static void render(const cd_conf_key *k, const void *conf, char *out, size_t len)
{
    static const long long ms_mult[] = {3600000, 60000, 1000};
    static const char *const ms_sfx[] = {"h", "m", "s", "ms"};
    static const long long sz_mult[] = {1LL << 30, 1 << 20, 1 << 10};
    static const char *const sz_sfx[] = {"g", "m", "k", ""};
    snprintf(out, len, "-");
    if (!conf || k->kind == CD_KEY_FUNC)
        return;
    const char *field = (const char *)conf + k->offset;
    switch (k->kind) {
    case CD_KEY_INT:
        if (read_num(field, k->size) >= 0)
            snprintf(out, len, "%lld", read_num(field, k->size));
        break;
    case CD_KEY_MS: unit(out, len, read_num(field, k->size), ms_mult, ms_sfx, 3); break;
    case CD_KEY_SIZE: {
        long long v = k->size == sizeof(size_t) ? (long long)*(const size_t *)field : read_num(field, k->size);
        unit(out, len, v, sz_mult, sz_sfx, 3);
        break;
    }
    case CD_KEY_BOOL: snprintf(out, len, "%s", *(const int *)field ? "on" : "off"); break;
    case CD_KEY_STR:
        if (field[0])
            snprintf(out, len, "%s", field);
        break;
    case CD_KEY_STRP: {
        const char *s = *(char *const *)field;
        if (s && s[0])
            snprintf(out, len, "%s", s);
        break;
    }
    }
    /* One word per field: the checker splits on spaces. */
    for (char *p = out; *p; p++)
        if (*p == ' ')
            *p = '_';
}

static void print_table(const char *section, const cd_conf_key *keys, const void *conf)
{
    for (const cd_conf_key *k = keys; k && k->name; k++) {
        char dflt[256];
        render(k, conf, dflt, sizeof dflt);
        printf("%s %s %s\n", section, k->name, dflt);
    }
}

int main(void)
{
    cd_conf *c = calloc(1, sizeof *c);
    if (!c)
        return 1;
    cd_conf__defaults(c);
    print_table("cluster", cd_conf__cluster_keys(), c);
    free(c);

    printf("service type -\nservice route -\nservice module -\n");
    /* The HTTP options' defaults are what cd_route_opts_set allocates. */
    void *ro = NULL;
    char err[256];
    if (cd_route_opts_set(&ro, "gzip", "off", err, sizeof err) < 0)
        return 1;
    print_table("service", cd_route_keys, ro);
    cd_route_opts_free(ro);

    const cd_service_type *types[] = {&cd_service_dummy, &cd_service_metrics, &cd_service_health,
                                      &cd_service_static, &cd_service_readmongo, &cd_service_events};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const cd_service_type *t = types[i];
        void *conf = t->conf_new ? t->conf_new() : NULL;
        print_table(t->name, t->keys, conf);
        if (conf && t->conf_free)
            t->conf_free(conf);
    }
    return 0;
}
