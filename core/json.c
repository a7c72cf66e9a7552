/*
 * json.c - see json.h.
 *
 * One escaper (escape_byte) serves both the growing cd_buf writer, which
 * copies runs of plain bytes at once, and the fixed-buffer one, which
 * moves one whole character at a time (an escape, or a UTF-8 sequence) and
 * stops at the first that would not fit.
 */
#include "core/json.h"

#include <stdio.h>
#include <string.h>

#include "core/util.h"

/* The escape for byte ch into esc (6 bytes), or 0 when it passes as is. */
static size_t escape_byte(unsigned char ch, char esc[8])
{
    static const char hex[] = "0123456789abcdef";
    if (ch == '"' || ch == '\\') {
        esc[0] = '\\';
        esc[1] = (char)ch;
        return 2;
    }
    if (ch < 0x20 || ch == 0x7f) {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[ch >> 4];
        esc[5] = hex[ch & 15];
        return 6;
    }
    return 0;
}

void cd_json_str(cd_buf *b, const char *s, size_t len)
{
    cd_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        char esc[8];
        size_t n = escape_byte((unsigned char)s[i], esc);
        if (!n)
            continue;
        cd_buf_append(b, s + run, i - run);
        cd_buf_append(b, esc, n);
        run = i + 1;
    }
    cd_buf_append(b, s + run, len - run);
    cd_buf_append(b, "\"", 1);
}

size_t cd_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    if (cap == 0)
        return 0;
    size_t o = 0;
    for (size_t i = 0; s && i < len;) {
        char esc[8];
        size_t in = 1, n = escape_byte((unsigned char)s[i], esc);
        const char *src = esc;
        if (!n) {
            src = s + i;
            n = 1;
            if ((unsigned char)s[i] >= 0x80) {
                size_t seq = cd_utf8_seq(s + i, len - i);
                n = in = seq ? seq : 1; /* a stray byte goes alone, as it is */
            }
        }
        if (o + n + 1 > cap)
            break;
        memcpy(out + o, src, n);
        o += n;
        i += in;
    }
    out[o] = '\0';
    return o;
}

int cd_json_error(char *out, size_t cap, int status, const char *msg)
{
    char tail[40];
    int tn = snprintf(tail, sizeof tail, "\",\"status\":%d}", status);
    const size_t head = sizeof "{\"error\":\"" - 1;
    if (tn < 0 || cap < head + (size_t)tn + 1)
        return -1;
    memcpy(out, "{\"error\":\"", head);
    size_t o = head;
    o += cd_json_escape(out + o, cap - o - (size_t)tn, msg, msg ? strlen(msg) : 0);
    memcpy(out + o, tail, (size_t)tn + 1);
    return (int)(o + (size_t)tn);
}
