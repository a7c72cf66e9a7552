/*
 * test_events_bus.c - unit tests of the events service's server-side
 * addressing codecs (services/events/bus_proto.c): bus messages (round
 * trips of every operation, hostile and truncated input) and the bodies
 * of the backend endpoints (targets, publish, join, leave, disconnect, and
 * the bodies they refuse, each with a reason).  Runs in criterion's test
 * processes; no sockets, no loop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/events/events.h"

/* ---- bus messages ---- */

static long encode(char *buf, size_t cap, const char *nsp, const cd_events_target *t, const cd_events_bus_op *op)
{
    return cd_events__bus_encode(buf, cap, nsp, strlen(nsp), t, op);
}

static int name_is(const unsigned char **cur, const char *want)
{
    const char *n;
    size_t l;
    cd_events__bus_name(cur, &n, &l);
    return l == strlen(want) && memcmp(n, want, l) == 0;
}

Test(events_bus, packet_round_trips_with_rooms_except_and_attachments)
{
    const char *rooms[] = {"a", "user:42"}, *except[] = {"SID1"};
    size_t rl[] = {1, 7}, el[] = {4};
    const char *att[] = {"\x00\x01\xff", ""};
    size_t al[] = {3, 0};
    cd_events_target t = {.nsp = 1, .nrooms = 2, .rooms = rooms, .room_lens = rl, .nexcept = 1,
                          .except = except, .except_lens = el};
    const char *text = "452-/chat,[\"up\",{\"_placeholder\":true,\"num\":0}]";
    cd_events_packet p = {.text = text, .text_len = strlen(text), .nattach = 2, .attach = att, .attach_len = al};
    cd_events_bus_op op = {.op = CD_EVENTS_BUS_PACKET, .packet = &p};
    char buf[512];
    long need = encode(NULL, 0, "/chat", &t, &op);
    cr_assert_eq(encode(buf, sizeof buf, "/chat", &t, &op), need);
    cr_expect_eq(encode(buf, (size_t)need - 1, "/chat", &t, &op), -EMSGSIZE);
    cd_events_bus_msg m;
    cr_assert_eq(cd_events__bus_decode(buf, (size_t)need, &m), 0);
    cr_expect(m.op == CD_EVENTS_BUS_PACKET && m.nsp_len == 5 && memcmp(m.nsp, "/chat", 5) == 0);
    cr_assert(m.nrooms == 2 && m.nexcept == 1 && m.nattach == 2);
    const unsigned char *cur = m.rooms;
    cr_expect(name_is(&cur, "a") && name_is(&cur, "user:42"));
    cur = m.except;
    cr_expect(name_is(&cur, "SID1"));
    cr_expect(m.text_len == strlen(text) && memcmp(m.text, text, m.text_len) == 0);
    cur = m.attach;
    const char *d;
    size_t dl;
    cd_events__bus_attach(&cur, &d, &dl);
    cr_expect(dl == 3 && memcmp(d, "\x00\x01\xff", 3) == 0);
    cd_events__bus_attach(&cur, &d, &dl);
    cr_expect_eq(dl, 0);
    cr_expect_eq((const char *)cur, buf + need);
    /* Every cut, and any byte more, is refused. */
    for (long cut = 0; cut < need; cut++)
        cr_expect_eq(cd_events__bus_decode(buf, (size_t)cut, &m), -EINVAL, "cut at %ld", cut);
    buf[need] = 'x';
    cr_expect_eq(cd_events__bus_decode(buf, (size_t)need + 1, &m), -EINVAL);
}

Test(events_bus, commands_round_trip)
{
    cd_events_target all = {0};
    char buf[256];
    cd_events_bus_msg m;
    cd_events_bus_op join = {.op = CD_EVENTS_BUS_JOIN, .room = "room-9", .room_len = 6};
    long n = encode(buf, sizeof buf, "/", &all, &join);
    cr_assert_gt(n, 0);
    cr_assert_eq(cd_events__bus_decode(buf, (size_t)n, &m), 0);
    cr_expect(m.op == CD_EVENTS_BUS_JOIN && m.nrooms == 0 && m.nexcept == 0 && m.room_len == 6 &&
              memcmp(m.room, "room-9", 6) == 0);
    cd_events_bus_op leave = {.op = CD_EVENTS_BUS_LEAVE, .room = "r", .room_len = 1};
    n = encode(buf, sizeof buf, "/", &all, &leave);
    cr_assert_eq(cd_events__bus_decode(buf, (size_t)n, &m), 0);
    cr_expect(m.op == CD_EVENTS_BUS_LEAVE && m.room_len == 1);
    for (int close = 0; close <= 1; close++) {
        cd_events_bus_op d = {.op = CD_EVENTS_BUS_DISCONNECT, .close = close};
        n = encode(buf, sizeof buf, "/", &all, &d);
        cr_assert_eq(cd_events__bus_decode(buf, (size_t)n, &m), 0);
        cr_expect(m.op == CD_EVENTS_BUS_DISCONNECT && m.close == close);
        buf[n - 1] = 2; /* close is 0 or 1 */
        cr_expect_eq(cd_events__bus_decode(buf, (size_t)n, &m), -EINVAL);
    }
}

Test(events_bus, encoder_refuses_what_the_decoder_would)
{
    char big[CD_EVENTS_ROOM_MAX + 1];
    memset(big, 'x', sizeof big);
    const char *rooms[] = {big};
    size_t rl[] = {sizeof big};
    cd_events_target t = {.nrooms = 1, .rooms = rooms, .room_lens = rl};
    cd_events_packet p = {.text = "42[\"e\"]", .text_len = 7};
    cd_events_bus_op op = {.op = CD_EVENTS_BUS_PACKET, .packet = &p};
    cr_expect_eq(encode(NULL, 0, "/", &t, &op), -EMSGSIZE, "a 129-byte room");
    t.nrooms = 0;
    cr_expect_eq(cd_events__bus_encode(NULL, 0, big, sizeof big, &t, &op), -EMSGSIZE, "a 129-byte namespace");
    cd_events_packet empty = {.text = "", .text_len = 0};
    op.packet = &empty;
    cr_expect_eq(encode(NULL, 0, "/", &t, &op), -EMSGSIZE, "an empty packet");
    cd_events_bus_op join = {.op = CD_EVENTS_BUS_JOIN, .room = "", .room_len = 0};
    cr_expect_eq(encode(NULL, 0, "/", &t, &join), -EMSGSIZE, "joining room \"\"");
    cd_events_bus_op bad = {.op = 'Z'};
    cr_expect_eq(encode(NULL, 0, "/", &t, &bad), -EINVAL);
}

Test(events_bus, hostile_messages_do_not_decode)
{
    cd_events_bus_msg m;
    struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"", 0},
        {"E2", 2},
        {"R\0\0\0", 4},                             /* the format before v2 */
        {"E3D\1/\0\0\0\0\0", 10},                   /* another version */
        {"E2Z\1/\0\0\0\0\0", 10},                   /* unknown op */
        {"E2D\0\0\0\0\0\0", 9},                     /* empty namespace */
        {"E2D\1x\0\0\0\0\0", 10},                   /* not a namespace */
        {"E2D\1/\0\1\0\0\0", 10},                   /* a room that is not there */
        {"E2D\1/\0\0\0\0", 9},                      /* no close byte */
        {"E2J\1/\0\0\0\0\0", 10},                   /* join "" */
        {"E2J\1/\0\0\0\0\5ab", 12},                 /* join, name cut */
        {"E2P\1/\0\0\0\0\0\0\0\0\0", 14},           /* empty text */
        {"E2P\1/\0\0\0\0\0\0\0\1x\0\1", 16},        /* an attachment missing */
        {"E2P\1/\0\0\0\0\0\0\0\1x\0\1\0\0\0\x09", 20}, /* an attachment cut */
        {"E2P\1/\0\0\0\0\xff\xff\xff\xff" "x", 14}, /* a text longer than the message */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(cd_events__bus_decode(bad[i].bytes, bad[i].len, &m), -EINVAL, "case %zu", i);
    /* A name over CD_EVENTS_ROOM_MAX, and a list over the limit. */
    unsigned char buf[300] = {'E', '2', 'D', 1, '/', 0, 1, 0, 0, 129};
    cr_expect_eq(cd_events__bus_decode(buf, 10 + 129 + 1, &m), -EINVAL);
    unsigned char many[] = {'E', '2', 'D', 1, '/', 0xff, 0xff, 0, 0, 0};
    cr_expect_eq(cd_events__bus_decode(many, sizeof many, &m), -EINVAL);
    /* The smallest valid message, for contrast. */
    cr_expect_eq(cd_events__bus_decode("E2D\1/\0\0\0\0\1", 10, &m), 0);
}

/* ---- backend bodies ---- */

static cd_events_cmd cmd; /* 16 kB: not on the stack */

static int parse(int which, const char *body, const char **why)
{
    cd_events__cmd_free(&cmd);
    *why = NULL;
    return cd_events__cmd_parse(which, body, strlen(body), 1000, &cmd, why);
}

static int has(const char *const *names, const size_t *lens, size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (lens[i] == strlen(want) && memcmp(names[i], want, lens[i]) == 0)
            return 1;
    return 0;
}

Test(events_backend_body, publish_builds_the_packet_for_its_namespace_and_target)
{
    const char *why;
    cr_assert_eq(parse(CD_EVENTS_CMD_PUBLISH,
                       " {\"namespace\":\"/chat\",\"room\":\"r\\u00e9\",\"rooms\":[\"a\", \"b\"],\"sid\":\"S1\","
                       "\"user\":\"42\",\"except\":[\"x\",\"user:7\"],\"event\":\"chat\",\"args\":[1,{\"a\":2}]} ",
                       &why),
                 0, "%s", why);
    cr_expect(cmd.nsp_len == 5 && strcmp(cmd.nsp, "/chat") == 0);
    cr_assert_eq(cmd.nrooms, 5);
    const char *want[] = {"r\xc3\xa9", "a", "b", "S1", "user:42"};
    for (size_t i = 0; i < 5; i++)
        cr_expect(has(cmd.rooms, cmd.room_lens, cmd.nrooms, want[i]), "%s", want[i]);
    cr_assert_eq(cmd.nexcept, 2);
    cr_expect(has(cmd.except, cmd.except_lens, 2, "x") && has(cmd.except, cmd.except_lens, 2, "user:7"));
    const char *pkt = "42/chat,[\"chat\",1,{\"a\":2}]";
    cr_expect(cmd.packet_len == strlen(pkt) && memcmp(cmd.packet, pkt, cmd.packet_len) == 0, "%.*s",
              (int)cmd.packet_len, cmd.packet);
    /* The body of before issue 12, and no target at all (the namespace). */
    cr_assert_eq(parse(CD_EVENTS_CMD_PUBLISH, "{\"room\":\"r\",\"event\":\"e\",\"args\":[ ]}", &why), 0);
    cr_expect(cmd.nrooms == 1 && cmd.nsp_len == 1 && cmd.packet_len == 7 && memcmp(cmd.packet, "42[\"e\"]", 7) == 0);
    cr_assert_eq(parse(CD_EVENTS_CMD_PUBLISH, "{\"event\":\"e\",\"except\":\"S2\"}", &why), 0);
    cr_expect(cmd.nrooms == 0 && cmd.nexcept == 1);
    /* Unknown members, whatever their names, are ignored. */
    cr_expect_eq(parse(CD_EVENTS_CMD_PUBLISH, "{\"\\u0000\":1,\"room\":\"r\",\"\\ud800\":2,\"event\":\"e\"}", &why),
                 0);
    cd_events__cmd_free(&cmd);
}

Test(events_backend_body, commands_take_their_member)
{
    const char *why;
    cr_assert_eq(parse(CD_EVENTS_CMD_JOIN, "{\"sid\":\"S1\",\"join\":\"team\"}", &why), 0, "%s", why);
    cr_expect(cmd.nrooms == 1 && strcmp(cmd.room, "team") == 0 && cmd.room_len == 4 && !cmd.packet);
    cr_assert_eq(parse(CD_EVENTS_CMD_LEAVE, "{\"room\":\"a\",\"leave\":\"b\"}", &why), 0);
    cr_expect(strcmp(cmd.room, "b") == 0);
    cr_assert_eq(parse(CD_EVENTS_CMD_DISCONNECT, "{\"room\":\"a\"}", &why), 0);
    cr_expect_eq(cmd.close, 0);
    cr_assert_eq(parse(CD_EVENTS_CMD_DISCONNECT, "{\"room\":\"a\",\"close\":true}", &why), 0);
    cr_expect_eq(cmd.close, 1);
    cr_expect_eq(parse(CD_EVENTS_CMD_DISCONNECT, "{\"close\":1}", &why), -EINVAL);
    cr_expect_eq(parse(CD_EVENTS_CMD_JOIN, "{\"sid\":\"S1\"}", &why), -EINVAL);
    cr_expect_eq(parse(CD_EVENTS_CMD_JOIN, "{\"join\":\"\"}", &why), -EINVAL);
    cr_expect_eq(parse(CD_EVENTS_CMD_LEAVE, "{\"join\":\"a\"}", &why), -EINVAL);
    cd_events__cmd_free(&cmd);
}

Test(events_backend_body, refuses_bad_bodies_with_a_reason)
{
    char longroom[200], longuser[200], many[1200];
    snprintf(longroom, sizeof longroom, "{\"room\":\"%0129d\",\"event\":\"e\"}", 0);
    snprintf(longuser, sizeof longuser, "{\"user\":\"%0124d\",\"event\":\"e\"}", 0);
    int o = snprintf(many, sizeof many, "{\"event\":\"e\",\"rooms\":[\"r\"");
    for (int i = 0; i < CD_EVENTS_TARGET_MAX; i++)
        o += snprintf(many + o, sizeof many - (size_t)o, ",\"r%d\"", i);
    snprintf(many + o, sizeof many - (size_t)o, "]}");
    const char *bad[] = {
        "",
        "[1]",
        "{\"room\":\"r\",\"event\":\"e\"} x",
        "{\"room\":\"r\",\"event\":\"e\"}{}",
        "{\"room\":\"\",\"event\":\"e\"}",
        "{\"room\":1,\"event\":\"e\"}",
        "{\"rooms\":[\"a\",1],\"event\":\"e\"}",
        "{\"rooms\":[\"a\",[\"b\"]],\"event\":\"e\"}",
        "{\"sid\":\"\",\"event\":\"e\"}",
        "{\"except\":[\"\\u0000\"],\"event\":\"e\"}",
        "{\"namespace\":1,\"event\":\"e\"}",
        "{\"namespace\":\"\",\"event\":\"e\"}",
        "{\"room\":\"r\",\"event\":\"\"}",
        "{\"room\":\"r\",\"event\":1}",
        "{\"room\":\"r\",\"event\":\"disconnect\"}",
        "{\"room\":\"r\",\"event\":\"e\",\"args\":{}}",
        "{\"room\":\"r\",\"event\":\"a\xff\"}",
        "{\"room\":\"r\",\"event\":\"e\",\"args\":[\"\xed\xa0\x80\"]}",
        "{\"room\":\"r\",\"event\":\"e\"}\xff",
        longroom,
        longuser,
        many,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why;
        cr_expect_eq(parse(CD_EVENTS_CMD_PUBLISH, bad[i], &why), -EINVAL, "accepted: %.60s", bad[i]);
        cr_expect(why && *why, "no reason for %.60s", bad[i]);
        cr_expect_null(cmd.packet);
    }
    /* Namespaces no config can hold: unknown (404), not malformed. */
    const char *unknown[] = {"{\"namespace\":\"chat\",\"event\":\"e\"}", "{\"namespace\":\"/a,b\",\"event\":\"e\"}",
                             "{\"namespace\":\"/\xc3\xa9\",\"event\":\"e\"}", "{\"namespace\":\"/a b\",\"event\":\"e\"}"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *why;
        cr_expect_eq(parse(CD_EVENTS_CMD_PUBLISH, unknown[i], &why), -ENOENT, "%s", unknown[i]);
    }
    char longnsp[300];
    snprintf(longnsp, sizeof longnsp, "{\"namespace\":\"/%0200d\",\"event\":\"e\"}", 0);
    const char *why;
    cr_expect_eq(parse(CD_EVENTS_CMD_PUBLISH, longnsp, &why), -ENOENT);
    char big[1200];
    snprintf(big, sizeof big, "{\"room\":\"r\",\"event\":\"e\",\"args\":[\"%01000d\"]}", 0);
    cr_expect_eq(parse(CD_EVENTS_CMD_PUBLISH, big, &why), -EMSGSIZE);
    /* At the limits: 128-byte rooms, a 123-byte user, 64 rooms. */
    snprintf(longroom, sizeof longroom, "{\"room\":\"%0128d\",\"event\":\"e\"}", 0);
    cr_expect_eq(parse(CD_EVENTS_CMD_PUBLISH, longroom, &why), 0, "%s", why);
    snprintf(longuser, sizeof longuser, "{\"user\":\"%0123d\",\"event\":\"e\"}", 0);
    cr_expect_eq(parse(CD_EVENTS_CMD_PUBLISH, longuser, &why), 0, "%s", why);
    cr_expect_eq(cmd.room_lens[0], 128);
    snprintf(many, sizeof many, "{\"event\":\"e\",\"rooms\":[\"r\"");
    o = (int)strlen(many);
    for (int i = 1; i < CD_EVENTS_TARGET_MAX; i++)
        o += snprintf(many + o, sizeof many - (size_t)o, ",\"r%d\"", i);
    snprintf(many + o, sizeof many - (size_t)o, "]}");
    cr_expect_eq(parse(CD_EVENTS_CMD_PUBLISH, many, &why), 0, "%s", why);
    cr_expect_eq(cmd.nrooms, CD_EVENTS_TARGET_MAX);
    cd_events__cmd_free(&cmd);
}
