/*
 * driver_run.c - the phases of the C fan-out driver (see driver.c for the
 * whole and the clients): connect, check, warm-up, paced, saturated, each
 * as driver.js runs it, with the CPU of the server's process tree, of this
 * process and of the rest of the machine over each phase, and the one JSON
 * line on stdout that bench.js reads (the fields driver.js prints, plus
 * "driver": "c").
 *
 * CPU: the server's from /proc/PID/stat (utime + stime of the root given
 * with --pid and all its descendants, found once after connecting), this
 * process's from getrusage (µs resolution), the machine's from /proc/stat;
 * "other" is the machine's minus both.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "driver.h"

/* ---- /proc ------------------------------------------------------------------ */

static int proc_stat(int pid, int *ppid, double *cpu_ms)
{
    char path[64], b[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = 0;
    char *p = strrchr(b, ')');
    unsigned long ut = 0, st = 0;
    int pp = 0;
    if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &pp, &ut, &st) != 3)
        return -EINVAL;
    if (ppid)
        *ppid = pp;
    if (cpu_ms)
        *cpu_ms = (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

/* d->server: the root and all its descendants (at most 1000). */
static void server_tree(drv_t *d)
{
    static int pid[65536], ppid[65536];
    int n = 0;
    DIR *dir = opendir("/proc");
    struct dirent *e;
    while (dir && n < 65536 && (e = readdir(dir)))
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && proc_stat(atoi(e->d_name), &ppid[n], NULL) == 0)
            pid[n] = atoi(e->d_name), n++;
    if (dir)
        closedir(dir);
    d->nserver = 0;
    if (d->pid > 0)
        d->server[d->nserver++] = d->pid;
    for (int i = 0; i < d->nserver; i++) /* breadth first: the list is its own queue */
        for (int j = 0; j < n && d->nserver < 1000; j++)
            if (ppid[j] == d->server[i])
                d->server[d->nserver++] = pid[j];
}

static long rss_kb(drv_t *d)
{
    long kb = 0;
    for (int i = 0; i < d->nserver; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", d->server[i]);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "VmRSS:", 6) == 0)
                kb += atol(line + 6);
        if (f)
            fclose(f);
    }
    return kb;
}

static snap_t snap(drv_t *d)
{
    snap_t s = {.t = now_ms()};
    for (int i = 0; i < d->nserver; i++) {
        double ms;
        if (proc_stat(d->server[i], NULL, &ms) == 0)
            s.server_ms += ms;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s.driver_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                    &v[6], &v[7]) == 8) /* user nice system idle iowait irq softirq steal */
        s.busy_ms = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    if (f)
        fclose(f);
    return s;
}

/* ---- the publisher and the phases ----------------------------------------------- */

static long emit_one(drv_t *d)
{
    if (d->seq >= MAX_MSGS)
        fail(d, "too many events for one run");
    long s = d->seq++;
    d->sent_at[s] = now_ms();
    int n = sprintf(d->emit, "42[\"tick\",{\"s\":%ld,\"t\":%.3f,\"p\":\"%s\"}]", s, d->sent_at[s], d->pad);
    send_frame(d, &d->c[d->clients], 1, d->emit, (size_t)n);
    return s;
}

void refill(drv_t *d)
{
    while (!d->stopped && d->ninflight < d->window) {
        if (now_ms() >= d->t_end) {
            d->stopped = 1;
            break;
        }
        d->inflight[d->ninflight++] = emit_one(d);
    }
}

/* R events/s for secs, spread over 1 ms ticks; returns the first seq. */
static long paced(drv_t *d, double secs)
{
    long first = d->seq, total = lround(d->rate * secs), sent = 0;
    double t0 = now_ms();
    for (;;) {
        long due = (long)floor((now_ms() - t0) * d->rate / 1000) + 1;
        for (due = due < total ? due : total; sent < due; sent++)
            emit_one(d);
        if (sent >= total)
            return first;
        poll_once(d, 1);
    }
}

/* Until every event in [first, last) reached all receivers, or ms. */
static void drain(drv_t *d, long first, long last, double ms)
{
    double end = now_ms() + ms;
    while (first < last && now_ms() < end) {
        while (first < last && d->got[first] >= (uint32_t)d->clients)
            first++;
        if (first < last)
            poll_once(d, 5);
    }
}

/* W events in flight for secs (refilled from on_tick as events complete). */
static long saturate(drv_t *d, double secs)
{
    long first = d->seq;
    double last_expiry = now_ms(), wait_end = 0;
    d->t_end = now_ms() + secs * 1000;
    d->stopped = 0, d->ninflight = 0, d->saturating = 1;
    refill(d);
    for (;;) {
        double now = now_ms();
        if (now >= d->t_end)
            d->stopped = 1;
        if (now - last_expiry >= 20) {
            int expired = 0;
            for (int i = 0; i < d->ninflight;)
                if (now - d->sent_at[d->inflight[i]] > EXPIRE_MS)
                    d->inflight[i] = d->inflight[--d->ninflight], expired = 1;
                else
                    i++;
            if (expired)
                refill(d);
            last_expiry = now;
        }
        if (d->stopped && !wait_end)
            wait_end = now + EXPIRE_MS + 500;
        if (d->stopped && (!d->ninflight || now > wait_end))
            break;
        poll_once(d, 5);
    }
    d->saturating = 0;
    return first;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void num(FILE *o, const char *key, double v)
{
    if (isfinite(v))
        fprintf(o, "\"%s\":%.6g,", key, v);
    else
        fprintf(o, "\"%s\":null,", key);
}

/* One phase's object, as driver.js's summarize() has it. */
static void summarize(drv_t *d, FILE *o, const char *name, long first, long last, snap_t a, snap_t b, double t_end)
{
    long expected = 0, delivered = 0;
    for (long s = first; s < last; s++) {
        expected += d->clients;
        delivered += d->got[s] < (uint32_t)d->clients ? (long)d->got[s] : d->clients;
    }
    qsort(d->lat, d->nlat, sizeof *d->lat, cmp_double);
    size_t n = d->nlat;
    double span = t_end - (last > first ? d->sent_at[first] : t_end), wall = b.t - a.t;
#define PCT(q) (n ? d->lat[(size_t)(q * n) < n - 1 ? (size_t)(q * n) : n - 1] : NAN)
    double server = b.server_ms - a.server_ms, driver = b.driver_ms - a.driver_ms;
    double other = b.busy_ms - a.busy_ms - server - driver;
    fprintf(o, "{\"phase\":\"%s\",\"events\":%ld,\"expected\":%ld,\"delivered\":%ld,\"missed\":%ld,", name,
            last - first, expected, delivered, expected - delivered);
    num(o, "deliveries_per_s", delivered / (span / 1000));
    num(o, "events_per_s", (last - first) / (span / 1000));
    num(o, "span_ms", span);
    num(o, "p50_ms", PCT(0.5));
    num(o, "p90_ms", PCT(0.9));
    num(o, "p99_ms", PCT(0.99));
    num(o, "max_ms", n ? d->lat[n - 1] : NAN);
#undef PCT
    num(o, "wall_ms", wall);
    num(o, "server_cpu_ms", server);
    num(o, "driver_cpu_ms", driver);
    num(o, "server_cores", server / wall);
    num(o, "driver_cores", driver / wall);
    num(o, "other_cores", other > 0 ? other / wall : 0);
    num(o, "server_us_per_delivery", delivered ? server * 1000 / delivered : NAN);
    num(o, "driver_us_per_delivery", delivered ? driver * 1000 / delivered : NAN);
    fseek(o, -1, SEEK_CUR); /* the last comma */
    fputs("}", o);
}

/* POST /socket.io/publish over a blocking socket (5 s each way); the status, or -1. */
static int publish(drv_t *d, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[512], resp[512] = "";
    int n = snprintf(req, sizeof req,
                     "POST /socket.io/publish HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     d->port, strlen(body), body);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        size_t got = 0; /* the status line may come in pieces */
        ssize_t r;
        while (got < sizeof resp - 1 && (r = recv(fd, resp + got, sizeof resp - 1 - got, 0)) > 0) {
            resp[got += (size_t)r] = 0;
            if (strstr(resp, "\r\n"))
                break;
        }
        if (got >= 12 && sscanf(resp, "HTTP/1.%*c %d", &status) != 1)
            status = -1;
    }
    if (fd >= 0)
        close(fd);
    return status;
}

/* ---- main ---------------------------------------------------------------------- */

static void options(drv_t *d, int argc, char **argv)
{
    static const char *names[] = {"port", "pid", "clients", "rate", "rate-secs", "sat-secs", "window",
                                  "payload", "warmup-secs", "deadline", "polling"};
    double v[11] = {0, 0, 200, 100, 8, 8, 8, 64, 1, 120, 0};
    for (int i = 1; i < argc; i += 2) {
        size_t k = 0;
        while (k < 11 && (strncmp(argv[i], "--", 2) || strcmp(argv[i] + 2, names[k])))
            k++;
        if (k == 11 || i + 1 >= argc) {
            fprintf(stderr, "driver: unknown or incomplete option %s\n", argv[i]);
            exit(2);
        }
        v[k] = atof(argv[i + 1]);
    }
    d->port = (int)v[0], d->pid = (int)v[1], d->clients = (int)v[2], d->rate = (int)v[3];
    d->rate_secs = v[4], d->sat_secs = v[5], d->window = (int)v[6], d->payload = (int)v[7];
    d->warmup_secs = v[8], d->deadline = v[9];
    if (!d->port || d->clients < 1 || d->window < 1 || d->window > MAX_WINDOW || d->payload < 0 ||
        d->payload > 65536 || d->rate < 1) {
        fprintf(stderr, "usage: driver --port P --pid ROOT [--clients N>=1] [--rate R>=1] [--window 1..%d] "
                        "[--payload 0..65536] ...\n", MAX_WINDOW);
        exit(2);
    }
    if (v[10]) {
        fprintf(stderr, "driver: the C driver speaks WebSocket only (use driver.js for --polling 1)\n");
        exit(2);
    }
}

static void setup(drv_t *d)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)d->clients + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    alarm((unsigned)d->deadline + 10); /* behind the deadline poll_once checks: SIGALRM ends us */
    d->t_start = now_ms();
    d->rnd = (uint64_t)d->t_start ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    d->sent_at = calloc(MAX_MSGS, sizeof *d->sent_at);
    d->got = calloc(MAX_MSGS, sizeof *d->got);
    d->c = calloc((size_t)d->clients + 1, sizeof *d->c);
    d->emit = malloc((size_t)d->payload + 128);
    d->pad = malloc((size_t)d->payload + 1);
    if (!d->sent_at || !d->got || !d->c || !d->emit || !d->pad)
        fail(d, "out of memory");
    for (int i = 0; i <= d->clients; i++)
        d->c[i].fd = -1;
    memset(d->pad, 'x', (size_t)d->payload);
    d->pad[d->payload] = 0;
}

static void phases(drv_t *d, FILE *o)
{
    char body[128];
    snprintf(body, sizeof body, "{\"room\":\"%s\",\"event\":\"hello\",\"args\":[\"check\"]}", ROOM);
    int status = publish(d, body), reached = 0;
    for (double end = now_ms() + 5000; now_ms() < end;) {
        reached = 0;
        for (int i = 0; i <= d->clients; i++)
            reached += d->c[i].hello >= 1;
        if (reached == d->clients + 1)
            break;
        poll_once(d, 5);
    }
    if (status != 202 || reached != d->clients + 1)
        say("check: publish %d; reached %d/%d", status, reached, d->clients + 1);
    fprintf(o, "\"check\":{\"status\":%d,\"reached\":%d,\"of\":%d},", status, reached, d->clients + 1);
    if (d->warmup_secs > 0) {
        long a = paced(d, d->warmup_secs);
        drain(d, a, d->seq, EXPIRE_MS + 500);
    }
    fprintf(o, "\"rss_kb_connected\":%ld,", rss_kb(d));

    d->nlat = 0, d->recording = 1;
    snap_t c0 = snap(d);
    long a = paced(d, d->rate_secs), b = d->seq;
    double t_sent = now_ms();
    drain(d, a, b, EXPIRE_MS + 500);
    snap_t c1 = snap(d);
    d->recording = 0;
    /* At a fixed rate deliveries/s is the rate: the span is the sending time. */
    double t_end = d->last_recv < c1.t ? d->last_recv : c1.t;
    fputs("\"rate_phase\":", o);
    summarize(d, o, "rate", a, b, c0, c1, t_end > t_sent ? t_end : t_sent);
    say("rate %d/s: p99 %.2f ms over %zu deliveries", d->rate, d->nlat ? d->lat[(size_t)(0.99 * d->nlat)] : NAN,
        d->nlat);

    d->nlat = 0, d->recording = 1;
    c0 = snap(d);
    a = saturate(d, d->sat_secs), b = d->seq;
    c1 = snap(d);
    d->recording = 0;
    fputs(",\"sat_phase\":", o);
    summarize(d, o, "saturate", a, b, c0, c1, d->last_recv);
    say("saturate W=%d: %ld events, p99 %.2f ms, server %.0f ms CPU, driver %.0f ms CPU", d->window, b - a,
        d->nlat ? d->lat[(size_t)(0.99 * d->nlat)] : NAN, c1.server_ms - c0.server_ms, c1.driver_ms - c0.driver_ms);
}

int main(int argc, char **argv)
{
    static drv_t drv;
    drv_t *d = &drv;
    options(d, argc, argv);
    setup(d);
    if ((d->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        fail(d, "epoll_create1: %s", strerror(errno));
    double tc = now_ms();
    for (int base = 0; base < d->clients; base += 50)
        connect_all(d, base, base + 50 < d->clients ? base + 50 : d->clients, 10000);
    connect_all(d, d->clients, d->clients + 1, 10000);
    tc = now_ms() - tc;
    int per[256] = {0};
    for (int i = 0; i < d->clients; i++)
        per[d->c[i].worker & 255]++;
    per[d->c[d->clients].worker & 255]++;
    say("%d receivers + publisher connected and joined in %.0f ms", d->clients, tc);
    server_tree(d);

    char *res = NULL;
    size_t reslen = 0;
    FILE *o = open_memstream(&res, &reslen);
    if (!o)
        fail(d, "open_memstream: %s", strerror(errno));
    fprintf(o, "{\"driver\":\"c\",\"clients\":%d,\"payload_bytes\":%d,\"window\":%d,\"rate\":%d,", d->clients,
            d->payload, d->window, d->rate);
    fprintf(o, "\"connect_ms\":%.1f,\"connect_retries\":0,\"per_worker\":{", tc);
    for (int w = 0, first = 1; w < 256; w++)
        if (per[w])
            fprintf(o, "%s\"%d\":%d", first ? "" : ",", w, per[w]), first = 0;
    fprintf(o, "},\"publisher_worker\":%d,\"server_processes\":%d,", d->c[d->clients].worker, d->nserver);
    phases(d, o);
    int lost = 0;
    for (int i = 0; i <= d->clients; i++)
        lost += d->c[i].lost != NULL;
    fprintf(o, ",\"rss_kb_end\":%ld,\"dupes_or_reordered\":%ld,\"echoes_to_sender\":%ld,\"strays\":%ld,"
               "\"disconnected\":%d,\"pub_still_connected\":%s}\n",
            rss_kb(d), d->dupes, d->echoes, d->strays, lost, d->c[d->clients].lost ? "false" : "true");
    fclose(o);
    d->closing = 1;
    for (int i = 0; i <= d->clients; i++)
        if (d->c[i].fd >= 0)
            close(d->c[i].fd);
    fputs(res, stdout);
    free(res);
    return 0;
}
