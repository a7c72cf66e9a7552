/*
 * fuzz_conf.c - whole configuration files through the real parser
 * (conf/ with libinih and the [cluster] key table, then services/registry.c's
 * binder with every service's key table and conf hooks).
 *
 * The input is the file's bytes.  Whatever they are, cd_conf_load_text must
 * either build a config or fail with "file:line: why" (or "file: why");
 * never crash, leak or read out of bounds.  A line named in an error is a
 * line of the file.  A config that loads has at least one service, and its
 * services have distinct names made of [A-Za-z0-9_.-] (at most
 * CD_CONF_NAME_MAX) and distinct routes, each starting at a line of the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "services/registry.h"

static int lines_of(const uint8_t *data, size_t size)
{
    int n = 1;
    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n;
}

static void check_loaded(const cd_conf *c, int lines)
{
    if (c->nservices == 0)
        abort();
    for (size_t i = 0; i < c->nservices; i++) {
        const cd_conf_service *s = &c->services[i];
        size_t n = strlen(s->name);
        if (n == 0 || n > CD_CONF_NAME_MAX || strspn(s->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                              "0123456789_-.") != n)
            abort(); /* a name that would break a metric label or a route */
        if (s->line < 1 || s->line > lines || !s->type || s->route[0] != '/' || s->route_len != strlen(s->route))
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->name, c->services[j].name) == 0 || strcmp(s->route, c->services[j].route) == 0)
                abort(); /* a repeated section merged, or a route served twice */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cd_conf *c = NULL;
    char err[512];

    cd_conf_set_binder(cd_service_bind); /* as clusterd does first thing */
    if (cd_conf_load_text("fuzz.ini", (const char *)data, size, &c, err, sizeof err) == 0) {
        check_loaded(c, lines_of(data, size));
        cd_conf_free(c);
        return 0;
    }
    if (strncmp(err, "fuzz.ini:", 9) != 0)
        abort(); /* every error names the file */
    if (err[9] != ' ') {
        char *end;
        long line = strtol(err + 9, &end, 10);
        if (end == err + 9 || *end != ':' || line < 1 || line > lines_of(data, size))
            abort(); /* "fuzz.ini:N: why" with N a line of the file */
    }
    return 0;
}
