/*
 * eio_payload.c - Engine.IO v4 polling payloads, both ways (pure: no
 * socket, no loop; any process, and the unit tests and fuzz target).
 *
 * Over HTTP long-polling a request or answer body carries several
 * Engine.IO packets joined by the record separator \x1e.  A text packet is
 * its type digit followed by its data ("42[...]", "3", "2probe"); a binary
 * packet (a Socket.IO attachment) travels as "b" followed by its bytes in
 * standard base64, since a v4 payload is text only.  engine.io-parser's
 * encodePayload/decodePayload are the reference.
 *
 * Decoding checks everything before the caller dispatches anything, so a
 * bad body is refused whole: an empty packet, a type that is not a digit
 * 0-6, base64 that does not decode, or a body over the limit (Engine.IO's
 * maxPayload).  Text packets point into the body; binary ones are decoded
 * into one scratch buffer the size of the body (base64 only shrinks).
 *
 * Encoding appends one packet at a time to a growing buffer: polling.c
 * keeps a client's queue in its encoded form, so a long-poll is answered
 * with the buffer as it stands, and an upgrade to WebSocket decodes the
 * same buffer back into packets.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/events/events.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

long cd_events__b64_decode(const char *in, size_t len, unsigned char *out)
{
    /* Padding is optional (Node's decoder takes both); where it is given it
     * must be right: one or two '=' that complete the last quantum. */
    size_t pad = 0;
    while (pad < 2 && len > 0 && in[len - 1] == '=')
        len--, pad++;
    if (pad && (len + pad) % 4 != 0)
        return -EINVAL;
    if (len % 4 == 1)
        return -EINVAL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* The leftover bits of a short last quantum must be zero (canonical). */
    if (bits && (acc & ((1u << bits) - 1)))
        return -EINVAL;
    return (long)o;
}

size_t cd_events__b64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

/* Checks one packet [p, p + len) and fills *pkt (binary data decoded at
 * scratch).  Returns the bytes of scratch used, or -EINVAL. */
static long decode_one(const char *p, size_t len, unsigned char *scratch, cd_eio_packet *pkt)
{
    if (len == 0)
        return -EINVAL;
    if (p[0] == 'b') {
        long n = cd_events__b64_decode(p + 1, len - 1, scratch);
        if (n < 0)
            return n;
        pkt->binary = 1;
        pkt->data = (const char *)scratch;
        pkt->len = (size_t)n;
        return n;
    }
    if (p[0] < '0' || p[0] > '6')
        return -EINVAL;
    pkt->binary = 0;
    pkt->data = p;
    pkt->len = len;
    return 0;
}

int cd_events__payload_decode(const char *body, size_t len, size_t max, cd_eio_payload *out)
{
    memset(out, 0, sizeof *out);
    if (len > max)
        return -EMSGSIZE;
    if (len == 0)
        return -EINVAL;
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += body[i] == '\x1e';
    out->pkts = calloc(n, sizeof *out->pkts);
    out->scratch = malloc(len);
    if (!out->pkts || !out->scratch) {
        cd_events__payload_free(out);
        return -ENOMEM;
    }
    size_t used = 0;
    const char *p = body, *end = body + len;
    for (size_t k = 0; k < n; k++) {
        const char *sep = memchr(p, '\x1e', (size_t)(end - p));
        size_t plen = sep ? (size_t)(sep - p) : (size_t)(end - p);
        long u = decode_one(p, plen, (unsigned char *)out->scratch + used, &out->pkts[k]);
        if (u < 0) {
            cd_events__payload_free(out);
            return (int)u;
        }
        used += (size_t)u;
        p += plen + 1;
    }
    out->n = n;
    return 0;
}

void cd_events__payload_free(cd_eio_payload *p)
{
    free(p->pkts);
    free(p->scratch);
    memset(p, 0, sizeof *p);
}

size_t cd_events__payload_size(int binary, size_t len)
{
    return 1 + (binary ? 1 + (len + 2) / 3 * 4 : len); /* with the separator */
}

int cd_events__payload_put(cd_eio_buf *b, int binary, const char *data, size_t len)
{
    size_t need = cd_events__payload_size(binary, len);
    if (b->len + need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + need)
            cap *= 2;
        char *n = realloc(b->p, cap);
        if (!n)
            return -ENOMEM;
        b->p = n;
        b->cap = cap;
    }
    if (b->len)
        b->p[b->len++] = '\x1e';
    if (binary) {
        b->p[b->len++] = 'b';
        b->len += cd_events__b64_encode((const unsigned char *)data, len, b->p + b->len);
    } else {
        memcpy(b->p + b->len, data, len);
        b->len += len;
    }
    return 0;
}

void cd_events__payload_reset(cd_eio_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
