/*
 * harness.c - see harness.h.  Test-side code: plain blocking sockets with
 * poll() timeouts, so every wait is bounded.
 */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int write_conf_va(th_server *s, const char *fmt, va_list ap)
{
    FILE *f = fopen(s->conf_path, "w");
    if (!f)
        return -1;
    vfprintf(f, fmt, ap);
    return fclose(f);
}

int th_write_conf(th_server *s, const char *conf_fmt, ...)
{
    va_list ap;
    va_start(ap, conf_fmt);
    int rc = write_conf_va(s, conf_fmt, ap);
    va_end(ap);
    return rc;
}

static void print_log(const th_server *s)
{
    FILE *f = fopen(s->log_path, "r");
    if (!f)
        return;
    char line[1024];
    fprintf(stderr, "---- clusterd log (%s) ----\n", s->log_path);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

static const char *bin(void)
{
    const char *b = getenv("CLUSTERD_BIN");
    return b ? b : "./clusterd";
}

int th_start(th_server *s, int workers, const char *ready_path, const char *const *extra_args,
             const char *conf_fmt, ...)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/clusterd-test-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->conf_path, sizeof s->conf_path, "%s/services.ini", s->dir);
    snprintf(s->log_path, sizeof s->log_path, "%s/stderr.log", s->dir);
    s->port = th_free_port();
    va_list ap;
    va_start(ap, conf_fmt);
    /* The first conversion of the format is the port. */
    FILE *f = fopen(s->conf_path, "w");
    if (!f) {
        va_end(ap);
        return -1;
    }
    char *fmt2 = NULL;
    size_t fl = 0;
    FILE *m = open_memstream(&fmt2, &fl);
    fprintf(m, "%s", conf_fmt);
    fclose(m);
    /* Substitute the first %d with the port, pass the rest to vfprintf. */
    char *pd = strstr(fmt2, "%d");
    if (pd) {
        fwrite(fmt2, 1, (size_t)(pd - fmt2), f);
        fprintf(f, "%d", s->port);
        vfprintf(f, pd + 2, ap);
    } else {
        vfprintf(f, fmt2, ap);
    }
    free(fmt2);
    fclose(f);
    va_end(ap);

    /* The master's sockets go under the test's own dir (clusterd's default
     * runtime_dir is $RUNTIME_DIRECTORY when set), so a master killed by a
     * test leaves nothing in /tmp/clusterd.PORT for a later test on the
     * same port; clusterctl started by the test finds them the same way. */
    char rundir[320];
    snprintf(rundir, sizeof rundir, "%s/run", s->dir);
    setenv("RUNTIME_DIRECTORY", rundir, 1);

    const char *argv[32];
    int argc = 0;
    char wbuf[16];
    snprintf(wbuf, sizeof wbuf, "%d", workers);
    argv[argc++] = bin();
    argv[argc++] = "-c";
    argv[argc++] = s->conf_path;
    argv[argc++] = "-w";
    argv[argc++] = wbuf;
    for (int i = 0; extra_args && extra_args[i] && argc < 30; i++)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        setpgid(0, 0); /* its own group: terminal signals of the test runner stay out */
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    long long deadline = th_now_ms() + 10000;
    while (th_now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            fprintf(stderr, "clusterd exited during start (status 0x%x)\n", st);
            print_log(s);
            return -1;
        }
        if (ready_path) {
            th_response r;
            th_http(&r, s->port, "GET", ready_path, NULL, 1000);
            int ok = r.status == 200;
            th_response_free(&r);
            if (ok && th_workers(s, NULL, 0) == workers)
                return 0;
        } else if (th_workers(s, NULL, 0) == workers) {
            return 0;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "clusterd did not become ready in 10s\n");
    print_log(s);
    th_stop(s, SIGKILL, 1000);
    return -1;
}

int th_stop(th_server *s, int sig, int timeout_ms)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, sig);
    long long deadline = th_now_ms() + timeout_ms;
    int st;
    while (th_now_ms() < deadline) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return st;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "clusterd did not exit within %d ms of signal %d; killing it\n", timeout_ms, sig);
    pid_t pids[64];
    int n = th_workers(s, pids, 64);
    kill(s->pid, SIGKILL);
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    print_log(s);
    return -1;
}

int th_workers(const th_server *s, pid_t *pids, int max)
{
    if (s->pid <= 0)
        return 0;
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)s->pid, (int)s->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, pid;
    while (fscanf(f, "%d", &pid) == 1) {
        /* Count only live workers, not zombies waiting to be reaped. */
        char stat[128], buf[256];
        snprintf(stat, sizeof stat, "/proc/%d/stat", pid);
        FILE *sf = fopen(stat, "r");
        int zombie = 1;
        if (sf) {
            if (fgets(buf, sizeof buf, sf)) {
                char *rp = strrchr(buf, ')');
                zombie = !rp || rp[2] == 'Z';
            }
            fclose(sf);
        }
        if (zombie)
            continue;
        if (pids && n < max)
            pids[n] = pid;
        n++;
    }
    fclose(f);
    return n;
}

int th_wait_workers(const th_server *s, int n, const pid_t *exclude, int nexclude, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    while (th_now_ms() < deadline) {
        pid_t pids[64];
        int k = th_workers(s, pids, 64);
        int bad = 0;
        for (int i = 0; i < k && i < 64; i++)
            for (int j = 0; j < nexclude; j++)
                bad |= pids[i] == exclude[j];
        if (k == n && !bad)
            return 0;
        sleep_ms(20);
    }
    return -1;
}

int th_log_contains(const th_server *s, const char *needle, int timeout_ms)
{
    long long deadline = th_now_ms() + timeout_ms;
    do {
        FILE *f = fopen(s->log_path, "r");
        if (f) {
            char line[2048];
            int found = 0;
            while (!found && fgets(line, sizeof line, f))
                found = strstr(line, needle) != NULL;
            fclose(f);
            if (found)
                return 1;
        }
        sleep_ms(20);
    } while (th_now_ms() < deadline);
    return 0;
}

static int connect_to(int port, int timeout_ms, int *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, timeout_ms) <= 0) {
        *err = ETIMEDOUT;
        close(fd);
        return -1;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
        *err = soerr;
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *data, size_t len, long long deadline, int *err)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            *err = errno;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        long long left = deadline - th_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            *err = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* Reads until EOF or the deadline; returns a malloc'd buffer. */
static char *recv_all(int fd, long long deadline, size_t *outlen, int *err)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            *err = errno;
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = deadline - th_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            *err = ETIMEDOUT;
            break;
        }
    }
    buf[len] = '\0';
    *outlen = len;
    return buf;
}

char *th_raw(int port, const char *data, size_t len, int timeout_ms, size_t *outlen)
{
    int err = 0;
    long long deadline = th_now_ms() + timeout_ms;
    int fd = connect_to(port, timeout_ms, &err);
    if (fd < 0)
        return NULL;
    if (len && send_all(fd, data, len, deadline, &err) < 0) {
        /* The server may answer and close before taking everything: read anyway. */
    }
    char *out = recv_all(fd, deadline, outlen, &err);
    close(fd);
    return out;
}

int th_http(th_response *r, int port, const char *method, const char *path, const char *body, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    long long deadline = th_now_ms() + timeout_ms;
    int fd = connect_to(port, timeout_ms, &r->err);
    if (fd < 0)
        return -1;
    char req[4096];
    size_t blen = body ? strlen(body) : 0;
    char cl[96] = "";
    if (body)
        snprintf(cl, sizeof cl, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s\r\n",
                     method, path, port, cl);
    if (send_all(fd, req, (size_t)n, deadline, &r->err) < 0 ||
        (blen && send_all(fd, body, blen, deadline, &r->err) < 0)) {
        close(fd);
        return -1;
    }
    size_t len;
    char *raw = recv_all(fd, deadline, &len, &r->err);
    close(fd);
    char *end = strstr(raw, "\r\n\r\n");
    if (strncmp(raw, "HTTP/1.", 7) != 0 || !end) {
        free(raw);
        if (!r->err)
            r->err = EPROTO;
        return -1;
    }
    r->status = atoi(raw + 9);
    size_t hl = (size_t)(end - raw);
    if (hl >= sizeof r->headers)
        hl = sizeof r->headers - 1;
    memcpy(r->headers, raw, hl);
    r->headers[hl] = '\0';
    r->body_len = len - (size_t)(end + 4 - raw);
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(raw);
    if (r->err == ETIMEDOUT && r->status)
        r->err = 0; /* got an answer; the server just kept the connection */
    return r->status ? 0 : -1;
}

void th_response_free(th_response *r)
{
    free(r->body);
    r->body = NULL;
}

void th_cleanup(th_server *s)
{
    if (strncmp(s->dir, "/tmp/clusterd-test-", 19) != 0 || getenv("CLUSTERD_KEEP_TEST_DIRS"))
        return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
    s->dir[0] = '\0';
}

/* A keep-alive client loop in a child process; reports ok/failed counts
 * through a pipe.  A failure is any request that did not get a full answer. */

static int read_response(int fd, char *buf, size_t cap, int *closed)
{
    size_t len = 0;
    long long deadline = th_now_ms() + 5000;
    for (;;) {
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strstr(buf, "Content-Length: ");
            size_t want = (size_t)(end + 4 - buf) + (cl ? (size_t)atoi(cl + 16) : 0);
            if (len >= want) {
                *closed = strstr(buf, "Connection: close") != NULL;
                buf[want] = '\0';
                return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
            }
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = deadline - th_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
    }
}

pid_t th_client_loop(int port, int ms, int *rfd, const char *first_body)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        th_loop_result res = {0, 0, 0};
        long long end = th_now_ms() + ms;
        int fd = -1;
        char buf[4096];
        while (th_now_ms() < end && res.ok + res.failed < 200000) {
            if (fd < 0 && (fd = th_connect(port)) < 0) {
                res.failed++;
                continue;
            }
            const char *req = "GET /dummy HTTP/1.1\r\nHost: x\r\n\r\n";
            int closed = 0;
            buf[0] = '\0';
            if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req) ||
                read_response(fd, buf, sizeof buf, &closed) < 0) {
                res.failed++;
                closed = 1;
            } else {
                res.ok++;
                char *body = strstr(buf, "\r\n\r\n") + 4;
                if (strcmp(body, first_body) != 0)
                    res.bodies_changed++;
            }
            if (closed) {
                close(fd);
                fd = -1;
            }
        }
        ssize_t wr = write(pfd[1], &res, sizeof res);
        _exit(wr == sizeof res ? 0 : 1);
    }
    close(pfd[1]);
    *rfd = pfd[0];
    return pid;
}

th_loop_result th_client_result(pid_t pid, int rfd)
{
    th_loop_result res = {-1, -1, -1};
    struct pollfd p = {.fd = rfd, .events = POLLIN};
    if (poll(&p, 1, 30000) == 1 && read(rfd, &res, sizeof res) != sizeof res)
        res.ok = -1;
    close(rfd);
    waitpid(pid, NULL, 0);
    return res;
}


int th_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int th_run(const char *const argv[], char *out, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(pfd[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_finish(th_server *s)
{
    if (s->pid > 0)
        th_stop(s, SIGTERM, 8000);
    if (!s->log_path[0]) {
        th_cleanup(s);
        return 0;
    }
    if (th_log_contains(s, "Sanitizer", 0) || th_log_contains(s, "runtime error:", 0)) {
        print_log(s);
        return -1;
    }
    th_cleanup(s);
    return 0;
}
