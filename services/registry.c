/*
 * registry.c - the list of service types (master and workers).
 *
 * Services with heavy dependencies live in modules, loaded with dlopen the
 * first time a config names them: readmongo (libmongoc, OpenSSL, SASL, ICU)
 * and events (wslay, libcrypto).  A worker that serves only built-in
 * services never maps those libraries, which keeps it small (an idle dummy
 * worker's RSS is mostly the C library) and its exec fast.  A module
 * resolves the API it calls (cd_request_*, cd_log, ...) from the clusterd
 * executable, which exports it.
 *
 * The registry is also conf/'s binder (cd_service_bind): conf/ reads a
 * service section into its type name and raw (key, value, line) entries,
 * and this file turns them into the type's parsed config, so conf/ never
 * loads a module nor knows a service's keys.
 *
 * Adding a service: its file(s) in services/ and one line here (plus, for a
 * module, one line in CMakeLists.txt naming its sources and libraries).
 */
#include "services/registry.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/keys.h"
#include "services/service.h"

extern const cd_service_type cd_service_dummy;
extern const cd_service_type cd_service_metrics;
extern const cd_service_type cd_service_health;

typedef struct entry {
    const char *name;
    const cd_service_type *builtin; /* or NULL: in module clusterd-NAME.so, symbol cd_service_NAME */
} entry;

static const entry registry[] = {
    {"dummy", &cd_service_dummy},
    {"metrics", &cd_service_metrics},
    {"health", &cd_service_health},
    {"readmongo", NULL},
    {"events", NULL},
};

#ifndef CD_MODULE_DIR
#define CD_MODULE_DIR "/usr/local/lib/clusterd"
#endif

/* Loads clusterd-NAME.so from $CLUSTERD_MODULE_DIR, the executable's own
 * directory (a build tree), or CD_MODULE_DIR (installed). */
static const cd_service_type *load(const char *name, char *err, size_t errlen)
{
    char dirs[3][1024];
    int nd = 0;
    const char *env = getenv("CLUSTERD_MODULE_DIR");
    if (env && *env)
        snprintf(dirs[nd++], sizeof dirs[0], "%.1000s", env);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(dirs[nd++], sizeof dirs[0], "%.1000s", exe);
        }
    }
    snprintf(dirs[nd++], sizeof dirs[0], "%.1000s", CD_MODULE_DIR);
    char first_err[256] = "";
    char sym[96];
    snprintf(sym, sizeof sym, "cd_service_%s", name);
    /* A program that links the module's code itself (the unit tests, the
     * fuzz targets) uses that copy: loading a second one would give the
     * process two sets of the module's globals. */
    const cd_service_type *linked = dlsym(RTLD_DEFAULT, sym);
    if (linked)
        return linked;
    for (int i = 0; i < nd; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%.1000s/clusterd-%.64s.so", dirs[i], name);
        if (access(path, F_OK) < 0)
            continue;
        /* Never unloaded: its code runs until the process ends. */
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            snprintf(first_err, sizeof first_err, "cannot load: %.200s", dlerror());
            continue;
        }
        const cd_service_type *t = dlsym(h, sym);
        if (t)
            return t;
        snprintf(first_err, sizeof first_err, "has no symbol %.100s", sym);
    }
    snprintf(err, errlen, "service type '%s' is a module, and clusterd-%s.so %s", name, name,
             first_err[0] ? first_err : "was not found (CLUSTERD_MODULE_DIR, next to clusterd, or " CD_MODULE_DIR ")");
    return NULL;
}

const cd_service_type *cd_service_lookup(const char *type, char *err, size_t errlen)
{
    static const cd_service_type *loaded[sizeof registry / sizeof registry[0]];
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
        if (strcmp(registry[i].name, type) != 0)
            continue;
        if (registry[i].builtin)
            return registry[i].builtin;
        if (!loaded[i])
            loaded[i] = load(type, err, errlen);
        return loaded[i];
    }
    if (errlen)
        err[0] = '\0'; /* not a type at all: the caller words that */
    return NULL;
}

int cd_service_bind(cd_conf_service *svc, const char *path, char *err, size_t errlen)
{
    char why[512] = "";
    const char *tname = svc->type_name;
    const cd_service_type *t = cd_service_lookup(tname, why, sizeof why);
    if (!t) {
        if (why[0]) /* a module that cannot be loaded */
            return cd_conf_fail(err, errlen, path, svc->type_line ? svc->type_line : svc->line, "%s", why);
        if (svc->type_line)
            return cd_conf_fail(err, errlen, path, svc->type_line, "unknown service type '%s'", tname);
        return cd_conf_fail(err, errlen, path, svc->line,
                            "unknown section [%s] (not [cluster], and no 'type =' naming a service type)",
                            svc->name);
    }
    svc->type = t;
    svc->uses_bus = t->uses_bus;
    svc->conf_free = t->conf_free;
    svc->conf = t->conf_new ? t->conf_new() : NULL;
    if (t->conf_new && !svc->conf)
        return cd_conf_fail(err, errlen, path, 0, "out of memory");
    for (size_t i = 0; i < svc->nentries; i++) {
        const cd_conf_entry *e = &svc->entries[i];
        why[0] = '\0';
        int rc = cd_conf_key_set(t->keys, svc->conf, e->key, e->value, why, sizeof why);
        if (rc == -2)
            return cd_conf_fail(err, errlen, path, e->line, "unknown key '%s' for a %s service", e->key, tname);
        if (rc < 0)
            return cd_conf_fail(err, errlen, path, e->line, "%s: %s", e->key, why[0] ? why : "bad value");
    }
    why[0] = '\0';
    if (t->conf_check && t->conf_check(svc->conf, why, sizeof why) < 0)
        return cd_conf_fail(err, errlen, path, svc->line, "[%s]: %s", svc->name, why[0] ? why : "invalid");
    return 0;
}
