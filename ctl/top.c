/*
 * top.c - the terminal half of `clusterctl top` (clusterctl process).
 *
 * Once a second it asks the master for `status` (the fetch callback, which
 * clusterctl.c gives it), reads and derives the figures (top_view.c) and
 * redraws the whole screen.  No curses: the screen is a handful of short
 * lines, and four VT100 sequences that every terminal Debian ships knows
 * (home, clear to end of line, clear to end of screen, the alternate screen
 * with the cursor hidden) redraw it without flicker.  Lines are cut to the
 * width by top_view.c, so nothing ever wraps; a resize (SIGWINCH) redraws
 * at once at the new size.
 *
 * Input is the terminal in non-canonical mode without echo; q quits.  The
 * terminal keeps its signals (ISIG), so Ctrl-C is a SIGINT like everywhere
 * else: the handlers of INT, TERM and HUP only set a flag, the loop sees it
 * (poll is not restarted), restores the terminal and exits 0.  Ctrl-Z is
 * disabled while the view runs, since a stopped view would leave the shell
 * with a raw terminal.  A master that does not answer (stopped, restarting,
 * hung) is shown as such and asked again each second.
 */
#include "ctl/top.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define REFRESH_MS 1000
#define SCREEN_MAX (64 * 1024)

static volatile sig_atomic_t top_quit, top_resized;

static void on_quit(int sig)
{
    (void)sig;
    top_quit = 1;
}

static void on_winch(int sig)
{
    (void)sig;
    top_resized = 1;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes all of p to stdout; a terminal that went away ends the view. */
static void out(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(STDOUT_FILENO, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            top_quit = 1;
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

static void term_size(int *cols, int *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        *cols = ws.ws_col < 1000 ? ws.ws_col : 1000;
        *rows = ws.ws_row < 500 ? ws.ws_row : 500;
    }
}

/* Redraws the screen from s: each line, then clear to its end; then clear
 * below the last one.  No newline after the last line, so nothing scrolls. */
static void draw(const cd_top_sample *s, char *text, char *frame)
{
    int cols, rows;
    term_size(&cols, &rows);
    cd_top_render(s, cols, rows, text, SCREEN_MAX);
    size_t n = 0;
    n += (size_t)snprintf(frame + n, 16, "\x1b[H");
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        memcpy(frame + n, p, l);
        n += l;
        n += (size_t)snprintf(frame + n, 16, nl ? "\x1b[K\r\n" : "\x1b[K");
        p += l + (nl ? 1 : 0);
    }
    n += (size_t)snprintf(frame + n, 16, "\x1b[J");
    out(frame, n);
}

/* One status answer into cur (the figures derived from prev). */
static void sample(cd_top_fetch fetch, void *ctx, cd_top_sample *cur, const cd_top_sample *prev)
{
    const char *why = "no answer";
    char *r = fetch(ctx, &why);
    if (!r) {
        cur->ok = 0;
        cur->nw = 0;
        snprintf(cur->why, sizeof cur->why, "%s", why);
        return;
    }
    if (cd_top_parse(cur, r) == -ENOMEM)
        snprintf(cur->why, sizeof cur->why, "out of memory reading the answer");
    free(r);
    if (cur->ok)
        cd_top_derive(cur, prev);
}

/* Waits until the next refresh is due, handling keys and resizes. */
static void wait_next(long long due, const cd_top_sample *s, char *text, char *frame)
{
    while (!top_quit) {
        if (top_resized) {
            top_resized = 0;
            draw(s, text, frame);
        }
        long long left = due - mono_ms();
        if (left <= 0)
            return;
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno != EINTR) {
            top_quit = 1;
        } else if (n > 0) {
            char keys[64];
            ssize_t k = read(STDIN_FILENO, keys, sizeof keys);
            if (k <= 0 && (pfd.revents & (POLLHUP | POLLERR)))
                top_quit = 1;
            for (ssize_t i = 0; i < k; i++)
                if (keys[i] == 'q' || keys[i] == 'Q' || keys[i] == 3 /* ^C without ISIG */)
                    top_quit = 1;
        }
    }
}

int cd_top_run(cd_top_fetch fetch, void *ctx)
{
    struct termios orig, raw;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) || tcgetattr(STDIN_FILENO, &orig) < 0) {
        fprintf(stderr, "clusterctl: top needs a terminal (for scripts: clusterctl --json status)\n");
        return 2;
    }
    struct sigaction sa, old_int, old_term, old_hup, old_winch;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_quit; /* no SA_RESTART: poll returns at once */
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, &old_winch);

    raw = orig;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    raw.c_cc[VSUSP] = _POSIX_VDISABLE;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    static const char enter[] = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[J", leave[] = "\x1b[?25h\x1b[?1049l";
    out(enter, sizeof enter - 1);

    char *text = malloc(SCREEN_MAX), *frame = malloc(SCREEN_MAX * 2);
    cd_top_sample a = {0}, b = {0}, *cur = &a, *prev = &b;
    while (text && frame && !top_quit) {
        long long due = mono_ms() + REFRESH_MS;
        sample(fetch, ctx, cur, prev);
        draw(cur, text, frame);
        wait_next(due, cur, text, frame);
        cd_top_sample *t = prev;
        prev = cur;
        cur = t;
    }
    free(text);
    free(frame);
    cd_top_sample_free(&a);
    cd_top_sample_free(&b);

    out(leave, sizeof leave - 1);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &orig);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGWINCH, &old_winch, NULL);
    return 0;
}
