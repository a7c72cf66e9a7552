/*
 * pidfile.c - a locked pidfile (master).  The lock, not the file's
 * existence, says whether a clusterd is running: a stale file left by a
 * crash is simply taken over, and a second clusterd on the same pidfile
 * refuses to start, naming the pid that holds it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "master/master.h"

int cd_pidfile_open(const char *path, pid_t *holder)
{
    *holder = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0)
            *holder = (pid_t)atoi(buf);
        close(fd);
        return err == EWOULDBLOCK ? -EEXIST : -err;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

void cd_pidfile_close(const char *path, int fd)
{
    if (fd < 0)
        return;
    unlink(path); /* while still holding the lock: nobody else can own it yet */
    close(fd);
}
