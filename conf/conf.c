/*
 * conf.c - INI config parsing with libinih (master and workers).
 *
 * inih calls us once per key; we record every (section, key, value, line)
 * and interpret them afterwards, because a service section's keys can only
 * be handed to its type once `type =` is known, wherever it stands.  inih's
 * handler gets no line numbers in Debian's build, so our reader counts lines
 * as inih pulls them: when the handler runs, the last line read is the one
 * being handled.
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

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

#define CONF_MAX_FILE (1 << 20)

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

static int fail(char *err, size_t errlen, const char *path, int line, const char *fmt, ...)
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

static int dur(const kv *e, long long min, long long *out, const char *path, char *err, size_t errlen)
{
    if (cd_parse_duration_ms(e->value, out) < 0 || *out < min)
        return fail(err, errlen, path, e->line,
                    "%s: bad duration '%s' (expected e.g. 500ms, 30s, 2m; at least %lldms)", e->key,
                    e->value, min);
    return 0;
}

static int size(const kv *e, long long min, long long max, size_t *out, const char *path, char *err,
                size_t errlen)
{
    long long v;
    if (cd_parse_size(e->value, &v) < 0 || v < min || v > max)
        return fail(err, errlen, path, e->line, "%s: bad size '%s' (expected e.g. 512, 64k, 1m; %lld..%lld)",
                    e->key, e->value, min, max);
    *out = (size_t)v;
    return 0;
}

static int integer(const kv *e, long long min, long long max, int *out, const char *path, char *err,
                   size_t errlen)
{
    long long v;
    if (cd_parse_int(e->value, min, max, &v) < 0)
        return fail(err, errlen, path, e->line, "%s: bad number '%s' (expected %lld..%lld)", e->key, e->value,
                    min, max);
    *out = (int)v;
    return 0;
}

static int cluster_key(cd_conf *c, const kv *e, char *err, size_t errlen)
{
    const char *p = c->path;
    const char *k = e->key;
    if (strcmp(k, "listen") == 0) {
        if (strlen(e->value) >= sizeof c->listen || cd_parse_listen(e->value, &c->addr, &c->addrlen) < 0)
            return fail(err, errlen, p, e->line, "listen: bad address '%s' (expected host:port)", e->value);
        strcpy(c->listen, e->value);
        return 0;
    }
    if (strcmp(k, "runtime_dir") == 0) {
        if (e->value[0] != '/' || strlen(e->value) >= sizeof c->runtime_dir - 20)
            return fail(err, errlen, p, e->line, "runtime_dir: expected an absolute path of at most %zu characters",
                        sizeof c->runtime_dir - 21);
        strcpy(c->runtime_dir, e->value);
        return 0;
    }
    if (strcmp(k, "pidfile") == 0) {
        if (strlen(e->value) >= sizeof c->pidfile)
            return fail(err, errlen, p, e->line, "pidfile: path too long");
        strcpy(c->pidfile, e->value);
        return 0;
    }
    if (strcmp(k, "user") == 0 || strcmp(k, "group") == 0) {
        char *dst = k[0] == 'u' ? c->user : c->group;
        if (strlen(e->value) >= sizeof c->user || e->value[0] == '\0')
            return fail(err, errlen, p, e->line, "%s: bad name '%s'", k, e->value);
        strcpy(dst, e->value);
        return 0;
    }
    if (strcmp(k, "access_log") == 0) {
        if (strlen(e->value) >= sizeof c->access_log || (e->value[0] && e->value[0] != '/'))
            return fail(err, errlen, p, e->line, "access_log: expected an absolute path, or nothing for off");
        strcpy(c->access_log, e->value);
        return 0;
    }
    if (strcmp(k, "access_log_format") == 0) {
        if (strcmp(e->value, "combined") != 0 && strcmp(e->value, "json") != 0)
            return fail(err, errlen, p, e->line, "access_log_format: expected combined or json");
        c->access_log_json = e->value[0] == 'j';
        return 0;
    }
    if (strcmp(k, "rlimit_nofile") == 0) {
        if (cd_parse_int(e->value, 64, 1 << 24, &c->rlimit_nofile) < 0)
            return fail(err, errlen, p, e->line, "rlimit_nofile: expected a number from 64 to 16777216");
        return 0;
    }
    if (strcmp(k, "workers") == 0) {
        if (strcmp(e->value, "auto") == 0) {
            c->workers = 0;
            return 0;
        }
        return integer(e, 1, 1024, &c->workers, p, err, errlen);
    }
    if (strcmp(k, "max_requests") == 0 || strcmp(k, "max_requests_jitter") == 0) {
        long long *dst = strcmp(k, "max_requests") == 0 ? &c->max_requests : &c->max_requests_jitter;
        if (cd_parse_int(e->value, 0, 1LL << 40, dst) < 0)
            return fail(err, errlen, p, e->line, "%s: expected a count (0 = off)", k);
        return 0;
    }
    if (strcmp(k, "max_rss") == 0)
        return size(e, 0, 1LL << 40, &c->max_rss, p, err, errlen);
    if (strcmp(k, "backlog") == 0)
        return integer(e, 1, 65535, &c->backlog, p, err, errlen);
    if (strcmp(k, "max_connections") == 0)
        return integer(e, 1, 1000000, &c->max_connections, p, err, errlen);
    if (strcmp(k, "graceful_timeout") == 0)
        return dur(e, 0, &c->graceful_timeout_ms, p, err, errlen);
    if (strcmp(k, "header_timeout") == 0)
        return dur(e, 1, &c->header_timeout_ms, p, err, errlen);
    if (strcmp(k, "body_timeout") == 0)
        return dur(e, 1, &c->body_timeout_ms, p, err, errlen);
    if (strcmp(k, "body_deadline") == 0)
        return dur(e, 1, &c->body_deadline_ms, p, err, errlen);
    if (strcmp(k, "keepalive_timeout") == 0)
        return dur(e, 0, &c->keepalive_timeout_ms, p, err, errlen);
    if (strcmp(k, "heartbeat_interval") == 0)
        return dur(e, 10, &c->heartbeat_interval_ms, p, err, errlen);
    if (strcmp(k, "upgrade_timeout") == 0)
        return dur(e, 100, &c->upgrade_timeout_ms, p, err, errlen);
    if (strcmp(k, "heartbeat_timeout") == 0)
        return dur(e, 100, &c->heartbeat_timeout_ms, p, err, errlen);
    if (strcmp(k, "max_header_size") == 0)
        return size(e, 256, 1 << 20, &c->max_header_size, p, err, errlen);
    if (strcmp(k, "max_body_size") == 0)
        return size(e, 0, 1LL << 30, &c->max_body_size, p, err, errlen);
    return fail(err, errlen, p, e->line, "unknown key '%s' in [cluster]", k);
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

/* Builds the service of section hdr from its keys (there may be none). */
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
    svc->name = strdup(sect);
    if (!svc->name)
        return fail(err, errlen, c->path, 0, "out of memory");
    const char *tname = type_kv ? type_kv->value : sect;
    char why[512];
    svc->type = cd_service_lookup(tname, why, sizeof why);
    if (!svc->type) {
        if (why[0]) /* a module that cannot be loaded */
            return fail(err, errlen, c->path, type_kv ? type_kv->line : svc->line, "%s", why);
        if (type_kv)
            return fail(err, errlen, c->path, type_kv->line, "unknown service type '%s'", tname);
        return fail(err, errlen, c->path, svc->line,
                    "unknown section [%s] (not [cluster], and no 'type =' naming a service type)", sect);
    }
    char defroute[300];
    snprintf(defroute, sizeof defroute, "/%s", sect);
    const char *route = route_kv ? route_kv->value : defroute;
    if (!valid_route(route))
        return fail(err, errlen, c->path, route_kv ? route_kv->line : svc->line,
                    "route: bad route '%s' (must start with '/', no trailing '/', no spaces)", route);
    for (size_t i = 0; i < c->nservices; i++)
        if (strcmp(c->services[i].route, route) == 0)
            return fail(err, errlen, c->path, route_kv ? route_kv->line : svc->line,
                        "route '%s' is already used by [%s]", route, c->services[i].name);
    svc->route = strdup(route);
    if (!svc->route)
        return fail(err, errlen, c->path, 0, "out of memory");
    svc->route_len = strlen(route);
    svc->conf = svc->type->conf_new ? svc->type->conf_new() : NULL;
    if (svc->type->conf_new && !svc->conf)
        return fail(err, errlen, c->path, 0, "out of memory");
    for (size_t i = 0; i < ps->nkv; i++) {
        kv *e = &ps->kvs[i];
        if (strcmp(e->section, sect) != 0 || strcmp(e->key, "type") == 0 || strcmp(e->key, "route") == 0)
            continue;
        char why[256] = "";
        int rc = svc->type->conf_set ? svc->type->conf_set(svc->conf, e->key, e->value, why, sizeof why) : -2;
        if (rc == -2)
            return fail(err, errlen, c->path, e->line, "unknown key '%s' for a %s service", e->key, tname);
        if (rc < 0)
            return fail(err, errlen, c->path, e->line, "%s: %s", e->key, why[0] ? why : "bad value");
    }
    if (svc->type->conf_check) {
        char why[256] = "";
        if (svc->type->conf_check(svc->conf, why, sizeof why) < 0)
            return fail(err, errlen, c->path, svc->line, "[%s]: %s", sect, why[0] ? why : "invalid");
    }
    return 0;
}

static void defaults(cd_conf *c)
{
    strcpy(c->listen, "127.0.0.1:8080");
    cd_parse_listen(c->listen, &c->addr, &c->addrlen);
    c->workers = 0;
    c->backlog = 511;
    c->graceful_timeout_ms = 30000;
    c->header_timeout_ms = 10000;
    c->body_timeout_ms = 10000;
    c->body_deadline_ms = 60000;
    c->keepalive_timeout_ms = 75000;
    c->heartbeat_interval_ms = 1000;
    c->heartbeat_timeout_ms = 10000;
    c->upgrade_timeout_ms = 30000;
    c->max_header_size = 16 * 1024;
    c->max_body_size = 1024 * 1024;
    c->max_connections = 4096;
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
            return fail(err, errlen, c->path, h->line,
                        "bad section name [%s] (section names are 1 to %d letters, digits, '_', '-' or '.')",
                        h->name, CD_CONF_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(h->name, ps->sects[j].name) == 0)
                return fail(err, errlen, c->path, h->line, "section [%s] appears again (first at line %d)",
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
            return fail(err, errlen, c->path, ps->kvs[i].line, "key '%s' outside any section", ps->kvs[i].key);
        while (h < ps->nsect && ps->sects[h].line < ps->kvs[i].line)
            h++;
        if (h == 0 || strcmp(ps->sects[h - 1].name, ps->kvs[i].section) != 0)
            return fail(err, errlen, c->path, ps->kvs[i].line, "cannot tell which section key '%s' is in",
                        ps->kvs[i].key);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ps->kvs[i].section, ps->kvs[j].section) == 0 && strcmp(ps->kvs[i].key, ps->kvs[j].key) == 0)
                return fail(err, errlen, c->path, ps->kvs[i].line, "duplicate key '%s' (first at line %d)",
                            ps->kvs[i].key, ps->kvs[j].line);
    }
    c->services = calloc(nsvc ? nsvc : 1, sizeof *c->services);
    if (!c->services)
        return fail(err, errlen, c->path, 0, "out of memory");
    for (size_t i = 0; i < ps->nsect; i++) {
        const sect *h = &ps->sects[i];
        if (strcmp(h->name, "cluster") == 0) {
            for (size_t k = 0; k < ps->nkv; k++)
                if (strcmp(ps->kvs[k].section, "cluster") == 0 && cluster_key(c, &ps->kvs[k], err, errlen) < 0)
                    return -1;
            continue;
        }
        if (build_service(c, ps, h, &c->services[c->nservices], err, errlen) < 0) {
            c->nservices++; /* so cd_conf_free releases the partial one */
            return -1;
        }
        c->nservices++;
    }
    if (c->runtime_dir[0] == '\0')
        cd_conf_default_runtime_dir(&c->addr, c->runtime_dir, sizeof c->runtime_dir);
    if (c->heartbeat_timeout_ms <= c->heartbeat_interval_ms)
        return fail(err, errlen, c->path, 0, "heartbeat_timeout must be longer than heartbeat_interval");
    if (c->nservices == 0)
        return fail(err, errlen, c->path, 0, "no service sections: nothing to serve");
    return 0;
}

int cd_conf_load_text(const char *path, const char *text, size_t len, cd_conf **out, char *err, size_t errlen)
{
    int rc = -1;
    parse_state ps = {.path = path, .text = text, .cur = text, .end = text + len};
    cd_conf *c = calloc(1, sizeof *c);
    if (!c)
        return fail(err, errlen, path, 0, "out of memory");
    defaults(c);
    c->path = strdup(path);
    c->text = malloc(len + 1);
    if (!c->path || !c->text) {
        fail(err, errlen, path, 0, "out of memory");
        goto out;
    }
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    c->text_len = len;
    if (memchr(text, '\0', len)) {
        fail(err, errlen, path, 0, "file contains a NUL byte");
        goto out;
    }
    int line = ini_parse_stream(reader, &ps, handler, &ps);
    if (ps.oom) {
        fail(err, errlen, path, 0, "out of memory");
        goto out;
    }
    if (ps.long_line) {
        fail(err, errlen, path, ps.long_line, "line too long (at most %d characters)", INI_MAX_LINE - 2);
        goto out;
    }
    if (line > 0) {
        fail(err, errlen, path, line, "syntax error (expected [section], key = value, or a ; comment)");
        goto out;
    }
    if (line < 0) {
        fail(err, errlen, path, 0, "cannot parse");
        goto out;
    }
    if (interpret(c, &ps, err, errlen) < 0)
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
        return fail(err, errlen, path, 0, "cannot open: %s", strerror(errno));
    char *buf = malloc(CONF_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return fail(err, errlen, path, 0, "out of memory");
    }
    size_t n = fread(buf, 1, CONF_MAX_FILE + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    int rc;
    if (rerr)
        rc = fail(err, errlen, path, 0, "cannot read: %s", strerror(rerr));
    else if (n > CONF_MAX_FILE)
        rc = fail(err, errlen, path, 0, "file too large (over %d bytes)", CONF_MAX_FILE);
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
        if (s->conf && s->type && s->type->conf_free)
            s->type->conf_free(s->conf);
        free(s->name);
        free(s->route);
    }
    free(c->services);
    free(c->path);
    free(c->text);
    free(c);
}

void cd_conf_default_runtime_dir(const struct sockaddr_storage *addr, char *out, size_t len)
{
    const char *rd = getenv("RUNTIME_DIRECTORY"); /* systemd's RuntimeDirectory= */
    if (rd && rd[0] == '/' && strlen(rd) + 20 < len && !strchr(rd, ':')) {
        snprintf(out, len, "%s", rd);
        return;
    }
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr; /* same port offset for v6 */
    snprintf(out, len, "/tmp/clusterd.%u", (unsigned)ntohs(in->sin_port));
}

/* Only what clusterctl needs: [cluster] listen and runtime_dir, ignoring the rest. */
typedef struct rd_state {
    char listen[128];
    char runtime_dir[200];
} rd_state;

static int rd_handler(void *user, const char *section, const char *name, const char *value)
{
    rd_state *st = user;
    if (strcmp(section, "cluster") == 0 && strcmp(name, "listen") == 0)
        snprintf(st->listen, sizeof st->listen, "%s", value);
    if (strcmp(section, "cluster") == 0 && strcmp(name, "runtime_dir") == 0)
        snprintf(st->runtime_dir, sizeof st->runtime_dir, "%s", value);
    return 1;
}

int cd_conf_runtime_dir(const char *path, char *out, size_t len)
{
    rd_state st = {"127.0.0.1:8080", ""};
    if (ini_parse(path, rd_handler, &st) < 0)
        return -1;
    if (st.runtime_dir[0]) {
        snprintf(out, len, "%s", st.runtime_dir);
        return 0;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    if (cd_parse_listen(st.listen, &ss, &sl) < 0)
        return -1;
    cd_conf_default_runtime_dir(&ss, out, len);
    return 0;
}

int cd_conf_workers(const cd_conf *c)
{
    if (c->workers > 0)
        return c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
