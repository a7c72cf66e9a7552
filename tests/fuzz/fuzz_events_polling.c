/*
 * fuzz_events_polling.c - Engine.IO v4 polling payloads as clients POST
 * them (services/events/eio_payload.c), and the sids of polling requests
 * (engineio.c's cd_events__sid_worker, which the steer hook runs on every
 * request's query before its body is read).
 *
 * Input: one byte that picks the limit (times 16; 0: none), then the
 * body, which is also tried as a sid.
 *
 * Besides "no crash, no out-of-bounds read", the invariants polling.c
 * relies on:
 *   - a body over the limit is refused whatever it holds;
 *   - an accepted body has at least one packet, no empty packet, text
 *     packets lie within the body and start with a type digit 0-6, and the
 *     decoded binary packets fit in the body's length;
 *   - encoding the decoded packets again (the queue's form) and decoding
 *     that gives the same packets, in order;
 *   - a sid that names a worker is CD_EVENTS_SID_LEN characters, and a new
 *     sid for that worker names it again.
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

static void check_roundtrip(const cd_eio_payload *pl)
{
    cd_eio_buf b = {0};
    for (size_t i = 0; i < pl->n; i++)
        CHECK(cd_events__payload_put(&b, pl->pkts[i].binary, pl->pkts[i].data, pl->pkts[i].len) == 0);
    cd_eio_payload again;
    CHECK(cd_events__payload_decode(b.p, b.len, b.len, &again) == 0);
    CHECK(again.n == pl->n);
    for (size_t i = 0; i < pl->n; i++) {
        CHECK(again.pkts[i].binary == pl->pkts[i].binary);
        CHECK(again.pkts[i].len == pl->pkts[i].len);
        CHECK(pl->pkts[i].len == 0 || memcmp(again.pkts[i].data, pl->pkts[i].data, pl->pkts[i].len) == 0);
    }
    cd_events__payload_free(&again);
    cd_events__payload_reset(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* The first byte picks the limit (0: none), the rest is the body. */
    size_t max = data[0] ? (size_t)data[0] * 16 : SIZE_MAX;
    const char *body = (const char *)data + 1;
    size--;
    cd_eio_payload pl;
    int rc = cd_events__payload_decode(body, size, max, &pl);
    if (size > max)
        CHECK(rc == -EMSGSIZE);
    if (rc == 0) {
        CHECK(pl.n >= 1);
        size_t bin = 0;
        for (size_t i = 0; i < pl.n; i++) {
            const cd_eio_packet *p = &pl.pkts[i];
            if (p->binary) {
                bin += p->len;
            } else {
                CHECK(p->len >= 1 && p->data[0] >= '0' && p->data[0] <= '6');
                CHECK(p->data >= body && p->data + p->len <= body + size);
                CHECK(memchr(p->data, '\x1e', p->len) == NULL);
            }
        }
        CHECK(bin <= size);
        check_roundtrip(&pl);
        cd_events__payload_free(&pl);
    } else {
        CHECK(rc == -EINVAL || rc == -EMSGSIZE);
        CHECK(pl.pkts == NULL);
    }

    uint32_t w = cd_events__sid_worker(body, size);
    if (w) {
        CHECK(size == CD_EVENTS_SID_LEN);
        char sid[CD_EVENTS_SID_LEN + 1];
        cd_events__session_id(w, sid);
        CHECK(cd_events__sid_worker(sid, CD_EVENTS_SID_LEN) == w);
    }
    return 0;
}
