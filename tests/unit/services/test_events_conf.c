/*
 * test_events_conf.c - unit tests of the events service's config
 * (services/events/conf.c): the defaults, the key table's bounds, the
 * Origin allowlist and the cross-key checks.  No sockets, no loop.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "conf/keys.h"
#include "services/events/events.h"

static cd_events_conf *conf;
static char err[256];

static void setup(void)
{
    conf = cd_events__conf_new();
    cr_assert(conf);
    err[0] = '\0';
}

static void teardown(void)
{
    cd_events__conf_free(conf);
}

TestSuite(events_conf, .init = setup, .fini = teardown);

static int set(const char *key, const char *value)
{
    return cd_conf_key_set(cd_events__keys, conf, key, value, err, sizeof err);
}

Test(events_conf, defaults_are_socketios_own)
{
    cr_expect_eq(conf->ping_interval_ms, 25000);
    cr_expect_eq(conf->ping_timeout_ms, 20000);
    cr_expect_eq(conf->max_message_size, 1000000);
    cr_expect_eq(conf->max_send_queue, 4 << 20);
    cr_expect_eq(conf->max_clients, 10000);
    cr_expect_eq(conf->max_rooms, 64);
    cr_expect_eq(conf->norigins, 0);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), 0, "%s", err);
}

Test(events_conf, sets_every_key_within_its_bounds)
{
    cr_assert_eq(set("ping_interval", "200ms"), 0, "%s", err);
    cr_assert_eq(set("ping_timeout", "1h"), 0, "%s", err);
    cr_assert_eq(set("max_message_size", "64k"), 0, "%s", err);
    cr_assert_eq(set("max_send_queue", "1g"), 0, "%s", err);
    cr_assert_eq(set("max_clients", "1000000"), 0, "%s", err);
    cr_assert_eq(set("max_rooms", "1"), 0, "%s", err);
    cr_expect_eq(conf->ping_interval_ms, 200);
    cr_expect_eq(conf->ping_timeout_ms, 3600000);
    cr_expect_eq(conf->max_message_size, 65536);
    cr_expect_eq(conf->max_send_queue, 1LL << 30);
    cr_expect_eq(conf->max_clients, 1000000);
    cr_expect_eq(conf->max_rooms, 1);
}

Test(events_conf, refuses_values_out_of_bounds_with_a_reason)
{
    struct {
        const char *key, *value;
    } bad[] = {
        {"ping_interval", "99ms"},     {"ping_timeout", "2h"},      {"ping_interval", "soon"},
        {"max_message_size", "1023"},  {"max_message_size", "1m"},  {"max_send_queue", "2g"},
        {"max_send_queue", "1000"},    {"max_clients", "0"},        {"max_clients", "1000001"},
        {"max_rooms", "1025"},         {"max_rooms", "two"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_expect_eq(set(bad[i].key, bad[i].value), -1, "%s = %s accepted", bad[i].key, bad[i].value);
        cr_expect_neq(err[0], '\0', "%s = %s: no reason", bad[i].key, bad[i].value);
    }
    cr_expect_eq(conf->ping_interval_ms, 25000, "a refused value changed the field");
    cr_expect_eq(set("no_such_key", "1"), -2);
}

Test(events_conf, origins_list_and_wildcard)
{
    cr_assert_eq(set("origins", "https://a.example, http://localhost:3000"), 0, "%s", err);
    cr_assert_eq(conf->norigins, 2);
    cr_expect_str_eq(conf->origins[0], "https://a.example");
    cr_expect_str_eq(conf->origins[1], "http://localhost:3000");
    cr_expect(cd_events__origin_allowed(conf, "https://A.example"), "origins compare case-insensitively");
    cr_expect(cd_events__origin_allowed(conf, NULL), "non-browser clients send no Origin");
    cr_expect(!cd_events__origin_allowed(conf, "https://evil.example"));
    cr_assert_eq(set("origins", "*"), 0, "%s", err);
    cr_expect_eq(conf->norigins, 0);
    cr_expect(cd_events__origin_allowed(conf, "https://evil.example"));
}

Test(events_conf, check_refuses_a_queue_smaller_than_a_message)
{
    cr_assert_eq(set("max_send_queue", "64k"), 0, "%s", err);
    cr_assert_eq(set("max_message_size", "128k"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1);
    cr_expect(strstr(err, "max_send_queue"), "%s", err);
}

Test(events_conf, check_refuses_broadcasts_that_cannot_fit_a_bus_message)
{
    cr_assert_eq(set("max_message_size", "1000000"), 0, "%s", err);
    cr_assert_eq(set("max_rooms", "1024"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1);
    cr_expect(strstr(err, "bus message"), "%s", err);
    cr_assert_eq(set("max_rooms", "64"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), 0, "%s", err);
}
