/*
 * test_events_sio.c - unit tests of what the Socket.IO handler API builds
 * and parses without a loop: the packets a handler sends
 * (cd_events__sio_build, services/events/sio_emit.c: events and acks,
 * text and binary, namespaces, ack ids, what is refused) and the keys
 * `handlers` and `forward_headers` (conf.c).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/keys.h"
#include "services/events/events.h"

static char *text;
static size_t len;

static void fini(void)
{
    free(text);
    text = NULL;
}

TestSuite(events_sio, .fini = fini);

static int build(int ack, const char *nsp, long long id, const char *event, const char *json, size_t nbin)
{
    static const char a0[] = "ab", a1[] = "";
    static const void *const bin[] = {a0, a1};
    static const size_t bin_len[] = {2, 0};
    cd_sio_args args = {.json = json, .json_len = json ? strlen(json) : 0, .nbin = nbin, .bin = bin,
                        .bin_len = bin_len};
    free(text);
    text = NULL;
    return cd_events__sio_build(ack, nsp, id, event, &args, &text, &len);
}

static void expect(const char *want)
{
    cr_assert_not_null(text);
    cr_expect_eq(len, strlen(want), "length %zu for %.*s, want %s", len, (int)len, text, want);
    cr_expect(memcmp(text, want, len) == 0, "%.*s, want %s", (int)len, text, want);
}

Test(events_sio, events_in_each_shape)
{
    cr_assert_eq(build(0, "/", -1, "hi", "[1, \"two\" ,{\"x\":[3]}]", 0), 0);
    expect("42[\"hi\",1, \"two\" ,{\"x\":[3]}]");
    cr_assert_eq(build(0, "/chat", 12, "hi", NULL, 0), 0);
    expect("42/chat,12[\"hi\"]");
    cr_assert_eq(build(0, "/", -1, "q\"\n\xc3\xa9", " [ ] ", 0), 0);
    expect("42[\"q\\\"\\u000a\xc3\xa9\"]");
    cr_assert_eq(build(0, "/chat", 3,
                       "b", "[{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0}]", 2),
                 0);
    expect("452-/chat,3[\"b\",{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0}]");
}

Test(events_sio, acks_in_each_shape)
{
    cr_assert_eq(build(1, "/", 0, NULL, NULL, 0), 0);
    expect("430[]");
    cr_assert_eq(build(1, "/a", 7, NULL, "[\"ok\",2]", 0), 0);
    expect("43/a,7[\"ok\",2]");
    cr_assert_eq(build(1, "/", 9, NULL, "[{\"_placeholder\":true,\"num\":0}]", 1), 0);
    expect("461-9[{\"_placeholder\":true,\"num\":0}]");
}

Test(events_sio, what_a_client_would_choke_on_is_refused)
{
    cr_expect_eq(build(0, "/", -1, "connect", NULL, 0), -EINVAL, "a reserved name");
    cr_expect_eq(build(0, "/", -1, "disconnect", "[]", 0), -EINVAL);
    cr_expect_eq(build(0, "/", -1, "", NULL, 0), -EINVAL, "an empty name");
    cr_expect_eq(build(0, "/", -1, "x", "{\"a\":1}", 0), -EINVAL, "not an array");
    cr_expect_eq(build(0, "/", -1, "x", "[1,]", 0), -EINVAL, "bad JSON");
    cr_expect_eq(build(0, "/", -1, "x", "[1] [2]", 0), -EINVAL, "two values");
    cr_expect_eq(build(0, "/", -1, "x", "[\"\xff\"]", 0), -EINVAL, "not UTF-8");
    cr_expect_eq(build(0, "/", -1, "x", "[1]", 1), -EINVAL, "an attachment no placeholder names");
    cr_expect_eq(build(0, "/", -1, "x", "[{\"_placeholder\":true,\"num\":1}]", 1), -EINVAL, "a placeholder past them");
    cr_expect_eq(build(1, "/", 1, NULL, "[{\"_placeholder\":true,\"num\":0}]", 2), -EINVAL, "one of two named");
    cr_expect_eq(build(0, "/", -1, "x", "[]", CD_EVENTS_ATTACH_MAX + 1), -EMSGSIZE);
    char deep[80];
    memset(deep, '[', 40);
    memset(deep + 40, ']', 40);
    cr_expect_eq(build(0, "/", -1, "x", NULL, 0), 0);
    free(text);
    text = NULL;
    cd_sio_args args = {.json = deep, .json_len = sizeof deep};
    cr_expect_eq(cd_events__sio_build(0, "/", -1, "x", &args, &text, &len), -EINVAL, "nested deeper than 32");
    cr_expect_null(text);
}

Test(events_sio, handlers_and_forward_headers_keys)
{
    cd_events_conf *c = cd_events__conf_new();
    char err[256] = "";
    cr_assert_eq(cd_conf_key_set(cd_events__keys, c, "forward_headers", "Cookie, User-Agent,X-Test", err, sizeof err), 0,
                 "%s", err);
    cr_expect_eq(c->nforward_headers, 3);
    cr_expect_str_eq(c->forward_headers[2], "X-Test");
    cr_expect_eq(cd_conf_key_set(cd_events__keys, c, "forward_headers", "Bad:Name", err, sizeof err), -1);
    cr_expect(strstr(err, "is not a header name"), "%s", err);
    cr_expect_eq(cd_conf_key_set(cd_events__keys, c, "handlers", "", err, sizeof err), -1);
    cr_assert_eq(cd_conf_key_set(cd_events__keys, c, "handlers", "no-such-handlers", err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c->handlers, "no-such-handlers");
    cr_expect_not_null(c->handlers_dir);
    err[0] = '\0';
    cr_expect_eq(cd_events__conf_check(c, err, sizeof err), -1, "no no-such-handlers.so anywhere");
    cr_expect(strstr(err, "no-such-handlers.so was not found"), "%s", err);
    cd_events__conf_free(c);
}
