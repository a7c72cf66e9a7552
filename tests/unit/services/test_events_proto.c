/*
 * test_events_proto.c - unit tests of the events service's codecs
 * (services/events/events_proto.c): the JSON scanner, Socket.IO packet
 * parsing (binary packets and their placeholders too).  Runs in
 * criterion's test processes; no sockets, no loop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "services/events/events.h"

static int json_ok(const char *s)
{
    const char *end = s + strlen(s);
    const char *e = cd_events__json_skip(s, end, CD_EVENTS_JSON_DEPTH);
    return e && cd_events__json_ws(e, end) == end;
}

Test(events_json, accepts_well_formed_values)
{
    const char *ok[] = {"0", "-0", "12", "-3.25e+10", "1E5", "true", "false", "null", "\"\"",
                        "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\"", "[]", "{}", " [1, \"x\", {\"a\":[null]}] ",
                        "{\"k\" : 1 , \"l\":[true,false]}", "\"\xc3\xa9\""};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect(json_ok(ok[i]), "refused: %s", ok[i]);
}

Test(events_json, refuses_malformed_values)
{
    const char *bad[] = {"", " ", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "\"abc", "\"\\x\"",
                         "\"\\u12g4\"", "\"a\nb\"", "[1,]", "[,1]", "[1 2]", "{\"a\"}", "{\"a\":}",
                         "{a:1}", "{\"a\":1,}", "[", "]", "{\"a\":1", "[1]]", "'x'", "NaN"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect(!json_ok(bad[i]), "accepted: '%s'", bad[i]);
}

Test(events_json, nesting_is_bounded)
{
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    cr_expect(!cd_events__json_skip(deep, deep + 200, CD_EVENTS_JSON_DEPTH));
    cr_expect(cd_events__json_skip(deep + 100 - 5, deep + 105, CD_EVENTS_JSON_DEPTH));
}

Test(events_json, decodes_strings)
{
    char out[32];
    const char *next;
    const char *s = "\"a\\u00e9\\ud83d\\ude00\\n\" rest";
    int n = cd_events__json_string(s, s + strlen(s), out, sizeof out, &next);
    cr_assert_eq(n, 1 + 2 + 4 + 1);
    cr_expect_str_eq(out, "a\xc3\xa9\xf0\x9f\x98\x80\n");
    cr_expect_str_eq(next, " rest");
    /* Lone surrogates, NUL, invalid UTF-8, unterminated: -EINVAL, even
     * when also too long; well-formed but too long: -E2BIG. */
    const char *bad[] = {"\"\\ud83d\"", "\"\\ude00\"", "\"\\u0000\"", "\"abc", "\"a\xff\"", "\"\xc3\"",
                         "\"0123456789012345678901234567890123\\ud800\"", "\"0123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(cd_events__json_string(bad[i], bad[i] + strlen(bad[i]), out, sizeof out, NULL), -EINVAL,
                     "%s", bad[i]);
    const char *big = "\"0123456789012345678901234567890123\"";
    cr_expect_eq(cd_events__json_string(big, big + strlen(big), out, sizeof out, NULL), -E2BIG);
}

Test(events_json, gets_object_members)
{
    const char *o = " {\"room\":\"r1\", \"event\" : \"ev\",\"args\":[1,{\"room\":2}],\"room\":\"dup\"}";
    const char *end = o + strlen(o), *v, *ve;
    cr_assert_eq(cd_events__json_get(o, end, "room", &v, &ve), 0);
    cr_expect_eq(ve - v, 4);
    cr_expect(strncmp(v, "\"r1\"", 4) == 0);
    cr_assert_eq(cd_events__json_get(o, end, "args", &v, &ve), 0);
    cr_expect(strncmp(v, "[1,{\"room\":2}]", (size_t)(ve - v)) == 0 && ve - v == 14);
    cr_expect_eq(cd_events__json_get(o, end, "nope", &v, &ve), -ENOENT);
    const char *bad = "{\"room\":\"r1\",}";
    cr_expect_eq(cd_events__json_get(bad, bad + strlen(bad), "room", &v, &ve), -EINVAL);
    const char *arr = "[1]";
    cr_expect_eq(cd_events__json_get(arr, arr + 3, "room", &v, &ve), -EINVAL);
    const char *empty = "{}";
    cr_expect_eq(cd_events__json_get(empty, empty + 2, "room", &v, &ve), -ENOENT);
}

static int parse(const char *s, cd_sio_packet *p) { return cd_events__sio_parse(s, strlen(s), p); }

Test(events_sio, parses_connect_disconnect_and_namespaces)
{
    cd_sio_packet p;
    cr_assert_eq(parse("0", &p), 0);
    cr_expect_eq(p.type, CD_SIO_CONNECT);
    cr_expect(p.nsp_len == 1 && p.nsp[0] == '/');
    cr_assert_eq(parse("0{\"token\":\"x\"}", &p), 0);
    cr_expect_eq(p.data_len, 13);
    cr_assert_eq(parse("0/admin,", &p), 0);
    cr_expect(p.nsp_len == 6 && strncmp(p.nsp, "/admin", 6) == 0);
    cr_assert_eq(parse("0/admin", &p), 0);
    cr_expect_eq(p.nsp_len, 6);
    cr_assert_eq(parse("1", &p), 0);
    cr_expect_eq(p.type, CD_SIO_DISCONNECT);
    cr_expect_eq(parse("0[1]", &p), -EPROTO, "CONNECT data must be an object");
    cr_expect_eq(parse("1{}", &p), -EPROTO, "DISCONNECT carries nothing");
}

Test(events_sio, parses_events_with_and_without_ack)
{
    cd_sio_packet p;
    cr_assert_eq(parse("2[\"hello\",1,{\"a\":[2]}]", &p), 0);
    cr_expect_eq(p.type, CD_SIO_EVENT);
    cr_expect_eq(p.ack_id, -1);
    cr_expect(p.name_len == 7 && strncmp(p.name, "\"hello\"", 7) == 0);
    cr_expect(p.args_len == 11 && strncmp(p.args, "1,{\"a\":[2]}", 11) == 0, "%.*s", (int)p.args_len, p.args);
    cr_assert_eq(parse("212[\"join\",\"room\"]", &p), 0);
    cr_expect_eq(p.ack_id, 12);
    cr_expect(p.args_len == 6 && strncmp(p.args, "\"room\"", 6) == 0);
    cr_assert_eq(parse("2/,3[\"x\"]", &p), 0);
    cr_expect_eq(p.ack_id, 3);
    cr_expect_eq(p.args_len, 0);
    cr_assert_eq(parse("2[ \"x\" ] ", &p), 0);
    cr_expect_eq(p.args_len, 0);
    cr_assert_eq(parse("37[\"ok\"]", &p), 0);
    cr_expect(p.type == CD_SIO_ACK && p.ack_id == 7);
}

Test(events_sio, refuses_malformed_packets)
{
    cd_sio_packet p;
    const char *bad[] = {"", "7", "x", "2", "2[]", "2[1]", "2{\"a\":1}", "2[\"a\",]", "2[\"a\"]x", "3[\"no id\"]",
                         "4{\"message\":\"x\"}", "09", "1234567890123456789[\"a\"]", "2\"a\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(bad[i], &p), -EPROTO, "%s", bad[i]);
}

Test(events_sio, parses_binary_packets)
{
    cd_sio_packet p;
    cr_assert_eq(parse("51-[\"up\",{\"_placeholder\":true,\"num\":0}]", &p), 0);
    cr_expect(p.type == CD_SIO_BINARY_EVENT && p.nattach == 1 && p.ack_id == -1);
    cr_expect(p.name_len == 4 && strncmp(p.name, "\"up\"", 4) == 0);
    cr_expect(p.args_len == 29 && strncmp(p.args, "{\"_placeholder\":true,\"num\":0}", 29) == 0);
    /* Namespace, ack id, placeholders nested and in any order. */
    cr_assert_eq(parse("52-/chat,3[\"x\",{\"a\":[{\"num\":1,\"_placeholder\":true}]},{\"_placeholder\":true,\"num\":0}]",
                       &p), 0);
    cr_expect(p.nattach == 2 && p.ack_id == 3 && p.nsp_len == 5 && strncmp(p.nsp, "/chat", 5) == 0);
    cr_assert_eq(parse("61-0[{\"_placeholder\":true,\"num\":0}]", &p), 0);
    cr_expect(p.type == CD_SIO_BINARY_ACK && p.nattach == 1 && p.ack_id == 0);
    /* No attachments announced, none referenced; "_placeholder" other than
     * true is plain data. */
    cr_assert_eq(parse("50-[\"x\",{\"_placeholder\":false,\"num\":9}]", &p), 0);
    cr_expect_eq(p.nattach, 0);
    /* Sixteen is the most. */
    char buf[1024];
    int o = snprintf(buf, sizeof buf, "516-[\"x\"");
    for (int i = 15; i >= 0; i--)
        o += snprintf(buf + o, sizeof buf - (size_t)o, ",{\"_placeholder\":true,\"num\":%d}", i);
    snprintf(buf + o, sizeof buf - (size_t)o, "]");
    cr_assert_eq(parse(buf, &p), 0, "%s", buf);
    cr_expect_eq(p.nattach, 16);
}

Test(events_sio, refuses_bad_binary_packets)
{
    cd_sio_packet p;
    static const char *const bad[] = {
        "5-[\"x\"]",                                             /* no count */
        "51[\"x\",{\"_placeholder\":true,\"num\":0}]",           /* no '-' */
        "51-[\"x\"]",                                            /* count 1, no placeholder */
        "50-[\"x\",{\"_placeholder\":true,\"num\":0}]",          /* placeholder beyond the count */
        "52-[\"x\",{\"_placeholder\":true,\"num\":0}]",          /* num 1 missing */
        "52-[\"x\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":0}]", /* twice */
        "51-[\"x\",{\"_placeholder\":true,\"num\":-1}]",
        "51-[\"x\",{\"_placeholder\":true,\"num\":0.0}]",
        "51-[\"x\",{\"_placeholder\":true,\"num\":\"0\"}]",
        "51-[\"x\",{\"_placeholder\":true}]",                      /* no num */
        "51-[{\"_placeholder\":true,\"num\":0}]",                  /* an event without a name */
        "51-{\"_placeholder\":true,\"num\":0}",
        "61-[{\"_placeholder\":true,\"num\":0}]",                  /* BINARY_ACK without an ack id */
        "51-[\"x\",{\"_placeholder\":true,\"num\":0}",           /* unterminated */
        "51-/chat[\"x\",{\"_placeholder\":true,\"num\":0}]",     /* namespace without its comma */
        /* the last duplicate wins, as JSON.parse does: not a placeholder */
        "51-[\"x\",{\"_placeholder\":true,\"num\":0,\"_placeholder\":false}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(bad[i], &p), -EPROTO, "%s", bad[i]);
    /* More attachments than CD_EVENTS_ATTACH_MAX, however many digits. */
    cr_expect_eq(parse("517-[\"x\"]", &p), -EMSGSIZE);
    cr_expect_eq(parse("599999999999999999999-[\"x\"]", &p), -EMSGSIZE);
    cr_expect_eq(parse("6100-0[]", &p), -EMSGSIZE);
}

/* Members whose names the key decoder refuses (a NUL, longer than its
 * buffer, a lone surrogate) are skipped, not followed into a NULL: this
 * once crashed the worker on POST /publish {"\u0000":1}. */
Test(events_json, get_skips_members_whose_names_do_not_decode)
{
    char longkey[400];
    snprintf(longkey, sizeof longkey, "{\"%0300d\":1,\"room\":\"r\"}", 0);
    const char *objs[] = {"{\"\\u0000\":1,\"room\":\"r\"}", "{\"\\ud800\":[1,2],\"room\":\"r\"}",
                          "{\"\\udc00x\":{\"a\":1},\"room\":\"r\"}", longkey};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
        const char *v = NULL, *ve = NULL, *end = objs[i] + strlen(objs[i]);
        cr_expect_eq(cd_events__json_get(objs[i], end, "room", &v, &ve), 0, "%s", objs[i]);
        cr_expect(v && ve - v == 3 && memcmp(v, "\"r\"", 3) == 0, "%s", objs[i]);
        cr_expect_eq(cd_events__json_get(objs[i], end, "nope", &v, &ve), -ENOENT, "%s", objs[i]);
    }
    const char *lone = "{\"\\u0000\":1}";
    const char *v, *ve;
    cr_expect_eq(cd_events__json_get(lone, lone + strlen(lone), "room", &v, &ve), -ENOENT);
}

Test(events_json, strings_must_be_valid_utf8)
{
    const char *ok[] = {"\"\xc3\xa9\"", "\"\xe2\x82\xac\"", "\"\xf0\x9f\x98\x80\"", "\"\xef\xbf\xbf\"",
                        "\"\xf4\x8f\xbf\xbf\""};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect(json_ok(ok[i]), "refused: %s", ok[i]);
    const char *bad[] = {"\"\xff\"",         "\"\xc3\x28\"",     "\"\xc0\xaf\"",     "\"\xc1\xbf\"",
                         "\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"", "\"\xf0\x80\x80\xaf\"",
                         "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xe2\x82\"", "\"\x80\"",
                         "[\"a\",\"\xfe\"]", "{\"k\xff\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect(!json_ok(bad[i]), "accepted: %s", bad[i]);
    cr_expect(cd_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    cr_expect(!cd_utf8_valid("\xf0\x9f\x98", 3));
}

/* ---- the room table's hash ---- */

Test(events_hash, siphash24_matches_the_reference_vectors)
{
    /* From the SipHash paper (appendix A) and its reference code's
     * vectors: key 00..0f, messages 00..(n-1). */
    unsigned char key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    cr_expect_eq(cd_events__siphash(key, msg, 0), 0x726fdb47dd0e0e31ULL);
    cr_expect_eq(cd_events__siphash(key, msg, 1), 0x74f839c593dc67fdULL);
    cr_expect_eq(cd_events__siphash(key, msg, 8), 0x93f5f5799a932462ULL);
    cr_expect_eq(cd_events__siphash(key, msg, 15), 0xa129ca6149be45e5ULL);
    cr_expect_eq(cd_events__siphash(key, msg, 63), 0x958a324ceb064572ULL);
}

Test(events_hash, same_name_same_hash_and_the_key_changes_it)
{
    unsigned char k1[16] = {1}, k2[16] = {2};
    const char *names[] = {"", "a", "room1", "a much longer room name, past several blocks"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t l = strlen(names[i]);
        cr_expect_eq(cd_events__siphash(k1, names[i], l), cd_events__siphash(k1, names[i], l));
        cr_expect_neq(cd_events__siphash(k1, names[i], l), cd_events__siphash(k2, names[i], l), "%s", names[i]);
    }
    /* Names FNV-1a would not tell apart by bucket are spread: with a
     * 64-bucket table, 4096 names fill every bucket. */
    int used[64] = {0}, nused = 0;
    for (int i = 0; i < 4096; i++) {
        char n[32];
        int l = snprintf(n, sizeof n, "r%d", i);
        size_t b = cd_events__siphash(k1, n, (size_t)l) & 63;
        nused += !used[b];
        used[b] = 1;
    }
    cr_expect_eq(nused, 64);
}
