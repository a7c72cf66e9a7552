/*
 * spawn.h - starting a worker process (master process; spawn.c).
 * Returns what it started; calls nothing back.
 */
#ifndef CD_MASTER_SPAWN_H
#define CD_MASTER_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

typedef struct cd_spawn_args {
    int listen_fd;         /* the slot's listener: fd 3 in the worker */
    int conf_memfd;        /* the sealed config (conf/memfd.c): fd 5 */
    int slot;
    unsigned generation;
    const char *conf_path; /* for the worker's messages */
    int drop_privs;        /* switch to uid/gid before exec */
    uid_t uid;
    gid_t gid;
} cd_spawn_args;

typedef struct cd_spawned {
    pid_t pid;
    int chan_fd;             /* the master's end of the channel (O_CLOEXEC, blocking) */
    const char *failed_call; /* on failure: the syscall that failed */
} cd_spawned;

/* Forks and execs a worker (fd 4 is its end of a new channel).  Returns 0,
 * or -errno with out->failed_call named.  Does not log. */
int cd_spawn_worker(const cd_spawn_args *a, cd_spawned *out);

#endif
