/*
 * ws_frame.c - the parts of a WebSocket that need no connection (worker,
 * loop thread; compiled into the modules with websocket.c): the opening
 * handshake's checks (public, clusterd/websocket.h), server frames (the
 * header, and cd_ws_frame: a message framed once, header and payload in
 * one refcounted allocation, that a broadcast hands to every recipient;
 * websocket.c writes these itself, wslay only reads), and following the
 * frame boundaries of a client's input, so websocket.c knows when wslay
 * holds nothing of it and its context can go.  A connection's out queue
 * is here too: a ring of frame references written with sendmsg, one
 * iovec per frame, so no frame is copied per recipient and a client's
 * pending frames leave in one syscall.  wslay still parses and
 * checks every frame; this only counts lengths.
 */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

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

static struct cd_ws_frame *frame_alloc(size_t len)
{
    if (len > SIZE_MAX - sizeof(struct cd_ws_frame))
        return NULL;
    struct cd_ws_frame *f = malloc(sizeof *f + len);
    if (f) {
        f->refs = 1;
        f->len = len;
    }
    return f;
}

cd_ws_frame *cd_ws_frame_new(int binary, const void *msg, size_t len)
{
    uint8_t hdr[10];
    size_t hl = cd_ws__frame_head(hdr, binary, len);
    struct cd_ws_frame *f = len <= SIZE_MAX - hl ? frame_alloc(hl + len) : NULL;
    if (!f)
        return NULL;
    memcpy(f->data, hdr, hl);
    if (len) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(f->data + hl, msg, len);
    return f;
}

struct cd_ws_frame *cd_ws__frame_raw(const void *bytes, size_t len)
{
    struct cd_ws_frame *f = frame_alloc(len);
    if (f && len)
        memcpy(f->data, bytes, len);
    return f;
}

cd_ws_frame *cd_ws_frame_ref(cd_ws_frame *f)
{
    f->refs++;
    return f;
}

void cd_ws_frame_unref(cd_ws_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

size_t cd_ws_frame_len(const cd_ws_frame *f)
{
    return f->len;
}

/* ---- the out queue ---- */

#if defined(IOV_MAX) && IOV_MAX < 1024
#define OUT_IOV IOV_MAX
#else
#define OUT_IOV 1024 /* Linux's IOV_MAX */
#endif

int cd_ws__outq_push(cd_ws_outq *q, struct cd_ws_frame *f)
{
    if (q->n == q->cap) {
        uint32_t ncap = q->cap ? q->cap * 2 : 8;
        struct cd_ws_frame **r = ncap > q->cap ? malloc(ncap * sizeof *r) : NULL;
        if (!r)
            return -ENOMEM;
        for (uint32_t i = 0; i < q->n; i++)
            r[i] = q->ring[(q->head + i) & (q->cap - 1)];
        free(q->ring);
        q->ring = r;
        q->head = 0;
        q->cap = ncap;
    }
    q->ring[(q->head + q->n++) & (q->cap - 1)] = cd_ws_frame_ref(f);
    q->bytes += f->len;
    return 0;
}

/* Drops the first frame; the ring goes with the last. */
static void outq_pop(cd_ws_outq *q)
{
    cd_ws_frame_unref(q->ring[q->head]);
    q->head = (q->head + 1) & (q->cap - 1);
    q->off = 0;
    q->raw = 0;
    if (--q->n == 0) {
        free(q->ring);
        q->ring = NULL;
        q->head = q->cap = 0;
    }
}

void cd_ws__outq_drop(cd_ws_outq *q)
{
    while (q->n > q->raw)
        outq_pop(q);
    q->bytes = 0;
}

/* n bytes of the queue went out: the frames done are dropped. */
static void outq_consume(cd_ws_outq *q, size_t n)
{
    while (n) {
        struct cd_ws_frame *f = q->ring[q->head];
        size_t k = f->len - q->off < n ? f->len - q->off : n;
        if (!q->raw)
            q->bytes -= k;
        q->off += k;
        n -= k;
        if (q->off == f->len)
            outq_pop(q);
    }
}

int cd_ws__outq_write(cd_ws_outq *q, int fd, uint32_t max)
{
    while (q->n && max) {
        struct iovec iov[OUT_IOV];
        size_t total = 0;
        uint32_t n = 0;
        for (; n < q->n && n < max && n < OUT_IOV; n++) {
            struct cd_ws_frame *f = q->ring[(q->head + n) & (q->cap - 1)];
            size_t off = n ? 0 : q->off;
            iov[n].iov_base = f->data + off;
            iov[n].iov_len = f->len - off;
            total += f->len - off;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        outq_consume(q, (size_t)w);
        if ((size_t)w < total)
            return 0;
        max -= n;
    }
    return 1;
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
