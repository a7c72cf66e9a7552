/*
 * fuzz_bus.c - a message from the cross-worker bus as a worker takes it:
 * the envelope of ipc/bus.c (cd_bus_unwrap: which service, what payload),
 * then, for the events service, the room broadcast inside it
 * (cd_events__bcast_decode and the room walk that on_bus does).  The master
 * relays whatever any worker pushed, so every worker must survive any bytes
 * on bus-out.
 *
 * The input is one bus message.  Invariants: an envelope that unwraps has
 * its name and payload inside the message and wraps back to the same bytes
 * (and does not fit one byte less); a broadcast that decodes has its sid,
 * every room and the packet inside the payload.  No crash, leak or
 * out-of-bounds read on anything.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/bus.h"
#include "services/events/events.h"

static void check_bcast(const uint8_t *p, size_t len)
{
    cd_events_bcast b;
    if (cd_events__bcast_decode(p, len, &b) < 0)
        return;
    const uint8_t *end = p + len;
    if ((const uint8_t *)b.except < p || (const uint8_t *)b.except + b.except_len > end)
        abort();
    const unsigned char *cur = b.rooms;
    for (size_t i = 0; i < b.nrooms; i++) {
        const char *name;
        size_t nl;
        if (cur + 2 > end)
            abort();
        cd_events__bcast_room(&cur, &name, &nl);
        if ((const uint8_t *)name < p || (const uint8_t *)name + nl > end || cur > end)
            abort();
    }
    if ((const uint8_t *)b.packet != cur || (const uint8_t *)b.packet + b.packet_len != end)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *name;
    const void *payload;
    size_t plen;
    if (cd_bus_unwrap(data, size, &name, &payload, &plen) < 0) {
        if (size && memchr(data, '\0', size))
            abort(); /* refused a message that has a name */
        return 0;
    }
    size_t nl = strlen(name);
    if (name != (const char *)data || nl >= size || (const uint8_t *)payload != data + nl + 1 ||
        plen != size - nl - 1)
        abort();
    uint8_t *again = malloc(size);
    if (!again)
        return 0;
    long n = cd_bus_wrap(again, size, name, payload, plen);
    if (n != (long)size || memcmp(again, data, size) != 0)
        abort();
    if (cd_bus_wrap(again, size - 1, name, payload, plen) != -EMSGSIZE)
        abort();
    free(again);
    check_bcast(payload, plen);
    return 0;
}
