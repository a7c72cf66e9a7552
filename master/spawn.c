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

#include "core/log.h"
#include "core/util.h"
#include "master/master.h"
#include "core/stats.h"
#include "ipc/proto.h"

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(cd_master *m, cd_slot *s, int chan, pid_t master_pid, unsigned gen)
{
    /* Move the three fds above 2 out of the way, then into place. */
    int l = fcntl(s->fd, F_DUPFD, 10), c = fcntl(chan, F_DUPFD, 10), k = fcntl(m->conf_memfd, F_DUPFD, 10);
    if (l < 0 || c < 0 || k < 0 || dup2(l, CD_WORKER_FD_LISTEN) < 0 || dup2(c, CD_WORKER_FD_CHANNEL) < 0 ||
        dup2(k, CD_WORKER_FD_CONF) < 0)
        _exit(CD_EXIT_BOOTFAIL);
    close(l);
    close(c);
    close(k);
    /* Privileges go last, after everything that needs them. */
    if (m->drop_privs && (setgroups(1, &m->gid) < 0 || setgid(m->gid) < 0 || setuid(m->uid) < 0))
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
    snprintf(slot, sizeof slot, "%d", s->index);
    snprintf(genbuf, sizeof genbuf, "%u", gen);
    setenv("CLUSTERD_WORKER_ID", slot, 1);
    setenv("CLUSTERD_GENERATION", genbuf, 1);
    setenv("CLUSTERD_CONF_PATH", m->conf->path, 1);
    char *argv[] = {"clusterd", "--worker", slot, genbuf, NULL};
    execv("/proc/self/exe", argv);
    _exit(CD_EXIT_BOOTFAIL);
}

/* Fills p for worker pid of slot s on channel chan and starts watching it. */
static void proc_track(cd_master *m, cd_proc *p, cd_ipc_decoder *dec, cd_slot *s, pid_t pid, unsigned generation,
                       int chan)
{
    dec->have = dec->consumed = 0;
    cd_set_cloexec(chan, 1);
    cd_set_nonblock(chan, 1);
    p->m = m;
    p->pid = pid;
    p->slot = s->index;
    p->generation = generation;
    p->chan_fd = chan;
    p->dec = dec;
    p->state = PROC_STARTING;
    p->started = p->last_heartbeat = ev_now(m->loop);
    ev_io_init(&p->chan_w, cd_master_chan_cb, chan, EV_READ);
    p->chan_w.data = p;
    ev_io_start(m->loop, &p->chan_w);
    p->next = m->procs;
    m->procs = p;
}

cd_proc *cd_spawn_worker(cd_master *m, cd_slot *s)
{
    cd_proc *p = calloc(1, sizeof *p);
    cd_ipc_decoder *dec = malloc(sizeof *dec);
    int sv[2] = {-1, -1};
    if (!p || !dec) {
        cd_err("out of memory spawning a worker for slot %d", s->index);
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        cd_log_errno(CD_LOG_ERR, errno, "socketpair", "spawning a worker for slot %d", s->index);
        goto fail;
    }
    pid_t master_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        cd_log_errno(CD_LOG_ERR, errno, "fork", "spawning a worker for slot %d", s->index);
        goto fail;
    }
    if (pid == 0) {
        close(sv[0]);
        child_exec(m, s, sv[1], master_pid, m->generation);
    }
    close(sv[1]);
    proc_track(m, p, dec, s, pid, m->generation, sv[0]);
    cd_info("started worker pid %d for slot %d (generation %u)", (int)pid, s->index, m->generation);
    cd_master_event(m, "{\"event\":\"worker_started\",\"slot\":%d,\"pid\":%d,\"generation\":%u}", s->index,
                    (int)pid, m->generation);
    return p;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    free(dec);
    free(p);
    return NULL;
}

cd_proc *cd_spawn_adopt(cd_master *m, cd_slot *s, pid_t pid, unsigned generation, int chan_fd)
{
    cd_proc *p = calloc(1, sizeof *p);
    cd_ipc_decoder *dec = malloc(sizeof *dec);
    if (!p || !dec) {
        free(p);
        free(dec);
        return NULL;
    }
    proc_track(m, p, dec, s, pid, generation, chan_fd);
    cd_info("adopted worker pid %d of slot %d (generation %u)", (int)pid, s->index, generation);
    return p;
}
