/*
 * redis_uri.c - the events service's redis_uri (pure: conf.c checks it in
 * the master and every worker, redis_adapter.c connects with it; the unit
 * tests and fuzz_events_redis run it too):
 *   redis://[[user]:password@]host[:port][/db]   host a name, IPv4 or [IPv6]
 *   unix://[[user]:password@]/path[?db=N]
 * user and password percent-decoded (no NUL), port 1..65535 (default
 * 6379), db 0..1000000 (SELECT when not 0); AUTH user password when a user
 * is given, AUTH password when only a password is.  Nothing logs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "services/events/redis.h"

static int copy_dec(char *out, size_t cap, const char *s, size_t n)
{
    long l = cd_percent_decode(s, n, out, cap, 0);
    return l < 0 || memchr(out, '\0', (size_t)l) ? -EINVAL : 0;
}

/* "[[user]:password@]": sets user and password, advances *s. */
static int userinfo(const char **s, cd_events_redis_uri *u)
{
    const char *at = strchr(*s, '@');
    const char *slash = strchr(*s, '/');
    if (!at || (slash && slash < at && slash != *s))
        return 0;
    if (slash == *s && at > slash) /* unix:///path@x: a path */
        return 0;
    const char *colon = memchr(*s, ':', (size_t)(at - *s));
    if (!colon)
        return -EINVAL;
    if (copy_dec(u->user, sizeof u->user, *s, (size_t)(colon - *s)) < 0 ||
        copy_dec(u->password, sizeof u->password, colon + 1, (size_t)(at - colon - 1)) < 0)
        return -EINVAL;
    *s = at + 1;
    return 0;
}

static int parse_db(const char *s, int *db)
{
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s || *e || v < 0 || v > 1000000)
        return -EINVAL;
    *db = (int)v;
    return 0;
}

static int parse_hostport(const char *s, cd_events_redis_uri *u)
{
    const char *end = s + strcspn(s, "/");
    const char *hend, *port = NULL;
    if (*s == '[') {
        hend = memchr(s, ']', (size_t)(end - s));
        if (!hend)
            return -EINVAL;
        port = hend + 1 < end ? hend + 1 : NULL;
        s++;
    } else {
        hend = memchr(s, ':', (size_t)(end - s));
        port = hend;
        if (!hend)
            hend = end;
    }
    size_t hl = (size_t)(hend - s);
    if (!hl || hl >= sizeof u->host || memchr(s, '@', hl))
        return -EINVAL;
    memcpy(u->host, s, hl);
    u->host[hl] = '\0';
    if (port) {
        if (*port != ':' || port + 1 >= end)
            return -EINVAL;
        char *e;
        long p = strtol(port + 1, &e, 10);
        if (e != end || p < 1 || p > 65535)
            return -EINVAL;
        u->port = (int)p;
    }
    if (*end == '/' && end[1])
        return parse_db(end + 1, &u->db);
    return 0;
}

int cd_events__redis_uri_parse(const char *uri, cd_events_redis_uri *u)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    const char *s;
    if (strncmp(uri, "redis://", 8) == 0) {
        s = uri + 8;
        return userinfo(&s, u) < 0 ? -EINVAL : parse_hostport(s, u);
    }
    if (strncmp(uri, "unix://", 7) != 0)
        return -EINVAL;
    s = uri + 7;
    if (userinfo(&s, u) < 0 || *s != '/')
        return -EINVAL;
    u->is_unix = 1;
    size_t pl = strcspn(s, "?");
    if (pl < 2 || pl >= sizeof u->path)
        return -EINVAL;
    memcpy(u->path, s, pl);
    u->path[pl] = '\0';
    if (s[pl] == '?')
        return strncmp(s + pl + 1, "db=", 3) == 0 ? parse_db(s + pl + 4, &u->db) : -EINVAL;
    return 0;
}
