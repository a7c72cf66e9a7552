/*
 * fuzz_events_redis.c - the Redis adapter's codecs (services/events/
 * redis_msg.c, redis_json.c): what every worker with adapter = redis runs
 * on every message from Redis, where anyone who can PUBLISH is heard.
 *
 * The first byte picks what the rest goes through:
 *   0, 1  cd_events__redis_decode of a broadcast (0) or request (1) of
 *         namespace "/" (even) or "/chat" (odd second byte... see below);
 *   2     cd_events__redis_mp_to_json;
 *   3     cd_events__redis_json_to_mp;
 *   4     cd_events__redis_uri_parse (the rest as a C string).
 * Invariants: no crash, leak or out-of-bounds read; every bus message an
 * APPLY holds decodes (cd_events__bus_decode), and a PACKET's text parses
 * as a client's packet would (so nothing malformed reaches a client) and
 * survives our own encode then decode unchanged (text, attachments); the
 * JSON the converter writes converts back and forth to the same JSON
 * (msgpack -> JSON -> msgpack -> JSON, and JSON -> msgpack -> JSON ->
 * msgpack -> JSON, are fixed points after one round).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/events/redis.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            abort();                                                                                         \
    } while (0)

/* A PACKET we would apply goes back out and in unchanged. */
static void packet_round_trip(const cd_events_bus_msg *m)
{
    cd_sio_packet sp;
    CHECK(m->text_len >= 2 && m->text[0] == '4');
    CHECK(cd_events__sio_parse(m->text + 1, m->text_len - 1, &sp) == 0);
    const char *att[CD_EVENTS_BUS_ATTACH_MAX];
    size_t al[CD_EVENTS_BUS_ATTACH_MAX];
    const unsigned char *cur = m->attach;
    CHECK(m->nattach <= CD_EVENTS_BUS_ATTACH_MAX);
    for (size_t i = 0; i < m->nattach; i++)
        cd_events__bus_attach(&cur, &att[i], &al[i]);
    cd_events_packet p = {.text = m->text, .text_len = m->text_len, .nattach = m->nattach, .attach = att,
                          .attach_len = al};
    cd_events_bus_op op = {.op = CD_EVENTS_BUS_PACKET, .packet = &p};
    cd_events_target t = {0};
    char nsp[CD_EVENTS_ROOM_MAX + 1];
    memcpy(nsp, m->nsp, m->nsp_len);
    nsp[m->nsp_len] = '\0';
    cd_events_redis_out o;
    int rc = cd_events__redis_encode("us", nsp, &t, &op, &o);
    if (rc == -ENOMEM)
        return;
    CHECK(rc == 0);
    cd_events_redis_in in;
    rc = cd_events__redis_decode(0, "them", nsp, o.msg, o.len, &in);
    free(o.msg);
    if (rc == -ENOMEM)
        return;
    CHECK(rc == 0 && in.what == CD_EVENTS_RIN_APPLY);
    size_t off = 0, len;
    const void *msg;
    cd_events_bus_msg b;
    CHECK(cd_events__redis_in_next(&in, &off, &msg, &len) && cd_events__bus_decode(msg, len, &b) == 0);
    CHECK(b.text_len == m->text_len && memcmp(b.text, m->text, b.text_len) == 0 && b.nattach == m->nattach);
    const unsigned char *c2 = b.attach;
    for (size_t i = 0; i < b.nattach; i++) {
        const char *d;
        size_t dl;
        cd_events__bus_attach(&c2, &d, &dl);
        CHECK(dl == al[i] && (!dl || memcmp(d, att[i], dl) == 0));
    }
    cd_events__redis_in_free(&in);
}

static void decode(int request, const char *nsp, const uint8_t *data, size_t size)
{
    cd_events_redis_in in;
    if (cd_events__redis_decode(request, "clusterd-0", nsp, data, size, &in) < 0)
        return;
    size_t off = 0, len;
    const void *msg;
    cd_events_bus_msg m;
    if (in.what == CD_EVENTS_RIN_IGNORE)
        CHECK(in.len == 0);
    while (cd_events__redis_in_next(&in, &off, &msg, &len)) {
        CHECK(off <= in.len);
        CHECK(cd_events__bus_decode(msg, len, &m) == 0);
        CHECK(m.nsp_len == strlen(nsp) && memcmp(m.nsp, nsp, m.nsp_len) == 0);
        if (in.what == CD_EVENTS_RIN_APPLY && m.op == CD_EVENTS_BUS_PACKET)
            packet_round_trip(&m);
    }
    CHECK(off == in.len);
    cd_events__redis_in_free(&in);
}

/* JSON j (from our writer) -> msgpack -> JSON: the same text. */
static void json_fixed_point(const char *j, size_t jl)
{
    char *mp, *j2;
    size_t ml, l2, nbin;
    int rc = cd_events__redis_json_to_mp(j, jl, &mp, &ml);
    if (rc == -ENOMEM)
        return;
    CHECK(rc == 0);
    rc = cd_events__redis_mp_to_json(mp, ml, &j2, &l2, &nbin);
    free(mp);
    if (rc == -ENOMEM)
        return;
    CHECK(rc == 0 && nbin == 0 && l2 == jl && memcmp(j2, j, jl) == 0);
    free(j2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++, size--;
    switch (mode % 5) {
    case 0:
    case 1:
        decode(mode % 5, mode & 0x80 ? "/chat" : "/", data, size);
        break;
    case 2: {
        char *j;
        size_t jl, nbin;
        if (cd_events__redis_mp_to_json(data, size, &j, &jl, &nbin) == 0) {
            CHECK(strlen(j) == jl);
            if (!nbin)
                json_fixed_point(j, jl);
            free(j);
        }
        break;
    }
    case 3: {
        char *mp, *j;
        size_t ml, jl, nbin;
        if (cd_events__redis_json_to_mp((const char *)data, size, &mp, &ml) < 0)
            break;
        if (cd_events__redis_mp_to_json(mp, ml, &j, &jl, &nbin) == 0) {
            CHECK(nbin == 0);
            json_fixed_point(j, jl);
            free(j);
        }
        free(mp);
        break;
    }
    default: {
        char *s = malloc(size + 1);
        if (!s)
            return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        cd_events_redis_uri u;
        if (cd_events__redis_uri_parse(s, &u) == 0)
            CHECK(u.is_unix ? u.path[0] == '/' : (u.host[0] && u.port > 0 && u.port < 65536));
        free(s);
    }
    }
    return 0;
}
