/*
 * harness_node.c - runs the Node.js clients of the Socket.IO tests
 * (tests/socketio/SCRIPT, the real socket.io-client and puppeteer-core from
 * tests/socketio/node_modules) for the integration tests, in the test
 * process: node runs in its own process group with its output in a log
 * file, and is SIGKILLed with its whole group at its deadline, so a hung
 * client (or a browser it started) never outlives the test.  Shared by
 * test_events.c and test_socketio.c.
 */
#include "tests/integration/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "  | %s", line);
    fclose(f);
}

static void exec_node(const char *path, const char *out, const char *const *args)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = "node";
    argv[n++] = path;
    for (int i = 0; args && args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    setpgid(0, 0);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execvp("node", (char *const *)argv);
    _exit(127);
}

int th_node(const char *logdir, const char *script, int timeout_ms, const char *const *args)
{
    const char *src = getenv("CLUSTERD_SRC") ? getenv("CLUSTERD_SRC") : ".";
    char path[512], mods[512], out[600];
    struct stat sb;
    snprintf(path, sizeof path, "%s/tests/socketio/%s", src, script);
    snprintf(mods, sizeof mods, "%s/tests/socketio/node_modules/socket.io-client", src);
    snprintf(out, sizeof out, "%s/node-%s.log", logdir, script);
    if (stat(mods, &sb) != 0) {
        fprintf(stderr, "%s is missing: run scripts/npm-setup.sh\n", mods);
        return 127;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        exec_node(path, out, args);
    setpgid(pid, pid);
    long long deadline = th_now_ms() + timeout_ms;
    int st = 0, rc = -1;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (th_now_ms() > deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            fprintf(stderr, "node %s: killed at its %d ms deadline\n", script, timeout_ms);
            break;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL); /* whatever it left behind (a browser) */
    fprintf(stderr, "node %s (exit %d):\n", script, rc);
    print_file(out);
    return rc;
}
