/*
 * Unit tests for the rolling restart's state machine (master/reload.c):
 * begin, the roll slot by slot, done only once old workers stopped
 * accepting, failure -> roll-back -> failed, a second failure, a reload
 * asked for during one, and a stop.  Pure transitions over plain structs.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "master/reload.h"

/* n wanted slots, each with a READY worker of the old generation. */
static void old_slots(cd_reload_slot *s, int n)
{
    for (int i = 0; i < n; i++)
        s[i] = (cd_reload_slot){.wanted = 1, .has_worker = 1, .worker_new = 0, .worker_ready = 1};
}

Test(reload, nothing_to_do_when_idle)
{
    cd_reload r = {0};
    cd_reload_slot s[2];
    old_slots(s, 2);
    int slot = -1;
    cr_assert_eq(cd_reload_next(&r, s, 2, 0, &slot), CD_RELOAD_NOTHING);
    cr_assert_eq(cd_reload_fail(&r, "x"), -1);
}

Test(reload, rolls_slot_by_slot_then_is_done)
{
    cd_reload r = {.failed = 1};
    cd_reload_slot s[2];
    old_slots(s, 2);
    int slot = -1;
    cr_assert_eq(cd_reload_begin(&r), 0);
    cr_assert_eq(r.state, CD_RELOAD_ROLLING);
    cr_assert_not(r.failed, "a new reload clears the last failure");

    cr_assert_eq(cd_reload_next(&r, s, 2, 2, &slot), CD_RELOAD_REPLACE);
    cr_assert_eq(slot, 0);
    s[0] = (cd_reload_slot){.wanted = 1, .has_worker = 1, .worker_new = 1, .worker_ready = 0};
    cr_assert_eq(cd_reload_next(&r, s, 2, 2, &slot), CD_RELOAD_WAIT, "until the new worker is READY");
    s[0].worker_ready = 1;
    cr_assert_eq(cd_reload_next(&r, s, 2, 2, &slot), CD_RELOAD_STOP_OLD);
    cr_assert_eq(slot, 0);
    cr_assert_eq(cd_reload_next(&r, s, 2, 1, &slot), CD_RELOAD_REPLACE, "then the next slot");
    cr_assert_eq(slot, 1);
    s[1] = (cd_reload_slot){.wanted = 1, .has_worker = 1, .worker_new = 1, .worker_ready = 1};
    cr_assert_eq(cd_reload_next(&r, s, 2, 1, &slot), CD_RELOAD_STOP_OLD);
    cr_assert_eq(slot, 1);
    /* Every slot is new, but an old worker still accepts: not done yet. */
    cr_assert_eq(cd_reload_next(&r, s, 2, 1, &slot), CD_RELOAD_WAIT);
    cr_assert_eq(cd_reload_next(&r, s, 2, 0, &slot), CD_RELOAD_DONE);
    const char *why = NULL;
    cr_assert_eq(cd_reload_finish(&r, 1, &why), 1);
    cr_assert_eq(r.state, CD_RELOAD_IDLE);
    cr_assert_not(r.failed);
    cr_assert_null(why);
}

Test(reload, waits_for_a_pending_respawn_and_skips_unwanted_slots)
{
    cd_reload r = {0};
    cd_reload_slot s[3];
    old_slots(s, 3);
    s[0].wanted = 0;
    s[1].has_worker = 0;
    int slot = -1;
    cd_reload_begin(&r);
    cr_assert_eq(cd_reload_next(&r, s, 3, 0, &slot), CD_RELOAD_WAIT);
    cr_assert_eq(slot, 1, "slot 0 is skipped; slot 1 waits for its respawn (on the new config)");
    s[1] = (cd_reload_slot){.wanted = 1, .has_worker = 1, .worker_new = 1, .worker_ready = 1};
    cr_assert_eq(cd_reload_next(&r, s, 3, 0, &slot), CD_RELOAD_STOP_OLD);
    cr_assert_eq(cd_reload_next(&r, s, 3, 0, &slot), CD_RELOAD_REPLACE);
    cr_assert_eq(slot, 2);
}

Test(reload, a_failure_rolls_back_then_ends_failed)
{
    cd_reload r = {0};
    cd_reload_slot s[2];
    old_slots(s, 2);
    int slot = -1;
    cd_reload_begin(&r);
    cr_assert_eq(cd_reload_next(&r, s, 2, 0, &slot), CD_RELOAD_REPLACE);
    /* The new worker cannot boot. */
    cr_assert_eq(cd_reload_fail(&r, "bad module"), 1);
    cr_assert_eq(r.state, CD_RELOAD_ROLLING_BACK);
    cr_assert_str_eq(r.why, "bad module");
    cr_assert_eq(r.next, 0, "the roll-back starts from slot 0");
    /* The loop restored the old config: the old workers are "new" again. */
    s[0] = s[1] = (cd_reload_slot){.wanted = 1, .has_worker = 1, .worker_new = 1, .worker_ready = 1};
    cr_assert_eq(cd_reload_next(&r, s, 2, 0, &slot), CD_RELOAD_STOP_OLD);
    cr_assert_eq(cd_reload_next(&r, s, 2, 0, &slot), CD_RELOAD_STOP_OLD);
    cr_assert_eq(cd_reload_next(&r, s, 2, 0, &slot), CD_RELOAD_DONE);
    const char *why = NULL;
    cr_assert_eq(cd_reload_finish(&r, 1, &why), 0, "a completed roll-back is a failed reload");
    cr_assert_str_eq(why, "bad module");
    cr_assert(r.failed);
    cr_assert_eq(r.state, CD_RELOAD_IDLE);
}

Test(reload, a_failure_during_the_roll_back_gives_up)
{
    cd_reload r = {0};
    cd_reload_begin(&r);
    cr_assert_eq(cd_reload_fail(&r, "first"), 1);
    cr_assert_eq(cd_reload_fail(&r, "second"), 0, "no roll-back of the roll-back");
    cr_assert_str_eq(r.why, "first");
    const char *why = "second";
    cr_assert_eq(cd_reload_finish(&r, 0, &why), 0);
    cr_assert_str_eq(why, "first", "the report names why the roll-back began");
    cr_assert(r.failed);
}

Test(reload, a_reload_during_a_reload_follows_it)
{
    cd_reload r = {0};
    cr_assert_eq(cd_reload_begin(&r), 0);
    r.next = 1;
    cr_assert_eq(cd_reload_begin(&r), 1);
    cr_assert(r.pending);
    cr_assert_eq(r.state, CD_RELOAD_ROLLING);
    cr_assert_eq(r.next, 1, "the roll under way goes on");
}

Test(reload, a_stop_abandons_the_roll)
{
    cd_reload r = {0};
    cd_reload_slot s[1];
    old_slots(s, 1);
    int slot;
    cd_reload_begin(&r);
    cd_reload_abandon(&r);
    cr_assert_eq(r.state, CD_RELOAD_IDLE);
    cr_assert_eq(cd_reload_next(&r, s, 1, 0, &slot), CD_RELOAD_NOTHING);
}
