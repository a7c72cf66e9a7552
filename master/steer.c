/*
 * steer.c - which listeners of the SO_REUSEPORT group get new connections
 * (master).
 *
 * By default the kernel hashes each new connection to any socket of the
 * group, whether or not a worker is there to accept it.  A tiny classic BPF
 * program attached to the group (SO_ATTACH_REUSEPORT_CBPF) picks the socket
 * instead: it draws a random number, takes it modulo the number of chosen
 * sockets, and a jump table maps that to the chosen sockets' indices in the
 * group.  The master chooses the slots whose worker is READY (slots.c), so
 * a slot whose worker died or is in respawn backoff, or a slot being
 * retired, gets no new connection.
 *
 * Indices are the order in which sockets joined the group.  A socket that
 * leaves it (its last fd closed) would be replaced at its index by the last
 * one; the master never closes a listener while it runs (a retired slot's
 * stays open, see slots.c), and slots open in order, so index == slot for
 * every open slot.
 */
#include <errno.h>
#include <linux/filter.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "master/master.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

int cd_steer_set(int fd, const int *idx, int n)
{
    if (n <= 0 || n > CD_MAX_SLOTS)
        return -EINVAL;
    int contiguous = 1;
    for (int i = 0; i < n; i++)
        contiguous &= idx[i] == i;
    /* random % n, then (unless idx is 0..n-1) "if A == i return idx[i]". */
    size_t len = contiguous ? 3 : 2 + 2 * (size_t)(n - 1) + 1;
    struct sock_filter *code = calloc(len, sizeof *code);
    if (!code)
        return -ENOMEM;
    size_t k = 0;
    code[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (unsigned)(SKF_AD_OFF + SKF_AD_RANDOM));
    code[k++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (unsigned)n);
    if (contiguous) {
        code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_A, 0);
    } else {
        for (int i = 0; i < n - 1; i++) {
            code[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)i, 0, 1);
            code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (unsigned)idx[i]);
        }
        code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (unsigned)idx[n - 1]);
    }
    struct sock_fprog prog = {.len = (unsigned short)k, .filter = code};
    int rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0 ? -errno : 0;
    free(code);
    return rc;
}
