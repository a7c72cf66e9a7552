/*
 * supervise.c - what the master makes of a worker's exit, when a slot gets
 * its next worker, and which live workers are hung (master process).
 *
 * Pure functions over the facts master.c gathers (supervise.h): the policy
 * a newcomer wants to read is here, in one place, and the unit tests check
 * it without starting a process.
 */
#include "master/supervise.h"

#include <sys/wait.h>

#include "ipc/proto.h"

/* The order of the questions matters: an upgrade failure takes everything
 * back whatever else is true; a worker told to stop may exit as it likes;
 * a replacement that fails leaves the old worker in place (even when it
 * could not boot: the old config still works); only then is a boot failure
 * fatal, and everything else is a crash. */
cd_exit_verdict cd_supervise_exit(const cd_exit_facts *f)
{
    cd_exit_verdict v = {0};
    v.bootfail = WIFEXITED(f->status) && WEXITSTATUS(f->status) == CD_EXIT_BOOTFAIL;
    v.clean = WIFEXITED(f->status) && WEXITSTATUS(f->status) == 0;
    if (f->upgrading && f->generation > f->upgrade_from && f->starting) {
        v.kind = CD_EXITED_UPGRADE_FAILED;
    } else if (f->stopping || f->draining) {
        v.kind = CD_EXITED_EXPECTED;
    } else if (f->starting && f->replaces_alive) {
        v.kind = CD_EXITED_REPLACEMENT_FAILED;
        v.abort_reload = f->reloading;
        v.postpone_recycle = !f->reloading && f->recycling;
    } else if (v.bootfail && f->starting && f->reloading) {
        v.kind = CD_EXITED_RELOAD_BOOTFAIL;
        v.abort_reload = 1;
    } else if (v.bootfail && f->starting) {
        v.kind = CD_EXITED_BOOTFAIL;
    } else {
        v.kind = CD_EXITED_CRASH;
        v.abort_reload = f->reloading && f->starting;
    }
    return v;
}

double cd_supervise_backoff(unsigned fails, double jitter)
{
    double d = CD_BACKOFF_BASE;
    for (unsigned i = 1; i < fails && d < CD_BACKOFF_MAX; i++)
        d *= 2;
    if (d > CD_BACKOFF_MAX)
        d = CD_BACKOFF_MAX;
    /* Full jitter in [d/2, d]: slots crashing together do not respawn together. */
    return d / 2 + (d / 2) * jitter;
}

cd_respawn cd_supervise_respawn(unsigned fails, double uptime, int active, int others_up, double jitter)
{
    cd_respawn r = {0};
    if (uptime >= CD_STABLE_AFTER)
        fails = 0;
    r.fails = fails + 1;
    r.delay = r.fails == 1 ? 0.0 : cd_supervise_backoff(r.fails, jitter);
    /* Several slots backing off together must not leave the cluster with
     * no worker at all for seconds: when the last one up dies, its slot
     * comes back within CD_LAST_UP_DELAY.  Its crash count still grows, so
     * the long backoff returns as soon as another slot is up, and a crash
     * loop of every slot costs at most a spawn per CD_LAST_UP_DELAY.  A
     * single slot keeps its backoff: there it is the only brake. */
    if (r.delay > CD_LAST_UP_DELAY && active > 1 && !others_up) {
        r.delay = CD_LAST_UP_DELAY;
        r.last_up = 1;
    }
    return r;
}

cd_hung_kind cd_supervise_hung(const cd_hung_facts *f)
{
    if (f->killed)
        return CD_HUNG_NO;
    if (f->draining)
        return f->now > f->drain_deadline ? CD_HUNG_DRAIN_OVERRUN : CD_HUNG_NO;
    if (f->now - f->last_heartbeat > f->heartbeat_timeout)
        return f->starting ? CD_HUNG_NOT_READY : CD_HUNG_NO_HEARTBEAT;
    return CD_HUNG_NO;
}
