/*
 * steer.c - which listeners of the SO_REUSEPORT group get new connections
 * (master).
 *
 * By default the kernel hashes each new connection to any socket of the
 * group.  To retire a slot (scale down) without resetting connections
 * already queued on its listener, we must first stop steering to it, let its
 * worker drain the queue, and only then close it.  A tiny classic BPF
 * program attached to the group does that: it returns a random index in
 * [0, n).  Indices are the order in which sockets joined the group; slots
 * join in order and only the highest slot is ever retired, so index == slot.
 */
#include <errno.h>
#include <linux/filter.h>
#include <sys/socket.h>

#include "master/master.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

int cd_steer_set(int fd, int n)
{
    if (n <= 0)
        return -EINVAL;
    struct sock_filter code[] = {
        {BPF_LD | BPF_W | BPF_ABS, 0, 0, (unsigned)(SKF_AD_OFF + SKF_AD_RANDOM)},
        {BPF_ALU | BPF_MOD | BPF_K, 0, 0, (unsigned)n},
        {BPF_RET | BPF_A, 0, 0, 0},
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0)
        return -errno;
    return 0;
}
