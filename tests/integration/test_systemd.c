/*
 * Integration tests of what systemd sees, with the test playing systemd's
 * side: a NOTIFY_SOCKET datagram socket for sd_notify, and LISTEN_FDS /
 * LISTEN_PID / LISTEN_FDNAMES for socket activation.  Also the pidfile lock.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

static char dir[] = "/tmp/clusterd-sd-XXXXXX";
static char conf[300], logpath[300];
static pid_t master;
static const char *watchdog_usec; /* WATCHDOG_USEC for the next start(), or NULL */

static void fini(void)
{
    if (master > 0) {
        kill(master, SIGKILL);
        waitpid(master, NULL, 0);
    }
    if (strncmp(dir, "/tmp/clusterd-sd-", 17) == 0 && !strstr(dir, "XXXXXX")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
}

TestSuite(systemd, .fini = fini, .timeout = 60);

static void write_conf(int port, const char *extra)
{
    cr_assert_not_null(mkdtemp(dir));
    snprintf(conf, sizeof conf, "%s/services.ini", dir);
    snprintf(logpath, sizeof logpath, "%s/stderr.log", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 100ms\nheartbeat_timeout = 2s\n"
            "graceful_timeout = 3s\n%s\n[dummy]\ntype = dummy\n",
            port, extra);
    fclose(f);
}

/* Starts clusterd with env additions; fds_to_pass go to 3, 4, ... and
 * LISTEN_PID is set to the child's own pid after fork. */
static pid_t start(int workers, const char *notify, const int *fds, int nfds, const char *names)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(log, 2);
        dup2(log, 1);
        int moved[8];
        for (int i = 0; i < nfds; i++)
            moved[i] = fcntl(fds[i], F_DUPFD, 20);
        for (int i = 0; i < nfds; i++)
            dup2(moved[i], 3 + i);
        if (notify)
            setenv("NOTIFY_SOCKET", notify, 1);
        if (watchdog_usec)
            setenv("WATCHDOG_USEC", watchdog_usec, 1);
        if (nfds) {
            char buf[32];
            snprintf(buf, sizeof buf, "%d", nfds);
            setenv("LISTEN_FDS", buf, 1);
            snprintf(buf, sizeof buf, "%d", (int)getpid());
            setenv("LISTEN_PID", buf, 1);
            setenv("LISTEN_FDNAMES", names, 1);
        }
        char w[16];
        snprintf(w, sizeof w, "%d", workers);
        const char *bin = getenv("CLUSTERD_BIN");
        if (workers > 0)
            execl(bin, bin, "-c", conf, "-w", w, (char *)NULL);
        else
            execl(bin, bin, "-c", conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Reads notify datagrams until one contains `want` (or timeout).  Appends all
 * to `all`. */
static int wait_notify(int sock, const char *want, char *all, size_t cap, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - th_now_ms();
        struct pollfd p = {.fd = sock, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return 0;
        char buf[1024];
        ssize_t n = recv(sock, buf, sizeof buf - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        strncat(all, buf, cap - strlen(all) - 2);
        strncat(all, "|", cap - strlen(all) - 1);
        if (strstr(buf, want))
            return 1;
    }
}

static int get_status(int port)
{
    th_response r;
    th_http(&r, port, "GET", "/dummy", NULL, 3000);
    int st = r.status;
    th_response_free(&r);
    return st;
}

/* The datagram socket systemd would listen on for sd_notify, in dir. */
static int notify_socket(char *path, size_t len)
{
    snprintf(path, len, "%s/notify", dir);
    int sock = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    cr_assert_eq(bind(sock, (struct sockaddr *)&a, sizeof a), 0);
    return sock;
}

Test(systemd, notify_ready_reloading_stopping)
{
    int port = th_free_port();
    write_conf(port, "");
    char sockpath[300];
    int sock = notify_socket(sockpath, sizeof sockpath);
    master = start(2, sockpath, NULL, 0, NULL);
    static char all[8192];
    all[0] = '\0';
    cr_assert(wait_notify(sock, "READY=1", all, sizeof all, 10000), "READY=1 never came: %s", all);
    char mainpid[32];
    snprintf(mainpid, sizeof mainpid, "MAINPID=%d", (int)master);
    cr_assert(strstr(all, mainpid), "%s", all);
    /* READY=1 comes once every worker is READY: they answer right away. */
    cr_assert_eq(get_status(port), 200);
    cr_assert(wait_notify(sock, "workers ready", all, sizeof all, 12000), "a STATUS= line: %s", all);

    kill(master, SIGHUP);
    cr_assert(wait_notify(sock, "RELOADING=1", all, sizeof all, 5000), "%s", all);
    cr_assert(wait_notify(sock, "READY=1", all, sizeof all, 8000), "READY=1 after the reload: %s", all);
    cr_assert(strstr(strstr(all, "RELOADING=1"), "READY=1"), "RELOADING then READY: %s", all);

    kill(master, SIGTERM);
    cr_assert(wait_notify(sock, "STOPPING=1", all, sizeof all, 5000), "%s", all);
    int st;
    cr_assert_eq(waitpid(master, &st, 0), master);
    master = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(sock);
}

static int listener(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 64), 0);
    return fd;
}

Test(systemd, uses_passed_sockets)
{
    int own_port = th_free_port(), passed_port = th_free_port();
    write_conf(own_port, "");
    int fds[2] = {listener(passed_port), listener(passed_port)};
    master = start(0, NULL, fds, 2, "slot1:slot0");
    close(fds[0]);
    close(fds[1]);
    long long deadline = th_now_ms() + 10000;
    while (get_status(passed_port) != 200 && th_now_ms() < deadline)
        usleep(50000);
    cr_assert_eq(get_status(passed_port), 200, "serves on the passed sockets");
    th_server s = {.pid = master};
    cr_assert_eq(th_wait_workers(&s, 2, NULL, 0, 5000), 0, "two passed sockets: two workers");
    th_response r;
    th_http(&r, own_port, "GET", "/dummy", NULL, 1000);
    cr_assert_eq(r.status, 0, "did not bind the configured address itself");
    cr_assert_eq(r.err, ECONNREFUSED);
    th_response_free(&r);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(get_status(passed_port), 200);
    kill(master, SIGTERM);
    waitpid(master, NULL, 0);
    master = 0;
}

Test(systemd, pidfile_is_locked)
{
    int port = th_free_port();
    char extra[400];
    char pidfile[] = "/tmp/clusterd-pid-XXXXXX";
    int tmp = mkstemp(pidfile);
    close(tmp);
    unlink(pidfile);
    snprintf(extra, sizeof extra, "pidfile = %s\n", pidfile);
    write_conf(port, extra);
    master = start(1, NULL, NULL, 0, NULL);
    long long deadline = th_now_ms() + 10000;
    while (get_status(port) != 200 && th_now_ms() < deadline)
        usleep(50000);
    FILE *f = fopen(pidfile, "r");
    cr_assert_not_null(f);
    int pid = 0;
    cr_assert_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    cr_assert_eq(pid, master);

    /* A second clusterd with the same pidfile refuses to start. */
    pid_t second = start(1, NULL, NULL, 0, NULL);
    int st;
    cr_assert_eq(waitpid(second, &st, 0), second);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "second instance status 0x%x", st);
    cr_assert_eq(get_status(port), 200, "the first one is undisturbed");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -q 'another clusterd (pid %d) holds the pidfile' %s", (int)master, logpath);
    cr_assert_eq(system(cmd), 0, "the refusal names the holder");

    kill(master, SIGTERM);
    waitpid(master, NULL, 0);
    master = 0;
    cr_assert_neq(access(pidfile, F_OK), 0, "pidfile removed at exit");
}

static int count_in(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

Test(systemd, watchdog_pings_while_workers_are_healthy)
{
    int port = th_free_port();
    write_conf(port, "");
    char sockpath[300];
    int sock = notify_socket(sockpath, sizeof sockpath);
    watchdog_usec = "600000"; /* WatchdogSec=0.6: a ping at least every 0.3 s */
    master = start(2, sockpath, NULL, 0, NULL);
    static char all[16384];
    all[0] = '\0';
    cr_assert(wait_notify(sock, "READY=1", all, sizeof all, 10000), "%s", all);
    long long t0 = th_now_ms();
    while (th_now_ms() - t0 < 1500)
        wait_notify(sock, "\x01never", all, sizeof all, 200);
    int pings = count_in(all, "WATCHDOG=1");
    cr_assert_geq(pings, 3, "WATCHDOG=1 about every 0.3 s while healthy: %d in 1.5 s (%s)", pings, all);
    kill(master, SIGTERM);
    waitpid(master, NULL, 0);
    master = 0;
    close(sock);
}
