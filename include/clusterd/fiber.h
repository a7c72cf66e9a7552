/*
 * clusterd/fiber.h - fibers on a libev loop (public, installed; worker
 * process, loop thread only).
 *
 * A fiber is a function with its own stack that runs on the loop thread
 * and gives the loop back whenever it would wait: cd_fiber_wait_fd parks it
 * until a descriptor is ready (or a timeout), cd_fiber_sleep for a while,
 * cd_fiber_yield until somebody resumes it.  Code that is written as a
 * blocking call, such as a database driver's, runs on the loop this way
 * without blocking it: the driver's socket reads and writes become waits
 * on the loop's own epoll (readmongo gives mongo-c-driver such a stream,
 * services/readmongo/stream.c).  What a wait costs is a stack switch, not
 * a thread wake-up: no futex, no eventfd, no second thread's cache.
 *
 * The shape of Tarantool's fibers and of lua-nginx's cosockets, kept
 * small: a fiber is resumed only from the loop's own stack (a watcher's
 * callback, or code the loop called), never from another fiber, so there
 * is one stack to return to and no scheduler.  Everything here is for the
 * loop thread; a fiber runs nothing in parallel, it only waits in parallel.
 *
 * Stacks are mmap'd with a guard page below them (an overflow faults
 * instead of overwriting memory); pages are committed as they are touched.
 * Under AddressSanitizer the switches are announced to it
 * (__sanitizer_start_switch_fiber), so it checks fibers' stacks like any.
 */
#ifndef CLUSTERD_FIBER_H
#define CLUSTERD_FIBER_H

#include <stddef.h>

struct ev_loop;
typedef struct cd_fiber cd_fiber;
typedef void (*cd_fiber_fn)(void *arg);

/* A fiber that will run fn(arg) on a stack of stack_size bytes (0: 256
 * KiB) when first resumed; it has ended when fn returns.  NULL when out of
 * memory (errno says). */
cd_fiber *cd_fiber_new(struct ev_loop *loop, size_t stack_size, cd_fiber_fn fn, void *arg);

/* Frees a fiber that has ended or is parked in cd_fiber_yield (what its
 * stack holds then is not unwound: park a fiber only where it holds
 * nothing).  Never on the fiber itself. */
void cd_fiber_free(cd_fiber *f);

/* Runs f until it waits, yields or ends; returns 1 when it has ended.
 * From the loop's stack only (not from inside a fiber).  A fiber in a
 * wait (cd_fiber_wait_fd, cd_fiber_sleep) is not resumed: its wait's end
 * does that; the call returns 0. */
int cd_fiber_resume(cd_fiber *f);

/* The fiber running now, or NULL on the loop's own stack. */
cd_fiber *cd_fiber_self(void);

/* Parks the running fiber until cd_fiber_resume is called on it. */
void cd_fiber_yield(void);

/* Parks the running fiber until fd is ready for events (EV_READ and/or
 * EV_WRITE) or timeout_ms passes (< 0: no limit).  Returns the events that
 * are ready, or 0 when the time ran out.  Called off a fiber (on the loop's
 * stack, e.g. while a service is being destroyed and the loop no longer
 * runs), it waits in poll(2) instead, with the same results. */
int cd_fiber_wait_fd(int fd, int events, long long timeout_ms);

/* Parks the running fiber for ms milliseconds (off a fiber: sleeps). */
void cd_fiber_sleep(long long ms);

/* Runs work(arg) on a short-lived thread of its own while the running
 * fiber waits, at most timeout_ms (< 0: no limit): for a library call that
 * blocks on something other than a descriptor the fiber could wait on
 * (getaddrinfo, a driver's DNS lookups).  Returns 1 once work has returned
 * (arg holds its results, and is the caller's again); 0 when the time ran
 * out or the fiber was cancelled first: arg then belongs to the thread,
 * which calls abandon(arg) after work returns, to free what work made and
 * arg itself; -1 when no thread could start (errno; arg is the caller's,
 * work did not run).  Off a fiber it waits in poll(2). */
int cd_fiber_run_blocking(void (*work)(void *arg), void (*abandon)(void *arg), void *arg,
                          long long timeout_ms);

/* The process's usleep(3) is clusterd's (core/fiber.c): on a fiber it is
 * cd_fiber_sleep, so a library that sleeps (mongo-c-driver's server
 * selection does) parks the fiber, not the loop; elsewhere it sleeps. */

/* Cuts f's waits short, for good: a wait in progress ends now as timed out
 * (f runs until it next waits, yields or ends), and every later wait of f
 * times out at once.  For a stop that cannot wait for the network.  From
 * the loop's stack only. */
void cd_fiber_cancel(cd_fiber *f);

#endif
