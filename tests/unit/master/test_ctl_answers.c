/*
 * Unit tests for clusterctl's reader of the master's answers (ctl/reply.c,
 * and ctl/clusterctl.c's worker count).  clusterctl's own functions are
 * static: this file includes its source with main renamed, so the code
 * tested is the code shipped.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"

#define main clusterctl_main
#include "ctl/clusterctl.c"
#undef main

/* Found by fuzz_control: clusterctl dropped the backslash of every escape
 * the master writes, so a control byte (\u00XX) showed as "u00XX" and \n
 * as "n".  Any text through cd_json_str must read back the same. */
Test(ctl_answers, error_text_round_trips_through_the_escapes)
{
    static const char *const texts[] = {"plain", "a \"quoted\" \\path\\", "line\nbreak\ttab\r", "\x1b[31mred\x1b[0m",
                                        "caf\xc3\xa9 \xff raw bytes", "\x01\x1f"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cd_buf o = {0};
        cd_buf_printf(&o, "{\"ok\":false,\"error\":");
        cd_json_str(&o, texts[i], strlen(texts[i]));
        cd_buf_printf(&o, "}");
        char err[600];
        json_str(o.p, "error", err, sizeof err);
        cr_assert_str_eq(err, texts[i], "reply %s", o.p);
        cr_assert_not(json_bool(o.p, "ok"));
        cd_buf_free(&o);
    }
}

Test(ctl_answers, other_escapes_and_bad_ones)
{
    char out[64];
    json_str("{\"e\":\"\\u00e9\\u20ac\\/\\b\"}", "e", out, sizeof out);
    cr_assert_str_eq(out, "\xc3\xa9\xe2\x82\xac/\b");
    json_str("{\"e\":\"\\ud800x\"}", "e", out, sizeof out);
    cr_assert_str_eq(out, "\xef\xbf\xbdx", "a lone surrogate is U+FFFD");
    json_str("{\"e\":\"a\\u00zz\"}", "e", out, sizeof out);
    cr_assert_str_eq(out, "au00zz", "not hex: taken as it is");
    json_str("{\"e\":\"a\\u0000b\"}", "e", out, sizeof out);
    cr_assert_str_eq(out, "a", "a C string ends at NUL");
    json_str("{\"e\":\"ab\\", "e", out, sizeof out);
    cr_assert_str_eq(out, "ab", "a trailing backslash");
    json_str("{\"e\":\"\\u20ac\\u20ac\"}", "e", out, 5);
    cr_assert_str_eq(out, "\xe2\x82\xac", "a character that does not fit is left out whole");
    json_str("{\"e\":1}", "e", out, sizeof out);
    cr_assert_str_eq(out, "");
}

Test(ctl_answers, workers_are_counted_by_state_and_generation)
{
    const char *r = "{\"ok\":true,\"generation\":2,\"workers\":[{\"slot\":0,\"pid\":1,\"generation\":1,\"state\":"
                    "\"draining\"},{\"slot\":0,\"pid\":2,\"generation\":2,\"state\":\"ready\"},{\"slot\":1,\"pid\":3,"
                    "\"generation\":2,\"state\":\"starting\"}]}";
    int ready, total;
    count_workers(r, 2, &ready, &total);
    cr_assert_eq(ready, 1);
    cr_assert_eq(total, 3);
    count_workers("{\"ok\":true}", -1, &ready, &total);
    cr_assert_eq(total, 0);
}
