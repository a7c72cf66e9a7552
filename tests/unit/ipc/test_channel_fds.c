/*
 * Unit tests for fd passing on the channel (cd_ipc_send_fd and
 * cd_ipc_read_fds): each passed fd arrives, in the order of the frames that
 * carried it, however the frames are mixed with plain ones and however few
 * bytes a read takes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/stats.h"
#include "ipc/channel.h"
#include "ipc/proto.h"

/* A pipe's read end whose identity we can check after passing (its inode). */
static int marked_fd(ino_t *ino)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[1]);
    struct stat st;
    cr_assert_eq(fstat(p[0], &st), 0);
    *ino = st.st_ino;
    return p[0];
}

static ino_t ino_of(int fd)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    return st.st_ino;
}

Test(channel_fds, passed_fds_arrive_with_their_frames_in_order)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ino_t ino[3];
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = marked_fd(&ino[i]);
    /* conn, plain, conn, plain, conn */
    cr_assert_eq(cd_ipc_send_fd(sv[0], CD_MSG_CONN, NULL, 0, fds[0]), 0);
    cr_assert_eq(cd_ipc_send(sv[0], CD_MSG_STOP, NULL, 0), 0);
    cr_assert_eq(cd_ipc_send_fd(sv[0], CD_MSG_CONN, "x", 1, fds[1]), 0);
    cr_assert_eq(cd_ipc_send(sv[0], CD_MSG_REOPEN, NULL, 0), 0);
    cr_assert_eq(cd_ipc_send_fd(sv[0], CD_MSG_CONN, NULL, 0, fds[2]), 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]); /* the sender keeps its own copy; the receiver has its own */

    cd_ipc_decoder *d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    int queue[8], nq = 0, conns = 0, plain = 0;
    for (int reads = 0; reads < 16; reads++) {
        int got[4], ngot = 0;
        long n = cd_ipc_read_fds(d, sv[1], got, 4, &ngot);
        if (n == -EAGAIN)
            break;
        cr_assert_gt(n, 0);
        for (int i = 0; i < ngot; i++) {
            cr_assert_lt(nq, 8);
            queue[nq++] = got[i];
        }
        cd_ipc_msg m;
        while (cd_ipc_next(d, &m) > 0) {
            if (m.type != CD_MSG_CONN) {
                plain++;
                continue;
            }
            cr_assert_gt(nq, 0, "conn frame %d came before its fd", conns);
            int fd = queue[0];
            memmove(queue, queue + 1, (size_t)--nq * sizeof *queue);
            cr_assert_eq(ino_of(fd), ino[conns], "conn frame %d got the fd of another", conns);
            cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "passed fds are close-on-exec");
            close(fd);
            conns++;
        }
    }
    cr_assert_eq(conns, 3);
    cr_assert_eq(plain, 2);
    cr_assert_eq(nq, 0);
    free(d);
    close(sv[0]);
    close(sv[1]);
}

Test(channel_fds, plain_read_of_a_passed_fd_loses_nothing_but_the_fd)
{
    /* The master reads with cd_ipc_read; a stray fd must not break framing. */
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ino_t ino;
    int fd = marked_fd(&ino);
    cr_assert_eq(cd_ipc_send_fd(sv[0], CD_MSG_CONN, "ab", 2, fd), 0);
    cr_assert_eq(cd_ipc_send(sv[0], CD_MSG_STOP, NULL, 0), 0);
    close(fd);
    cd_ipc_decoder *d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    int frames = 0;
    for (int i = 0; i < 4 && cd_ipc_read(d, sv[1]) > 0; i++) {
        cd_ipc_msg m;
        while (cd_ipc_next(d, &m) > 0)
            frames++;
    }
    cr_assert_eq(frames, 2);
    free(d);
    close(sv[0]);
    close(sv[1]);
}

Test(channel_fds, extra_fds_beyond_max_are_closed)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ino_t ino;
    int fd = marked_fd(&ino);
    cr_assert_eq(cd_ipc_send_fd(sv[0], CD_MSG_CONN, NULL, 0, fd), 0);
    close(fd);
    cd_ipc_decoder *d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    int got[1], ngot = -1;
    cr_assert_eq(cd_ipc_read_fds(d, sv[1], got, 0, &ngot), CD_IPC_HEADER);
    cr_assert_eq(ngot, 0, "no room: the fd is closed, not returned");
    free(d);
    close(sv[0]);
    close(sv[1]);
}
