/*
 * spawn.c - starting a worker: fork, then exec of this same binary in worker
 * mode (master).
 *
 * Why exec: nanomsg and mongo-c-driver are not fork-safe, and a forked copy
 * of the master would carry its libev loop, signal state and any library
 * threads.  An exec'd worker starts clean and keeps exactly three fds:
 *   3  its slot's listener (shared with the master, which keeps it open)
 *   4  its end of the channel socketpair
 *   5  a sealed memfd with the config text the master validated (conf/memfd.c)
 * Everything else the master holds is O_CLOEXEC.  The worker learns its
 * slot and generation from argv and from CLUSTERD_WORKER_ID / _GENERATION.
 *
 * spawn.c only starts processes: it returns the pid and the master's end of
 * the channel, and calls nothing back.  Putting the worker in the table is
 * slots.c's job, deciding when to spawn is master.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/proto.h"
#include "master/spawn.h"

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(const cd_spawn_args *a, int chan, pid_t master_pid)
{
    /* Move the three fds above 2 out of the way, then into place. */
    int l = fcntl(a->listen_fd, F_DUPFD, 10), c = fcntl(chan, F_DUPFD, 10), k = fcntl(a->conf_memfd, F_DUPFD, 10);
    if (l < 0 || c < 0 || k < 0 || dup2(l, CD_WORKER_FD_LISTEN) < 0 || dup2(c, CD_WORKER_FD_CHANNEL) < 0 ||
        dup2(k, CD_WORKER_FD_CONF) < 0)
        _exit(CD_EXIT_BOOTFAIL);
    close(l);
    close(c);
    close(k);
    /* Privileges go last, after everything that needs them. */
    if (a->drop_privs && (setgroups(1, &a->gid) < 0 || setgid(a->gid) < 0 || setuid(a->uid) < 0))
        _exit(CD_EXIT_BOOTFAIL);
    /* Die with the master, even if it is SIGKILLed; then check for the race
     * where it died before the prctl.  After the switch of user: a change of
     * credentials clears the parent-death signal. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid)
        _exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char slot[16], genbuf[16];
    snprintf(slot, sizeof slot, "%d", a->slot);
    snprintf(genbuf, sizeof genbuf, "%u", a->generation);
    setenv("CLUSTERD_WORKER_ID", slot, 1);
    setenv("CLUSTERD_GENERATION", genbuf, 1);
    setenv("CLUSTERD_CONF_PATH", a->conf_path, 1);
    char *argv[] = {"clusterd", "--worker", slot, genbuf, NULL};
    execv("/proc/self/exe", argv);
    _exit(CD_EXIT_BOOTFAIL);
}

int cd_spawn_worker(const cd_spawn_args *a, cd_spawned *out)
{
    int sv[2];
    out->pid = -1;
    out->chan_fd = -1;
    out->failed_call = "socketpair";
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t master_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        out->failed_call = "fork";
        return -err;
    }
    if (pid == 0) {
        close(sv[0]);
        child_exec(a, sv[1], master_pid);
    }
    close(sv[1]);
    out->pid = pid;
    out->chan_fd = sv[0];
    out->failed_call = NULL;
    return 0;
}
