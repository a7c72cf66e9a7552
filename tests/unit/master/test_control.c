/*
 * Unit tests for the control plane's request parser (master/control.c,
 * cd_control_parse): every command, white space, bad arguments, and
 * requests that are not one short line of text.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "master/master.h"

static int parse(const char *s, cd_ctl_request *r, const char **why)
{
    return cd_control_parse(s, strlen(s), r, why);
}

Test(control, every_command)
{
    static const struct {
        const char *text;
        cd_ctl_op op;
    } cases[] = {{"status", CD_CTL_STATUS},     {"reload", CD_CTL_RELOAD},   {"stop", CD_CTL_STOP},
                 {"stop now", CD_CTL_STOP_NOW}, {"upgrade", CD_CTL_UPGRADE}, {"reopen-logs", CD_CTL_REOPEN_LOGS},
                 {"  status\n", CD_CTL_STATUS}, {"\treload ", CD_CTL_RELOAD},   {"drain", CD_CTL_DRAIN},
                 {" undrain\n", CD_CTL_UNDRAIN}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cd_ctl_request r;
        const char *why = NULL;
        cr_assert_eq(parse(cases[i].text, &r, &why), 0, "'%s': %s", cases[i].text, why);
        cr_assert_eq(r.op, cases[i].op, "'%s'", cases[i].text);
    }
}

Test(control, scale_takes_a_worker_count)
{
    cd_ctl_request r;
    const char *why = NULL;
    cr_assert_eq(parse("scale 3", &r, &why), 0);
    cr_assert_eq(r.op, CD_CTL_SCALE);
    cr_assert_eq(r.workers, 3);
    cr_assert_eq(parse("scale   12 ", &r, &why), 0);
    cr_assert_eq(r.workers, 12);
    cr_assert_eq(parse("scale 1024", &r, &why), 0);
    cr_assert_eq(r.workers, CD_MAX_SLOTS);
    static const char *const bad[] = {"scale",   "scale ",    "scale 0",  "scale -1", "scale 1025",
                                      "scale x", "scale 3 4", "scale 3x", "scale3",   "scale 99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        cr_assert_eq(parse(bad[i], &r, &why), -1, "'%s' refused", bad[i]);
        cr_assert_not_null(why);
    }
    cr_assert_eq(parse("scale 0", &r, &why), -1);
    cr_assert_str_eq(why, "scale needs a worker count");
}

Test(control, unknown_commands_are_refused_with_the_list)
{
    static const char *const bad[] = {"", " ", "STATUS", "stat", "statuses", "stop  now", "stop later", "reload now"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cd_ctl_request r;
        const char *why = NULL;
        cr_assert_eq(parse(bad[i], &r, &why), -1, "'%s' refused", bad[i]);
        cr_assert(strstr(why, "unknown command (status, reload"), "'%s': %s", bad[i], why);
    }
}

/* The request used to be cut to 127 bytes and at its first NUL: what was
 * left could be another command ("stop"). */
Test(control, a_long_request_is_refused_not_cut)
{
    char req[CD_CTL_MAX_REQUEST + 10];
    memset(req, ' ', sizeof req);
    memcpy(req, "stop", 4);
    memcpy(req + sizeof req - 3, "now", 3);
    cd_ctl_request r;
    const char *why = NULL;
    cr_assert_eq(cd_control_parse(req, sizeof req, &r, &why), -1);
    cr_assert(strstr(why, "too long"), "%s", why);
    /* Exactly the maximum is still read whole (and here is not a command). */
    req[CD_CTL_MAX_REQUEST - 1] = 'x';
    cr_assert_eq(cd_control_parse(req, CD_CTL_MAX_REQUEST, &r, &why), -1);
    cr_assert(strstr(why, "unknown command"), "%s", why);
    memset(req, ' ', sizeof req);
    memcpy(req + CD_CTL_MAX_REQUEST - 6, "status", 6);
    cr_assert_eq(cd_control_parse(req, CD_CTL_MAX_REQUEST, &r, &why), 0);
    cr_assert_eq(r.op, CD_CTL_STATUS);
}

Test(control, a_nul_or_control_byte_is_refused)
{
    cd_ctl_request r;
    const char *why = NULL;
    cr_assert_eq(cd_control_parse("stop\0now", 8, &r, &why), -1);
    cr_assert(strstr(why, "one line of text"), "%s", why);
    cr_assert_eq(cd_control_parse("status\0", 7, &r, &why), -1);
    cr_assert_eq(cd_control_parse("sta\x1btus", 7, &r, &why), -1);
    cr_assert_eq(cd_control_parse("status\r\n", 8, &r, &why), 0, "CR LF is white space: %s", why);
}

Test(control, a_request_need_not_be_terminated)
{
    char req[16];
    memcpy(req, "reloadXXXXXXXXXX", 16);
    cd_ctl_request r;
    const char *why = NULL;
    cr_assert_eq(cd_control_parse(req, 6, &r, &why), 0, "%s", why);
    cr_assert_eq(r.op, CD_CTL_RELOAD);
}

/* clusterctl sends the command names of ipc/control_proto.h: each must
 * parse to its own op (the two sides share the header, not a copy). */
Test(control, the_protocol_header_names_parse)
{
    static const struct {
        const char *text;
        cd_ctl_op op;
    } cases[] = {{CD_CTL_CMD_STATUS, CD_CTL_STATUS},   {CD_CTL_CMD_RELOAD, CD_CTL_RELOAD},
                 {CD_CTL_CMD_STOP, CD_CTL_STOP},       {CD_CTL_CMD_STOP_NOW, CD_CTL_STOP_NOW},
                 {CD_CTL_CMD_UPGRADE, CD_CTL_UPGRADE}, {CD_CTL_CMD_REOPEN_LOGS, CD_CTL_REOPEN_LOGS},
                 {CD_CTL_CMD_DRAIN, CD_CTL_DRAIN},     {CD_CTL_CMD_UNDRAIN, CD_CTL_UNDRAIN},
                 {CD_CTL_CMD_SCALE " 2", CD_CTL_SCALE}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cd_ctl_request r;
        const char *why = NULL;
        cr_assert_eq(parse(cases[i].text, &r, &why), 0, "'%s': %s", cases[i].text, why);
        cr_assert_eq(r.op, cases[i].op, "'%s'", cases[i].text);
    }
    cd_ctl_request r;
    const char *why = NULL;
    char max[16];
    snprintf(max, sizeof max, CD_CTL_CMD_SCALE " %d", CD_CTL_MAX_WORKERS + 1);
    cr_assert_eq(parse(max, &r, &why), -1, "scale beyond CD_CTL_MAX_WORKERS is refused");
}
