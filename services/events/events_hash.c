/*
 * events_hash.c - SipHash-2-4 (Aumasson and Bernstein, 2012), the keyed
 * hash of the events service's room table (worker, on its loop; also the
 * unit tests).
 *
 * Room names come from clients.  With an unkeyed hash (FNV-1a before this)
 * anyone can compute names that share a bucket and turn every join, leave
 * and broadcast lookup into a walk of one long chain.  SipHash with a
 * secret 128-bit key, drawn from getrandom() when the service starts in a
 * worker, makes such names impossible to choose from outside; it is the
 * hash Python, Rust and the Linux kernel use for the same reason.
 *
 * Pure function: no state, no allocation, any input length.
 */
#include <stdint.h>
#include <string.h>

#include "services/events/events.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                             \
    do {                                                                                                     \
        v0 += v1;                                                                                            \
        v1 = ROTL(v1, 13);                                                                                   \
        v1 ^= v0;                                                                                            \
        v0 = ROTL(v0, 32);                                                                                   \
        v2 += v3;                                                                                            \
        v3 = ROTL(v3, 16);                                                                                   \
        v3 ^= v2;                                                                                            \
        v0 += v3;                                                                                            \
        v3 = ROTL(v3, 21);                                                                                   \
        v3 ^= v0;                                                                                            \
        v2 += v1;                                                                                            \
        v1 = ROTL(v1, 17);                                                                                   \
        v1 ^= v2;                                                                                            \
        v2 = ROTL(v2, 32);                                                                                   \
    } while (0)

/* Little-endian load, whatever the host's byte order and alignment. */
static uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

uint64_t cd_events__siphash(const unsigned char key[16], const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t k0 = load64(key), k1 = load64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    size_t whole = len - len % 8;

    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    /* The last block: the remaining bytes, and the length's low byte on top. */
    unsigned char last[8] = {0};
    if (len % 8)
        memcpy(last, in + whole, len % 8);
    uint64_t b = (uint64_t)len << 56 | load64(last);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}
