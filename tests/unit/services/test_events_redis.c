/*
 * test_events_redis.c - unit tests of the Redis adapter's pure codecs
 * (services/events/redis_msg.c, redis_json.c): redis_uri, JSON <-> msgpack
 * both ways, real messages of @socket.io/redis-adapter 8.3.0 and
 * @socket.io/redis-emitter 5.1.0 (recorded from Redis by the redistest
 * helper: tests/fuzz/corpus/events_redis holds them too) decoded into bus
 * operations, what we publish decoded back, our own uid skipped, and
 * hostile input; the section's adapter keys.  Criterion's processes; no sockets, no loop.
 */
#include <criterion/criterion.h>
#include <ev.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/keys.h"
#include "services/events/redis.h"

static size_t unhex(const char *h, unsigned char *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2)
        out[n++] = (unsigned char)strtol((char[3]){h[0], h[1], 0}, NULL, 16);
    return n;
}

static int name_is(const unsigned char **cur, const char *want)
{
    const char *n;
    size_t l;
    cd_events__bus_name(cur, &n, &l);
    return l == strlen(want) && memcmp(n, want, l) == 0;
}

/* The one bus message of an APPLY. */
static void only_msg(const cd_events_redis_in *in, cd_events_bus_msg *m)
{
    size_t off = 0, len;
    const void *msg;
    cr_assert_eq(in->what, CD_EVENTS_RIN_APPLY);
    cr_assert(cd_events__redis_in_next(in, &off, &msg, &len));
    cr_assert_eq(cd_events__bus_decode(msg, len, m), 0);
    cr_assert_not(cd_events__redis_in_next(in, &off, &msg, &len));
}

/* ---- redis_uri ---- */

Test(events_redis, uri_forms)
{
    cd_events_redis_uri u;
    cr_assert_eq(cd_events__redis_uri_parse("redis://127.0.0.1:6380/2", &u), 0);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_eq(u.port, 6380);
    cr_assert_eq(u.db, 2);
    cr_assert_str_eq(u.password, "");
    cr_assert_eq(cd_events__redis_uri_parse("redis://:s%40cret@redis.example", &u), 0);
    cr_assert_str_eq(u.host, "redis.example");
    cr_assert_eq(u.port, 6379);
    cr_assert_str_eq(u.password, "s@cret");
    cr_assert_str_eq(u.user, "");
    cr_assert_eq(cd_events__redis_uri_parse("redis://app:pw@[::1]:7000/0", &u), 0);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 7000);
    cr_assert_str_eq(u.user, "app");
    cr_assert_str_eq(u.password, "pw");
    cr_assert_eq(cd_events__redis_uri_parse("unix:///run/redis/redis.sock?db=3", &u), 0);
    cr_assert(u.is_unix);
    cr_assert_str_eq(u.path, "/run/redis/redis.sock");
    cr_assert_eq(u.db, 3);
    const char *bad[] = {"", "http://x", "redis://", "redis://h:0", "redis://h:70000", "redis://h:12x",
                         "redis://h/x", "redis://h/-1", "unix://", "unix://relative", "redis://user@h",
                         "redis://:p%00w@h", "unix:///p?x=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(cd_events__redis_uri_parse(bad[i], &u), -EINVAL, "%s", bad[i]);
}

/* ---- the section's keys ---- */

Test(events_redis, conf_keys_defaults_and_refusals)
{
    cd_events_conf *c = cd_events__conf_new();
    char err[256] = "";
    cr_assert(c);
    cr_expect_eq(c->adapter, CD_EVENTS_ADAPTER_LOCAL);
    cr_expect_str_eq(c->redis_uri, "redis://127.0.0.1:6379/0");
    cr_expect_str_eq(c->redis_prefix, "socket.io");
    cr_expect_eq(c->redis_timeout_ms, 2000);
    cr_assert_eq(cd_conf_key_set(cd_events__keys, c, "adapter", "redis", err, sizeof err), 0, "%s", err);
    cr_assert_eq(cd_conf_key_set(cd_events__keys, c, "redis_uri", "unix:///tmp/r.sock", err, sizeof err), 0);
    cr_assert_eq(cd_conf_key_set(cd_events__keys, c, "redis_prefix", "app", err, sizeof err), 0);
    cr_assert_eq(cd_conf_key_set(cd_events__keys, c, "redis_timeout", "500ms", err, sizeof err), 0);
    cr_expect(c->adapter == CD_EVENTS_ADAPTER_REDIS && strcmp(c->redis_uri, "unix:///tmp/r.sock") == 0 &&
              strcmp(c->redis_prefix, "app") == 0 && c->redis_timeout_ms == 500);
    cr_expect_neq(cd_conf_key_set(cd_events__keys, c, "adapter", "cluster", err, sizeof err), 0);
    cr_expect_neq(cd_conf_key_set(cd_events__keys, c, "redis_uri", "redis://h:0", err, sizeof err), 0);
    cr_expect_str_eq(c->redis_uri, "unix:///tmp/r.sock"); /* a refused value changes nothing */
    cr_expect_neq(cd_conf_key_set(cd_events__keys, c, "redis_prefix", "", err, sizeof err), 0);
    cr_expect_neq(cd_conf_key_set(cd_events__keys, c, "redis_timeout", "10ms", err, sizeof err), 0);
    cr_expect_eq(cd_events__conf_check(c, err, sizeof err), 0, "%s", err);
    cd_events__conf_free(c);
}

/* ---- JSON <-> msgpack ---- */

static void json_round(const char *in, const char *want)
{
    char *mp, *out;
    size_t ml, ol, nbin;
    cr_assert_eq(cd_events__redis_json_to_mp(in, strlen(in), &mp, &ml), 0, "%s", in);
    cr_assert_eq(cd_events__redis_mp_to_json(mp, ml, &out, &ol, &nbin), 0, "%s", in);
    cr_expect_str_eq(out, want);
    cr_expect_eq(ol, strlen(want));
    free(mp);
    free(out);
}

Test(events_redis, json_msgpack_round_trips)
{
    json_round("[\"ev\",1,-2,3.5,true,false,null]", "[\"ev\",1,-2,3.5,true,false,null]");
    json_round(" {\"a\" : [1, {\"b\":\"\\u00e9\\\"\\n\"}], \"c\":{}} ", "{\"a\":[1,{\"b\":\"\xc3\xa9\\\"\\u000a\"}],\"c\":{}}");
    json_round("[0.1,1e300,-0,1E2,9223372036854775807,-9223372036854775808,9223372036854775808]",
               "[0.1,1e+300,0,100,9223372036854775807,-9223372036854775808,9223372036854775808]");
    json_round("\"\"", "\"\"");
    json_round("[\"a\\u0000b\\ud83d\\ude00\\ud800x\"]", "[\"a\\u0000b\xf0\x9f\x98\x80\xef\xbf\xbdx\"]");
    json_round("18446744073709551615", "18446744073709551615");
    json_round("[[],[[]]]", "[[],[[]]]");
}

Test(events_redis, json_refused)
{
    char *mp;
    size_t ml;
    const char *bad[] = {"", "[1,]", "{\"a\"}", "[1] 2", "[\"\xff\"]", "tru"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(cd_events__redis_json_to_mp(bad[i], strlen(bad[i]), &mp, &ml), -EINVAL, "%s", bad[i]);
}

Test(events_redis, msgpack_special_values)
{
    char *out;
    size_t ol, nbin;
    /* [undefined, {a: undefined, 1: 2}, Date(1700000000123 ms), NaN, bin(01), float32 1.5] */
    unsigned char m[64];
    size_t n = unhex("96" "d40000" "82a161d40000" "0102" "d7ff1d5353006553f100" "cb7ff8000000000000"
                     "c40101" "ca3fc00000", m);
    cr_assert_eq(cd_events__redis_mp_to_json(m, n, &out, &ol, &nbin), 0);
    cr_expect_str_eq(out, "[null,{\"1\":2},\"2023-11-14T22:13:20.123Z\",null,{\"_placeholder\":true,\"num\":0},1.5]");
    cr_expect_eq(nbin, 1);
    free(out);
    /* A 5-byte header claiming 2^32-1 items: refused, nothing allocated for them. */
    n = unhex("ddffffffff", m);
    cr_expect_eq(cd_events__redis_mp_to_json(m, n, &out, &ol, &nbin), -EINVAL);
    /* A string that is not UTF-8, a map key that is an array, 0xc1, truncation, trailing bytes. */
    const char *bad[] = {"a1ff", "8190c0", "c1", "92c0", "c0c0", "d9", "81a161"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = unhex(bad[i], m);
        cr_expect_eq(cd_events__redis_mp_to_json(m, n, &out, &ol, &nbin), -EINVAL, "%s", bad[i]);
    }
    /* Deeper than CD_EVENTS_JSON_DEPTH. */
    memset(m, 0x91, 40);
    m[40] = 0xc0;
    cr_expect_eq(cd_events__redis_mp_to_json(m, 41, &out, &ol, &nbin), -EINVAL);
}

/* ---- real messages in ---- */

Test(events_redis, node_adapter_broadcast_with_binary)
{
    /* socket.to(["r"]).emit("chat", 1, Buffer[1,2]) on a Node server, channel cdtest#/#r# */
    unsigned char m[256];
    size_t n = unhex("93a639553831324383a47479706502a46461746193a46368617401c4020102a36e7370a12f83a5726f6f6d7391a1"
                     "72a665786365707491b4494b47505a63466a536242727853703641414141a5666c61677380",
                     m);
    cd_events_redis_in in;
    cd_events_bus_msg b;
    cr_assert_eq(cd_events__redis_decode(0, "clusterd-x", "/", m, n, &in), 0);
    only_msg(&in, &b);
    cr_assert_eq(b.op, CD_EVENTS_BUS_PACKET);
    cr_assert_eq(b.text_len, strlen("451-[\"chat\",1,{\"_placeholder\":true,\"num\":0}]"));
    cr_assert_eq(memcmp(b.text, "451-[\"chat\",1,{\"_placeholder\":true,\"num\":0}]", b.text_len), 0);
    cr_assert_eq(b.nrooms, 1);
    cr_assert_eq(b.nexcept, 1);
    const unsigned char *cur = b.rooms;
    cr_assert(name_is(&cur, "r"));
    cur = b.except;
    cr_assert(name_is(&cur, "IKGPZcFjSbBrxSp6AAAA"));
    cr_assert_eq(b.nattach, 1);
    const char *d;
    size_t dl;
    cur = b.attach;
    cd_events__bus_attach(&cur, &d, &dl);
    cr_assert(dl == 2 && d[0] == 1 && d[1] == 2);
    cd_events__redis_in_free(&in);
    /* The same uid as ours: skipped (the local bus delivered it). */
    cr_assert_eq(cd_events__redis_decode(0, "9U812C", "/", m, n, &in), 0);
    cr_assert_eq(in.what, CD_EVENTS_RIN_IGNORE);
    /* Another namespace's: not ours. */
    cr_assert_eq(cd_events__redis_decode(0, "x", "/chat", m, n, &in), 0);
    cr_assert_eq(in.what, CD_EVENTS_RIN_IGNORE);
}

Test(events_redis, emitter_broadcast_and_requests)
{
    /* emitter.to("r").emit("em", 2): keys in another order than the adapter's */
    unsigned char m[256];
    size_t n = unhex("93a7656d697474657283a47479706502a46461746192a2656d02a36e7370a12f83a5726f6f6d7391a172a5666c6167"
                     "7380a665786365707490",
                     m);
    cd_events_redis_in in;
    cd_events_bus_msg b;
    cr_assert_eq(cd_events__redis_decode(0, "clusterd-x", "/", m, n, &in), 0);
    only_msg(&in, &b);
    cr_assert_eq(b.text_len, 10);
    cr_assert_eq(memcmp(b.text, "42[\"em\",2]", 10), 0);
    cd_events__redis_in_free(&in);
    /* emitter.in(sid).socketsJoin("k"): JSON, no uid */
    const char *j = "{\"type\":2,\"opts\":{\"rooms\":[\"IKGPZcFjSbBrxSp6AAAA\"],\"except\":[]},\"rooms\":[\"k\",\"m\"]}";
    cr_assert_eq(cd_events__redis_decode(1, "clusterd-x", "/", j, strlen(j), &in), 0);
    cr_assert_eq(in.what, CD_EVENTS_RIN_APPLY);
    size_t off = 0, len;
    const void *msg;
    const char *want[] = {"k", "m"};
    for (int i = 0; i < 2; i++) {
        cr_assert(cd_events__redis_in_next(&in, &off, &msg, &len));
        cr_assert_eq(cd_events__bus_decode(msg, len, &b), 0);
        cr_assert_eq(b.op, CD_EVENTS_BUS_JOIN);
        cr_assert(b.room_len == 1 && b.room[0] == want[i][0]);
        const unsigned char *cur = b.rooms;
        cr_assert(b.nrooms == 1 && name_is(&cur, "IKGPZcFjSbBrxSp6AAAA"));
    }
    cd_events__redis_in_free(&in);
    /* disconnectSockets(true) to room r except s */
    j = "{\"type\":4,\"opts\":{\"rooms\":[\"r\"],\"except\":[\"s\"]},\"close\":true}";
    cr_assert_eq(cd_events__redis_decode(1, "clusterd-x", "/", j, strlen(j), &in), 0);
    only_msg(&in, &b);
    cr_assert(b.op == CD_EVENTS_BUS_DISCONNECT && b.close && b.nrooms == 1 && b.nexcept == 1);
    cd_events__redis_in_free(&in);
    /* allRooms() from a Node server: to answer */
    j = "{\"uid\":\"abc\",\"requestId\":\"q1\",\"type\":1}";
    cr_assert_eq(cd_events__redis_decode(1, "clusterd-x", "/", j, strlen(j), &in), 0);
    cr_assert_eq(in.what, CD_EVENTS_RIN_ANSWER);
    cr_assert_eq(in.type, CD_EVENTS_RREQ_ALL_ROOMS);
    cr_assert_str_eq(in.request_id, "q1");
    cd_events__redis_in_free(&in);
    /* serverSideEmit: ignored */
    j = "{\"uid\":\"abc\",\"type\":6,\"data\":[\"x\"]}";
    cr_assert_eq(cd_events__redis_decode(1, "clusterd-x", "/", j, strlen(j), &in), 0);
    cr_assert_eq(in.what, CD_EVENTS_RIN_IGNORE);
    cr_assert_eq(in.type, CD_EVENTS_RREQ_SERVER_SIDE_EMIT);
}

/* ---- what we publish, decoded back ---- */

Test(events_redis, our_packet_round_trips_and_our_uid_is_skipped)
{
    const char *text = "452-/chat,[\"up\",{\"_placeholder\":true,\"num\":0},[{\"_placeholder\":true,\"num\":1}],7]";
    const char *att[] = {"\x00\xff", ""};
    size_t al[] = {2, 0};
    cd_events_packet p = {.text = text, .text_len = strlen(text), .nattach = 2, .attach = att, .attach_len = al};
    const char *rooms[] = {"a", "b"}, *except[] = {"c"};
    size_t rl[] = {1, 1}, el[] = {1};
    cd_events_target t = {.nsp = 0, .nrooms = 2, .rooms = rooms, .room_lens = rl, .nexcept = 1, .except = except,
                          .except_lens = el};
    cd_events_bus_op op = {.op = CD_EVENTS_BUS_PACKET, .packet = &p};
    cd_events_redis_out o;
    cr_assert_eq(cd_events__redis_encode("clusterd-A", "/chat", &t, &op, &o), 0);
    cr_assert_not(o.request);
    cd_events_redis_in in;
    cd_events_bus_msg b;
    cr_assert_eq(cd_events__redis_decode(0, "clusterd-A", "/chat", o.msg, o.len, &in), 0);
    cr_assert_eq(in.what, CD_EVENTS_RIN_IGNORE);
    cr_assert_eq(cd_events__redis_decode(0, "clusterd-B", "/chat", o.msg, o.len, &in), 0);
    only_msg(&in, &b);
    cr_assert_eq(b.text_len, strlen(text));
    cr_assert_eq(memcmp(b.text, text, b.text_len), 0);
    cr_assert(b.nrooms == 2 && b.nexcept == 1 && b.nattach == 2);
    const unsigned char *cur = b.attach;
    const char *d;
    size_t dl;
    cd_events__bus_attach(&cur, &d, &dl);
    cr_assert(dl == 2 && memcmp(d, "\x00\xff", 2) == 0);
    cd_events__bus_attach(&cur, &d, &dl);
    cr_assert_eq(dl, 0);
    cd_events__redis_in_free(&in);
    free(o.msg);
    /* A join: a request, decoded back to the same join. */
    cd_events_bus_op j = {.op = CD_EVENTS_BUS_JOIN, .room = "lobby", .room_len = 5};
    cr_assert_eq(cd_events__redis_encode("clusterd-A", "/chat", &t, &j, &o), 0);
    cr_assert(o.request);
    cr_assert_eq(cd_events__redis_decode(1, "clusterd-A", "/chat", o.msg, o.len, &in), 0);
    cr_assert_eq(in.what, CD_EVENTS_RIN_IGNORE);
    cr_assert_eq(cd_events__redis_decode(1, "clusterd-B", "/chat", o.msg, o.len, &in), 0);
    only_msg(&in, &b);
    cr_assert(b.op == CD_EVENTS_BUS_JOIN && b.room_len == 5 && b.nrooms == 2 && b.nexcept == 1);
    cd_events__redis_in_free(&in);
    free(o.msg);
    /* Not an event: refused. */
    cd_events_packet ack = {.text = "431[]", .text_len = 5};
    op.packet = &ack;
    cr_assert_eq(cd_events__redis_encode("clusterd-A", "/", &t, &op, &o), -EINVAL);
}

Test(events_redis, hostile_broadcasts)
{
    unsigned char m[64];
    cd_events_redis_in in;
    /* not an array; an array of 2; a packet that is not a map; a room that is a map; a placeholder
     * object beside a bin (two placeholders numbered 0) */
    const char *bad[] = {"c0", "92a178a178", "93a17890c0", "93a17883a47479706502a46461746191a161a36e7370a12f81a5726f6f6d739180",
                         "93a17883a47479706502a46461746193a16182ac5f706c616365686f6c646572c3a36e756d00c40101a36e7370a12f80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = unhex(bad[i], m);
        cr_expect_eq(cd_events__redis_decode(0, "u", "/", m, n, &in), -EINVAL, "%s", bad[i]);
    }
}

/* ---- a host name looked up off the loop (lookup.c) ---- */

static void woken(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)revents;
    *(int *)w->data = 1;
    ev_break(loop, EVBREAK_ALL);
}

static void give_up(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

Test(events_redis, host_lookup_in_a_thread)
{
    cr_assert(cd_events__is_numeric_host("127.0.0.1"));
    cr_assert(cd_events__is_numeric_host("::1"));
    cr_assert_not(cd_events__is_numeric_host("localhost"));
    cr_assert_not(cd_events__is_numeric_host("10.0.0"));

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int got = 0;
    ev_async wake;
    ev_async_init(&wake, woken);
    wake.data = &got;
    ev_async_start(loop, &wake);
    ev_timer bound;
    ev_timer_init(&bound, give_up, 10., 0.);
    ev_timer_start(loop, &bound);
    cd_events_lookup *l = cd_events__lookup_start(loop, &wake, "localhost");
    cr_assert_not_null(l);
    ev_run(loop, 0);
    cr_assert(got, "the loop was woken when the answer came in");
    char addr[64];
    cr_assert_eq(cd_events__lookup_result(l, addr, sizeof addr), 0);
    cr_assert(strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0, "localhost is %s", addr);
    cd_events__lookup_free(l);

    /* Given up while it may still run: its thread frees it (whichever of
     * the two ends first; the ASan build checks no one touches it after). */
    l = cd_events__lookup_start(loop, &wake, "localhost");
    cr_assert_not_null(l);
    cd_events__lookup_free(l);
    ev_timer_stop(loop, &bound);
    ev_timer_set(&bound, 0.2, 0.);
    ev_timer_start(loop, &bound);
    ev_run(loop, 0);
    ev_async_stop(loop, &wake);
    ev_loop_destroy(loop);
}
