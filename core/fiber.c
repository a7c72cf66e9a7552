/*
 * fiber.c - fibers on a libev loop (clusterd/fiber.h says what and why).
 *
 * A fiber is a ucontext: makecontext on an mmap'd stack, swapcontext to
 * enter and to leave.  The loop's stack is the only other side of every
 * switch (a fiber is never resumed from another fiber), so each fiber keeps
 * one context to go back to, `back`, refreshed on every resume.  A wait is
 * an ev_io and an ev_timer of the fiber's own, started by the fiber and
 * stopped by whichever fires first; its callback resumes the fiber from the
 * loop's stack.  libev applies a watcher's start and stop to epoll lazily,
 * at the next poll, so a wait that starts and ends on the same descriptor
 * in one loop iteration costs no epoll_ctl.
 *
 * AddressSanitizer must be told about every switch, or it takes a fiber's
 * stack for a corrupted one: the start_/finish_switch_fiber pairs below are
 * the documented protocol (sanitizer/common_interface_defs.h).
 */
#include "clusterd/fiber.h"

#include <errno.h>
#include <ev.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CD_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CD_FIBER_ASAN 1
#endif
#endif
#ifdef CD_FIBER_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

struct cd_fiber {
    struct ev_loop *loop;
    ucontext_t ctx;  /* the fiber's own, while it is not running */
    ucontext_t back; /* the loop's stack, while the fiber runs */
    cd_fiber_fn fn;
    void *arg;
    char *map;       /* the mapping: guard page, then the stack */
    size_t map_len;
    int ended;
    int cancelled; /* cd_fiber_cancel: every wait times out at once */
    /* A wait in progress (cd_fiber_wait_fd, cd_fiber_sleep). */
    ev_io io;
    ev_timer timer;
    int ready; /* the events that ended the wait, 0 for the timer */
#ifdef CD_FIBER_ASAN
    void *fake_stack;       /* the fiber's, while it is switched out */
    const void *back_bottom; /* the loop's stack, for switching back */
    size_t back_size;
#endif
};

static __thread cd_fiber *running;

#define CD_FIBER_STACK (256 * 1024)

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

/* Leaves the fiber for the loop's stack (the fiber's side of a switch). */
static void switch_out(cd_fiber *f, int ending)
{
#ifdef CD_FIBER_ASAN
    /* An ending fiber passes NULL: its fake stack is freed now. */
    __sanitizer_start_switch_fiber(ending ? NULL : &f->fake_stack, f->back_bottom, f->back_size);
#else
    (void)ending;
#endif
    swapcontext(&f->ctx, &f->back);
#ifdef CD_FIBER_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &f->back_bottom, &f->back_size);
#endif
}

static void trampoline(void)
{
    cd_fiber *f = running;

#ifdef CD_FIBER_ASAN
    __sanitizer_finish_switch_fiber(NULL, &f->back_bottom, &f->back_size);
#endif
    f->fn(f->arg);
    f->ended = 1;
    switch_out(f, 1); /* never comes back */
    abort();
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    cd_fiber *f = w->data;

    ev_io_stop(loop, w);
    ev_timer_stop(loop, &f->timer);
    f->ready = revents & (EV_READ | EV_WRITE);
    cd_fiber_resume(f);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    cd_fiber *f = w->data;

    (void)revents;
    ev_io_stop(loop, &f->io);
    f->ready = 0;
    cd_fiber_resume(f);
}

/* getcontext returns twice (as setjmp does); alone in its own frame, no
 * variable of the caller's lives across it. */
static __attribute__((noinline)) void get_context(ucontext_t *c)
{
    getcontext(c);
}

cd_fiber *cd_fiber_new(struct ev_loop *loop, size_t stack_size, cd_fiber_fn fn, void *arg)
{
    size_t page = page_size();
    size_t stack = ((stack_size ? stack_size : CD_FIBER_STACK) + page - 1) / page * page;
    cd_fiber *f = calloc(1, sizeof *f);

    if (!f)
        return NULL;
    f->map_len = stack + page;
    f->map = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                  -1, 0);
    if (f->map == MAP_FAILED) {
        free(f);
        return NULL;
    }
    if (mprotect(f->map, page, PROT_NONE) != 0) { /* the guard page */
        int e = errno;
        munmap(f->map, f->map_len);
        free(f);
        errno = e;
        return NULL;
    }
    f->loop = loop;
    f->fn = fn;
    f->arg = arg;
    get_context(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->map + page;
    f->ctx.uc_stack.ss_size = stack;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, trampoline, 0);
    ev_io_init(&f->io, io_cb, -1, 0);
    f->io.data = f;
    ev_timer_init(&f->timer, timer_cb, 0., 0.);
    f->timer.data = f;
    return f;
}

void cd_fiber_free(cd_fiber *f)
{
    if (!f)
        return;
    ev_io_stop(f->loop, &f->io);
    ev_timer_stop(f->loop, &f->timer);
    munmap(f->map, f->map_len);
    free(f);
}

int cd_fiber_resume(cd_fiber *f)
{
    if (f->ended)
        return 1;
    /* A fiber in a wait is resumed by the wait's end (or cd_fiber_cancel),
     * never from outside: it would run on with its watchers still started. */
    if (ev_is_active(&f->io) || ev_is_active(&f->timer))
        return 0;
    if (running) /* resumed only from the loop's stack */
        abort();
    running = f;
#ifdef CD_FIBER_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->ctx.uc_stack.ss_sp, f->ctx.uc_stack.ss_size);
#endif
    swapcontext(&f->back, &f->ctx);
#ifdef CD_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    running = NULL;
    return f->ended;
}

cd_fiber *cd_fiber_self(void)
{
    return running;
}

void cd_fiber_yield(void)
{
    cd_fiber *f = running;

    if (f)
        switch_out(f, 0);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cd_fiber_wait_fd(int fd, int events, long long timeout_ms)
{
    cd_fiber *f = running;

    if (f && f->cancelled)
        return 0;
    if (!f) { /* the loop's stack: wait where we are */
        struct pollfd p = {.fd = fd, .events = (short)(((events & EV_READ) ? POLLIN : 0) |
                                                       ((events & EV_WRITE) ? POLLOUT : 0))};
        long long end = timeout_ms < 0 ? 0 : now_ms() + timeout_ms;
        for (;;) {
            long long left = timeout_ms < 0 ? -1 : end - now_ms();
            int n = poll(&p, 1, left < 0 && timeout_ms >= 0 ? 0 : (int)left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return 0;
            /* An error or hang-up reads (or writes) as ready: the call
             * that follows says what happened. */
            int r = 0;
            if (p.revents & (POLLIN | POLLERR | POLLHUP))
                r |= events & EV_READ;
            if (p.revents & (POLLOUT | POLLERR | POLLHUP))
                r |= events & EV_WRITE;
            return r ? r : events;
        }
    }
    ev_io_set(&f->io, fd, events);
    ev_io_start(f->loop, &f->io);
    if (timeout_ms >= 0) {
        /* From now, not from the loop's last poll: the fiber may have run
         * for a while since (the driver parsing a reply, rendering). */
        ev_now_update(f->loop);
        ev_timer_set(&f->timer, (double)timeout_ms / 1000., 0.);
        ev_timer_start(f->loop, &f->timer);
    }
    switch_out(f, 0);
    return f->ready;
}

void cd_fiber_sleep(long long ms)
{
    cd_fiber *f = running;

    if (f && f->cancelled)
        return;
    if (!f) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return;
    }
    ev_now_update(f->loop);
    ev_timer_set(&f->timer, (double)(ms < 0 ? 0 : ms) / 1000., 0.);
    ev_timer_start(f->loop, &f->timer);
    switch_out(f, 0);
}

void cd_fiber_cancel(cd_fiber *f)
{
    int waiting = ev_is_active(&f->io) || ev_is_active(&f->timer);

    f->cancelled = 1;
    if (waiting) {
        ev_io_stop(f->loop, &f->io);
        ev_timer_stop(f->loop, &f->timer);
        f->ready = 0;
        cd_fiber_resume(f);
    }
}

/* ---- cd_fiber_run_blocking ----
 *
 * The fiber waits on an eventfd the thread writes once work has returned.
 * Who owns arg afterwards is settled by one exchange on `state`: the thread
 * sets DONE after its write, the fiber sets GIVEN_UP when its wait ended
 * without the write; whichever comes second knows what the first did.  The
 * record itself is freed by the last of the two to let go (refs). */
enum { RB_RUNNING, RB_DONE, RB_GIVEN_UP };

typedef struct run_blocking {
    atomic_int refs;
    atomic_int state;
    int efd;
    void (*work)(void *);
    void (*abandon)(void *);
    void *arg;
} run_blocking;

static void rb_unref(run_blocking *rb)
{
    if (atomic_fetch_sub(&rb->refs, 1) == 1) {
        close(rb->efd);
        free(rb);
    }
}

static void *rb_thread(void *p)
{
    run_blocking *rb = p;
    uint64_t one = 1;

    rb->work(rb->arg);
    if (write(rb->efd, &one, sizeof one) < 0) {
        /* cannot fail: the counter is far from its limit */
    }
    if (atomic_exchange(&rb->state, RB_DONE) == RB_GIVEN_UP)
        rb->abandon(rb->arg);
    rb_unref(rb);
    return NULL;
}

int cd_fiber_run_blocking(void (*work)(void *arg), void (*abandon)(void *arg), void *arg,
                          long long timeout_ms)
{
    run_blocking *rb = calloc(1, sizeof *rb);
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    if (!rb)
        return -1;
    if ((rb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        free(rb);
        return -1;
    }
    rb->work = work;
    rb->abandon = abandon;
    rb->arg = arg;
    atomic_init(&rb->refs, 2);
    atomic_init(&rb->state, RB_RUNNING);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, rb_thread, rb);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(rb->efd);
        free(rb);
        errno = rc;
        return -1;
    }
    int done = cd_fiber_wait_fd(rb->efd, EV_READ, timeout_ms) != 0 ||
               atomic_exchange(&rb->state, RB_GIVEN_UP) == RB_DONE;
    rb_unref(rb);
    return done;
}

/* usleep(3) that parks a fiber instead of blocking the loop.  mongo-c-driver
 * 1.23's single-threaded server selection sleeps with usleep when a server
 * must be rescanned sooner than minHeartbeatFrequencyMS (500 ms) after the
 * last scan (mongoc-topology.c, e.g. a server that failed a query just after
 * a good scan); in readmongo that call runs on a fiber, on the loop thread.
 * The binary exports its symbols (the service modules link against them),
 * so this definition is the one the driver's PLT reaches, and any other
 * library's.  Off a fiber it is the usual sleep. */
int usleep(useconds_t usec)
{
    if (running) {
        cd_fiber_sleep((long long)(usec + 999) / 1000);
        return 0;
    }
    struct timespec ts = {.tv_sec = usec / 1000000, .tv_nsec = (long)(usec % 1000000) * 1000};
    return nanosleep(&ts, NULL); /* as glibc's: -1 with EINTR when a signal came */
}
