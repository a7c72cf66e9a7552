/*
 * main.c - clusterd's entry point: the command line, then master mode.
 * The master re-executes this binary as `clusterd --worker SLOT GEN` for
 * each worker (see spawn.c); that mode goes straight to cd_worker_main.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/log.h"
#include "core/util.h"
#include "master/master.h"
#include "services/registry.h"
#include "worker/worker.h"

#define CD_VERSION "0.1.0"
#define EXIT_USAGE 2

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clusterd [-w N|auto] [-c FILE] [-t] [-h] [-V]\n"
            "  -w N     number of worker processes (auto = one per CPU); overrides the config\n"
            "  -c FILE  configuration file (default conf/services.ini if it exists, else the installed one)\n"
            "  -t       check the configuration and exit (0 ok, 2 error)\n"
            "  -h       this help\n"
            "  -V       print the version\n"
            "signals: TERM/INT graceful stop, QUIT immediate stop, HUP reload,\n"
            "         TTIN/TTOU one worker more/fewer\n");
}

int main(int argc, char **argv)
{
    /* Service sections of any config this process reads (master and
     * worker) are bound to their types by the services layer. */
    cd_conf_set_binder(cd_service_bind);
    /* Debian's libmongoc runs mongoc_init() from a constructor in every
     * process that links it, and by default each one creates a shared-memory
     * counters file /dev/shm/mongoc-PID that a killed process leaves behind.
     * We have no use for those counters: turn them off for the workers (the
     * master's own file is removed at its exit). */
    setenv("MONGOC_DISABLE_SHM", "1", 0);
    if (argc == 4 && strcmp(argv[1], "--worker") == 0) {
        long long slot, gen;
        if (cd_parse_int(argv[2], 0, 1 << 20, &slot) < 0 || cd_parse_int(argv[3], 0, 1LL << 31, &gen) < 0)
            return EXIT_USAGE;
        return cd_worker_main((int)slot, (unsigned)gen);
    }
    const char *conf_path = cd_conf_default_path();
    int workers = 0, test = 0, opt;
    while ((opt = getopt(argc, argv, "w:c:thV")) != -1) {
        switch (opt) {
        case 'w': {
            long long n;
            if (strcmp(optarg, "auto") == 0) {
                workers = -1;
            } else if (cd_parse_int(optarg, 1, 1024, &n) == 0) {
                workers = (int)n;
            } else {
                fprintf(stderr, "clusterd: -w: expected a number from 1 to 1024, or auto (got '%s')\n", optarg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'c': conf_path = optarg; break;
        case 't': test = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("clusterd %s\n", CD_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "clusterd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    cd_conf *conf = NULL;
    char err[512];
    if (getenv("CLUSTERD_UPGRADE") && !test) {
        /* Exec'd by a running master (binary upgrade): its config, not the file. */
        if (cd_upgrade_load_conf(conf_path, &conf, err, sizeof err) < 0) {
            cd_log_role(-1, 0);
            cd_upgrade_rollback_exec(argv, err);
            fprintf(stderr, "clusterd: %s\n", err);
            return 1;
        }
    } else if (cd_conf_load_file(conf_path, &conf, err, sizeof err) < 0) {
        fprintf(stderr, "clusterd: %s\n", err);
        return EXIT_USAGE;
    }
    if (workers == -1) {
        conf->workers = 0; /* -w auto: the CPU count, whatever the file says */
        workers = cd_conf_workers(conf);
    }
    /* The config's warnings (cd_conf_warn), once: workers parse the same
     * text again silently. */
    for (const char *w = conf->warnings, *nl; w && (nl = strchr(w, '\n')); w = nl + 1) {
        if (test)
            fprintf(stderr, "clusterd: warning: %s: %.*s\n", conf_path, (int)(nl - w), w);
        else
            cd_warn("%s: %.*s", conf_path, (int)(nl - w), w);
    }
    if (test) {
        printf("clusterd: the configuration file %s syntax is ok (%zu service(s), %d worker(s))\n", conf_path,
               conf->nservices, workers ? workers : cd_conf_workers(conf));
        cd_conf_free(conf);
        return 0;
    }
    return cd_master_main(conf, conf_path, workers, argv);
}
