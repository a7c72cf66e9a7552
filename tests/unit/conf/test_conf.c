/*
 * Unit tests for conf/conf.c: a valid file parses to the expected values,
 * and every error names file:line.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "services/registry.h"
#include "services/service.h"

extern const cd_service_type cd_service_dummy;
extern const cd_service_type cd_service_metrics;

static cd_conf *conf;
static char err[512];

static int load(const char *text)
{
    cd_conf_free(conf);
    conf = NULL;
    err[0] = '\0';
    return cd_conf_load_text("t.ini", text, strlen(text), &conf, err, sizeof err);
}

static void teardown(void)
{
    cd_conf_free(conf);
    conf = NULL;
}

static void setup(void) { cd_conf_set_binder(cd_service_bind); }

TestSuite(conf, .init = setup, .fini = teardown);

Test(conf, parses_cluster_and_services)
{
    int rc = load("[cluster]\n"
                  "listen = 127.0.0.1:9000\n"
                  "workers = 3\n"
                  "backlog = 128\n"
                  "graceful_timeout = 1500ms\n"
                  "header_timeout = 2s\n"
                  "keepalive_timeout = 1m\n"
                  "max_header_size = 8k\n"
                  "max_body_size = 2m\n"
                  "max_connections = 10\n"
                  "\n"
                  "[hello]\n"
                  "type = dummy\n"
                  "route = /hello\n"
                  "body = {\"a\":1}\n");
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(conf->listen, "127.0.0.1:9000");
    cr_assert_eq(conf->workers, 3);
    cr_assert_eq(conf->backlog, 128);
    cr_assert_eq(conf->graceful_timeout_ms, 1500);
    cr_assert_eq(conf->header_timeout_ms, 2000);
    cr_assert_eq(conf->keepalive_timeout_ms, 60000);
    cr_assert_eq(conf->max_header_size, 8192);
    cr_assert_eq(conf->max_body_size, 2 * 1024 * 1024);
    cr_assert_eq(conf->max_connections, 10);
    cr_assert_eq(conf->nservices, 1);
    cr_assert_str_eq(conf->services[0].name, "hello");
    cr_assert_str_eq(conf->services[0].route, "/hello");
    cr_assert_str_eq(conf->services[0].type->name, "dummy");
}

Test(conf, type_and_route_default_to_the_section_name)
{
    cr_assert_eq(load("[dummy]\nmax_delay = 1s\n"), 0, "%s", err);
    cr_assert_str_eq(conf->services[0].route, "/dummy");
    cr_assert_eq(conf->workers, 0, "workers defaults to auto");
    cr_assert_gt(cd_conf_workers(conf), 0);
}

Test(conf, workers_auto)
{
    cr_assert_eq(load("[cluster]\nworkers = auto\n[dummy]\ntype = dummy\n"), 0, "%s", err);
    cr_assert_eq(conf->workers, 0);
}

/* Each broken file and the exact "file:line: " prefix its error must carry. */
static const struct {
    const char *text;
    const char *prefix;
    const char *words;
} bad[] = {
    {"[cluster]\nlisten = nowhere\n[dummy]\ntype=dummy\n", "t.ini:2: ", "listen"},
    {"[cluster]\nworkers = 0\n[dummy]\ntype=dummy\n", "t.ini:2: ", "workers"},
    {"[cluster]\nworkers = lots\n[dummy]\ntype=dummy\n", "t.ini:2: ", "workers"},
    {"[cluster]\ngraceful_timeout = 5 parsecs\n[dummy]\ntype=dummy\n", "t.ini:2: ", "duration"},
    {"[cluster]\nmax_body_size = 1x\n[dummy]\ntype=dummy\n", "t.ini:2: ", "size"},
    {"[cluster]\nmax_header_size = 10\n[dummy]\ntype=dummy\n", "t.ini:2: ", "size"},
    {"[cluster]\n\nbogus = 1\n[dummy]\ntype=dummy\n", "t.ini:3: ", "unknown key 'bogus'"},
    {"[dummy]\ntype = dummy\n[nosuch]\nroute = /x\n", "t.ini:3: ", "unknown section [nosuch]"},
    {"[dummy]\ntype = dummy\n\n[nosuch]\n", "t.ini:4: ", "unknown section [nosuch]"},
    {"[x]\ntype = teleport\n", "t.ini:2: ", "unknown service type 'teleport'"},
    {"[a]\ntype = dummy\nroute = /same\n[b]\ntype = dummy\nroute = /same\n", "t.ini:6: ", "already used"},
    {"[a]\ntype = dummy\nroute = nope\n", "t.ini:3: ", "route"},
    {"[a]\ntype = dummy\nroute = /trailing/\n", "t.ini:3: ", "route"},
    {"[a]\ntype = dummy\nflavour = mint\n", "t.ini:3: ", "unknown key 'flavour'"},
    {"[a]\ntype = dummy\nmax_delay = soon\n", "t.ini:3: ", "max_delay"},
    {"[a]\ntype = dummy\ntype = dummy\n", "t.ini:3: ", "duplicate key"},
    {"[a]\ntype = dummy\n[cluster]\nworkers=1\n[a]\nroute=/z\n", "t.ini:5: ", "first at line 1"},
    {"[cluster]\nbody_timeout = later\n[dummy]\n", "t.ini:2: ", "body_timeout"},
    {"[cluster]\nbody_deadline = 0\n[dummy]\n", "t.ini:2: ", "body_deadline"},
    {"[a]\ntype = dummy\nthis line has no equals sign\n", "t.ini:3: ", "syntax"},
    {"[a\ntype = dummy\n", "t.ini:1: ", "syntax"},
    {"orphan = 1\n[a]\ntype = dummy\n", "t.ini:1: ", "outside any section"},
};

Test(conf, every_error_names_file_and_line)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(load(bad[i].text), -1, "case %zu should fail", i);
        cr_assert(strncmp(err, bad[i].prefix, strlen(bad[i].prefix)) == 0, "case %zu: '%s' should start with '%s'",
                  i, err, bad[i].prefix);
        cr_assert(strstr(err, bad[i].words) != NULL, "case %zu: '%s' should mention '%s'", i, err, bad[i].words);
        cr_assert_null(conf);
    }
}

Test(conf, long_line_is_reported_at_its_line)
{
    char text[600];
    int n = snprintf(text, sizeof text, "[a]\ntype = dummy\nbody = ");
    memset(text + n, 'x', 400);
    strcpy(text + n + 400, "\n");
    cr_assert_eq(load(text), -1);
    cr_assert(strncmp(err, "t.ini:3: ", 9) == 0, "%s", err);
    cr_assert(strstr(err, "too long"), "%s", err);
}

Test(conf, file_errors_name_the_file)
{
    cr_assert_eq(cd_conf_load_file("/nonexistent/dir/x.ini", &conf, err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/dir/x.ini: cannot open") == err, "%s", err);
}

Test(conf, empty_config_has_nothing_to_serve)
{
    cr_assert_eq(load("[cluster]\nworkers = 2\n"), -1);
    cr_assert(strstr(err, "no service"), "%s", err);
}

Test(conf, shipped_config_is_valid)
{
    const char *src = getenv("CLUSTERD_SRC");
    char path[512];
    snprintf(path, sizeof path, "%s/conf/services.ini", src ? src : ".");
    int rc = cd_conf_load_file(path, &conf, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_geq(conf->nservices, 2);
}

/* A broken config is an expected event: thousands of mutations of the
 * shipped file either load or fail with "file:line: why" / "file: why",
 * never crash (ASan build) or leak. */
Test(conf, mutated_configs_fail_cleanly, .timeout = 120)
{
    const char *src = getenv("CLUSTERD_SRC");
    char path[512];
    snprintf(path, sizeof path, "%s/conf/services.ini", src ? src : ".");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    static char orig[65536], text[70000];
    size_t olen = fread(orig, 1, sizeof orig - 1, f);
    fclose(f);
    uint32_t r = 99;
    int ok = 0, failed = 0;
    for (int iter = 0; iter < 2000; iter++) {
        memcpy(text, orig, olen);
        size_t len = olen;
        for (int m = 0; m < 3; m++) {
            r ^= r << 13;
            r ^= r >> 17;
            r ^= r << 5;
            size_t at = r % len;
            static const char special[] = {'[', ']', '=', ';', '\n', ' ', 'x', '0', 'k', '\xff', '\t', '#'};
            switch (r % 3) {
            case 0: text[at] = special[(r >> 8) % sizeof special]; break;
            case 1: len = at + 1; break;
            default:
                memmove(text + at + 1, text + at, len - at);
                text[at] = special[(r >> 8) % sizeof special];
                len++;
                break;
            }
        }
        cd_conf *c = NULL;
        char err[512] = "";
        if (cd_conf_load_text("t.ini", text, len, &c, err, sizeof err) == 0) {
            cr_assert_not_null(c);
            cd_conf_free(c);
            ok++;
        } else {
            cr_assert_null(c);
            cr_assert(strncmp(err, "t.ini:", 6) == 0, "iteration %d: '%s'", iter, err);
            failed++;
        }
    }
    cr_assert_gt(failed, 100);
    cr_assert_gt(ok, 10);
}

Test(conf, body_timeouts_parse_and_default)
{
    cr_assert_eq(load("[dummy]\nmax_delay = 1s\n"), 0, "%s", err);
    cr_assert_eq(conf->body_timeout_ms, 10000);
    cr_assert_eq(conf->body_deadline_ms, 60000);
    cr_assert_eq(load("[cluster]\nbody_timeout = 250ms\nbody_deadline = 2m\n[dummy]\ntype = dummy\n"), 0, "%s", err);
    cr_assert_eq(conf->body_timeout_ms, 250);
    cr_assert_eq(conf->body_deadline_ms, 120000);
}

/* [dummy] alone is a dummy service with its defaults, like any section
 * whose keys are all left at their defaults. */
Test(conf, section_without_keys_is_a_service_with_defaults)
{
    cr_assert_eq(load("[dummy]\n"), 0, "%s", err);
    cr_assert_eq(conf->nservices, 1);
    cr_assert_str_eq(conf->services[0].name, "dummy");
    cr_assert_str_eq(conf->services[0].type->name, "dummy");
    cr_assert_str_eq(conf->services[0].route, "/dummy");
    cr_assert_eq(conf->services[0].line, 1);

    cr_assert_eq(load("[cluster]\nworkers = 2\n\n[metrics]\n; nothing to set\n[dummy]\n[healthz]\ntype = health\n"),
                 0, "%s", err);
    cr_assert_eq(conf->nservices, 3, "every section, in file order");
    cr_assert_str_eq(conf->services[0].name, "metrics");
    cr_assert_eq(conf->services[0].line, 4);
    cr_assert_str_eq(conf->services[1].name, "dummy");
    cr_assert_eq(conf->services[1].line, 6);
    cr_assert_str_eq(conf->services[2].name, "healthz");
    cr_assert_eq(conf->workers, 2);

    cr_assert_eq(load("[cluster]\n"), -1, "an empty [cluster] is still not a service");
    cr_assert(strstr(err, "no service"), "%s", err);
}

/* A repeated section, empty or not, is an error naming both lines (inih
 * would silently merge them). */
Test(conf, repeated_section_is_an_error_naming_both_lines)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"[dummy]\n[dummy]\n", "t.ini:2: section [dummy] appears again (first at line 1)"},
        {"[dummy]\n\n[metrics]\n[dummy]\n", "t.ini:4: section [dummy] appears again (first at line 1)"},
        {"[dummy]\ntype = dummy\n[metrics]\n[dummy]\n", "t.ini:4: section [dummy] appears again (first at line 1)"},
        {"[cluster]\n[dummy]\n[cluster]\nworkers = 1\n", "t.ini:3: section [cluster] appears again (first at line 1)"},
        {"[cluster]\nworkers = 1\n[dummy]\n[cluster]\n", "t.ini:4: section [cluster] appears again (first at line 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(load(cases[i].text), -1, "case %zu should fail", i);
        cr_assert(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0, "case %zu: '%s', want '%s'", i, err,
                  cases[i].want);
    }
}

/* inih reads an indented line after a key as more of its value
 * (continuation), even when it looks like a section: that is no section
 * (and a continued value is refused as a second 'body'). */
Test(conf, indented_bracket_line_after_a_key_is_a_continuation)
{
    cr_assert_eq(load("[dummy]\nbody = {\"a\":\n  [1]}\n"), -1);
    cr_assert(strncmp(err, "t.ini:3: duplicate key 'body'", 29) == 0, "%s", err);
    cr_assert_eq(load("[dummy]\n  [metrics]\n"), 0, "%s", err);
    cr_assert_eq(conf->nservices, 2, "an indented section after a section line is a section");
}

/* Section names become metric labels, log words and default routes: only
 * letters, digits, '_', '-' and '.', at most 31 of them (what the metrics
 * snapshot keeps). */
Test(conf, section_names_are_restricted_to_a_safe_charset)
{
    static const char *const bad_names[] = {
        "[bad name]\ntype = dummy\n",   "[a\"b]\ntype = dummy\n",  "[a\\b]\ntype = dummy\n",
        "[]\ntype = dummy\n",           "[a{b}]\ntype = dummy\n",  "[ dummy]\n",
        "[dummy ]\n",                   "[caf\xc3\xa9]\ntype = dummy\n", "[a/b]\ntype = dummy\n",
        "[x=1]\ntype = dummy\n",
        "[abcdefghijklmnopqrstuvwxyz012345]\ntype = dummy\n", /* 32 */
    };
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[cluster]\nworkers = 1\n%s", bad_names[i]);
        cr_assert_eq(load(text), -1, "case %zu should fail", i);
        cr_assert(strncmp(err, "t.ini:3: ", 9) == 0, "case %zu: %s", i, err);
        cr_assert(strstr(err, "section name"), "case %zu: %s", i, err);
    }
    cr_assert_eq(load("[my-svc_1.v2]\ntype = dummy\n[abcdefghijklmnopqrstuvwxyz01234]\ntype = dummy\n"), 0, "%s",
                 err);
    cr_assert_str_eq(conf->services[0].route, "/my-svc_1.v2");
}

/* Without a binder (clusterctl) conf/ checks only what it knows itself: a
 * service section keeps its type name and its raw entries, unbound. */
Test(conf, without_a_binder_sections_keep_their_raw_entries)
{
    cd_conf_set_binder(NULL);
    cr_assert_eq(load("[cluster]\nworkers = 2\n[a]\ntype = teleport\nroute = /x\nflavour = mint\n\n[b]\nk = v\n"), 0,
                 "%s", err);
    cr_assert_eq(conf->nservices, 2);
    const cd_conf_service *a = &conf->services[0], *b = &conf->services[1];
    cr_assert_str_eq(a->type_name, "teleport");
    cr_assert_eq(a->type_line, 4);
    cr_assert_str_eq(a->route, "/x");
    cr_assert_null(a->type);
    cr_assert_null(a->conf);
    cr_assert_eq(a->nentries, 1, "type and route are not entries");
    cr_assert_str_eq(a->entries[0].key, "flavour");
    cr_assert_str_eq(a->entries[0].value, "mint");
    cr_assert_eq(a->entries[0].line, 6);
    cr_assert_str_eq(b->type_name, "b", "no type =: the section name");
    cr_assert_eq(b->type_line, 0);
    cr_assert_eq(b->line, 8);
    cr_assert_eq(b->nentries, 1);
    cr_assert_eq(b->entries[0].line, 9);
}

/* The binder sees every service section; its error is the load's error. */
static int refuse_b(cd_conf_service *svc, const char *path, char *e, size_t elen)
{
    if (strcmp(svc->name, "b") == 0)
        return cd_conf_fail(e, elen, path, svc->entries[0].line, "%s: refused", svc->entries[0].key);
    return 0;
}

Test(conf, the_binders_error_is_the_loads_error)
{
    cd_conf_set_binder(refuse_b);
    cr_assert_eq(load("[a]\n[b]\nk = v\n"), -1);
    cr_assert_str_eq(err, "t.ini:3: k: refused");
    cr_assert_null(conf);
}

/* A bound section owns its type's config: conf_free runs (ASan checks). */
Test(conf, bound_services_carry_the_types_config)
{
    cr_assert_eq(load("[hello]\ntype = dummy\nmax_delay = 2s\n[m]\ntype = metrics\n"), 0, "%s", err);
    cr_assert_eq(conf->services[0].type, &cd_service_dummy);
    cr_assert_not_null(conf->services[0].conf);
    cr_assert_not_null(conf->services[0].conf_free);
    cr_assert_eq(conf->services[1].type, &cd_service_metrics);
    cr_assert_null(conf->services[1].conf, "metrics has no config");
    cr_assert_eq(conf->services[0].uses_bus, 0);
}

/* Service key errors keep their file:line and the key, in the setters' words. */
Test(conf, service_key_errors_in_the_setters_words)
{
    cr_assert_eq(load("[a]\ntype = dummy\nmax_delay = soon\n"), -1);
    cr_assert_str_eq(err, "t.ini:3: max_delay: bad duration 'soon' (expected e.g. 500ms, 30s, 2m; 0ms..1h)");
    cr_assert_eq(load("[a]\ntype = dummy\nmax_delay = 61m\n"), -1);
    cr_assert_eq(load("[a]\ntype = dummy\nflavour = mint\n"), -1);
    cr_assert_str_eq(err, "t.ini:3: unknown key 'flavour' for a dummy service");
    cr_assert_eq(load("[cluster]\nworkers = lots\n[dummy]\n"), -1);
    cr_assert_str_eq(err, "t.ini:2: workers: bad number 'lots' (expected 1..1024)");
    cr_assert_eq(load("[cluster]\nheader_timeout = 0\n[dummy]\n"), -1);
    cr_assert_str_eq(err, "t.ini:2: header_timeout: bad duration '0' (expected e.g. 500ms, 30s, 2m; at least 1ms)");
    cr_assert_eq(load("[cluster]\nlisten = nowhere\n[dummy]\n"), -1);
    cr_assert_str_eq(err, "t.ini:2: listen: bad address 'nowhere' (expected host:port)");
    cr_assert_eq(load("[cluster]\ncolour = blue\n[dummy]\n"), -1);
    cr_assert_str_eq(err, "t.ini:2: unknown key 'colour' in [cluster]");
}

Test(conf, cluster_keys_of_every_kind)
{
    cr_assert_eq(load("[cluster]\nuser = nobody\ngroup = nogroup\npidfile = /run/x.pid\naccess_log = /var/log/a\n"
                      "access_log_format = json\nrlimit_nofile = 4321\nmax_rss = 64m\nmax_requests = 1000\n"
                      "max_requests_jitter = 50\nruntime_dir = /run/cd\nheartbeat_interval = 10ms\n"
                      "upgrade_timeout = 1m\n[dummy]\n"),
                 0, "%s", err);
    cr_assert_str_eq(conf->user, "nobody");
    cr_assert_str_eq(conf->group, "nogroup");
    cr_assert_str_eq(conf->pidfile, "/run/x.pid");
    cr_assert_str_eq(conf->access_log, "/var/log/a");
    cr_assert_eq(conf->access_log_json, 1);
    cr_assert_eq(conf->rlimit_nofile, 4321);
    cr_assert_eq(conf->max_rss, 64u << 20);
    cr_assert_eq(conf->max_requests, 1000);
    cr_assert_eq(conf->max_requests_jitter, 50);
    cr_assert_str_eq(conf->runtime_dir, "/run/cd");
    cr_assert_eq(conf->heartbeat_interval_ms, 10);
    cr_assert_eq(conf->upgrade_timeout_ms, 60000);
    static const char *const bad[] = {"user = \n", "access_log = relative\n", "access_log_format = xml\n",
                                      "runtime_dir = run\n", "rlimit_nofile = 63\n", "max_rss = -1\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[cluster]\n%s[dummy]\n", bad[i]);
        cr_assert_eq(load(text), -1, "%s", bad[i]);
        cr_assert(strncmp(err, "t.ini:2: ", 9) == 0, "%s", err);
    }
}

/* The config text goes to workers in a sealed memfd and comes back equal. */
Test(conf, memfd_round_trip_and_seals)
{
    const char *text = "[cluster]\nworkers = 3\n[hello]\ntype = dummy\n";
    int fd = cd_conf_memfd(text, strlen(text));
    cr_assert_geq(fd, 0, "%s", strerror(-fd));
    cr_assert_eq(write(fd, "x", 1), -1, "sealed against writing");
    cr_assert_eq(cd_conf_load_fd(fd, "t.ini", &conf, err, sizeof err), 0, "%s", err);
    cr_assert_eq(conf->workers, 3);
    cr_assert_str_eq(conf->text, text);
    cr_assert_str_eq(conf->path, "t.ini");
    cr_assert_eq(fcntl(fd, F_GETFD), FD_CLOEXEC, "the fd stays open, close-on-exec");
    close(fd);
    cd_conf_free(conf);
    conf = NULL;
    cr_assert_eq(cd_conf_load_fd(fd, "t.ini", &conf, err, sizeof err), -1);
    cr_assert(strncmp(err, "t.ini: fstat(config memfd) failed: ", 35) == 0, "%s", err);
}
