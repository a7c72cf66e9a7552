/*
 * Unit tests for the binary upgrade's state machine (master/upgrade.c):
 * refusals while busy, the `-V` check, the new generation coming up, done
 * when all are READY, rollback on timeout, and an old worker's exit not
 * counting as the upgrade's failure (master/supervise.c).  Pure.
 */
#include <criterion/criterion.h>
#include <signal.h>

#include "ipc/proto.h"
#include "master/supervise.h"
#include "master/upgrade.h"

Test(upgrade, refused_while_busy)
{
    cd_upgrade u = {0};
    cr_assert_null(cd_upgrade_refusal(&u, 0, 0));
    cr_assert_str_eq(cd_upgrade_refusal(&u, 1, 0), "busy: stopping");
    cr_assert_str_eq(cd_upgrade_refusal(&u, 0, 1), "busy: reloading");
    cd_upgrade_checking(&u);
    cr_assert_str_eq(cd_upgrade_refusal(&u, 0, 0), "busy: upgrading");
    u.state = CD_UPGRADE_STARTING;
    cr_assert_str_eq(cd_upgrade_refusal(&u, 0, 0), "busy: upgrading");
}

Test(upgrade, the_check_decides_whether_to_exec)
{
    cd_upgrade u = {0};
    cd_upgrade_checking(&u);
    cr_assert_eq(u.state, CD_UPGRADE_CHECKING);
    cr_assert_eq(cd_upgrade_checked(&u, 0), 1, "exit 0: exec the new binary");
    cr_assert_eq(u.state, CD_UPGRADE_IDLE);
    cd_upgrade_checking(&u);
    cr_assert_eq(cd_upgrade_checked(&u, 1 << 8), 0, "exit 1: refused");
    cr_assert_eq(u.state, CD_UPGRADE_IDLE);
    cd_upgrade_checking(&u);
    cr_assert_eq(cd_upgrade_checked(&u, SIGKILL), 0, "killed (timeout): refused");
}

Test(upgrade, done_once_every_new_worker_is_ready)
{
    cd_upgrade u = {0};
    cr_assert_eq(cd_upgrade_next(&u, 0, 2, 0), CD_UPGRADE_NONE);
    cd_upgrade_starting(&u, 3, 100.0);
    cr_assert_eq(u.state, CD_UPGRADE_STARTING);
    cr_assert_eq(u.from, 3);
    cr_assert_eq(cd_upgrade_next(&u, 0, 2, 10.0), CD_UPGRADE_WAIT);
    cr_assert_eq(cd_upgrade_next(&u, 1, 2, 10.0), CD_UPGRADE_WAIT);
    cr_assert_eq(cd_upgrade_next(&u, 2, 2, 10.0), CD_UPGRADE_DONE);
    cr_assert_eq(cd_upgrade_next(&u, 2, 2, 200.0), CD_UPGRADE_DONE, "ready in the same tick as the deadline: done");
    cr_assert_eq(cd_upgrade_end(&u), 1);
    cr_assert_eq(u.state, CD_UPGRADE_IDLE);
    cr_assert_eq(cd_upgrade_end(&u), 0, "ends once");
}

Test(upgrade, too_slow_rolls_back)
{
    cd_upgrade u = {0};
    cd_upgrade_starting(&u, 3, 100.0);
    cr_assert_eq(cd_upgrade_next(&u, 1, 2, 100.0), CD_UPGRADE_WAIT, "at the deadline: still in time");
    cr_assert_eq(cd_upgrade_next(&u, 1, 2, 100.1), CD_UPGRADE_TIMEOUT);
}

Test(upgrade, a_new_worker_dying_rolls_back_an_old_one_does_not)
{
    cd_upgrade u = {0};
    cd_upgrade_starting(&u, 3, 100.0);
    cd_exit_facts f = {.status = SIGKILL, .starting = 1, .generation = 4,
                       .upgrading = u.state == CD_UPGRADE_STARTING, .upgrade_from = u.from};
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_UPGRADE_FAILED);
    f.generation = 3; /* an old worker (the new program adopted it) */
    f.starting = 0;
    cr_assert_neq(cd_supervise_exit(&f).kind, CD_EXITED_UPGRADE_FAILED);
    f.draining = 1; /* the old ones drain once the upgrade is done */
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_EXPECTED);
    /* After the upgrade, a new worker failing to boot is a boot failure again. */
    cd_upgrade_end(&u);
    f = (cd_exit_facts){.status = CD_EXIT_BOOTFAIL << 8, .starting = 1, .generation = 4,
                        .upgrading = u.state == CD_UPGRADE_STARTING, .upgrade_from = u.from};
    cr_assert_eq(cd_supervise_exit(&f).kind, CD_EXITED_BOOTFAIL);
}
