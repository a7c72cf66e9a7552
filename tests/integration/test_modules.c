/*
 * Integration tests of users' modules (include/clusterd/, services/registry.c):
 * clusterd is installed into a scratch directory (DESTDIR, so no path
 * outside it is written), examples/hello is copied out of the source tree
 * and built with `make` against the installed files only
 * (PKG_CONFIG_PATH=<stage>/lib/pkgconfig), and the real clusterd loads it.
 * Also: a module built for another ABI, a missing module or type, and
 * reloads (HUP) that add, change and remove a module service.  Every wait
 * is bounded.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clusterd/service.h" /* CLUSTERD_ABI_VERSION */
#include "tests/integration/harness.h"

#define BASE_CONF                                                                                            \
    "[cluster]\n"                                                                                            \
    "listen = 127.0.0.1:%d\n"                                                                                \
    "graceful_timeout = 5s\n"                                                                                \
    "heartbeat_interval = 200ms\n"                                                                           \
    "heartbeat_timeout = 3s\n"                                                                               \
    "[dummy]\n"

static th_server srv;
static char stage[256]; /* scratch dir: DESTDIR, the example's copy, test modules */
static char pcdir[400]; /* the staged clusterd.pc's directory */

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return th_run(argv, out, cap);
}

/* Installs clusterd into stage/root and builds stage/hello/hello.so from a
 * copy of examples/hello, with the staged pkg-config file only. */
static void setup(void)
{
    snprintf(stage, sizeof stage, "/tmp/clusterd-modules-XXXXXX");
    cr_assert_not_null(mkdtemp(stage));
    const char *build = getenv("CLUSTERD_BUILD"), *src = getenv("CLUSTERD_SRC");
    cr_assert(build && src, "CLUSTERD_BUILD and CLUSTERD_SRC are set by ctest");
    char out[8192];
    int rc = sh(out, sizeof out, "DESTDIR=%s/root cmake --install '%s' >/dev/null && "
                "find %s/root -name clusterd.pc", stage, build, stage);
    cr_assert_eq(rc, 0, "cmake --install: %s", out);
    char *nl = strchr(out, '\n');
    cr_assert(nl && strstr(out, "/clusterd.pc"), "the install has clusterd.pc: %s", out);
    *nl = '\0';
    *strrchr(out, '/') = '\0';
    snprintf(pcdir, sizeof pcdir, "%.390s", out);
    rc = sh(out, sizeof out, "cp -r '%s/examples/hello' %s/hello && cd %s/hello && rm -f hello.so && "
            "PKG_CONFIG_PATH=%s PKG_CONFIG_LIBDIR=%s make 2>&1", src, stage, stage, pcdir, pcdir);
    cr_assert_eq(rc, 0, "building the example against the installed files: %s", out);
    cr_assert(strstr(out, "-I") && strstr(out, stage), "its include path is the staged one: %s", out);
}

static void fini(void)
{
    cr_assert_eq(th_finish(&srv), 0, "sanitizer report in the clusterd log (printed above)");
    char out[256];
    sh(out, sizeof out, "rm -rf %s", stage);
}

TestSuite(modules, .init = setup, .fini = fini, .timeout = 120);

/* Builds a test module from `code` (a C source fragment that includes
 * clusterd/service.h) into stage/NAME.so, atomically (a rename, as an
 * install does).  extra: more cc flags. */
static void build_module(const char *name, const char *extra, const char *code)
{
    char path[400], out[8192];
    snprintf(path, sizeof path, "%s/%s.c", stage, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(code, f);
    fclose(f);
    int rc = sh(out, sizeof out, "cd %s && cc $(PKG_CONFIG_PATH=%s PKG_CONFIG_LIBDIR=%s pkg-config --cflags clusterd) "
                "-Wall -Wextra -Werror %s -shared -fPIC %s.c -o .%s.tmp.so 2>&1 && mv -f .%s.tmp.so %s.so",
                stage, pcdir, pcdir, extra, name, name, name, name);
    cr_assert_eq(rc, 0, "building %s.so: %s", name, out);
}

/* A module whose answer (TAG) and keys depend on how it was compiled. */
static const char tagged_src[] =
    "#include <clusterd/service.h>\n"
    "#include <string.h>\n"
    "#ifndef ABI\n#define ABI CLUSTERD_ABI_VERSION\n#endif\n"
    "typedef struct { int extra; } conf;\n"
    "static void *conf_new(void) { static conf c; return &c; }\n"
    "static const cd_conf_key keys[] = {\n"
    "#ifdef EXTRA_KEY\n"
    "    CD_CONF_KEY(\"extra\", CD_KEY_INT, conf, extra, 0, 9),\n"
    "#endif\n"
    "    {0}};\n"
    "static void handle(cd_service *svc, cd_request *r)\n"
    "{ (void)svc; cd_request_respond(r, 200, \"text/plain\", TAG, strlen(TAG)); }\n"
    "const cd_service_type cd_service_tagged = {.abi = ABI, .name = \"tagged\", .methods = CD_M_GET,\n"
    "    .conf_new = conf_new, .keys = keys, .handle = handle};\n";

static char *get(const char *path, int *status, char *headers, size_t hcap)
{
    th_response r;
    th_http(&r, srv.port, "GET", path, NULL, 5000);
    *status = r.status;
    if (headers)
        snprintf(headers, hcap, "%s", r.headers);
    char *body = r.body ? strdup(r.body) : strdup("");
    th_response_free(&r);
    return body;
}

/* Polls path until it answers status with body (up to ms). */
static int wait_answer(const char *path, int want_status, const char *want_body, int ms)
{
    for (long long end = th_now_ms() + ms; th_now_ms() < end; msleep(100)) {
        int st;
        char *b = get(path, &st, NULL, 0);
        int ok = st == want_status && (!want_body || strcmp(b, want_body) == 0);
        free(b);
        if (ok)
            return 1;
    }
    return 0;
}

static int run_t(const char *conf, char *out, size_t cap)
{
    char path[400];
    snprintf(path, sizeof path, "%s/t.ini", stage);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(conf, f);
    fclose(f);
    const char *argv[] = {getenv("CLUSTERD_BIN"), "-t", "-c", path, NULL};
    return th_run(argv, out, cap);
}

Test(modules, hello_built_out_of_tree_answers_from_its_section_its_pool_and_the_bus)
{
    char file[400];
    snprintf(file, sizeof file, "%s/first-line.txt", stage);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs("read on the pool\nsecond line\n", f);
    fclose(f);
    cr_assert_eq(th_start(&srv, 2, "/hello", NULL,
                          BASE_CONF "[hello]\nmodule = %s/hello/hello.so\ntype = hello\n"
                          "greeting = Hi \"there\"\nfile = %s\n", stage, file), 0);
    int seen[2] = {0, 0}, crossed = 0;
    long long last[2] = {0, 0};
    for (int i = 0; i < 60 && !(seen[0] && seen[1] && crossed); i++) {
        int st;
        char h[4096];
        char *b = get("/hello", &st, h, sizeof h);
        cr_assert_eq(st, 200, "%s", b);
        cr_assert(strstr(h, "Content-Type: application/json"), "%s", h);
        cr_assert(strstr(h, "X-Hello: Hi \"there\""), "the custom header, from the section: %s", h);
        cr_assert(strstr(h, "Cache-Control: no-store"), "%s", h);
        cr_assert(strstr(b, "\"greeting\":\"Hi \\\"there\\\"\""), "the section's key, JSON-escaped: %s", b);
        cr_assert(strstr(b, "\"file\":\"read on the pool\""), "the file's first line: %s", b);
        int worker = -1;
        long long served = -1, cluster = -1;
        const char *w = strstr(b, "\"worker\":");
        cr_assert(w && sscanf(w, "\"worker\":%d,\"served\":%lld,\"cluster\":%lld", &worker, &served, &cluster) == 3,
                  "%s", b);
        cr_assert(worker == 0 || worker == 1, "%s", b);
        /* th_start's readiness probes were answered too: no exact total. */
        cr_assert(served >= 1 && cluster >= served, "counts: %s", b);
        cr_assert(served > last[worker], "a worker's own count grows: %s", b);
        last[worker] = served;
        seen[worker] = 1;
        if (cluster > served)
            crossed = 1; /* this worker heard the other's count over the bus */
        free(b);
        msleep(50);
    }
    cr_assert(seen[0] && seen[1], "both workers answered");
    cr_assert(crossed, "a worker's cluster count includes the other worker's requests");
}

Test(modules, a_module_by_name_is_searched_in_the_module_directory)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/hello", stage);
    setenv("CLUSTERD_MODULE_DIR", dir, 1);
    char out[4096];
    cr_assert_eq(run_t("[cluster]\nworkers = 1\n[hi]\nmodule = hello\ntype = hello\nroute = /hi\n", out, sizeof out), 0,
                 "%s", out);
    cr_assert_eq(th_start(&srv, 1, "/hi", NULL, BASE_CONF "[hi]\nmodule = hello.so\ntype = hello\nroute = /hi\n"),
                 0);
    unsetenv("CLUSTERD_MODULE_DIR");
    int st;
    char *b = get("/hi", &st, NULL, 0);
    cr_assert_eq(st, 200);
    cr_assert(strstr(b, "\"greeting\":\"hello\""), "the default greeting: %s", b);
    free(b);
}

Test(modules, a_module_for_another_abi_is_refused_at_t_and_at_start_naming_both_versions)
{
    build_module("tagged", "-DTAG='\"x\"' -DABI='(CLUSTERD_ABI_VERSION + 1)'", tagged_src);
    char conf[1024], out[8192], want[256];
    snprintf(conf, sizeof conf, "[cluster]\nlisten = 127.0.0.1:%d\nworkers = 1\n\n[t]\nmodule = %s/tagged.so\ntype = tagged\n",
             th_free_port(), stage);
    snprintf(want, sizeof want, "module tagged.so was built for clusterd ABI %d, this clusterd speaks ABI %d",
             CLUSTERD_ABI_VERSION + 1, CLUSTERD_ABI_VERSION);
    cr_assert_eq(run_t(conf, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, want), "%s", out);
    cr_assert(strstr(out, "t.ini:6: "), "file:line of `module =`: %s", out);
    char path[400];
    snprintf(path, sizeof path, "%s/t.ini", stage);
    const char *start[] = {getenv("CLUSTERD_BIN"), "-c", path, NULL};
    int rc = th_run(start, out, sizeof out);
    cr_assert(rc > 0, "start fails with an exit code, no crash (%d): %s", rc, out);
    cr_assert(strstr(out, want), "%s", out);
}

Test(modules, a_missing_module_file_or_type_is_refused_with_file_line)
{
    char conf[1024], out[8192];
    snprintf(conf, sizeof conf, "[cluster]\nworkers = 1\n[t]\ntype = tagged\nmodule = %s/nope.so\n", stage);
    cr_assert_eq(run_t(conf, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "t.ini:5: module nope.so") && strstr(out, "No such file"), "%s", out);
    cr_assert_eq(run_t("[cluster]\nworkers = 1\n[t]\nmodule = surely-not-there\n", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "t.ini:4: module surely-not-there.so was not found"), "%s", out);
    cr_assert_eq(run_t("[cluster]\nworkers = 1\n[t]\nmodule = ./rel/x.so\n", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "t.ini:4: module './rel/x.so': give an absolute path"), "%s", out);
    snprintf(conf, sizeof conf, "[cluster]\nworkers = 1\n[t]\nmodule = %s/hello/hello.so\ntype = nope\n", stage);
    cr_assert_eq(run_t(conf, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "t.ini:4: module hello.so has no service type 'nope' (no symbol cd_service_nope)"), "%s",
              out);
    snprintf(conf, sizeof conf, "[cluster]\nworkers = 1\n[t]\nmodule = %s/hello/hello.so\ntype = hello\nbogus = 1\n",
             stage);
    cr_assert_eq(run_t(conf, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "t.ini:6: unknown key 'bogus' for a hello service"), "the module's key table: %s", out);
    snprintf(conf, sizeof conf, "[cluster]\nworkers = 1\n[t]\nmodule = %s/hello/hello.so\ntype = hello\nfile = rel\n",
             stage);
    cr_assert_eq(run_t(conf, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "t.ini:3: [t]: file must be an absolute path"), "the module's conf_check: %s", out);
}

Test(modules, reload_adds_changes_and_removes_a_module_service)
{
    cr_assert_eq(th_start(&srv, 2, "/dummy", NULL, BASE_CONF), 0);
    int st;
    free(get("/tagged", &st, NULL, 0));
    cr_assert_eq(st, 404, "no module service yet");

    /* Add. */
    build_module("tagged", "-DTAG='\"one\"'", tagged_src);
    cr_assert_eq(th_write_conf(&srv, BASE_CONF "[tagged]\nmodule = %s/tagged.so\n", srv.port, stage), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(wait_answer("/tagged", 200, "one", 10000), "the added module service answers");

    /* Change the .so on disk (and use a key only the new build has: the
     * master must validate with the new code, not the image it has loaded). */
    build_module("tagged", "-DTAG='\"two\"' -DEXTRA_KEY", tagged_src);
    cr_assert_eq(th_write_conf(&srv, BASE_CONF "[tagged]\nmodule = %s/tagged.so\nextra = 3\n", srv.port, stage), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(wait_answer("/tagged", 200, "two", 10000), "the changed module answers after HUP");
    cr_assert(!th_log_contains(&srv, "reload failed", 0), "the master knew the new key");

    /* Remove. */
    cr_assert_eq(th_write_conf(&srv, BASE_CONF, srv.port), 0);
    kill(srv.pid, SIGHUP);
    cr_assert(wait_answer("/tagged", 404, NULL, 10000), "the removed module service is gone");
    cr_assert(wait_answer("/dummy", 200, NULL, 1000));

    /* Another ABI at a reload: refused, the running config kept. */
    build_module("tagged", "-DTAG='\"x\"' -DABI='(CLUSTERD_ABI_VERSION + 1)'", tagged_src);
    cr_assert_eq(th_write_conf(&srv, BASE_CONF "[tagged]\nmodule = %s/tagged.so\n", srv.port, stage), 0);
    kill(srv.pid, SIGHUP);
    char want[128];
    snprintf(want, sizeof want, "module tagged.so was built for clusterd ABI %d, this clusterd speaks ABI %d",
             CLUSTERD_ABI_VERSION + 1, CLUSTERD_ABI_VERSION);
    cr_assert(th_log_contains(&srv, want, 5000), "the reload names both versions");
    /* The master logs the reason, then the outcome: a separate line. */
    cr_assert(th_log_contains(&srv, "reload failed", 5000));
    cr_assert(wait_answer("/dummy", 200, NULL, 1000), "still serving");
    cr_assert(wait_answer("/tagged", 404, NULL, 1000), "still without it");
}

Test(modules, every_installed_header_stands_alone_and_only_they_are_installed)
{
    char out[8192];
    /* Each header compiles on its own, strict C11, with gcc and clang. */
    int rc = sh(out, sizeof out,
                "cd %s/root && inc=$(dirname $(find . -path '*/include/clusterd/service.h'))/.. && "
                "n=0 && for h in $inc/clusterd/*.h; do for cc in cc clang-14; do command -v $cc >/dev/null || continue; "
                "echo \"#include <clusterd/$(basename $h)>\" | $cc -std=c11 -pedantic -Wall -Wextra -Werror -I$inc "
                "-fsyntax-only -x c - || exit 1; done; n=$((n+1)); done; echo headers=$n",
                stage);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "headers=") && atoi(strstr(out, "headers=") + 8) >= 8, "%s", out);
    /* Nothing but clusterd/ headers under include/. */
    rc = sh(out, sizeof out, "cd %s/root && find . -path '*/include/*' -type f ! -path '*/include/clusterd/*.h'", stage);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "", "private headers installed: %s", out);
}
