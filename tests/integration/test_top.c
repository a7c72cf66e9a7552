/*
 * Integration tests of `clusterctl top`: the real clusterctl runs in a
 * pseudo-terminal (openpty, login_tty: the pty is its controlling terminal,
 * so Ctrl-C and resizes reach it as a real terminal's would) against a real
 * clusterd -w 2.  The test reads the screen the way a terminal would: a
 * frame is what is drawn between "home" (ESC [H) and "clear below" (ESC [J).
 *
 * Checked: both worker rows with their pids; the figures move after load
 * (the cluster's requests/s and p50); a master that goes away is said on
 * screen; q and Ctrl-C exit 0 and give the terminal back as it was
 * (canonical mode, echo, the main screen, the cursor); a 40-column terminal
 * gets lines of at most 39 bytes with the essential columns kept; and
 * without a terminal, top refuses with a clear message.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <utmp.h>

#include "tests/integration/harness.h"

#define CONF                                                                                                 \
    "[cluster]\nlisten = 127.0.0.1:%d\nheartbeat_interval = 200ms\nheartbeat_timeout = 3s\n"                  \
    "graceful_timeout = 3s\n[dummy]\ntype = dummy\n"

static th_server srv;

typedef struct tty_run {
    pid_t pid;
    int master, slave;
    char *buf; /* everything top wrote */
    size_t len, cap;
} tty_run;

static tty_run top;

static void fini(void)
{
    if (top.pid > 0) {
        kill(top.pid, SIGKILL);
        waitpid(top.pid, NULL, 0);
    }
    if (top.master >= 0)
        close(top.master);
    if (top.slave >= 0)
        close(top.slave);
    free(top.buf);
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
}

static void init(void)
{
    memset(&top, 0, sizeof top);
    top.master = top.slave = -1;
}

TestSuite(top, .init = init, .fini = fini, .timeout = 90);

/* Starts clusterctl top in a new pty of cols x rows. */
static void top_start(int cols, int rows)
{
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    cr_assert_eq(openpty(&top.master, &top.slave, NULL, NULL, &ws), 0, "openpty: %s", strerror(errno));
    top.cap = 1 << 20;
    top.buf = malloc(top.cap);
    cr_assert(top.buf);
    top.pid = fork();
    cr_assert(top.pid >= 0);
    if (top.pid == 0) {
        close(top.master);
        if (login_tty(top.slave) < 0)
            _exit(126);
        execl(getenv("CLUSTERCTL_BIN"), "clusterctl", "-c", srv.conf_path, "top", (char *)NULL);
        _exit(127);
    }
}

/* Reads what top writes for up to ms milliseconds. */
static void pump(int ms)
{
    long long end = th_now_ms() + ms;
    for (long long left = ms; left > 0; left = end - th_now_ms()) {
        struct pollfd p = {top.master, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            return;
        if (top.len + 4096 > top.cap)
            return;
        ssize_t n = read(top.master, top.buf + top.len, top.cap - top.len - 1);
        if (n <= 0)
            return;
        top.len += (size_t)n;
        top.buf[top.len] = '\0';
    }
}

/* The last whole frame drawn, its lines without the terminal's sequences
 * (clear to end of line, CR), into out; returns the number of lines. */
static int last_frame(char lines[][256], int max)
{
    const char *end = NULL, *p = top.buf;
    for (const char *q; (q = memmem(p, top.len - (size_t)(p - top.buf), "\x1b[J", 3)); p = q + 3)
        end = q;
    if (!end)
        return 0;
    const char *start = NULL;
    for (const char *q = top.buf; (q = memmem(q, (size_t)(end - q), "\x1b[H", 3)); q += 3)
        start = q + 3;
    if (!start)
        return 0;
    int n = 0;
    size_t l = 0;
    lines[0][0] = '\0';
    for (const char *c = start; c < end && n < max; c++) {
        if (c + 3 <= end && memcmp(c, "\x1b[K", 3) == 0) {
            c += 2;
        } else if (*c == '\r') {
        } else if (*c == '\n') {
            if (++n < max)
                lines[n][l = 0] = '\0';
        } else if (l < 255) {
            lines[n][l++] = *c;
            lines[n][l] = '\0';
        }
    }
    return n < max ? n + 1 : n;
}

/* The worker rows of a frame: lines after the one starting "SLOT". */
static int worker_rows(char lines[][256], int n, int *first)
{
    for (int i = 0; i < n; i++)
        if (strncmp(lines[i], "SLOT", 4) == 0) {
            *first = i + 1;
            return n - i - 1;
        }
    return -1;
}

static char frame[64][256];
static int nframe;

/* Reads until the last frame satisfies ok (bounded by ms); returns whether. */
static int wait_frame(int (*ok)(void *), void *arg, int ms)
{
    long long end = th_now_ms() + ms;
    while (th_now_ms() < end) {
        pump(100);
        nframe = last_frame(frame, 64);
        if (nframe > 0 && ok(arg))
            return 1;
    }
    return 0;
}

static const char *frame_text(void)
{
    static char t[64 * 258];
    t[0] = '\0';
    for (int i = 0; i < nframe; i++) {
        strcat(t, frame[i]);
        strcat(t, "\n");
    }
    return t;
}

/* Both workers' rows, each with its slot, pid and state. */
static int shows_workers(void *arg)
{
    const pid_t *w = arg;
    int first, n = worker_rows(frame, nframe, &first);
    if (n != 2)
        return 0;
    int seen = 0;
    for (int i = first; i < first + n; i++) {
        int slot, pid;
        char state[32];
        if (sscanf(frame[i], "%d %d %31s", &slot, &pid, state) != 3 || strcmp(state, "ready") != 0)
            return 0;
        for (int k = 0; k < 2; k++)
            seen |= pid == (int)w[k] ? 1 << k : 0;
    }
    return seen == 3;
}

/* The cluster line shows requests per second above zero and a p50. */
static int shows_load(void *arg)
{
    (void)arg;
    for (int i = 0; i < nframe; i++) {
        double rate;
        char p50[32];
        if (sscanf(frame[i], "cluster %lf req/s p50 %31s", &rate, p50) == 2)
            return rate > 0 && strcmp(p50, "-") != 0;
    }
    return 0;
}

static int shows_text(void *arg) { return strstr(frame_text(), arg) != NULL; }

/* Sends keys, then waits (bounded) for top to exit; returns its status. */
static int send_and_wait(const char *keys)
{
    cr_assert_eq(write(top.master, keys, strlen(keys)), (ssize_t)strlen(keys));
    for (long long end = th_now_ms() + 5000; th_now_ms() < end;) {
        pump(50);
        int st;
        pid_t r = waitpid(top.pid, &st, WNOHANG);
        if (r == top.pid) {
            top.pid = 0;
            pump(50);
            return st;
        }
    }
    cr_assert_fail("clusterctl top did not exit on %s", keys[0] == 3 ? "Ctrl-C" : keys);
    return -1;
}

/* The terminal is as it was before top: canonical, echoing, and the last
 * thing written leaves the alternate screen and shows the cursor. */
static void assert_restored(const struct termios *before)
{
    struct termios now;
    cr_assert_eq(tcgetattr(top.slave, &now), 0);
    cr_assert_eq(now.c_lflag & (ICANON | ECHO | ISIG), before->c_lflag & (ICANON | ECHO | ISIG),
                 "local modes %#x, before %#x", (unsigned)now.c_lflag, (unsigned)before->c_lflag);
    cr_assert_eq(now.c_cc[VSUSP], before->c_cc[VSUSP], "Ctrl-Z given back");
    static const char leave[] = "\x1b[?25h\x1b[?1049l";
    cr_assert(top.len >= sizeof leave - 1 && memcmp(top.buf + top.len - (sizeof leave - 1), leave, sizeof leave - 1) == 0,
              "the output ends by leaving the alternate screen: ...%s", top.buf + (top.len > 40 ? top.len - 40 : 0));
}

Test(top, shows_the_workers_moves_with_load_and_quits_on_q)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF), 0);
    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    top_start(120, 30);
    struct termios before;
    cr_assert_eq(tcgetattr(top.slave, &before), 0);
    cr_assert(wait_frame(shows_workers, w, 10000), "two worker rows with pids %d and %d:\n%s", (int)w[0], (int)w[1],
              frame_text());
    struct termios during;
    cr_assert_eq(tcgetattr(top.slave, &during), 0);
    cr_assert_not(during.c_lflag & (ICANON | ECHO), "top reads keys without canonical mode and echo");
    cr_assert(strstr(frame_text(), "P99"), "all columns at 120: %s", frame_text());

    int rfd;
    pid_t client = th_client_loop(srv.port, 3000, &rfd, "{\"service\":\"dummy\",\"ok\":true}");
    int moved = wait_frame(shows_load, NULL, 15000);
    th_loop_result lr = th_client_result(client, rfd);
    cr_assert(lr.ok > 0 && lr.failed == 0, "load: %d ok, %d failed", lr.ok, lr.failed);
    cr_assert(moved, "requests/s and p50 after load:\n%s", frame_text());

    /* The master goes away: top says so and keeps going. */
    cr_assert_neq(th_stop(&srv, SIGTERM, 10000), -1);
    cr_assert(wait_frame(shows_text, "clusterctl top:", 10000), "%s", frame_text());
    cr_assert(strstr(frame_text(), "no control socket"), "%s", frame_text());

    int st = send_and_wait("q");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %#x", st);
    assert_restored(&before);
}

/* Every line of the frame fits 39 columns, and the rows keep slot, pid,
 * state and requests/s. */
static int fits_40(void *arg)
{
    if (!shows_workers(arg) || strstr(frame_text(), "P99"))
        return 0;
    for (int i = 0; i < nframe; i++)
        if (strlen(frame[i]) > 39)
            return 0;
    return strstr(frame_text(), "REQ/S") != NULL;
}

Test(top, a_40_column_terminal_stays_readable_and_ctrl_c_quits)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, CONF), 0);
    pid_t w[2];
    cr_assert_eq(th_workers(&srv, w, 2), 2);
    top_start(120, 30);
    struct termios before;
    cr_assert_eq(tcgetattr(top.slave, &before), 0);
    cr_assert(wait_frame(shows_workers, w, 10000), "%s", frame_text());

    /* Resized as a terminal window is: the kernel sends SIGWINCH. */
    struct winsize ws = {.ws_row = 30, .ws_col = 40};
    cr_assert_eq(ioctl(top.master, TIOCSWINSZ, &ws), 0);
    size_t mark = top.len;
    cr_assert(wait_frame(fits_40, w, 5000), "a 40-column frame:\n%s", frame_text());
    /* Nothing drawn since the resize carries a line too long, or any byte
     * that is neither printable nor one of top's sequences. */
    pump(1500);
    for (size_t i = mark; i < top.len; i++) {
        unsigned char c = (unsigned char)top.buf[i];
        cr_assert(c == '\x1b' || c == '\r' || c == '\n' || (c >= 0x20 && c < 0x7f), "byte %#x at %zu", c, i);
    }
    nframe = last_frame(frame, 64);
    cr_assert(fits_40(w), "%s", frame_text());

    int st = send_and_wait("\x03");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %#x", st);
    assert_restored(&before);
}

Test(top, refuses_without_a_terminal)
{
    cr_assert_eq(th_start(&srv, 1, "/dummy", NULL, CONF), 0);
    char out[4096];
    const char *argv[] = {getenv("CLUSTERCTL_BIN"), "-c", srv.conf_path, "top", NULL};
    int rc = th_run(argv, out, sizeof out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "top needs a terminal"), "%s", out);
}
