/*
 * headers.c - the headers a service adds to its answer (worker process,
 * loop thread): cd_response_header of request.h.
 *
 * The lines are kept on the request, already written "Name: value\r\n", and
 * copied after the server's own headers when the answer is queued
 * (response.c).  Nothing a service sets can split the response or frame it
 * differently: a name must be a token (RFC 9110 §5.6.2), a value must hold
 * no CR, LF or NUL, and the headers that frame or route the message, which
 * the server writes itself, are refused.  Content-Type is the one header
 * both may set: a service's value is kept aside and used only when the
 * answer gives none, so it is never sent twice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/conn.h"

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

int cd_http__header_valid(const char *name, const char *value)
{
    if (!name || !value || !name[0])
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!is_tchar((unsigned char)*p))
            return -EINVAL;
    if (strpbrk(value, "\r\n"))
        return -EINVAL;
    return 0;
}

int cd_http__header_owned(const char *name)
{
    static const char *const owned[] = {"Content-Length", "Transfer-Encoding", "Connection", "Date",
                                        "Keep-Alive",     "Upgrade",           "Server",     "X-Request-Id"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (strcasecmp(name, owned[i]) == 0)
            return 1;
    return 0;
}

int cd_response_header(cd_request *r, const char *name, const char *value)
{
    if (r->streaming || cd_http__header_valid(name, value) < 0 || cd_http__header_owned(name))
        return -EINVAL;
    if (strcasecmp(name, "Content-Type") == 0) {
        char *v = strdup(value);
        if (!v)
            return -ENOMEM;
        free(r->rh_ctype);
        r->rh_ctype = v;
        return 0;
    }
    size_t nl = strlen(name), vl = strlen(value), need = r->rh_len + nl + vl + 4;
    if (need > r->rh_cap) {
        size_t cap = r->rh_cap ? r->rh_cap : 256;
        while (cap < need)
            cap *= 2;
        char *n = realloc(r->rh, cap);
        if (!n)
            return -ENOMEM;
        r->rh = n;
        r->rh_cap = cap;
    }
    char *w = r->rh + r->rh_len;
    memcpy(w, name, nl);
    memcpy(w + nl, ": ", 2);
    memcpy(w + nl + 2, value, vl);
    memcpy(w + nl + 2 + vl, "\r\n", 2);
    r->rh_len += nl + vl + 4;
    return 0;
}
