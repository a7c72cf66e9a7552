/*
 * Unit tests for the master's supervision decisions (master/supervise.c):
 * what each kind of exit means, the respawn backoff (growth, cap, jitter,
 * reset, the last-up rule) and hung-worker detection.  Pure functions over
 * plain structs: no process is started.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>

#include "ipc/proto.h"
#include "master/supervise.h"

/* Wait statuses as waitpid reports them (the layout is Linux's). */
static int exited(int code) { return (code & 0xff) << 8; }
static int killed(int sig) { return sig & 0x7f; }

Test(supervise, wait_status_helpers_match_the_macros)
{
    cr_assert(WIFEXITED(exited(3)) && WEXITSTATUS(exited(3)) == 3);
    cr_assert(WIFSIGNALED(killed(SIGKILL)) && WTERMSIG(killed(SIGKILL)) == SIGKILL);
}

/* A ready worker of the running generation, nothing special going on. */
static cd_exit_facts serving(int status)
{
    return (cd_exit_facts){.status = status, .generation = 1};
}

Test(supervise, a_ready_worker_that_dies_is_a_crash)
{
    cd_exit_facts f = serving(killed(SIGSEGV));
    cd_exit_verdict v = cd_supervise_exit(&f);
    cr_assert_eq(v.kind, CD_EXITED_CRASH);
    cr_assert_not(v.abort_reload);
    cr_assert_not(v.bootfail);
    f.status = exited(0); /* exiting 0 without being told is still a crash to respawn */
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_CRASH);
}

Test(supervise, a_worker_told_to_stop_exits_as_expected)
{
    cd_exit_facts f = serving(exited(0));
    f.draining = 1;
    cd_exit_verdict v = cd_supervise_exit(&f);
    cr_assert_eq(v.kind, CD_EXITED_EXPECTED);
    cr_assert(v.clean);
    f.status = killed(SIGKILL); /* killed past its drain deadline: expected, not clean */
    v = cd_supervise_exit(&f);
    cr_assert_eq(v.kind, CD_EXITED_EXPECTED);
    cr_assert_not(v.clean);
    /* While the master stops, even a starting worker that cannot boot is expected. */
    f = serving(exited(CD_EXIT_BOOTFAIL));
    f.starting = 1;
    f.stopping = 1;
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_EXPECTED);
}

Test(supervise, a_boot_failure_stops_the_cluster)
{
    cd_exit_facts f = serving(exited(CD_EXIT_BOOTFAIL));
    f.starting = 1;
    cd_exit_verdict v = cd_supervise_exit(&f);
    cr_assert_eq(v.kind, CD_EXITED_BOOTFAIL);
    cr_assert(v.bootfail);
    /* The same code from a worker that was READY is a crash: it booted once. */
    f.starting = 0;
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_CRASH);
    /* Another code before READY is a crash, respawned with backoff. */
    f.starting = 1;
    f.status = exited(1);
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_CRASH);
}

Test(supervise, a_boot_failure_during_a_reload_fails_the_reload_not_the_cluster)
{
    cd_exit_facts f = serving(exited(CD_EXIT_BOOTFAIL));
    f.starting = 1;
    f.reloading = 1;
    f.generation = 2;
    cd_exit_verdict v = cd_supervise_exit(&f);
    cr_assert_eq(v.kind, CD_EXITED_RELOAD_BOOTFAIL);
    cr_assert(v.abort_reload);
}

Test(supervise, a_failed_replacement_leaves_the_old_worker)
{
    /* During a reload: the old worker keeps the slot and the reload fails. */
    cd_exit_facts f = serving(exited(CD_EXIT_BOOTFAIL));
    f.starting = 1;
    f.replaces_alive = 1;
    f.reloading = 1;
    cd_exit_verdict v = cd_supervise_exit(&f);
    cr_assert_eq(v.kind, CD_EXITED_REPLACEMENT_FAILED);
    cr_assert(v.abort_reload);
    cr_assert_not(v.postpone_recycle);
    /* Recycling: the old worker keeps the slot, the recycling waits. */
    f = serving(killed(SIGKILL));
    f.starting = 1;
    f.replaces_alive = 1;
    f.recycling = 1;
    v = cd_supervise_exit(&f);
    cr_assert_eq(v.kind, CD_EXITED_REPLACEMENT_FAILED);
    cr_assert_not(v.abort_reload);
    cr_assert(v.postpone_recycle);
    /* Never a boot failure that stops the cluster: the old config works. */
    f.status = exited(CD_EXIT_BOOTFAIL);
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_REPLACEMENT_FAILED);
}

Test(supervise, a_crash_of_a_starting_worker_during_a_reload_fails_it)
{
    cd_exit_facts f = serving(killed(SIGSEGV));
    f.starting = 1;
    f.reloading = 1;
    cd_exit_verdict v = cd_supervise_exit(&f);
    cr_assert_eq(v.kind, CD_EXITED_CRASH);
    cr_assert(v.abort_reload);
    f.starting = 0; /* a READY worker's crash is only respawned */
    cr_assert_not(cd_supervise_exit(&f).abort_reload);
}

Test(supervise, a_new_worker_of_an_upgrade_that_dies_before_ready_rolls_back)
{
    cd_exit_facts f = serving(killed(SIGKILL));
    f.starting = 1;
    f.upgrading = 1;
    f.upgrade_from = 4;
    f.generation = 5;
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_UPGRADE_FAILED);
    f.stopping = 1; /* even while stopping: it comes first */
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_UPGRADE_FAILED);
    /* An old worker that exits during the upgrade is not the upgrade's failure. */
    f.stopping = 0;
    f.generation = 4;
    f.starting = 0;
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_CRASH);
    /* A new worker that was READY and then died is a crash too. */
    f.generation = 5;
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_CRASH);
}

Test(supervise, backoff_doubles_to_the_cap_within_its_jitter)
{
    double d = CD_BACKOFF_BASE;
    for (unsigned fails = 1; fails < 20; fails++) {
        double lo = cd_supervise_backoff(fails, 0.0), hi = cd_supervise_backoff(fails, 1.0);
        cr_assert_float_eq(lo, d / 2, 1e-9, "fails %u", fails);
        cr_assert_float_eq(hi, d, 1e-9, "fails %u", fails);
        double mid = cd_supervise_backoff(fails, 0.5);
        cr_assert(mid > lo && mid < hi);
        d = d * 2 > CD_BACKOFF_MAX ? CD_BACKOFF_MAX : d * 2;
    }
    cr_assert_float_eq(cd_supervise_backoff(1000, 1.0), CD_BACKOFF_MAX, 1e-9);
}

Test(supervise, the_first_crash_respawns_at_once_then_the_delay_grows)
{
    cd_respawn r = cd_supervise_respawn(0, 1.0, 1, 0, 1.0);
    cr_assert_eq(r.fails, 1);
    cr_assert_float_eq(r.delay, 0.0, 1e-9);
    r = cd_supervise_respawn(r.fails, 1.0, 1, 0, 1.0);
    cr_assert_eq(r.fails, 2);
    cr_assert_float_eq(r.delay, 2 * CD_BACKOFF_BASE, 1e-9);
    r = cd_supervise_respawn(r.fails, 1.0, 1, 0, 1.0);
    cr_assert_eq(r.fails, 3);
    cr_assert_float_eq(r.delay, 4 * CD_BACKOFF_BASE, 1e-9);
    cr_assert_not(r.last_up, "one slot keeps its backoff");
}

Test(supervise, a_worker_up_long_enough_resets_the_count)
{
    cd_respawn r = cd_supervise_respawn(7, CD_STABLE_AFTER, 1, 0, 1.0);
    cr_assert_eq(r.fails, 1);
    cr_assert_float_eq(r.delay, 0.0, 1e-9);
    r = cd_supervise_respawn(7, CD_STABLE_AFTER - 0.1, 1, 0, 1.0);
    cr_assert_eq(r.fails, 8);
    cr_assert_gt(r.delay, CD_LAST_UP_DELAY);
}

Test(supervise, the_last_slot_up_comes_back_soon)
{
    /* Several slots, none other up: capped to CD_LAST_UP_DELAY, count still grows. */
    cd_respawn r = cd_supervise_respawn(6, 1.0, 4, 0, 1.0);
    cr_assert_eq(r.fails, 7);
    cr_assert(r.last_up);
    cr_assert_float_eq(r.delay, CD_LAST_UP_DELAY, 1e-9);
    /* Another worker is up: the long backoff stays. */
    r = cd_supervise_respawn(6, 1.0, 4, 1, 1.0);
    cr_assert_not(r.last_up);
    cr_assert_gt(r.delay, CD_LAST_UP_DELAY);
    /* A short delay is never lengthened. */
    r = cd_supervise_respawn(1, 1.0, 4, 0, 1.0);
    cr_assert_not(r.last_up);
    cr_assert_float_eq(r.delay, 2 * CD_BACKOFF_BASE, 1e-9);
}

Test(supervise, hung_workers)
{
    cd_hung_facts f = {.now = 100, .last_heartbeat = 95, .heartbeat_timeout = 10};
    cr_assert_eq(cd_supervise_hung(&f), CD_HUNG_NO);
    f.last_heartbeat = 89;
    cr_assert_eq(cd_supervise_hung(&f), CD_HUNG_NO_HEARTBEAT);
    f.starting = 1;
    cr_assert_eq(cd_supervise_hung(&f), CD_HUNG_NOT_READY);
    f.killed = 1; /* killed once is enough */
    cr_assert_eq(cd_supervise_hung(&f), CD_HUNG_NO);
    /* Draining: only its deadline counts, not heartbeats. */
    f = (cd_hung_facts){.draining = 1, .now = 100, .last_heartbeat = 0, .heartbeat_timeout = 10,
                        .drain_deadline = 101};
    cr_assert_eq(cd_supervise_hung(&f), CD_HUNG_NO);
    f.now = 101.5;
    cr_assert_eq(cd_supervise_hung(&f), CD_HUNG_DRAIN_OVERRUN);
}
