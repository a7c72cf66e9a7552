/*
 * ws_frame.c - the parts of a WebSocket that need no connection (worker,
 * loop thread; compiled into the modules with websocket.c): the opening
 * handshake's checks (public, clusterd/websocket.h), the frame header of a
 * server message (websocket.c writes a message to an idle peer itself),
 * and following the frame boundaries of a client's input, so websocket.c
 * knows when wslay holds nothing of it and its context can go.  wslay
 * still parses and checks every frame; this only counts lengths.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "clusterd/websocket.h"
#include "ws_frame.h"

/* ---- the opening handshake ---- */

int cd_ws_accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char raw[20], dec[20], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[24 + sizeof guid];

    if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return -EINVAL;
    /* "==" padding means 16 bytes; EVP_DecodeBlock counts the padding too. */
    if (EVP_DecodeBlock(dec, (const unsigned char *)key, 24) != 18)
        return -EINVAL;
    memcpy(buf, key, 24);
    memcpy(buf + 24, guid, sizeof guid - 1);
    if (!EVP_Digest(buf, 24 + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -EINVAL;
    memcpy(raw, md, 20);
    EVP_EncodeBlock((unsigned char *)out, raw, 20);
    return 0;
}

int cd_ws_header_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
            return 1;
    }
    return 0;
}

const char *cd_ws_check_handshake(cd_request *req, char accept[29])
{
    if (cd_request_method(req) != CD_M_GET)
        return "a WebSocket upgrade is a GET request";
    const char *up = cd_request_header(req, "Upgrade"), *conn = cd_request_header(req, "Connection");
    if (!up || !conn || !cd_ws_header_has_token(up, "websocket") || !cd_ws_header_has_token(conn, "upgrade"))
        return "expected a WebSocket upgrade (Upgrade: websocket)";
    const char *ver = cd_request_header(req, "Sec-WebSocket-Version");
    if (!ver || strcmp(ver, "13") != 0)
        return "unsupported Sec-WebSocket-Version: 13 expected";
    if (cd_ws_accept_key(cd_request_header(req, "Sec-WebSocket-Key"), accept) < 0)
        return "missing or malformed Sec-WebSocket-Key";
    return NULL;
}

/* ---- frames ---- */

size_t cd_ws__frame_head(uint8_t out[10], int binary, size_t len)
{
    out[0] = binary ? 0x82 : 0x81; /* FIN, binary or text */
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* RFC 6455 5.2: 2 header bytes, 2 or 8 of extended length, 4 of mask key,
 * then the payload.  Control frames (opcode 8 and up) may come between the
 * fragments of a message and do not end it. */
void cd_ws__track(cd_ws_track *t, const uint8_t *p, size_t n)
{
    while (n) {
        if (t->left) {
            size_t k = t->left < n ? (size_t)t->left : n;
            t->left -= k;
            p += k;
            n -= k;
            continue;
        }
        t->hdr[t->hdr_len++] = *p++;
        n--;
        if (t->hdr_len < 2)
            continue;
        uint8_t l7 = t->hdr[1] & 0x7f;
        size_t need = 2u + (l7 == 126 ? 2u : l7 == 127 ? 8u : 0u) + (t->hdr[1] & 0x80 ? 4u : 0u);
        if (t->hdr_len < need)
            continue;
        uint64_t len = l7;
        if (l7 >= 126) {
            len = 0;
            for (size_t i = 0; i < (l7 == 126 ? 2u : 8u); i++)
                len = len << 8 | t->hdr[2 + i];
        }
        if ((t->hdr[0] & 0x0f) < 8) /* a data frame: a message goes on unless FIN */
            t->frag = !(t->hdr[0] & 0x80);
        t->left = len;
        t->hdr_len = 0;
    }
}
