/*
 * registry.c - the list of service types, and loading modules (master and
 * workers).
 *
 * Services with heavy dependencies live in modules, loaded with dlopen the
 * first time a config names them: readmongo (libmongoc, OpenSSL, SASL, ICU)
 * and events (wslay, libcrypto), as clusterd-NAME.so exporting
 * cd_service_NAME (its ABI checked as a user's module's is; the next
 * directory is tried when it differs).  A worker that serves only
 * built-in services never maps those libraries, which keeps it small and
 * its exec fast.  A module resolves the API it calls (include/clusterd/)
 * from the clusterd executable, which exports it.
 *
 * Users' modules (docs/services.md) are named by their section:
 * `module = /abs/path/x.so`, or `module = x` (x.so, searched where
 * clusterd's own modules are), and `type = T` picks the type the module
 * exports as cd_service_T.  Its `abi` must be CLUSTERD_ABI_VERSION: a
 * module built against other headers is refused, naming both versions,
 * before any of its hooks runs.  A missing file, a missing symbol or a type
 * without handle() is refused the same way, at the `module =` line.
 *
 * Reload: the master loads modules when it validates a config (-t, start,
 * every HUP) and never unloads one (a config it still holds may own memory
 * the module's conf_free must release).  dlopen of a path already loaded
 * returns the image already mapped, even if the file has changed since, so
 * the master would validate a new module with the old code.  Each load
 * therefore remembers the file's identity (device, inode, size, mtime):
 * the same file gives the same handle, a changed one is loaded afresh from
 * a copy in a memfd (a new inode, so a new image).  That list is
 * process-wide, as the dynamic loader's own state is.  Workers are new
 * processes after a reload and simply load the current file.
 *
 * The registry is also conf/'s binder (cd_service_bind): conf/ reads a
 * service section into its type name and raw (key, value, line) entries,
 * and this file turns them into the type's parsed config, so conf/ never
 * loads a module nor knows a service's keys.
 *
 * Adding a built-in service: its file(s) in services/ and one line here
 * (plus, for one of clusterd's modules, one line in CMakeLists.txt naming
 * its sources and libraries).
 */
#include "services/registry.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/keys.h"
#include "http/routeconf.h"
#include "services/service.h"

extern const cd_service_type cd_service_dummy;
extern const cd_service_type cd_service_metrics;
extern const cd_service_type cd_service_health;
extern const cd_service_type cd_service_static;

typedef struct entry {
    const char *name;
    const cd_service_type *builtin; /* or NULL: in module clusterd-NAME.so, symbol cd_service_NAME */
} entry;

static const entry registry[] = {
    {"dummy", &cd_service_dummy},
    {"metrics", &cd_service_metrics},
    {"health", &cd_service_health},
    {"static", &cd_service_static},
    {"readmongo", NULL},
    {"events", NULL},
};

#ifndef CD_MODULE_DIR
#define CD_MODULE_DIR "/usr/local/lib/clusterd"
#endif

#define NDIRS 3

/* The module directories, in search order: $CLUSTERD_MODULE_DIR, the
 * executable's own directory (a build tree), CD_MODULE_DIR (installed). */
static int module_dirs(char dirs[NDIRS][1024])
{
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
    return nd;
}

/* Loads clusterd-NAME.so, one of clusterd's own modules. */
static const cd_service_type *load_builtin_module(const char *name, char *err, size_t errlen)
{
    char dirs[NDIRS][1024];
    int nd = module_dirs(dirs);
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
        if (t && t->abi == CLUSTERD_ABI_VERSION)
            return t;
        if (t) /* e.g. an older install found before the build tree's */
            snprintf(first_err, sizeof first_err, "at %.120s was built for clusterd ABI %u, this clusterd speaks ABI %d",
                     path, t->abi, CLUSTERD_ABI_VERSION);
        else
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
            loaded[i] = load_builtin_module(type, err, errlen);
        return loaded[i];
    }
    if (errlen)
        err[0] = '\0'; /* not a type at all: the caller words that */
    return NULL;
}

/* ---- Users' modules ---- */

/* A module file this process has loaded: the same file gives the same
 * handle; a changed one (another identity at the same path) a new one. */
typedef struct loaded_mod {
    struct loaded_mod *next;
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    void *handle; /* never closed */
} loaded_mod;

static loaded_mod *mods;

/* The path `module = value` names: an absolute path as is, a bare name
 * (NAME or NAME.so) in the first module directory that has it, else in
 * extra_dir (when not NULL).  0, or -1 with the reason in err. */
static int module_path(const char *value, const char *extra_dir, char *out, size_t outlen, char *err,
                       size_t errlen)
{
    if (value[0] == '/') {
        snprintf(out, outlen, "%s", value);
        return 0;
    }
    if (!value[0] || strchr(value, '/')) {
        snprintf(err, errlen, "module '%s': give an absolute path or a bare name (searched in the module directory)",
                 value);
        return -1;
    }
    size_t n = strlen(value);
    const char *ext = n > 3 && strcmp(value + n - 3, ".so") == 0 ? "" : ".so";
    char dirs[NDIRS][1024];
    int nd = module_dirs(dirs);
    for (int i = 0; i < nd; i++) {
        snprintf(out, outlen, "%.1000s/%.200s%s", dirs[i], value, ext);
        if (access(out, F_OK) == 0)
            return 0;
    }
    if (extra_dir) {
        snprintf(out, outlen, "%.1000s/%.200s%s", extra_dir, value, ext);
        if (access(out, F_OK) == 0)
            return 0;
    }
    snprintf(err, errlen, "module %s%s was not found (CLUSTERD_MODULE_DIR, next to clusterd, " CD_MODULE_DIR "%s)",
             value, ext, extra_dir ? " or next to the config" : "");
    return -1;
}

/* dlopens a copy of path made in a memfd: a new inode, so the dynamic
 * loader maps a new image even though path itself is loaded already. */
static void *dlopen_copy(const char *path, const char *base)
{
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return NULL;
    int fd = memfd_create(base, MFD_CLOEXEC);
    void *h = NULL;
    struct stat st;
    if (fd >= 0 && fstat(in, &st) == 0) {
        off_t off = 0;
        while (off < st.st_size && sendfile(fd, in, &off, (size_t)(st.st_size - off)) > 0) {
        }
        if (off == st.st_size) {
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
            h = dlopen(proc, RTLD_NOW | RTLD_LOCAL);
        }
    }
    if (fd >= 0)
        close(fd); /* the mapping keeps the image */
    close(in);
    return h;
}

/* The handle of the module file at path, loading it if this file (this
 * identity) is not loaded yet.  NULL with the reason in err. */
static void *module_open(const char *path, const char *base, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "module %.100s: %.200s: %s", base, path, strerror(errno));
        return NULL;
    }
    int seen = 0;
    for (loaded_mod *m = mods; m; m = m->next) {
        if (strcmp(m->path, path) != 0)
            continue;
        seen = 1;
        if (m->dev == st.st_dev && m->ino == st.st_ino && m->size == st.st_size &&
            m->mtime.tv_sec == st.st_mtim.tv_sec && m->mtime.tv_nsec == st.st_mtim.tv_nsec)
            return m->handle;
    }
    loaded_mod *m = calloc(1, sizeof *m);
    char *copy = strdup(path);
    if (!m || !copy) {
        free(m);
        free(copy);
        snprintf(err, errlen, "module %.100s: out of memory", base);
        return NULL;
    }
    void *h = seen ? dlopen_copy(path, base) : dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(err, errlen, "module %.100s cannot be loaded: %.300s", base, why ? why : strerror(errno));
        free(m);
        free(copy);
        return NULL;
    }
    *m = (loaded_mod){.next = mods, .path = copy, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
                      .mtime = st.st_mtim, .handle = h};
    mods = m;
    return h;
}

void *cd_module_load(const char *value, const char *extra_dir, char *path, size_t pathlen, char *err, size_t errlen)
{
    if (module_path(value, extra_dir, path, pathlen, err, errlen) < 0)
        return NULL;
    return module_open(path, strrchr(path, '/') + 1, err, errlen);
}

/* The type `type` of the module `value` names, checked: its ABI, its
 * handle().  NULL with the reason in err. */
static const cd_service_type *load_user_module(const char *value, const char *type, char *err, size_t errlen)
{
    char path[1300];
    void *h = cd_module_load(value, NULL, path, sizeof path, err, errlen);
    if (!h)
        return NULL;
    const char *base = strrchr(path, '/') + 1;
    char sym[128];
    snprintf(sym, sizeof sym, "cd_service_%.100s", type);
    const cd_service_type *t = dlsym(h, sym);
    if (!t) {
        snprintf(err, errlen, "module %.100s has no service type '%.100s' (no symbol %.120s)", base, type, sym);
        return NULL;
    }
    if (t->abi != CLUSTERD_ABI_VERSION) {
        snprintf(err, errlen, "module %.100s was built for clusterd ABI %u, this clusterd speaks ABI %d", base, t->abi,
                 CLUSTERD_ABI_VERSION);
        return NULL;
    }
    if (!t->handle) {
        snprintf(err, errlen, "module %.100s: service type '%.100s' has no handle()", base, type);
        return NULL;
    }
    return t;
}

/* ---- The binder ---- */

/* The section's type: from its module when it names one (*skip is then
 * that entry), else from the registry.  0, or -1 with err worded. */
static int bind_type(cd_conf_service *svc, const char *path, const cd_service_type **out, size_t *skip,
                     char *err, size_t errlen)
{
    char why[512] = "";
    const char *tname = svc->type_name;
    *skip = svc->nentries;
    for (size_t i = 0; i < svc->nentries; i++) {
        if (strcmp(svc->entries[i].key, "module") != 0)
            continue;
        *skip = i;
        *out = load_user_module(svc->entries[i].value, tname, why, sizeof why);
        return *out ? 0 : cd_conf_fail(err, errlen, path, svc->entries[i].line, "%s", why);
    }
    *out = cd_service_lookup(tname, why, sizeof why);
    if (*out)
        return 0;
    if (why[0]) /* a module that cannot be loaded */
        return cd_conf_fail(err, errlen, path, svc->type_line ? svc->type_line : svc->line, "%s", why);
    if (svc->type_line)
        return cd_conf_fail(err, errlen, path, svc->type_line, "unknown service type '%s'", tname);
    return cd_conf_fail(err, errlen, path, svc->line,
                        "unknown section [%s] (not [cluster], and no 'type =' naming a service type)", svc->name);
}

int cd_service_bind(cd_conf_service *svc, const char *path, char *err, size_t errlen)
{
    char why[512] = "";
    const char *tname = svc->type_name;
    const cd_service_type *t;
    size_t skip;
    if (bind_type(svc, path, &t, &skip, err, errlen) < 0)
        return -1;
    if (cd_router_check(svc->route) < 0)
        return cd_conf_fail(err, errlen, path, svc->line,
                            "route: bad parameter in '%s' (a segment ':name', name of [A-Za-z0-9_], at most %d)",
                            svc->route, CD_ROUTE_MAX_PARAMS);
    svc->type = t;
    svc->uses_bus = t->uses_bus;
    svc->conf_free = t->conf_free;
    svc->conf = t->conf_new ? t->conf_new() : NULL;
    if (t->conf_new && !svc->conf)
        return cd_conf_fail(err, errlen, path, 0, "out of memory");
    for (size_t i = 0; i < svc->nentries; i++) {
        const cd_conf_entry *e = &svc->entries[i];
        if (i == skip)
            continue;
        why[0] = '\0';
        int rc = cd_conf_key_set(t->keys, svc->conf, e->key, e->value, why, sizeof why);
        if (rc == -2) { /* the HTTP options every section takes (http/routeconf.h) */
            svc->route_opts_free = cd_route_opts_free;
            rc = cd_route_opts_set(&svc->route_opts, e->key, e->value, why, sizeof why);
        }
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
