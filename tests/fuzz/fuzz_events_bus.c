/*
 * fuzz_events_bus.c - the events service's bus messages through
 * cd_events__bus_decode (services/events/bus_proto.c), what every worker
 * runs on every message the master relays: the master relays whatever any
 * worker pushed, so a worker must survive any bytes.
 *
 * Invariants: no crash or out-of-bounds read; a message that decodes has
 * its namespace, every name, its text and every attachment inside the
 * input, within the limits of events.h (names of at most
 * CD_EVENTS_ROOM_MAX bytes, a namespace starting with '/', lists of at
 * most CD_EVENTS_BUS_LIST_MAX, attachments at most
 * CD_EVENTS_BUS_ATTACH_MAX), and encodes back to exactly the input (the
 * format has one spelling per message, so nothing the decoder accepts is
 * ambiguous); its proper prefixes (a few are tried) do not decode.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/events/events.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            abort();                                                                                         \
    } while (0)

#define INSIDE(ptr, len, data, size)                                                                         \
    ((const uint8_t *)(ptr) >= (data) && (const uint8_t *)(ptr) + (len) <= (data) + (size))

/* Walks count names from first into names/lens, checking each. */
static void take_names(const unsigned char *first, size_t count, const char **names, size_t *lens,
                       const uint8_t *data, size_t size)
{
    const unsigned char *cur = first;
    for (size_t i = 0; i < count; i++) {
        CHECK(INSIDE(cur, 1, data, size));
        cd_events__bus_name(&cur, &names[i], &lens[i]);
        CHECK(lens[i] <= CD_EVENTS_ROOM_MAX && INSIDE(names[i], lens[i], data, size));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cd_events_bus_msg m;
    if (cd_events__bus_decode(data, size, &m) < 0)
        return 0;
    CHECK(m.nsp_len >= 1 && m.nsp_len <= CD_EVENTS_ROOM_MAX && m.nsp[0] == '/' &&
          INSIDE(m.nsp, m.nsp_len, data, size));
    CHECK(m.nrooms <= CD_EVENTS_BUS_LIST_MAX && m.nexcept <= CD_EVENTS_BUS_LIST_MAX);
    const char **names = malloc((m.nrooms + m.nexcept + 1) * sizeof *names);
    size_t *lens = malloc((m.nrooms + m.nexcept + 1) * sizeof *lens);
    const char **att = malloc((m.nattach + 1) * sizeof *att);
    size_t *att_lens = malloc((m.nattach + 1) * sizeof *att_lens);
    CHECK(names && lens && att && att_lens);
    take_names(m.rooms, m.nrooms, names, lens, data, size);
    take_names(m.except, m.nexcept, names + m.nrooms, lens + m.nrooms, data, size);
    cd_events_target t = {.nrooms = m.nrooms, .rooms = names, .room_lens = lens, .nexcept = m.nexcept,
                          .except = names + m.nrooms, .except_lens = lens + m.nrooms};
    cd_events_packet p = {.text = m.text, .text_len = m.text_len, .nattach = m.nattach, .attach = att,
                          .attach_len = att_lens};
    cd_events_bus_op op = {.op = m.op, .packet = &p, .room = m.room, .room_len = m.room_len, .close = m.close};
    switch (m.op) {
    case CD_EVENTS_BUS_PACKET: {
        CHECK(m.text_len >= 1 && INSIDE(m.text, m.text_len, data, size));
        CHECK(m.nattach <= CD_EVENTS_BUS_ATTACH_MAX);
        const unsigned char *cur = m.attach;
        for (size_t i = 0; i < m.nattach; i++) {
            CHECK(INSIDE(cur, 4, data, size));
            cd_events__bus_attach(&cur, &att[i], &att_lens[i]);
            CHECK(INSIDE(att[i], att_lens[i], data, size));
        }
        CHECK(cur == data + size);
        break;
    }
    case CD_EVENTS_BUS_JOIN:
    case CD_EVENTS_BUS_LEAVE:
        CHECK(m.room_len >= 1 && m.room_len <= CD_EVENTS_ROOM_MAX && INSIDE(m.room, m.room_len, data, size));
        break;
    case CD_EVENTS_BUS_DISCONNECT:
        CHECK(m.close == 0 || m.close == 1);
        break;
    default:
        abort();
    }
    uint8_t *again = malloc(size);
    CHECK(again);
    CHECK(cd_events__bus_encode(NULL, 0, m.nsp, m.nsp_len, &t, &op) == (long)size);
    CHECK(cd_events__bus_encode(again, size, m.nsp, m.nsp_len, &t, &op) == (long)size);
    CHECK(memcmp(again, data, size) == 0);
    CHECK(cd_events__bus_encode(again, size - 1, m.nsp, m.nsp_len, &t, &op) == -EMSGSIZE);
    /* Cutting it anywhere leaves a message that does not decode (a few
     * cuts: all of them would make the run quadratic). */
    cd_events_bus_msg m2;
    size_t cuts[] = {0, 1, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        CHECK(cd_events__bus_decode(again, cuts[i], &m2) == -EINVAL);
    free(again);
    free(names);
    free(lens);
    free(att);
    free(att_lens);
    return 0;
}
