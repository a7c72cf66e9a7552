/*
 * conf.c - INI config parsing with libinih (master and workers).
 *
 * inih calls us once per key; we record every (section, key, value, line)
 * and interpret them afterwards, because a service section's keys can only
 * be handed to its type once `type =` is known, wherever it stands.
 * [cluster] keys go to conf/cluster.c's table; a service section becomes a
 * cd_conf_service with its name, route, type name and remaining entries,
 * which the registered binder (services/registry.c in clusterd) turns into
 * the type's config.  This file knows no service type.  [cluster] is
 * applied before any service section, so a service's checks can ask
 * whether it listens on loopback only; what they find valid but risky
 * they report with cd_conf_warn, kept in cd_conf.warnings for the master
 * to show (clusterd -t, start).
 *
 * inih's handler gets no line numbers in Debian's build, so our reader
 * counts lines as inih pulls them: when the handler runs, the last line
 * read is the one being handled.
 *
 * inih only reports keys (Debian builds it without
 * INI_CALL_HANDLER_ON_NEW_SECTION), so a section without keys would not
 * exist and a repeated one would be merged silently.  The reader therefore
 * also notes every line that inih will read as a "[section]" (same rules:
 * leading whitespace skipped, the name up to ']' or an inline comment); a
 * line that looked like one but reached the handler was a continuation of
 * the previous value instead, and is dropped.  Sections are then what the
 * file says, in file order: an empty one is a service with its defaults, a
 * repeated one is an error naming both lines.
 */
#include "conf/conf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/cluster.h"

#define CONF_MAX_FILE (1 << 20)

/* The directory of the file being read (cd_conf_dir), the config being
 * built and the section being bound (cd_conf_listen_loopback,
 * cd_conf_warn): the reader runs on one thread from start to end, and key
 * setters and conf_check have no other way to them. */
static char reading_dir[4096] = ".";
static cd_conf *reading_conf;
static const char *reading_section;

typedef struct kv {
    char *section, *key, *value;
    int line;
} kv;

typedef struct sect {
    char *name; /* as inih will see it (before any check) */
    int line;
} sect;

typedef struct parse_state {
    const char *path;
    const char *text, *cur, *end;
    int line;      /* lines handed to inih so far */
    int long_line; /* first line that was too long, or 0 */
    kv *kvs;
    size_t nkv, cap;
    sect *sects; /* every "[name]" line, in file order */
    size_t nsect, sect_cap;
    int oom;
} parse_state;

/* Notes line (n bytes at s) if inih will take it for a section header. */
static void note_section(parse_state *ps, const char *s, size_t n)
{
    const char *end = s + n;
    if (ps->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3; /* inih skips a UTF-8 BOM */
    while (s < end && isspace((unsigned char)*s))
        s++;
    if (s == end || *s != '[')
        return;
    const char *name = ++s;
    int was_space = 0;
    while (s < end && *s != ']' && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    if (s == end || *s != ']')
        return; /* inih reports the syntax error */
    if (ps->nsect == ps->sect_cap) {
        size_t cap = ps->sect_cap ? ps->sect_cap * 2 : 16;
        sect *nw = realloc(ps->sects, cap * sizeof *nw);
        if (!nw) {
            ps->oom = 1;
            return;
        }
        ps->sects = nw;
        ps->sect_cap = cap;
    }
    char *copy = strndup(name, (size_t)(s - name));
    if (!copy) {
        ps->oom = 1;
        return;
    }
    ps->sects[ps->nsect++] = (sect){copy, ps->line};
}

static char *reader(char *str, int num, void *stream)
{
    parse_state *ps = stream;
    if (ps->cur >= ps->end || ps->long_line)
        return NULL;
    const char *nl = memchr(ps->cur, '\n', (size_t)(ps->end - ps->cur));
    size_t n = nl ? (size_t)(nl - ps->cur + 1) : (size_t)(ps->end - ps->cur);
    ps->line++;
    if (n >= (size_t)num) {
        ps->long_line = ps->line;
        return NULL;
    }
    memcpy(str, ps->cur, n);
    str[n] = '\0';
    note_section(ps, ps->cur, n);
    ps->cur += n;
    return ps->oom ? NULL : str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_state *ps = user;
    if (ps->nsect && ps->sects[ps->nsect - 1].line == ps->line) {
        /* An indented "[...]" line after a key: inih continued the value. */
        free(ps->sects[--ps->nsect].name);
    }
    if (ps->nkv == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 32;
        kv *n = realloc(ps->kvs, cap * sizeof *n);
        if (!n) {
            ps->oom = 1;
            return 0;
        }
        ps->kvs = n;
        ps->cap = cap;
    }
    kv *e = &ps->kvs[ps->nkv];
    e->section = strdup(section);
    e->key = strdup(name);
    e->value = strdup(value);
    e->line = ps->line;
    if (!e->section || !e->key || !e->value) {
        free(e->section);
        free(e->key);
        free(e->value);
        ps->oom = 1;
        return 0;
    }
    ps->nkv++;
    return 1;
}

static cd_conf_bind_fn binder;

void cd_conf_set_binder(cd_conf_bind_fn fn) { binder = fn; }

int cd_conf_fail(char *err, size_t errlen, const char *path, int line, const char *fmt, ...)
{
    int n = line > 0 ? snprintf(err, errlen, "%s:%d: ", path, line) : snprintf(err, errlen, "%s: ", path);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int valid_route(const char *r)
{
    if (r[0] != '/')
        return 0;
    size_t n = strlen(r);
    if (n > 1 && r[n - 1] == '/')
        return 0;
    for (const char *s = r; *s; s++)
        if (*s == '?' || *s == '#' || *s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

/* Copies the keys of section sect but type and route into svc->entries. */
static int keep_entries(const parse_state *ps, const char *sect, cd_conf_service *svc)
{
    size_t n = 0;
    for (size_t i = 0; i < ps->nkv; i++)
        n += strcmp(ps->kvs[i].section, sect) == 0;
    svc->entries = calloc(n ? n : 1, sizeof *svc->entries);
    if (!svc->entries)
        return -1;
    for (size_t i = 0; i < ps->nkv; i++) {
        const kv *e = &ps->kvs[i];
        if (strcmp(e->section, sect) != 0 || strcmp(e->key, "type") == 0 || strcmp(e->key, "route") == 0)
            continue;
        cd_conf_entry *d = &svc->entries[svc->nentries];
        d->key = strdup(e->key);
        d->value = strdup(e->value);
        d->line = e->line;
        svc->nentries++; /* so cd_conf_free releases a half-copied one */
        if (!d->key || !d->value)
            return -1;
    }
    return 0;
}

/* Builds the service of section hdr from its keys (there may be none),
 * then has the binder (if any) give it its type and parsed config. */
static int build_service(cd_conf *c, parse_state *ps, const struct sect *hdr, cd_conf_service *svc, char *err,
                         size_t errlen)
{
    const char *sect = hdr->name;
    const kv *type_kv = NULL, *route_kv = NULL;
    for (size_t i = 0; i < ps->nkv; i++) {
        kv *e = &ps->kvs[i];
        if (strcmp(e->section, sect) != 0)
            continue;
        if (strcmp(e->key, "type") == 0)
            type_kv = e;
        else if (strcmp(e->key, "route") == 0)
            route_kv = e;
    }
    svc->line = hdr->line;
    svc->type_line = type_kv ? type_kv->line : 0;
    svc->name = strdup(sect);
    svc->type_name = strdup(type_kv ? type_kv->value : sect);
    if (!svc->name || !svc->type_name || keep_entries(ps, sect, svc) < 0)
        return cd_conf_fail(err, errlen, c->path, 0, "out of memory");
    char defroute[300];
    snprintf(defroute, sizeof defroute, "/%s", sect);
    const char *route = route_kv ? route_kv->value : defroute;
    if (!valid_route(route))
        return cd_conf_fail(err, errlen, c->path, route_kv ? route_kv->line : svc->line,
                            "route: bad route '%s' (must start with '/', no trailing '/', no spaces)", route);
    for (size_t i = 0; i < c->nservices; i++)
        if (strcmp(c->services[i].route, route) == 0)
            return cd_conf_fail(err, errlen, c->path, route_kv ? route_kv->line : svc->line,
                                "route '%s' is already used by [%s]", route, c->services[i].name);
    svc->route = strdup(route);
    if (!svc->route)
        return cd_conf_fail(err, errlen, c->path, 0, "out of memory");
    svc->route_len = strlen(route);
    reading_section = svc->name;
    int rc = binder ? binder(svc, c->path, err, errlen) : 0;
    reading_section = NULL;
    return rc;
}

/* Section names end up in metric labels, log lines and default routes:
 * 1..CD_CONF_NAME_MAX of [A-Za-z0-9_.-]. */
static int valid_section_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CD_CONF_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static int interpret(cd_conf *c, parse_state *ps, char *err, size_t errlen)
{
    size_t nsvc = 0;
    for (size_t i = 0; i < ps->nsect; i++) {
        const sect *h = &ps->sects[i];
        if (!valid_section_name(h->name))
            return cd_conf_fail(err, errlen, c->path, h->line,
                        "bad section name [%s] (section names are 1 to %d letters, digits, '_', '-' or '.')",
                        h->name, CD_CONF_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(h->name, ps->sects[j].name) == 0)
                return cd_conf_fail(err, errlen, c->path, h->line, "section [%s] appears again (first at line %d)",
                            h->name, ps->sects[j].line);
        if (strcmp(h->name, "cluster") != 0)
            nsvc++;
    }
    /* Section names are unique now, so a key belongs to the one it names;
     * that is the last header above it, or our reading of the file and
     * inih's differ (then refuse rather than drop the key). */
    size_t h = 0;
    for (size_t i = 0; i < ps->nkv; i++) {
        if (ps->kvs[i].section[0] == '\0')
            return cd_conf_fail(err, errlen, c->path, ps->kvs[i].line, "key '%s' outside any section", ps->kvs[i].key);
        while (h < ps->nsect && ps->sects[h].line < ps->kvs[i].line)
            h++;
        if (h == 0 || strcmp(ps->sects[h - 1].name, ps->kvs[i].section) != 0)
            return cd_conf_fail(err, errlen, c->path, ps->kvs[i].line, "cannot tell which section key '%s' is in",
                        ps->kvs[i].key);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ps->kvs[i].section, ps->kvs[j].section) == 0 && strcmp(ps->kvs[i].key, ps->kvs[j].key) == 0)
                return cd_conf_fail(err, errlen, c->path, ps->kvs[i].line, "duplicate key '%s' (first at line %d)",
                            ps->kvs[i].key, ps->kvs[j].line);
    }
    c->services = calloc(nsvc ? nsvc : 1, sizeof *c->services);
    if (!c->services)
        return cd_conf_fail(err, errlen, c->path, 0, "out of memory");
    /* [cluster] first, wherever it is, so that a service's checks see its
     * listen (cd_conf_listen_loopback). */
    for (size_t k = 0; k < ps->nkv; k++)
        if (strcmp(ps->kvs[k].section, "cluster") == 0 &&
            cd_conf__cluster_key(c, ps->kvs[k].key, ps->kvs[k].value, ps->kvs[k].line, err, errlen) < 0)
            return -1;
    for (size_t i = 0; i < ps->nsect; i++) {
        const sect *h = &ps->sects[i];
        if (strcmp(h->name, "cluster") == 0)
            continue;
        if (build_service(c, ps, h, &c->services[c->nservices], err, errlen) < 0) {
            c->nservices++; /* so cd_conf_free releases the partial one */
            return -1;
        }
        c->nservices++;
    }
    if (cd_conf__cluster_check(c, err, errlen) < 0)
        return -1;
    if (c->nservices == 0)
        return cd_conf_fail(err, errlen, c->path, 0, "no service sections: nothing to serve");
    return 0;
}


const char *cd_conf_dir(void)
{
    return reading_dir;
}

int cd_conf_listen_loopback(void)
{
    const struct sockaddr_storage *a = reading_conf ? &reading_conf->addr : NULL;
    if (a && a->ss_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24 == 127;
    if (a && a->ss_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
    }
    return 0;
}

void cd_conf_warn(const char *fmt, ...)
{
    cd_conf *c = reading_conf;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t old = c && c->warnings ? strlen(c->warnings) : 0;
    char *w = c ? realloc(c->warnings, old + strlen(line) + (reading_section ? strlen(reading_section) : 0) + 8) : NULL;
    if (!w)
        return; /* out of memory: a warning is not worth failing the load */
    if (reading_section)
        sprintf(w + old, "[%s]: %s\n", reading_section, line);
    else
        sprintf(w + old, "%s\n", line);
    c->warnings = w;
}

int cd_conf_load_text(const char *path, const char *text, size_t len, cd_conf **out, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(reading_dir, sizeof reading_dir, ".");
    else
        snprintf(reading_dir, sizeof reading_dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int rc = -1;
    parse_state ps = {.path = path, .text = text, .cur = text, .end = text + len};
    cd_conf *c = calloc(1, sizeof *c);
    if (!c)
        return cd_conf_fail(err, errlen, path, 0, "out of memory");
    cd_conf__defaults(c);
    c->path = strdup(path);
    c->text = malloc(len + 1);
    if (!c->path || !c->text) {
        cd_conf_fail(err, errlen, path, 0, "out of memory");
        goto out;
    }
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    c->text_len = len;
    if (memchr(text, '\0', len)) {
        cd_conf_fail(err, errlen, path, 0, "file contains a NUL byte");
        goto out;
    }
    int line = ini_parse_stream(reader, &ps, handler, &ps);
    if (ps.oom) {
        cd_conf_fail(err, errlen, path, 0, "out of memory");
        goto out;
    }
    if (ps.long_line) {
        cd_conf_fail(err, errlen, path, ps.long_line, "line too long (at most %d characters)", INI_MAX_LINE - 2);
        goto out;
    }
    if (line > 0) {
        cd_conf_fail(err, errlen, path, line, "syntax error (expected [section], key = value, or a ; comment)");
        goto out;
    }
    if (line < 0) {
        cd_conf_fail(err, errlen, path, 0, "cannot parse");
        goto out;
    }
    reading_conf = c;
    int bad = interpret(c, &ps, err, errlen) < 0;
    reading_conf = NULL;
    if (bad)
        goto out;
    *out = c;
    c = NULL;
    rc = 0;
out:
    for (size_t i = 0; i < ps.nkv; i++) {
        free(ps.kvs[i].section);
        free(ps.kvs[i].key);
        free(ps.kvs[i].value);
    }
    free(ps.kvs);
    for (size_t i = 0; i < ps.nsect; i++)
        free(ps.sects[i].name);
    free(ps.sects);
    cd_conf_free(c);
    return rc;
}

int cd_conf_load_file(const char *path, cd_conf **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return cd_conf_fail(err, errlen, path, 0, "cannot open: %s", strerror(errno));
    char *buf = malloc(CONF_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return cd_conf_fail(err, errlen, path, 0, "out of memory");
    }
    size_t n = fread(buf, 1, CONF_MAX_FILE + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    int rc;
    if (rerr)
        rc = cd_conf_fail(err, errlen, path, 0, "cannot read: %s", strerror(rerr));
    else if (n > CONF_MAX_FILE)
        rc = cd_conf_fail(err, errlen, path, 0, "file too large (over %d bytes)", CONF_MAX_FILE);
    else
        rc = cd_conf_load_text(path, buf, n, out, err, errlen);
    free(buf);
    return rc;
}

void cd_conf_free(cd_conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nservices; i++) {
        cd_conf_service *s = &c->services[i];
        if (s->conf && s->conf_free)
            s->conf_free(s->conf);
        if (s->route_opts && s->route_opts_free)
            s->route_opts_free(s->route_opts);
        for (size_t k = 0; k < s->nentries; k++) {
            free(s->entries[k].key);
            free(s->entries[k].value);
        }
        free(s->entries);
        free(s->name);
        free(s->route);
        free(s->type_name);
    }
    free(c->services);
    free(c->path);
    free(c->text);
    free(c->warnings);
    free(c);
}

#ifndef CD_CONF_FILE
#define CD_CONF_FILE "/etc/clusterd/services.ini"
#endif

const char *cd_conf_default_path(void)
{
    return access("conf/services.ini", F_OK) == 0 ? "conf/services.ini" : CD_CONF_FILE;
}
