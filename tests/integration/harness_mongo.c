/*
 * harness_mongo.c - what the tests that need the source tree or FerretDB
 * share (tests/integration/harness.h): the source tree's path, freezing a
 * process for real, and a main() that skips a suite without FerretDB.
 */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *th_src_dir(void)
{
    const char *s = getenv("CLUSTERD_SRC");
    return s && s[0] ? s : ".";
}

/* How many of pid's threads are not stopped, or -1. */
static int running_threads(pid_t pid)
{
    char dir[64];
    int running = 0;
    struct dirent *e;

    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[400], buf[512];
        snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')'); /* "pid (comm) S ..." */
        if (p && p[1] == ' ' && p[2] != 'T' && p[2] != 't')
            running++;
    }
    closedir(d);
    return running;
}

int th_freeze(pid_t pid)
{
    if (kill(pid, SIGSTOP) != 0)
        return -1;
    for (int tries = 0; tries < 200; tries++) {
        int running = running_threads(pid);
        if (running <= 0)
            return running;
        usleep(10 * 1000);
    }
    return -1;
}

#define EXIT_SKIP 77 /* ctest's SKIP_RETURN_CODE for the integration tests */

int th_main_with_ferretdb(int argc, char *argv[])
{
    static char why[4096];
    char script[512];

    /* ferretdb.sh check exits 3 when FerretDB cannot be had here (its
     * reason in why); any other failure is left to the tests to show. */
    snprintf(script, sizeof script, "%s/scripts/ferretdb.sh", th_src_dir());
    const char *check[] = {"/bin/bash", script, "check", NULL};
    if (th_run(check, why, sizeof why) == 3) {
        printf("SKIPPED: readmongo's integration tests need FerretDB, and:\n%s", why);
        return EXIT_SKIP;
    }
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
