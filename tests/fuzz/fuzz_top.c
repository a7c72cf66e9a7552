/*
 * fuzz_top.c - clusterctl top's reading, deriving and layout
 * (ctl/top_view.c, over ctl/reply.c) on any bytes.
 *
 * Input: a byte of terminal width (0..255), a byte of height (0..63), then
 * one or two status answers separated by a NUL (the second is derived from
 * the first, as a refresh is from the one before).
 *
 * Invariants: no crash, leak or out-of-bounds access; the screen is at most
 * `rows` lines, each at most cols - 1 bytes (nothing can wrap), and holds
 * nothing but printable ASCII and the newlines between lines, whatever the
 * answer carried; a percentile is -1, within the bounds, or past the last.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/top.h"

static char screen[64 * 1024];

static void check_screen(const cd_top_sample *s, int cols, int rows)
{
    int n = cd_top_render(s, cols, rows, screen, sizeof screen);
    if (n < 0 || n > rows)
        abort();
    int lines = screen[0] || n ? 1 : 0;
    size_t len = 0;
    for (const char *p = screen; *p; p++) {
        if (*p == '\n') {
            lines++;
            len = 0;
            continue;
        }
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            abort();
        if (++len > (size_t)(cols > 1 ? cols - 1 : 0))
            abort();
    }
    if (lines > rows)
        abort();
}

static void check_quantiles(const cd_top_sample *s)
{
    for (int i = 0; i < s->nw; i++) {
        double q = cd_top_quantile(s->le, s->nle, s->w[i].dlat, CD_LAT_BUCKETS, 0.99);
        if (isnan(q) || (q < 0 && q != -1))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int cols = data[0], rows = data[1] % 64;
    char *text = malloc(size - 1);
    if (!text)
        return 0;
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';
    const char *second = NULL;
    size_t first_len = strlen(text);
    if (first_len < size - 2)
        second = text + first_len + 1; /* after the NUL: the next answer */

    cd_top_sample a = {0}, b = {0};
    cd_top_parse(&a, text);
    cd_top_derive(&a, NULL);
    check_screen(&a, cols, rows);
    check_quantiles(&a);
    if (second) {
        cd_top_parse(&b, second);
        cd_top_derive(&b, &a);
        check_screen(&b, cols, rows);
        check_quantiles(&b);
    }
    cd_top_sample_free(&a);
    cd_top_sample_free(&b);
    free(text);
    return 0;
}
