/* Unit tests for conf/keys.c: each kind of key, its bounds and its words. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/keys.h"

typedef struct t_conf {
    int i;
    long long ll;
    long long ms;
    int ms_int;
    size_t sz;
    long long sz_ll;
    int flag;
    char name[8];
    char *owned;
    int calls;
    char seen[16];
} t_conf;

static int set_seen(void *field, const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "no") == 0) {
        snprintf(err, errlen, "not that");
        return -1;
    }
    snprintf(field, 16, "%s", value);
    return 0;
}

static int count_call(void *conf, const char *value, char *err, size_t errlen)
{
    (void)value;
    (void)err;
    (void)errlen;
    ((t_conf *)conf)->calls++;
    return 0;
}

static const cd_conf_key keys[] = {
    CD_CONF_KEY("i", CD_KEY_INT, t_conf, i, 1, 1024),
    CD_CONF_KEY("ll", CD_KEY_INT, t_conf, ll, 0, CD_KEY_NOMAX),
    CD_CONF_KEY("ms", CD_KEY_MS, t_conf, ms, 10, CD_KEY_NOMAX),
    CD_CONF_KEY("ms_int", CD_KEY_MS, t_conf, ms_int, 100, 3600000),
    CD_CONF_KEY("sz", CD_KEY_SIZE, t_conf, sz, 256, 1 << 20),
    CD_CONF_KEY("sz_ll", CD_KEY_SIZE, t_conf, sz_ll, 0, 1LL << 40),
    CD_CONF_KEY("flag", CD_KEY_BOOL, t_conf, flag, 0, 0),
    CD_CONF_KEY("name", CD_KEY_STR, t_conf, name, 1, 0),
    CD_CONF_KEY("owned", CD_KEY_STRP, t_conf, owned, 0, 0),
    CD_CONF_KEY_FUNC("count", count_call),
    CD_CONF_KEY_FUNC_AT("seen", set_seen, t_conf, seen),
    {0},
};

static t_conf c;
static char err[256];

static int set(const char *k, const char *v)
{
    err[0] = '\0';
    return cd_conf_key_set(keys, &c, k, v, err, sizeof err);
}

static void fini(void) { free(c.owned); }

TestSuite(keys, .fini = fini);

Test(keys, numbers_land_in_fields_of_their_width)
{
    cr_assert_eq(set("i", "1024"), 0, "%s", err);
    cr_assert_eq(c.i, 1024);
    cr_assert_eq(set("ll", "1099511627776"), 0, "%s", err);
    cr_assert_eq(c.ll, 1LL << 40);
    cr_assert_eq(set("ms", "2m"), 0, "%s", err);
    cr_assert_eq(c.ms, 120000);
    cr_assert_eq(set("ms_int", "1h"), 0, "%s", err);
    cr_assert_eq(c.ms_int, 3600000);
    cr_assert_eq(set("sz", "64k"), 0, "%s", err);
    cr_assert_eq(c.sz, 65536);
    cr_assert_eq(set("sz_ll", "2g"), 0, "%s", err);
    cr_assert_eq(c.sz_ll, 2LL << 30);
}

Test(keys, numbers_out_of_bounds_say_so_in_the_cluster_words)
{
    c.i = 7;
    cr_assert_eq(set("i", "0"), -1);
    cr_assert_str_eq(err, "bad number '0' (expected 1..1024)");
    cr_assert_eq(c.i, 7, "a refused value leaves the field alone");
    cr_assert_eq(set("i", "lots"), -1);
    cr_assert_eq(set("ll", "-1"), -1);
    cr_assert_str_eq(err, "bad number '-1' (expected at least 0)");
    cr_assert_eq(set("ms", "5 parsecs"), -1);
    cr_assert_str_eq(err, "bad duration '5 parsecs' (expected e.g. 500ms, 30s, 2m; at least 10ms)");
    cr_assert_eq(set("ms", "9ms"), -1);
    cr_assert_eq(set("ms_int", "2h"), -1);
    cr_assert_str_eq(err, "bad duration '2h' (expected e.g. 500ms, 30s, 2m; 100ms..1h)");
    cr_assert_eq(set("sz", "10"), -1);
    cr_assert_str_eq(err, "bad size '10' (expected e.g. 512, 64k, 1m; 256..1048576)");
    cr_assert_eq(set("sz", "1x"), -1);
}

Test(keys, bools)
{
    static const char *const on[] = {"on", "yes", "true", "1"}, *const off[] = {"off", "no", "false", "0"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(set("flag", on[i]), 0);
        cr_assert_eq(c.flag, 1, "%s", on[i]);
        cr_assert_eq(set("flag", off[i]), 0);
        cr_assert_eq(c.flag, 0, "%s", off[i]);
    }
    cr_assert_eq(set("flag", "maybe"), -1);
    cr_assert_str_eq(err, "bad value 'maybe' (expected on or off)");
}

Test(keys, strings)
{
    cr_assert_eq(set("name", "1234567"), 0, "%s", err);
    cr_assert_str_eq(c.name, "1234567");
    cr_assert_eq(set("name", "12345678"), -1);
    cr_assert_str_eq(err, "too long (at most 7 bytes)");
    cr_assert_str_eq(c.name, "1234567");
    cr_assert_eq(set("name", ""), -1);
    cr_assert_str_eq(err, "must not be empty");
    cr_assert_eq(set("owned", "first"), 0);
    cr_assert_eq(set("owned", "second"), 0, "the first copy is freed (ASan)");
    cr_assert_str_eq(c.owned, "second");
    cr_assert_eq(set("owned", ""), 0, "min 0: empty is fine");
    cr_assert_str_eq(c.owned, "");
}

Test(keys, functions_get_their_field_or_the_struct)
{
    cr_assert_eq(set("count", "x"), 0);
    cr_assert_eq(set("count", "y"), 0);
    cr_assert_eq(c.calls, 2);
    cr_assert_eq(set("seen", "hello"), 0);
    cr_assert_str_eq(c.seen, "hello");
    cr_assert_eq(set("seen", "no"), -1);
    cr_assert_str_eq(err, "not that");
}

Test(keys, unknown_key_is_minus_two_and_leaves_err_alone)
{
    strcpy(err, "untouched");
    cr_assert_eq(cd_conf_key_set(keys, &c, "flavour", "mint", err, sizeof err), -2);
    cr_assert_str_eq(err, "untouched");
    cr_assert_null(cd_conf_key_find(keys, "flavour"));
    cr_assert_eq(cd_conf_key_find(keys, "ms")->kind, CD_KEY_MS);
    cr_assert_eq(cd_conf_key_set(NULL, &c, "i", "1", err, sizeof err), -2, "no table: no keys");
}
