/*
 * chat_args.c - reads the chat example's event arguments: a JSON array of
 * strings and booleans (see chat_args.h; pure, any process).
 *
 * A small recursive-descent reader over [p, end): whitespace, '[', then
 * values separated by ',', then ']'.  Strings are decoded as RFC 8259 says
 * (escapes, \u with surrogate pairs to UTF-8); raw bytes are copied and
 * the result must be valid UTF-8 (the service checks that before a
 * handler sees the JSON; this reader does not rely on it); control
 * characters are refused.  Every read is bounded by end; nothing is
 * allocated.
 */
#include "chat_args.h"

#include <errno.h>
#include <string.h>

#include <clusterd/text.h>

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
    if (end - p < 4)
        return -EINVAL;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -EINVAL;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Appends code point cp as UTF-8 to out (cap bytes, *n used). */
static int put_utf8(char *out, size_t cap, size_t *n, unsigned cp)
{
    char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (*n + k >= cap)
        return -E2BIG;
    memcpy(out + *n, b, k);
    *n += k;
    return 0;
}

/* One escape after the backslash at *pp; advances *pp past it. */
static int escape(const char **pp, const char *end, char *out, size_t cap, size_t *n)
{
    const char *p = *pp + 1;
    if (p >= end)
        return -EINVAL;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *e = *p ? strchr(from, *p) : NULL;
    if (e) {
        *pp = p + 1;
        return put_utf8(out, cap, n, (unsigned char)to[e - from]);
    }
    unsigned cp, lo;
    if (*p != 'u' || hex4(p + 1, end, &cp) < 0)
        return -EINVAL;
    p += 5;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return -EINVAL; /* a lone low surrogate */
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
            return -EINVAL;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    }
    if (cp == 0)
        return -EINVAL; /* a NUL would cut the C string */
    *pp = p;
    return put_utf8(out, cap, n, cp);
}

/* The string token at *pp (its opening quote) into out; advances *pp. */
static int string(const char **pp, const char *end, char *out, size_t cap, size_t *len)
{
    const char *p = *pp + 1;
    size_t n = 0;
    while (p < end && *p != '"') {
        int rc = 0;
        if (*p == '\\') {
            rc = escape(&p, end, out, cap, &n);
        } else if ((unsigned char)*p < 0x20) {
            rc = -EINVAL;
        } else if (n + 1 >= cap) {
            rc = -E2BIG;
        } else {
            out[n++] = *p++;
        }
        if (rc < 0)
            return rc;
    }
    if (p >= end || !cd_utf8_valid(out, n))
        return -EINVAL;
    out[n] = '\0';
    *len = n;
    *pp = p + 1;
    return 0;
}

/* One value (a string, true or false) into slot i of out. */
static int value(const char **pp, const char *end, chat_args *out)
{
    const char *p = *pp;
    if (out->n == CHAT_ARGS_MAX)
        return -E2BIG;
    int i = out->n;
    if (*p == '"') {
        out->v[i].is_bool = 0;
        int rc = string(&p, end, out->v[i].s, sizeof out->v[i].s, &out->v[i].len);
        if (rc < 0)
            return rc;
    } else if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
        out->v[i].is_bool = 1;
        out->v[i].b = 1;
        p += 4;
    } else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
        out->v[i].is_bool = 1;
        out->v[i].b = 0;
        p += 5;
    } else {
        return -EINVAL;
    }
    out->n++;
    *pp = p;
    return 0;
}

int chat_args_parse(const char *json, size_t len, chat_args *out)
{
    out->n = 0;
    if (!json || len == 0)
        return 0;
    const char *p = ws(json, json + len), *end = json + len;
    if (p >= end || *p != '[')
        return -EINVAL;
    p = ws(p + 1, end);
    if (p < end && *p == ']')
        return ws(p + 1, end) == end ? 0 : -EINVAL;
    for (;;) {
        if (p >= end)
            return -EINVAL;
        int rc = value(&p, end, out);
        if (rc < 0)
            return rc;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']')
            return ws(p + 1, end) == end ? 0 : -EINVAL;
        return -EINVAL;
    }
}
