/*
 * ceiling.c - the no-parse ceiling answerer: a reference target for the
 * dummy benchmark (bench/bench.py), not a product.
 *
 *   ceiling [-w WORKERS] [-a ADDR] [-p PORT] [-s BYTES] [-e]
 *
 * What is the least a server can do per request and still be an HTTP/1.1
 * server to wrk?  This: WORKERS processes (fork; the same count as the
 * other targets' workers), each with its own SO_REUSEPORT listener and its
 * own epoll loop (level-triggered, or edge-triggered with -e), that read
 * whatever arrives and answer each "\r\n\r\n" they find with one fixed
 * "200 OK" of clusterd's dummy answer's size (keep-alive), and close the
 * connection once they have answered a request that carried
 * "Connection: close" (that answer says so too), or on EOF.  No parser, no
 * timers, no per-request allocation: one read, one write per batch of
 * requests, nothing else; per connection accept4, a first read at once
 * (the request usually came with it), close, and epoll_ctl ADD only when
 * something is left to wait for.  Where clusterd is measured against it, the
 * difference is what parsing, routing, the service call, timers and
 * bookkeeping cost.
 *
 * The answer copies the shape of clusterd's dummy answer (Server, Date,
 * Content-Length, Content-Type, X-Request-Id, the same JSON body); -s BYTES
 * pads its X-Request-Id so the keep-alive answer is exactly BYTES long
 * (bench.py passes the length of clusterd's actual answer), and the close
 * answer adds "Connection: close\r\n" as clusterd's does.  The Date is
 * fixed at start (clusterd refreshes its Date once a second).
 *
 * The listener has clusterd's options (core/util.c, master/slots.c):
 * SO_REUSEPORT, TCP_NODELAY (accepted sockets inherit it) and
 * TCP_DEFER_ACCEPT (a connection is accepted once its request is in, so the
 * first read after accept4 finds it), so the difference measured is the
 * code, not the socket setup.
 *
 * Matching is byte by byte with the match state kept per connection, so a
 * request end or a "Connection: close" split across reads is still found.
 * A "Connection: close" anywhere in a request's head counts (no header
 * parsing: it is the ceiling).  Pipelined requests are answered in one
 * write; what the socket does not take waits for EPOLLOUT, and reading
 * stops until it is out.
 *
 * Processes: the parent forks the workers and waits; SIGTERM or SIGINT to
 * it ends them all (they also get SIGKILL if the parent dies:
 * PR_SET_PDEATHSIG).  Built by bench/run.sh: cc -O2 -o ceiling ceiling.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64 /* keep-alive answers one write can carry */
#define MAXEV 256

static const char BODY[] = "{\"service\":\"dummy\",\"ok\":true}";
static const char CLOSE_HDR[] = "Connection: close\r\n";
static const char CLOSE_PAT[] = "\nconnection: close";

struct conn {
    uint8_t end_m;   /* bytes of "\r\n\r\n" matched */
    uint8_t close_m; /* bytes of CLOSE_PAT matched (lower-cased input) */
    uint8_t close;   /* the request being read carries Connection: close */
    uint8_t closing; /* the close answer is queued: close once it is out */
    uint8_t out;     /* registered for EPOLLOUT */
    uint32_t kpend;  /* keep-alive answer bytes still to write */
    uint32_t cpend;  /* close answer bytes still to write */
};

static char *ka, *cl;   /* the keep-alive answer repeated BATCH times; the close answer */
static size_t ka_len, cl_len;
static struct conn *conns;
static int nconns;

static void make_answers(size_t want)
{
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&now));
    char id[256];
    snprintf(id, sizeof id, "%x-%llx-1", (unsigned)getpid(), (unsigned long long)now);
    char head[1024];
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nServer: clusterd/0.1\r\nDate: %s\r\nContent-Length: %zu\r\n"
                     "Content-Type: application/json\r\nX-Request-Id: %s\r\n\r\n%s",
                     date, sizeof BODY - 1, id, BODY);
        if (pass == 0 && want > (size_t)n && want - (size_t)n < sizeof id - strlen(id) - 1) {
            size_t l = strlen(id), pad = want - (size_t)n;
            memset(id + l, 'p', pad);
            id[l + pad] = '\0';
        } else {
            break;
        }
    }
    ka_len = (size_t)n;
    ka = malloc(ka_len * BATCH);
    cl = malloc(ka_len + sizeof CLOSE_HDR);
    if (!ka || !cl)
        exit(1);
    for (int i = 0; i < BATCH; i++)
        memcpy(ka + i * ka_len, head, ka_len);
    /* the close answer: "Connection: close" before Content-Type, as clusterd puts it after its framing */
    const char *ct = strstr(head, "Content-Type:");
    size_t pre = (size_t)(ct - head);
    memcpy(cl, head, pre);
    memcpy(cl + pre, CLOSE_HDR, sizeof CLOSE_HDR - 1);
    memcpy(cl + pre + sizeof CLOSE_HDR - 1, ct, ka_len - pre);
    cl_len = ka_len + sizeof CLOSE_HDR - 1;
}

static void drop(int ep, int fd)
{
    (void)ep; /* close() takes it out of the epoll set (no dup of it exists) */
    close(fd);
    memset(&conns[fd], 0, sizeof conns[fd]);
}

/* Writes what is pending; 1 when all is out, 0 on EAGAIN, -1 on error. */
static int flush(int fd, struct conn *c)
{
    while (c->kpend) {
        size_t start = (ka_len - c->kpend % ka_len) % ka_len;
        size_t n = ka_len * BATCH - start;
        if (n > c->kpend)
            n = c->kpend;
        ssize_t w = write(fd, ka + start, n);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        c->kpend -= (uint32_t)w;
    }
    while (c->cpend) {
        ssize_t w = write(fd, cl + (cl_len - c->cpend), c->cpend);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        c->cpend -= (uint32_t)w;
    }
    return 1;
}

/* Scans n bytes; queues an answer per request end.  Returns 1 when a close
 * answer was queued (the rest of the input is ignored). */
static int scan(struct conn *c, const char *p, ssize_t n)
{
    static const char END[] = "\r\n\r\n";
    for (ssize_t i = 0; i < n; i++) {
        char ch = p[i];
        char lc = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        if (lc == CLOSE_PAT[c->close_m]) {
            if (++c->close_m == sizeof CLOSE_PAT - 1) {
                c->close = 1;
                c->close_m = 0;
            }
        } else {
            c->close_m = lc == CLOSE_PAT[0];
        }
        if (ch == END[c->end_m]) {
            if (++c->end_m == 4) {
                c->end_m = 0;
                c->close_m = 0;
                if (c->close) {
                    c->cpend = (uint32_t)cl_len;
                    c->closing = 1;
                    return 1;
                }
                c->kpend += (uint32_t)ka_len;
            }
        } else {
            c->end_m = ch == '\r';
        }
    }
    return 0;
}

static char buf[65536];

static void on_conn(int ep, int fd, uint32_t evs, int et)
{
    struct conn *c = &conns[fd];
    if (c->out || c->closing) { /* writing what the socket did not take */
        int r = flush(fd, c);
        if (r < 0 || (r == 1 && c->closing)) {
            drop(ep, fd);
            return;
        }
        if (r == 0)
            return;
        struct epoll_event ev = {.events = EPOLLIN | (et ? EPOLLET : 0), .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        c->out = 0;
        if (!(evs & EPOLLIN) && !et)
            return;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            drop(ep, fd);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        int closing = scan(c, buf, n);
        int r = flush(fd, c);
        if (r < 0 || (r == 1 && closing)) {
            drop(ep, fd);
            return;
        }
        if (r == 0) {
            struct epoll_event ev = {.events = EPOLLOUT | (et ? EPOLLET : 0), .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            c->out = 1;
            return;
        }
        if (!et || (size_t)n < sizeof buf)
            return; /* level-triggered: epoll says when there is more; a short read drained it */
    }
}

/* Accepts until EAGAIN (one failed accept4 per wakeup, not an epoll_wait
 * per connection); each request is read at once (TCP_DEFER_ACCEPT: it is
 * in), and the connection joins the epoll set only when something is left
 * to wait for. */
static void on_accepted(int ep, int fd, int et)
{
    struct conn *c = &conns[fd];
    memset(c, 0, sizeof *c);
    uint32_t want = EPOLLIN;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        close(fd);
        return;
    }
    if (n > 0) {
        int closing = scan(c, buf, n);
        int r = flush(fd, c);
        if (r < 0 || (r == 1 && closing)) {
            close(fd);
            memset(c, 0, sizeof *c);
            return;
        }
        if (r == 0) {
            want = EPOLLOUT;
            c->out = 1;
        }
    }
    struct epoll_event ev = {.events = want | (et ? EPOLLET : 0), .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        memset(c, 0, sizeof *c);
    }
}

static void on_listen(int ep, int lfd, int et)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (fd >= nconns)
            close(fd);
        else
            on_accepted(ep, fd, et);
    }
}

static int worker(const char *addr, int port, int et)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (lfd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one) < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
        fprintf(stderr, "ceiling: listen on %s:%d: %s\n", addr, port, strerror(errno));
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        return 1;
    struct epoll_event evs[MAXEV];
    for (;;) {
        int n = epoll_wait(ep, evs, MAXEV, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == lfd)
                on_listen(ep, lfd, et);
            else
                on_conn(ep, evs[i].data.fd, evs[i].events, et);
        }
        if (n < 0 && errno != EINTR)
            return 1;
    }
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    int workers = 2, port = 8080, et = 0, opt;
    const char *addr = "127.0.0.1";
    size_t want = 0;
    while ((opt = getopt(argc, argv, "w:a:p:s:e")) != -1) {
        switch (opt) {
        case 'w': workers = atoi(optarg); break;
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 's': want = (size_t)strtoul(optarg, NULL, 10); break;
        case 'e': et = 1; break;
        default:
            fprintf(stderr, "usage: ceiling [-w WORKERS] [-a ADDR] [-p PORT] [-s BYTES] [-e]\n");
            return 2;
        }
    }
    if (workers < 1 || workers > 256 || port < 1 || port > 65535) {
        fprintf(stderr, "ceiling: bad -w or -p\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    nconns = (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 20)) ? (int)rl.rlim_cur : 1 << 20;
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns)
        return 1;
    make_answers(want);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t *kids = calloc((size_t)workers, sizeof *kids);
    for (int i = 0; kids && i < workers; i++) {
        kids[i] = fork();
        if (kids[i] == 0)
            _exit(worker(addr, port, et));
    }
    fprintf(stderr, "ceiling: %d workers on %s:%d, %s-triggered, answer %zu bytes (close %zu)\n", workers,
            addr, port, et ? "edge" : "level", ka_len, cl_len);
    int left = workers;
    while (!stop && left > 0) {
        if (wait(NULL) > 0)
            left--; /* a worker died: the others keep serving, bench.py sees the count */
    }
    for (int i = 0; kids && i < workers; i++)
        if (kids[i] > 0)
            kill(kids[i], SIGTERM);
    while (wait(NULL) > 0)
        ;
    return 0;
}
