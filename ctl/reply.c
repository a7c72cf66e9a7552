/*
 * reply.c - the reader of the master's flat JSON answers (clusterctl
 * process); the contract of each function is in reply.h.
 */
#include "ctl/reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/control_proto.h"

const char *json_find(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? p + strlen(pat) : NULL;
}

double json_num(const char *json, const char *key)
{
    const char *v = json_find(json, key);
    return v ? strtod(v, NULL) : -1;
}

int json_bool(const char *json, const char *key)
{
    const char *v = json_find(json, key);
    return v && strncmp(v, "true", 4) == 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned u = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        u = u << 4 | (unsigned)d;
    }
    *out = u;
    return 0;
}

/* The string value of "key" into out (cap >= 1 bytes), its escapes decoded
 * (the master writes \" \\ and \u00XX for control bytes; any other \uXXXX
 * becomes UTF-8, a lone surrogate U+FFFD); "" when absent; cut to fit. */
void json_str(const char *json, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    const char *v = json_find(json, key);
    if (!v || *v != '"')
        return;
    size_t o = 0;
    for (v++; *v && *v != '"' && o + 1 < cap; v++) {
        unsigned c = (unsigned char)*v;
        if (c == '\\') {
            c = (unsigned char)*++v;
            if (c == '\0')
                break;
            if (c == 'b')
                c = '\b';
            else if (c == 'f')
                c = '\f';
            else if (c == 'n')
                c = '\n';
            else if (c == 'r')
                c = '\r';
            else if (c == 't')
                c = '\t';
            else if (c == 'u' && hex4(v + 1, &c) == 0) {
                v += 4;
                if (c == 0)
                    break; /* a C string ends there */
                if (c >= 0xd800 && c <= 0xdfff)
                    c = 0xfffd;
                char u8[3];
                size_t n = 0;
                if (c < 0x80) {
                    u8[n++] = (char)c;
                } else if (c < 0x800) {
                    u8[n++] = (char)(0xc0 | c >> 6);
                    u8[n++] = (char)(0x80 | (c & 0x3f));
                } else {
                    u8[n++] = (char)(0xe0 | c >> 12);
                    u8[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
                    u8[n++] = (char)(0x80 | (c & 0x3f));
                }
                if (o + n >= cap)
                    break;
                memcpy(out + o, u8, n);
                o += n;
                continue;
            }
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
}

/* Iterates over the objects of "workers":[...]; returns the next one's start. */
const char *next_worker(const char *p)
{
    return strstr(p, "{\"" CD_CTL_W_SLOT "\":");
}

int json_nums(const char *json, const char *key, double *out, int max)
{
    const char *v = json_find(json, key);
    if (!v || *v != '[')
        return -1;
    int n = 0;
    for (v++; *v && *v != ']' && n < max;) {
        char *end;
        double d = strtod(v, &end);
        if (end == v)
            break;
        out[n++] = d;
        v = end;
        if (*v == ',')
            v++;
    }
    return n;
}
