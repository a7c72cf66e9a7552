/*
 * harness_ws.c - the raw WebSocket and Socket.IO client of the events
 * service's integration tests (see harness_ws.h), in the test process.
 * Blocking sockets with poll()-bounded reads; nothing is buffered here, so
 * a test may mix its own reads and writes with these.
 */
#include "tests/integration/harness_ws.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define FRAME_MS 5000

static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (size_t got = 0; got < len;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = deadline - th_now_ms();
        if (poll(&p, 1, left > 0 ? (int)left : 0) != 1)
            return -1;
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

int thw_send(int fd, int opcode, const void *payload, size_t len)
{
    unsigned char h[14];
    size_t hl = 0;
    h[hl++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[hl++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((unsigned long long)len >> (8 * i));
    }
    memset(h + hl, 0, 4), hl += 4; /* the zero mask: the payload goes as it is */
    if (send(fd, h, hl, MSG_NOSIGNAL) != (ssize_t)hl)
        return -1;
    return len && send(fd, payload, len, MSG_NOSIGNAL) != (ssize_t)len ? -1 : 0;
}

int thw_text(int fd, const char *s)
{
    return thw_send(fd, 1, s, strlen(s));
}

static long read_frame(int fd, int *op, char *buf, size_t cap)
{
    unsigned char h[8];
    if (read_full(fd, h, 2, FRAME_MS) < 0)
        return -1;
    *op = h[0] & 0x0f;
    size_t len = h[1] & 0x7f;
    if (len >= 126) {
        int k = len == 126 ? 2 : 8;
        if (read_full(fd, h, (size_t)k, FRAME_MS) < 0)
            return -1;
        len = 0;
        for (int i = 0; i < k; i++)
            len = len << 8 | h[i];
    }
    if (len >= cap || read_full(fd, buf, len, FRAME_MS) < 0)
        return -1;
    buf[len] = '\0';
    return (long)len;
}

long thw_next(int fd, int *op, char *buf, size_t cap)
{
    for (;;) {
        long n = read_frame(fd, op, buf, cap);
        if (n == 1 && *op == 1 && buf[0] == '2') {
            thw_text(fd, "3");
            continue;
        }
        return n;
    }
}

long thw_expect(int fd, const char *prefix, char *buf, size_t cap)
{
    for (;;) {
        int op;
        long n = thw_next(fd, &op, buf, cap);
        if (n < 0 || op == 8)
            return -1;
        if (op == 1 && strncmp(buf, prefix, strlen(prefix)) == 0)
            return n;
    }
}

int thw_close_code(int fd)
{
    char buf[8192];
    for (;;) {
        int op;
        long n = thw_next(fd, &op, buf, sizeof buf);
        if (n < 0)
            return -1;
        if (op == 8)
            return n >= 2 ? ((unsigned char)buf[0] << 8 | (unsigned char)buf[1]) : 0;
    }
}

int thw_open(int port, const char *target)
{
    int fd = th_connect(port);
    if (fd < 0)
        return -1;
    char req[1024], head[2048], buf[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     target);
    size_t l = 0;
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto fail;
    /* The head byte by byte, so no frame is read past it. */
    while (l < sizeof head - 1 && read_full(fd, head + l, 1, FRAME_MS) == 0)
        if (++l >= 4 && memcmp(head + l - 4, "\r\n\r\n", 4) == 0)
            break;
    head[l] = '\0';
    if (strncmp(head, "HTTP/1.1 101 ", 13) != 0 || thw_expect(fd, "0{\"sid\":", buf, sizeof buf) < 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

int thw_sio_open(int port, const char *nsp, const char *payload, char *sid, size_t cap)
{
    int fd = thw_open(port, "/socket.io/?EIO=4&transport=websocket");
    if (fd < 0)
        return -1;
    char pkt[1024], ok[160], buf[1024];
    snprintf(pkt, sizeof pkt, "40%s%s%s", nsp, *nsp ? "," : "", payload ? payload : "");
    snprintf(ok, sizeof ok, "40%s%s{\"sid\":\"", nsp, *nsp ? "," : "");
    if (thw_text(fd, pkt) < 0 || thw_expect(fd, "4", buf, sizeof buf) < 0 || strncmp(buf, ok, strlen(ok)) != 0) {
        close(fd);
        return -1;
    }
    const char *s = buf + strlen(ok), *e = strchr(s, '"');
    snprintf(sid, cap, "%.*s", e ? (int)(e - s) : 0, s);
    return fd;
}

long thw_sio_call(int fd, const char *nsp, int id, const char *args, char *buf, size_t cap)
{
    char pkt[1024], want[160];
    snprintf(pkt, sizeof pkt, "42%s%s%d[%s]", nsp, *nsp ? "," : "", id, args);
    snprintf(want, sizeof want, "43%s%s%d[", nsp, *nsp ? "," : "", id);
    return thw_text(fd, pkt) < 0 ? -1 : thw_expect(fd, want, buf, cap);
}
