/*
 * test_events_hooks.c - unit tests of the HTTP hooks' protocol
 * (services/events/hook_proto.c): the *_hook keys and their checks, the
 * bodies POSTed to the backend, and the parser of its answers.  Pure: no
 * socket, no loop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conf/keys.h"
#include "services/events/hooks.h"

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

TestSuite(events_hooks, .init = setup, .fini = teardown);

static int set(const char *key, const char *value)
{
    return cd_conf_key_set(cd_events__keys, conf, key, value, err, sizeof err);
}

Test(events_hooks, keys_resolve_per_namespace)
{
    cr_expect_eq(conf->hook_timeout_ms, 5000);
    cr_expect_eq(conf->hook_max_in_flight, 256);
    cr_assert_eq(set("connect_hook", "/chat=http://127.0.0.1:9000/connect, /=https://h.example/c"), 0, "%s", err);
    cr_assert_eq(set("event_hook", "/chat=http://127.0.0.1:9000/event"), 0, "%s", err);
    cr_assert_eq(set("namespaces", "/, /chat, /quiet"), 0, "%s", err); /* after: order does not matter */
    cr_assert_eq(set("hook_timeout", "500ms"), 0, "%s", err);
    cr_assert_eq(set("hook_max_in_flight", "3"), 0, "%s", err);
    cr_assert_eq(cd_events__conf_check(conf, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(conf->hooks->url[CD_HOOK_CONNECT][1], "http://127.0.0.1:9000/connect");
    cr_expect_str_eq(conf->hooks->url[CD_HOOK_CONNECT][0], "https://h.example/c");
    cr_expect_str_eq(conf->hooks->url[CD_HOOK_EVENT][1], "http://127.0.0.1:9000/event");
    cr_expect_null(conf->hooks->url[CD_HOOK_EVENT][0]);
    cr_expect_null(conf->hooks->url[CD_HOOK_DISCONNECT][1]);
    cr_expect(cd_events__hooks_any(conf, 0));
    cr_expect(cd_events__hooks_any(conf, 1));
    cr_expect(!cd_events__hooks_any(conf, 2));
    cr_expect_eq(conf->hook_timeout_ms, 500);
    cr_expect_eq(conf->hook_max_in_flight, 3);
    /* checked again (a worker parses the config anew): same result */
    cr_assert_eq(cd_events__conf_check(conf, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(conf->hooks->url[CD_HOOK_EVENT][1], "http://127.0.0.1:9000/event");
}

Test(events_hooks, bad_keys_say_why)
{
    cr_expect_eq(set("connect_hook", "http://127.0.0.1:9000/connect"), -1);
    cr_expect(strstr(err, "expected /namespace=http://host/path"), "%s", err);
    cr_expect_eq(set("event_hook", "/=ftp://h/x"), -1);
    cr_expect(strstr(err, "http:// or https://"), "%s", err);
    cr_expect_eq(set("event_hook", "/=http://"), -1);
    cr_expect(strstr(err, "no host"), "%s", err);
    cr_expect_eq(set("hook_timeout", "10ms"), -1);
    cr_expect_eq(set("hook_max_in_flight", "0"), -1);
    cr_assert_eq(set("disconnect_hook", "/nope=http://h/d"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1);
    cr_expect_str_eq(err, "disconnect_hook: namespace '/nope' is not in namespaces");
    cr_assert_eq(set("disconnect_hook", "/=http://h/d /=http://h/e"), 0, "%s", err);
    cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1);
    cr_expect_str_eq(err, "disconnect_hook: namespace '/' is given twice");
}

Test(events_hooks, bodies)
{
    cd_buf b = {0};
    cd_hook_who w = {.sid = "S1", .nsp = "/chat", .user = NULL};
    const char *names[] = {"Cookie", "User-Agent", "X-None"};
    const char *values[] = {"a=\"1\"", "ua", NULL};
    const char *auth = "{\"token\":\"t\"}";
    cr_assert_eq(cd_events__hook_body_connect(&b, &w, auth, strlen(auth), names, values, 3), 0);
    cr_expect_str_eq(b.p, "{\"type\":\"connect\",\"sid\":\"S1\",\"namespace\":\"/chat\",\"user\":null,"
                          "\"auth\":{\"token\":\"t\"},\"headers\":{\"cookie\":\"a=\\\"1\\\"\",\"user-agent\":\"ua\"}}");
    b.len = 0;
    cr_assert_eq(cd_events__hook_body_connect(&b, &w, NULL, 0, NULL, NULL, 0), 0);
    cr_expect_str_eq(b.p, "{\"type\":\"connect\",\"sid\":\"S1\",\"namespace\":\"/chat\",\"user\":null,"
                          "\"auth\":null,\"headers\":{}}");
    b.len = 0;
    w.user = "alice";
    w.data = "{\"nick\":\"al\"}";
    w.data_len = strlen(w.data);
    const void *bin[] = {"\x01\x02\x03", "hi"};
    size_t bin_len[] = {3, 2};
    const char *j = "[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
    cd_sio_args args = {.json = j, .json_len = strlen(j), .nbin = 2, .bin = bin, .bin_len = bin_len};
    cr_assert_eq(cd_events__hook_body_event(&b, &w, "up", &args, 1), 0);
    cr_expect_str_eq(b.p, "{\"type\":\"event\",\"sid\":\"S1\",\"namespace\":\"/chat\",\"user\":\"alice\","
                          "\"data\":{\"nick\":\"al\"},\"event\":\"up\",\"args\":[{\"_placeholder\":true,\"num\":0},"
                          "{\"_placeholder\":true,\"num\":1}],\"attachments\":[\"AQID\",\"aGk=\"],\"ack\":true}");
    b.len = 0;
    cr_assert_eq(cd_events__hook_body_event(&b, &w, "x", NULL, 0), 0);
    cr_expect(strstr(b.p, "\"event\":\"x\",\"args\":[],\"ack\":false}"), "%s", b.p);
    b.len = 0;
    cr_assert_eq(cd_events__hook_body_disconnect(&b, &w, "transport close"), 0);
    cr_expect_str_eq(b.p, "{\"type\":\"disconnect\",\"sid\":\"S1\",\"namespace\":\"/chat\",\"user\":\"alice\","
                          "\"data\":{\"nick\":\"al\"},\"reason\":\"transport close\"}");
    cd_buf_free(&b);
}

static int parse(const char *body, cd_hook_answer *a, const char **why)
{
    return cd_events__hook_answer_parse(body, strlen(body), a, why);
}

Test(events_hooks, a_full_answer)
{
    cd_hook_answer a;
    const char *why = NULL;
    const char *body = " {\"accept\":true,\"data\":{\"n\":1},\"join\":[\"r1\",\"r\\u00e9\"],\"leave\":\"old\","
                       "\"ack\":[1,\"two\"],\"ack_attachments\":[\"AQID\"],"
                       "\"emit\":[{\"event\":\"hello\",\"args\":[\"you\"]},"
                       "{\"event\":\"news\",\"args\":[{\"_placeholder\":true,\"num\":0}],\"attachments\":[\"aGk=\"],"
                       "\"to\":{\"rooms\":[\"r1\",\"r2\"],\"except\":[\"S9\"]}}],"
                       "\"disconnect\":false,\"extra\":[1,2,3]} \n";
    cr_assert_eq(parse(body, &a, &why), 0, "%s", why);
    cr_expect_eq(a.accept, 1);
    cr_expect_eq(a.data_len, 7);
    cr_expect(memcmp(a.data, "{\"n\":1}", 7) == 0);
    cr_assert_eq(a.njoin, 2);
    cr_expect_str_eq(a.join[0], "r1");
    cr_expect_str_eq(a.join[1], "r\xc3\xa9");
    cr_assert_eq(a.nleave, 1);
    cr_expect_str_eq(a.leave[0], "old");
    cr_expect_eq(a.ack_len, 9);
    cr_expect(memcmp(a.ack, "[1,\"two\"]", 9) == 0);
    cr_assert_eq(a.ack_bins.n, 1);
    cr_expect_eq(a.ack_bins.len[0], 3);
    cr_expect(memcmp(a.ack_bins.bin[0], "\x01\x02\x03", 3) == 0);
    cr_assert_eq(a.nemit, 2);
    cr_expect_str_eq(a.emit[0].event, "hello");
    cr_expect_eq(a.emit[0].to, 0);
    cr_expect(memcmp(a.emit[0].args, "[\"you\"]", a.emit[0].args_len) == 0);
    cr_expect_str_eq(a.emit[1].event, "news");
    cr_expect_eq(a.emit[1].to, 1);
    cr_assert_eq(a.emit[1].nrooms, 2);
    cr_expect_str_eq(a.emit[1].rooms[1], "r2");
    cr_assert_eq(a.emit[1].nexcept, 1);
    cr_expect_str_eq(a.emit[1].except[0], "S9");
    cr_assert_eq(a.emit[1].bins.n, 1);
    cr_expect(memcmp(a.emit[1].bins.bin[0], "hi", 2) == 0);
    cr_expect_eq(a.disconnect, 0);
    cd_events__hook_answer_free(&a);
}

Test(events_hooks, small_answers)
{
    cd_hook_answer a;
    const char *why = NULL;
    cr_assert_eq(parse("", &a, &why), 0);
    cr_expect_eq(a.accept, -1);
    cr_expect_null(a.ack);
    cd_events__hook_answer_free(&a);
    cr_assert_eq(parse("{\"accept\":false,\"message\":\"no \\\"way\\\"\"}", &a, &why), 0, "%s", why);
    cr_expect_eq(a.accept, 0);
    cr_expect_str_eq(a.message, "no \"way\"");
    cd_events__hook_answer_free(&a);
    cr_assert_eq(parse("{\"emit\":[{\"event\":\"e\",\"to\":{}}],\"disconnect\":true}", &a, &why), 0, "%s", why);
    cr_expect_eq(a.emit[0].to, 1, "an empty to: the whole namespace");
    cr_expect_eq(a.emit[0].nrooms, 0);
    cr_expect_null(a.emit[0].args);
    cr_expect_eq(a.disconnect, 1);
    cd_events__hook_answer_free(&a);
}

Test(events_hooks, bad_answers_say_why)
{
    static const struct {
        const char *body, *why;
    } cases[] = {
        {"[]", "not one JSON object"},
        {"{\"accept\":true} x", "not one JSON object"},
        {"{\"accept\":true", "not one JSON object"},
        {"{\"accept\":\"yes\"}", "accept is not a boolean"},
        {"{\"message\":\"\"}", "message is not a string"},
        {"{\"ack\":{}}", "ack is not an array"},
        {"{\"join\":[1]}", "join is not a list"},
        {"{\"join\":[\"\"]}", "join is not a list"},
        {"{\"leave\":{}}", "leave is not a list"},
        {"{\"emit\":{}}", "emit is not an array"},
        {"{\"emit\":[1]}", "an emit is not an object"},
        {"{\"emit\":[{}]}", "an emit has no event name"},
        {"{\"emit\":[{\"event\":\"connect\"}]}", "reserves"},
        {"{\"emit\":[{\"event\":\"e\",\"args\":1}]}", "args is not an array"},
        {"{\"emit\":[{\"event\":\"e\",\"attachments\":[\"!!\"]}]}", "not base64"},
        {"{\"emit\":[{\"event\":\"e\",\"to\":[]}]}", "to is not an object"},
        {"{\"emit\":[{\"event\":\"e\",\"to\":{\"rooms\":[2]}}]}", "to.rooms"},
        {"{\"ack_attachments\":[1]}", "ack_attachments"},
        {"{\"disconnect\":1}", "disconnect is not a boolean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cd_hook_answer a;
        const char *why = NULL;
        cr_expect_eq(parse(cases[i].body, &a, &why), -EINVAL, "%s", cases[i].body);
        cr_expect(why && strstr(why, cases[i].why), "%s: %s", cases[i].body, why);
        cd_events__hook_answer_free(&a);
    }
}

Test(events_hooks, lists_are_bounded)
{
    char body[8192] = "{\"join\":[";
    for (int i = 0; i <= CD_HOOK_LIST_MAX; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"r%d\"", i ? "," : "", i);
    strcat(body, "]}");
    cd_hook_answer a;
    const char *why = NULL;
    cr_expect_eq(parse(body, &a, &why), -EINVAL);
    cd_events__hook_answer_free(&a);
    char room[200] = "{\"join\":[\"";
    memset(room + 10, 'x', CD_EVENTS_ROOM_MAX + 1);
    strcpy(room + 10 + CD_EVENTS_ROOM_MAX + 1, "\"]}");
    cr_expect_eq(parse(room, &a, &why), -EINVAL, "a room name over 128 bytes");
    cd_events__hook_answer_free(&a);
}
