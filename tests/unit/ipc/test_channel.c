/*
 * Unit tests for ipc/channel.c: frames survive any split into reads, several
 * frames in one read come out one by one, and garbage or oversized frames
 * are reported instead of being trusted.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/stats.h"
#include "ipc/channel.h"
#include "ipc/proto.h"

static cd_ipc_decoder *dec_new(void)
{
    cd_ipc_decoder *d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    return d;
}

Test(channel, round_trip_with_every_split)
{
    uint8_t frame[64];
    int n = cd_ipc_encode(frame, sizeof frame, CD_MSG_BOOTFAIL, "hello", 5);
    cr_assert_eq(n, CD_IPC_HEADER + 5);
    for (int split = 0; split <= n; split++) {
        cd_ipc_decoder *d = dec_new();
        cd_ipc_msg m;
        cd_ipc_feed(d, frame, (size_t)split);
        int rc = cd_ipc_next(d, &m);
        if (split < n) {
            cr_assert_eq(rc, 0, "split %d: a partial frame is not a message", split);
            cd_ipc_feed(d, frame + split, (size_t)(n - split));
            rc = cd_ipc_next(d, &m);
        }
        cr_assert_eq(rc, 1, "split %d", split);
        cr_assert_eq(m.type, CD_MSG_BOOTFAIL);
        cr_assert_eq(m.len, 5);
        cr_assert(memcmp(m.payload, "hello", 5) == 0);
        cr_assert_eq(cd_ipc_next(d, &m), 0);
        free(d);
    }
}

Test(channel, byte_by_byte_many_frames)
{
    static uint8_t buf[6 * (CD_IPC_HEADER + sizeof(cd_stats))];
    size_t len = 0;
    cd_stats st = {.requests = 42, .in_flight = 3};
    for (int i = 0; i < 5; i++) {
        int n = cd_ipc_encode(buf + len, sizeof buf - len, CD_MSG_HEARTBEAT, &st, sizeof st);
        cr_assert_gt(n, 0);
        len += (size_t)n;
    }
    int n = cd_ipc_encode(buf + len, sizeof buf - len, CD_MSG_READY, NULL, 0);
    cr_assert_gt(n, 0);
    len += (size_t)n;
    cd_ipc_decoder *d = dec_new();
    int got = 0, ready = 0;
    for (size_t i = 0; i < len; i++) {
        cd_ipc_feed(d, buf + i, 1);
        cd_ipc_msg m;
        int rc;
        while ((rc = cd_ipc_next(d, &m)) == 1) {
            if (m.type == CD_MSG_HEARTBEAT) {
                cr_assert_eq(m.len, sizeof st);
                cd_stats back;
                memcpy(&back, m.payload, sizeof back);
                cr_assert_eq(back.requests, 42);
                got++;
            } else if (m.type == CD_MSG_READY) {
                ready++;
            }
        }
        cr_assert_eq(rc, 0);
    }
    cr_assert_eq(got, 5);
    cr_assert_eq(ready, 1);
    free(d);
}

Test(channel, garbage_is_a_protocol_error)
{
    cd_ipc_decoder *d = dec_new();
    cd_ipc_feed(d, "GET / HTTP/1.1\r\n", 16);
    cd_ipc_msg m;
    cr_assert_eq(cd_ipc_next(d, &m), -EPROTO);
    free(d);
}

Test(channel, oversized_length_is_refused_before_buffering)
{
    uint8_t hdr[CD_IPC_HEADER];
    uint16_t magic = CD_IPC_MAGIC, type = CD_MSG_HEARTBEAT;
    uint32_t len = CD_IPC_MAX_PAYLOAD + 1;
    memcpy(hdr, &magic, 2);
    memcpy(hdr + 2, &type, 2);
    memcpy(hdr + 4, &len, 4);
    cd_ipc_decoder *d = dec_new();
    cd_ipc_feed(d, hdr, sizeof hdr);
    cd_ipc_msg m;
    cr_assert_eq(cd_ipc_next(d, &m), -EMSGSIZE);
    uint8_t out[16];
    cr_assert_eq(cd_ipc_encode(out, sizeof out, 1, NULL, CD_IPC_MAX_PAYLOAD + 1), -EMSGSIZE);
    free(d);
}

Test(channel, over_a_socketpair_with_eof)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    cr_assert_eq(cd_ipc_send(sv[0], CD_MSG_STOP, NULL, 0), 0);
    cr_assert_eq(cd_ipc_send(sv[0], CD_MSG_BOOTFAIL, "why", 3), 0);
    cd_ipc_decoder *d = dec_new();
    cr_assert_gt(cd_ipc_read(d, sv[1]), 0);
    cd_ipc_msg m;
    cr_assert_eq(cd_ipc_next(d, &m), 1);
    cr_assert_eq(m.type, CD_MSG_STOP);
    cr_assert_eq(cd_ipc_next(d, &m), 1);
    cr_assert_eq(m.type, CD_MSG_BOOTFAIL);
    cr_assert_eq(cd_ipc_read(d, sv[1]), -EAGAIN);
    close(sv[0]);
    cr_assert_eq(cd_ipc_read(d, sv[1]), 0, "EOF when the other side is gone");
    cr_assert_eq(cd_ipc_send(sv[1], CD_MSG_READY, NULL, 0), -EPIPE);
    close(sv[1]);
    free(d);
}
