/* Unit tests for core/json.c: the one JSON string escaper and error body. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/json.h"

static char *quoted(const char *s, size_t len)
{
    static char out[512];
    cd_buf b = {0};
    cd_json_str(&b, s, len);
    cr_assert_not(b.oom);
    cr_assert_lt(b.len, sizeof out);
    memcpy(out, b.p, b.len + 1);
    cr_assert_eq(strlen(out), b.len);
    cd_buf_free(&b);
    return out;
}

Test(json, str_escapes_quotes_backslash_and_controls)
{
    cr_assert_str_eq(quoted("", 0), "\"\"");
    cr_assert_str_eq(quoted("plain", 5), "\"plain\"");
    cr_assert_str_eq(quoted("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    cr_assert_str_eq(quoted("\n\t\r\x01\x1f\x7f", 6), "\"\\u000a\\u0009\\u000d\\u0001\\u001f\\u007f\"");
    /* Bytes after an escape are copied too (the run restarts after it). */
    cr_assert_str_eq(quoted("x\ny", 3), "\"x\\u000ay\"");
    /* len counts, not NUL: an embedded NUL is a control like any other. */
    cr_assert_str_eq(quoted("a\0b", 3), "\"a\\u0000b\"");
    cr_assert_str_eq(quoted("ab", 1), "\"a\"");
}

Test(json, str_passes_utf8_and_other_high_bytes_through)
{
    cr_assert_str_eq(quoted("caf\xc3\xa9 \xe2\x82\xac", 9), "\"caf\xc3\xa9 \xe2\x82\xac\"");
    cr_assert_str_eq(quoted("\xff\xfe", 2), "\"\xff\xfe\"");
}

Test(json, escape_fits_and_terminates)
{
    char out[64];
    cr_assert_eq(cd_json_escape(out, sizeof out, "a\"b\\c\n", 6), 13);
    cr_assert_str_eq(out, "a\\\"b\\\\c\\u000a");
    cr_assert_eq(cd_json_escape(out, sizeof out, NULL, 5), 0);
    cr_assert_str_eq(out, "");
    out[0] = 'x';
    cr_assert_eq(cd_json_escape(out, 0, "abc", 3), 0);
    cr_assert_eq(out[0], 'x', "cap 0 writes nothing");
    cr_assert_eq(cd_json_escape(out, 1, "abc", 3), 0);
    cr_assert_str_eq(out, "");
}

Test(json, escape_truncates_on_a_whole_character)
{
    char out[16];
    /* "ab" + 6-byte escape needs 9 bytes with the NUL: 8 keeps only "ab". */
    cr_assert_eq(cd_json_escape(out, 8, "ab\x01", 3), 2);
    cr_assert_str_eq(out, "ab");
    cr_assert_eq(cd_json_escape(out, 9, "ab\x01", 3), 8);
    cr_assert_str_eq(out, "ab\\u0001");
    cr_assert_eq(cd_json_escape(out, 3, "a\"", 2), 1);
    cr_assert_str_eq(out, "a");
    /* A euro sign is three bytes: it goes whole or not at all. */
    cr_assert_eq(cd_json_escape(out, 4, "a\xe2\x82\xac", 4), 1);
    cr_assert_str_eq(out, "a");
    cr_assert_eq(cd_json_escape(out, 5, "a\xe2\x82\xac", 4), 4);
    cr_assert_str_eq(out, "a\xe2\x82\xac");
    /* A stray byte is one character of its own. */
    cr_assert_eq(cd_json_escape(out, 3, "\xe2\x82", 2), 2);
    cr_assert_eq(memcmp(out, "\xe2\x82", 3), 0);
    /* A sequence cut short by len is not read past len. */
    cr_assert_eq(cd_json_escape(out, sizeof out, "\xe2\x82\xac", 2), 2);
}

Test(json, error_body)
{
    char out[128];
    int n = cd_json_error(out, sizeof out, 404, "no such \"thing\"\n");
    cr_assert_str_eq(out, "{\"error\":\"no such \\\"thing\\\"\\u000a\",\"status\":404}");
    cr_assert_eq(n, (int)strlen(out));
    n = cd_json_error(out, sizeof out, 500, NULL);
    cr_assert_str_eq(out, "{\"error\":\"\",\"status\":500}");
    cr_assert_eq(n, (int)strlen(out));
}

Test(json, error_body_shortens_the_message_to_fit)
{
    char out[32];
    const char *empty = "{\"error\":\"\",\"status\":503}";
    cr_assert_eq(cd_json_error(out, strlen(empty), 503, "x"), -1, "no room for the NUL");
    cr_assert_eq(cd_json_error(out, strlen(empty) + 1, 503, "xyz"), (int)strlen(empty));
    cr_assert_str_eq(out, empty);
    cr_assert_eq(cd_json_error(out, strlen(empty) + 3, 503, "ab\ncd"), (int)strlen(empty) + 2);
    cr_assert_str_eq(out, "{\"error\":\"ab\",\"status\":503}");
    /* Room for five more bytes: one three-byte character, not two. */
    cr_assert_eq(cd_json_error(out, strlen(empty) + 6, 503, "\xe2\x82\xac\xe2\x82\xac"), (int)strlen(empty) + 3);
    cr_assert_str_eq(out, "{\"error\":\"\xe2\x82\xac\",\"status\":503}");
}
