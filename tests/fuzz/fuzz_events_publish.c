/*
 * fuzz_events_publish.c - the bodies of the events service's backend
 * endpoints (POST {route}/publish, /join, /leave, /disconnect) through
 * cd_events__cmd_parse (services/events/bus_proto.c), the function
 * backend.c uses to check a body; every input is parsed as the body of
 * each of the four endpoints.
 *
 * Invariants: a refused body gets -EINVAL, -ENOENT, -EMSGSIZE or -ENOMEM
 * with a reason and no packet.  An accepted one yields a namespace a
 * config could hold, a target of at most CD_EVENTS_TARGET_MAX names (and
 * as many except) of 1 to CD_EVENTS_ROOM_MAX bytes, valid UTF-8 without
 * NUL; for publish a packet that is valid UTF-8 (it goes to clients in
 * text frames), within max_message_size, and a well-formed Socket.IO
 * EVENT of that namespace whose name is not a reserved one: exactly what a
 * client may receive; for join and leave a room name like the target's.
 * And what it yields encodes onto the bus and decodes back to the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "services/events/events.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            abort();                                                                                         \
    } while (0)

static void check_name(const char *s, size_t len)
{
    CHECK(len >= 1 && len <= CD_EVENTS_ROOM_MAX && strnlen(s, len + 1) == len && cd_utf8_valid(s, len));
}

static void check_packet(const cd_events_cmd *o, size_t max)
{
    CHECK(o->packet && o->packet_len <= max && o->packet_len > 2);
    CHECK(cd_utf8_valid(o->packet, o->packet_len));
    /* "4" + Socket.IO EVENT, like every message a client gets. */
    CHECK(o->packet[0] == '4');
    cd_sio_packet s;
    CHECK(cd_events__sio_parse(o->packet + 1, o->packet_len - 1, &s) == 0);
    CHECK(s.type == CD_SIO_EVENT && s.ack_id == -1);
    CHECK(s.nsp_len == o->nsp_len && memcmp(s.nsp, o->nsp, o->nsp_len) == 0);
    const char *e = cd_events__json_skip(s.data, o->packet + o->packet_len, CD_EVENTS_JSON_DEPTH);
    CHECK(e == o->packet + o->packet_len);
    char name[16];
    int n = cd_events__json_string(s.name, s.name + s.name_len, name, sizeof name, NULL);
    CHECK(n != 0 && (n < 0 || !cd_events__reserved_event(name)));
}

/* The bus carries it unchanged. */
static void check_bus(const cd_events_cmd *o)
{
    cd_events_target t = {.nrooms = o->nrooms, .rooms = o->rooms, .room_lens = o->room_lens,
                          .nexcept = o->nexcept, .except = o->except, .except_lens = o->except_lens};
    cd_events_packet p = {.text = o->packet, .text_len = o->packet_len};
    static const int ops[] = {CD_EVENTS_BUS_PACKET, CD_EVENTS_BUS_JOIN, CD_EVENTS_BUS_LEAVE,
                              CD_EVENTS_BUS_DISCONNECT};
    cd_events_bus_op op = {.op = ops[o->cmd], .packet = &p, .room = o->room, .room_len = o->room_len,
                           .close = o->close};
    long n = cd_events__bus_encode(NULL, 0, o->nsp, o->nsp_len, &t, &op);
    CHECK(n > 0);
    char *buf = malloc((size_t)n);
    CHECK(buf);
    CHECK(cd_events__bus_encode(buf, (size_t)n, o->nsp, o->nsp_len, &t, &op) == n);
    cd_events_bus_msg m;
    CHECK(cd_events__bus_decode(buf, (size_t)n, &m) == 0);
    CHECK(m.op == op.op && m.nrooms == o->nrooms && m.nexcept == o->nexcept);
    CHECK(m.nsp_len == o->nsp_len && memcmp(m.nsp, o->nsp, o->nsp_len) == 0);
    const unsigned char *cur = m.rooms;
    for (size_t i = 0; i < m.nrooms + m.nexcept; i++) {
        const char *nm;
        size_t l;
        cd_events__bus_name(&cur, &nm, &l);
        const char *want = i < m.nrooms ? o->rooms[i] : o->except[i - m.nrooms];
        size_t wl = i < m.nrooms ? o->room_lens[i] : o->except_lens[i - m.nrooms];
        CHECK(l == wl && memcmp(nm, want, l) == 0);
    }
    if (op.op == CD_EVENTS_BUS_PACKET)
        CHECK(m.text_len == o->packet_len && memcmp(m.text, o->packet, m.text_len) == 0 && m.nattach == 0);
    else if (op.op == CD_EVENTS_BUS_DISCONNECT)
        CHECK(m.close == o->close);
    else
        CHECK(m.room_len == o->room_len && memcmp(m.room, o->room, m.room_len) == 0);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t max = 4096; /* small, so the size limit is reached too */
    static cd_events_cmd o;  /* 16 kB: not on the stack */
    for (int cmd = CD_EVENTS_CMD_PUBLISH; cmd <= CD_EVENTS_CMD_DISCONNECT; cmd++) {
        const char *why = NULL;
        int rc = cd_events__cmd_parse(cmd, (const char *)data, size, max, &o, &why);
        if (rc < 0) {
            CHECK(rc == -EINVAL || rc == -ENOENT || rc == -EMSGSIZE || rc == -ENOMEM);
            CHECK(why && *why && !o.packet);
            cd_events__cmd_free(&o);
            continue;
        }
        CHECK(rc == 0 && o.cmd == cmd);
        CHECK(o.nsp_len >= 1 && o.nsp_len <= CD_EVENTS_ROOM_MAX && o.nsp[0] == '/' &&
              strlen(o.nsp) == o.nsp_len && !memchr(o.nsp, ',', o.nsp_len));
        CHECK(o.nrooms <= CD_EVENTS_TARGET_MAX && o.nexcept <= CD_EVENTS_TARGET_MAX);
        for (size_t i = 0; i < o.nrooms; i++)
            check_name(o.rooms[i], o.room_lens[i]);
        for (size_t i = 0; i < o.nexcept; i++)
            check_name(o.except[i], o.except_lens[i]);
        if (cmd == CD_EVENTS_CMD_PUBLISH)
            check_packet(&o, max);
        else
            CHECK(!o.packet);
        if (cmd == CD_EVENTS_CMD_JOIN || cmd == CD_EVENTS_CMD_LEAVE)
            check_name(o.room, o.room_len);
        if (cmd == CD_EVENTS_CMD_DISCONNECT)
            CHECK(o.close == 0 || o.close == 1);
        check_bus(&o);
        cd_events__cmd_free(&o);
    }
    return 0;
}
