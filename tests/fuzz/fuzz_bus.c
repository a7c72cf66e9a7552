/*
 * fuzz_bus.c - a message from the cross-worker bus as a worker takes it:
 * the envelope of ipc/bus.c (cd_bus_unwrap: which service, what payload),
 * then, for the events service, the message inside it
 * (cd_events__bus_decode and the name walk that on_bus does).  The master
 * relays whatever any worker pushed, so every worker must survive any bytes
 * on bus-out.
 *
 * The input is one bus message.  Invariants: an envelope that unwraps has
 * its name and payload inside the message and wraps back to the same bytes
 * (and does not fit one byte less); an events message that decodes has
 * its namespace and every name inside the payload.  No crash, leak or
 * out-of-bounds read on anything.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/bus.h"
#include "services/events/events.h"

/* The events service's message inside: everything it points at lies
 * within the payload (fuzz_events_bus.c checks the rest of its decoder). */
static void check_events(const uint8_t *p, size_t len)
{
    cd_events_bus_msg m;
    if (cd_events__bus_decode(p, len, &m) < 0)
        return;
    const uint8_t *end = p + len;
    const unsigned char *lists[2] = {m.rooms, m.except};
    size_t counts[2] = {m.nrooms, m.nexcept};
    for (int k = 0; k < 2; k++) {
        const unsigned char *cur = lists[k];
        for (size_t i = 0; i < counts[k]; i++) {
            const char *name;
            size_t nl;
            cd_events__bus_name(&cur, &name, &nl);
            if ((const uint8_t *)name < p || (const uint8_t *)name + nl > end)
                abort();
        }
    }
    if ((const uint8_t *)m.nsp < p || (const uint8_t *)m.nsp + m.nsp_len > end)
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
    check_events(payload, plen);
    return 0;
}
