/*
 * test_events_conf.c - unit tests of the events service's config
 * (services/events/conf.c): the defaults, the key table's bounds, the
 * Origin allowlist and the cross-key checks.  No sockets, no loop.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* ---- issue 12's keys: namespaces, transports, auth, the publish token ---- */

Test(events_conf, new_keys_default_to_socketios_behaviour)
{
    cr_assert_eq(conf->nnamespaces, 1);
    cr_expect_str_eq(conf->namespaces[0], "/");
    cr_expect_eq(conf->transports, CD_EVENTS_T_POLLING | CD_EVENTS_T_WEBSOCKET);
    cr_expect_eq(conf->auth, CD_EVENTS_AUTH_NONE);
    cr_expect_eq(conf->jwt_alg, CD_EVENTS_JWT_HS256);
    cr_expect_str_eq(conf->jwt_rooms_claim, "rooms");
    cr_expect_null(conf->publish_token_file);
    cr_expect_null(conf->publish_token);
}

Test(events_conf, namespaces_are_exactly_the_list)
{
    cr_assert_eq(set("namespaces", "/chat, /admin"), 0, "%s", err);
    cr_assert_eq(conf->nnamespaces, 2);
    cr_expect_str_eq(conf->namespaces[0], "/chat");
    cr_expect_eq(cd_events__nsp_index(conf, "/admin", 6), 1);
    cr_expect_eq(cd_events__nsp_index(conf, "/", 1), -1, "/ exists only when listed");
    cr_expect_eq(cd_events__nsp_index(conf, "/chat", 4), -1, "a prefix is not the namespace");
    cr_expect_eq(cd_events__nsp_index(conf, "/chatx", 6), -1);
}

Test(events_conf, namespaces_refused_leave_the_list_as_it_was)
{
    char many[33 * 5 + 1] = "";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "/n%02d ", i);
    char longest[66];
    memset(longest, 'n', 65);
    longest[0] = '/';
    longest[65] = '\0'; /* 65 bytes: one more than a metric label keeps */
    const char *bad[] = {"chat", "/, /", "/a,/b,/a", "", " , ", "/a?x", "/caf\xc3\xa9", "/\"q", many, longest};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_expect_eq(set("namespaces", bad[i]), -1, "namespaces = %s accepted", bad[i]);
        cr_expect_neq(err[0], '\0', "namespaces = %s: no reason", bad[i]);
    }
    cr_expect_eq(conf->nnamespaces, 1);
    cr_expect_str_eq(conf->namespaces[0], "/");
    longest[64] = '\0';
    cr_expect_eq(set("namespaces", longest), 0, "%s", err);
    many[strlen(many) - 5] = '\0'; /* 32 of them */
    cr_expect_eq(set("namespaces", many), 0, "%s", err);
    cr_expect_eq(conf->nnamespaces, CD_EVENTS_NSP_MAX);
}

Test(events_conf, transports_are_a_non_empty_subset)
{
    cr_assert_eq(set("transports", "websocket"), 0, "%s", err);
    cr_expect_eq(conf->transports, CD_EVENTS_T_WEBSOCKET);
    cr_assert_eq(set("transports", "websocket, polling"), 0, "%s", err);
    cr_expect_eq(conf->transports, CD_EVENTS_T_POLLING | CD_EVENTS_T_WEBSOCKET);
    cr_assert_eq(set("transports", "polling"), 0, "%s", err);
    cr_expect_eq(set("transports", ""), -1);
    cr_expect_eq(set("transports", "polling, xhr"), -1);
    cr_expect(strstr(err, "xhr"), "%s", err);
    cr_expect_eq(conf->transports, CD_EVENTS_T_POLLING, "a refused value changed the field");
}

Test(events_conf, auth_and_alg_take_only_their_words)
{
    cr_expect_eq(set("auth", "jwt"), 0, "%s", err);
    cr_expect_eq(conf->auth, CD_EVENTS_AUTH_JWT);
    cr_expect_eq(set("auth", "basic"), -1);
    cr_expect_eq(set("jwt_alg", "RS256"), 0, "%s", err);
    cr_expect_eq(conf->jwt_alg, CD_EVENTS_JWT_RS256);
    cr_expect_eq(set("jwt_alg", "ES256"), 0, "%s", err);
    cr_expect_eq(conf->jwt_alg, CD_EVENTS_JWT_ES256);
    cr_expect_eq(set("jwt_alg", "none"), -1, "alg none is never configurable");
    cr_expect_eq(set("jwt_alg", "hs256"), -1);
    cr_expect_eq(set("jwt_rooms_claim", ""), -1);
    cr_expect_eq(set("jwt_rooms_claim", "scopes"), 0, "%s", err);
    cr_expect_str_eq(conf->jwt_rooms_claim, "scopes");
}

Test(events_conf, jwt_needs_a_readable_key_file)
{
    cr_assert_eq(set("auth", "jwt"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1);
    cr_expect(strstr(err, "jwt_key_file"), "%s", err);
    cr_assert_eq(set("jwt_key_file", "/nonexistent/secret"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1);
    cr_expect(strstr(err, "/nonexistent/secret"), "%s", err);
}

static char *tmp_file(const char *content)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/cd_events_conf_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

Test(events_conf, relative_files_are_taken_from_the_configs_folder)
{
    /* Outside a config being read, cd_conf_dir() is "." */
    cr_assert_eq(set("jwt_key_file", "keys/secret"), 0, "%s", err);
    cr_expect_str_eq(conf->jwt_key_file, "./keys/secret");
    cr_assert_eq(set("publish_token_file", "/etc/token"), 0, "%s", err);
    cr_expect_str_eq(conf->publish_token_file, "/etc/token");
}

Test(events_conf, the_publish_token_is_read_at_check_without_its_newline)
{
    char *path = tmp_file("s3cret-token\n");
    cr_assert_eq(set("publish_token_file", path), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), 0, "%s", err);
    unlink(path);
    cr_assert_not_null(conf->publish_token);
    cr_expect_eq(conf->publish_token_len, 12);
    cr_expect_str_eq(conf->publish_token, "s3cret-token");
    path = tmp_file("\n");
    cr_assert_eq(set("publish_token_file", path), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1, "an empty token is refused");
    unlink(path);
    cr_assert_eq(set("publish_token_file", "/nonexistent/token"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1);
    cr_expect(strstr(err, "publish_token_file"), "%s", err);
}

Test(events_conf, an_hs256_secret_file_passes_the_check)
{
    char *path = tmp_file("a-secret-of-thirty-two-bytes-ok!\n");
    cr_assert_eq(set("auth", "jwt"), 0, "%s", err);
    cr_assert_eq(set("jwt_key_file", path), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), 0, "%s", err);
    cr_assert_eq(set("jwt_alg", "RS256"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1, "a secret is not an RSA key");
    cr_expect(strstr(err, "public key"), "%s", err);
    unlink(path);
}
