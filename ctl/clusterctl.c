/*
 * clusterctl - talks to a running clusterd master over its control plane
 * (nanomsg REQ to ipc://RUNDIR/control, SUB to ipc://RUNDIR/events).
 *
 *   clusterctl [-c FILE | -s RUNDIR] [--json] [-t SECONDS] COMMAND
 *     status           a table of the workers (--json: the master's JSON)
 *     reload           validate and roll; waits until done, fails with why
 *     scale N          waits until N workers are ready and the rest gone
 *     stop [--now]     waits until the master has exited
 *     reopen-logs      workers reopen their log files
 *     upgrade          binary upgrade in place; waits until done or rolled back
 *     drain, undrain   /healthz/ready answers 503 (a balancer takes the host
 *                      out) while everything else serves; and back
 *     events           follows lifecycle events (until -t or Ctrl-C)
 *     top              a live view of the workers, refreshed each second (top.c)
 *
 * The master answers every command at once; clusterctl waits for outcomes by
 * following `status`.  The protocol (commands, answer fields, limits) is
 * ipc/control_proto.h, which the master includes too.  A master that is absent or dead fails fast: no
 * control socket, or no answer within two seconds.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "ctl/reply.h"
#include "ctl/top.h"
#include "ipc/control_proto.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define ANSWER_MS 2000

static char rundir[256];
static int json_out;
static double timeout_s = 120;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "clusterctl: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(EXIT_FAIL);
}

static const char NO_ANSWER[] = "clusterd did not answer within 2s (dead, or a stale socket)";

/* Sends one command; returns the malloc'd reply or NULL (the reason in why;
 * NO_ANSWER when the request went out and no answer came). */
static char *request(const char *cmd, const char **why)
{
    char path[300], url[320];
    snprintf(path, sizeof path, "%s/" CD_CTL_SOCK_CONTROL, rundir);
    struct stat st;
    if (stat(path, &st) < 0) {
        *why = "no control socket (is clusterd running?)";
        return NULL;
    }
    snprintf(url, sizeof url, "ipc://%s", path);
    int s = nn_socket(AF_SP, NN_REQ);
    int ms = ANSWER_MS;
    nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &ms, sizeof ms);
    nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &ms, sizeof ms);
    char *reply = NULL;
    if (s < 0 || nn_connect(s, url) < 0 || nn_send(s, cmd, strlen(cmd), 0) < 0) {
        *why = "cannot send to the control socket";
    } else {
        char *msg;
        int len = nn_recv(s, &msg, NN_MSG, 0);
        if (len < 0) {
            *why = NO_ANSWER;
        } else {
            reply = malloc((size_t)len + 1);
            memcpy(reply, msg, (size_t)len);
            reply[len] = '\0';
            nn_freemsg(msg);
        }
    }
    if (s >= 0)
        nn_close(s);
    return reply;
}

/* Returns the answer r to cmd when it says ok; exits with its reason when not. */
static char *checked(const char *cmd, char *r)
{
    if (!json_bool(r, CD_CTL_F_OK)) {
        char err[600];
        json_str(r, CD_CTL_F_ERROR, err, sizeof err);
        fprintf(stderr, "clusterctl: %s failed: %s\n", cmd, err);
        exit(EXIT_FAIL);
    }
    return r;
}

static char *must(const char *cmd)
{
    const char *why = NULL;
    char *r = request(cmd, &why);
    if (!r)
        die("%s: %s", rundir, why);
    return checked(cmd, r);
}

/* Whether s begins with prefix (how last_reload / last_upgrade say the outcome). */
static int starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void print_status(FILE *f, const char *r)
{
    if (json_out) {
        fprintf(f, "%s\n", r);
        return;
    }
    char last[200], listen[200];
    json_str(r, CD_CTL_F_LAST_RELOAD, last, sizeof last);
    json_str(r, CD_CTL_F_LISTEN, listen, sizeof listen);
    fprintf(f, "clusterd pid %.0f on %s, up %.0fs, generation %.0f, %.0f workers wanted%s%s%s\n", json_num(r, CD_CTL_F_PID), listen,
           json_num(r, CD_CTL_F_UPTIME), json_num(r, CD_CTL_F_GENERATION), json_num(r, CD_CTL_F_WORKERS_WANTED),
           json_bool(r, CD_CTL_F_RELOADING) ? ", RELOADING" : "", json_bool(r, CD_CTL_F_STOPPING) ? ", STOPPING" : "",
           json_bool(r, CD_CTL_F_DRAINING) ? ", DRAINING" : "");
    if (last[0])
        fprintf(f, "last reload: %s\n", last);
    fprintf(f, "%-5s %-8s %-4s %-9s %9s %10s %9s %6s %9s %9s\n", "SLOT", "PID", "GEN", "STATE", "UPTIME", "REQUESTS",
           "INFLIGHT", "CONNS", "RSS", "HEARTBEAT");
    const char *workers = json_find(r, CD_CTL_F_WORKERS);
    for (const char *p = workers ? next_worker(workers) : NULL; p; p = next_worker(p + 1)) {
        char state[32];
        json_str(p, CD_CTL_W_STATE, state, sizeof state);
        fprintf(f, "%-5.0f %-8.0f %-4.0f %-9s %8.0fs %10.0f %9.0f %6.0f %8.1fM %8.1fs\n", json_num(p, CD_CTL_W_SLOT),
               json_num(p, CD_CTL_W_PID), json_num(p, CD_CTL_W_GENERATION), state, json_num(p, CD_CTL_W_UPTIME),
               json_num(p, CD_CTL_W_REQUESTS), json_num(p, CD_CTL_W_IN_FLIGHT), json_num(p, CD_CTL_W_CONNECTIONS),
               json_num(p, CD_CTL_W_RSS) / 1048576.0, json_num(p, CD_CTL_W_HEARTBEAT_AGE));
    }
}

/* Counts workers in the status reply: ready ones of generation gen (or any
 * when gen < 0), and all of them. */
static void count_workers(const char *r, double gen, int *ready, int *total)
{
    *ready = *total = 0;
    const char *workers = json_find(r, CD_CTL_F_WORKERS);
    for (const char *p = workers ? next_worker(workers) : NULL; p; p = next_worker(p + 1)) {
        char state[32];
        json_str(p, CD_CTL_W_STATE, state, sizeof state);
        (*total)++;
        if (strcmp(state, CD_CTL_STATE_READY) == 0 && (gen < 0 || json_num(p, CD_CTL_W_GENERATION) == gen))
            (*ready)++;
    }
}

static int cmd_reload(void)
{
    char *r = must(CD_CTL_CMD_RELOAD);
    double gen = json_num(r, CD_CTL_F_GENERATION);
    free(r);
    double deadline = now_s() + timeout_s;
    while (now_s() < deadline) {
        sleep_ms(100);
        r = must(CD_CTL_CMD_STATUS);
        int reloading = json_bool(r, CD_CTL_F_RELOADING);
        if (!reloading) {
            char last[200];
            json_str(r, CD_CTL_F_LAST_RELOAD, last, sizeof last);
            int ready, total;
            count_workers(r, gen, &ready, &total);
            double wanted = json_num(r, CD_CTL_F_WORKERS_WANTED);
            free(r);
            if (!starts(last, CD_CTL_OUTCOME_DONE)) {
                fprintf(stderr, "clusterctl: reload failed: %s\n", last);
                return EXIT_FAIL;
            }
            if (ready >= wanted) {
                printf("reload done: generation %.0f, %d workers ready\n", gen, ready);
                return 0;
            }
            continue; /* rolled; the last new ones are coming up */
        }
        free(r);
    }
    fprintf(stderr, "clusterctl: reload still in progress after %.0fs\n", timeout_s);
    return EXIT_FAIL;
}

static int cmd_scale(const char *n)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, CD_CTL_CMD_SCALE " %s", n);
    free(must(cmd));
    int want = atoi(n);
    double deadline = now_s() + timeout_s;
    while (now_s() < deadline) {
        char *r = must(CD_CTL_CMD_STATUS);
        int ready, total;
        count_workers(r, -1, &ready, &total);
        free(r);
        if (ready == want && total == want) {
            printf("%d workers ready\n", want);
            return 0;
        }
        sleep_ms(100);
    }
    fprintf(stderr, "clusterctl: not at %d ready workers after %.0fs\n", want, timeout_s);
    return EXIT_FAIL;
}

static int cmd_stop(int now)
{
    const char *cmd = now ? CD_CTL_CMD_STOP_NOW : CD_CTL_CMD_STOP, *why = NULL;
    char *r = request(cmd, &why);
    if (!r) {
        /* A master told to stop may exit before its answer leaves (stop now
         * does so at once); one that took the request and whose control
         * socket is gone has stopped.  A stale socket stays: a failure. */
        char path[300];
        struct stat st;
        snprintf(path, sizeof path, "%s/" CD_CTL_SOCK_CONTROL, rundir);
        if (why == NO_ANSWER && stat(path, &st) < 0 && errno == ENOENT) {
            printf("stopped\n");
            return 0;
        }
        die("%s: %s", rundir, why);
    }
    r = checked(cmd, r);
    double pd = json_num(r, CD_CTL_F_PID);
    pid_t pid = pd >= 2 && pd <= INT_MAX ? (pid_t)pd : 0; /* 0: follow status alone */
    free(r);
    double deadline = now_s() + timeout_s;
    while (now_s() < deadline) {
        if (pid > 0 && kill(pid, 0) < 0 && errno == ESRCH) {
            printf("stopped\n");
            return 0;
        }
        /* Still there (or a zombie of our shell's): does it still answer? */
        const char *why;
        char *s = request(CD_CTL_CMD_STATUS, &why);
        if (!s) {
            printf("stopped\n");
            return 0;
        }
        free(s);
        sleep_ms(100);
    }
    fprintf(stderr, "clusterctl: clusterd pid %d still running after %.0fs\n", (int)pid, timeout_s);
    return EXIT_FAIL;
}

static int cmd_upgrade(void)
{
    char *r = must(CD_CTL_CMD_UPGRADE);
    double gen = json_num(r, CD_CTL_F_GENERATION);
    free(r);
    double deadline = now_s() + timeout_s;
    while (now_s() < deadline) {
        sleep_ms(100);
        const char *why;
        r = request(CD_CTL_CMD_STATUS, &why); /* absent for a moment while the master execs */
        if (!r)
            continue;
        if (!json_bool(r, CD_CTL_F_UPGRADING)) {
            char last[200];
            json_str(r, CD_CTL_F_LAST_UPGRADE, last, sizeof last);
            double g = json_num(r, CD_CTL_F_GENERATION);
            free(r);
            if (starts(last, CD_CTL_OUTCOME_DONE) && g > gen) {
                printf("upgrade %s\n", last);
                return 0;
            }
            if (starts(last, CD_CTL_OUTCOME_FAILED)) {
                fprintf(stderr, "clusterctl: upgrade %s\n", last);
                return EXIT_FAIL;
            }
            continue;
        }
        free(r);
    }
    fprintf(stderr, "clusterctl: upgrade not finished after %.0fs\n", timeout_s);
    return EXIT_FAIL;
}

static volatile sig_atomic_t interrupted;
static void on_int(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int cmd_events(void)
{
    char path[300], url[320];
    snprintf(path, sizeof path, "%s/" CD_CTL_SOCK_EVENTS, rundir);
    struct stat st;
    if (stat(path, &st) < 0)
        die("%s: %s", rundir, "no events socket (is clusterd running?)");
    snprintf(url, sizeof url, "ipc://%s", path);
    int s = nn_socket(AF_SP, NN_SUB);
    nn_setsockopt(s, NN_SUB, NN_SUB_SUBSCRIBE, "", 0);
    int ms = 200;
    nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &ms, sizeof ms);
    if (nn_connect(s, url) < 0)
        die("%s: %s", url, nn_strerror(nn_errno()));
    signal(SIGINT, on_int);
    signal(SIGTERM, on_int);
    setvbuf(stdout, NULL, _IOLBF, 0);
    double deadline = now_s() + timeout_s;
    double last_check = now_s();
    while (!interrupted && now_s() < deadline) {
        char *msg;
        int len = nn_recv(s, &msg, NN_MSG, 0);
        if (len >= 0) {
            printf("%.*s\n", len, msg);
            nn_freemsg(msg);
            continue;
        }
        /* Quiet: make sure the master is still there. */
        if (now_s() - last_check > 2) {
            last_check = now_s();
            if (stat(path, &st) < 0) {
                fprintf(stderr, "clusterctl: clusterd is gone\n");
                break;
            }
        }
    }
    nn_close(s);
    return 0;
}

static char *top_fetch(void *ctx, const char **why)
{
    (void)ctx;
    return request(CD_CTL_CMD_STATUS, why);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: clusterctl [-c FILE | -s RUNDIR] [--json] [-t SECONDS] COMMAND\n"
               "commands: status, reload, scale N, stop [--now], reopen-logs, upgrade, events, top, drain, undrain\n");
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"now", no_argument, NULL, 'n'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt, now = 0;
    while ((opt = getopt_long(argc, argv, "c:s:t:jnh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf_path = optarg; break;
        case 's': snprintf(rundir, sizeof rundir, "%s", optarg); break;
        case 't': timeout_s = atof(optarg); break;
        case 'j': json_out = 1; break;
        case 'n': now = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!rundir[0]) {
        /* The runtime dir comes from the config, like clusterd computes it. */
        const char *env = getenv("CLUSTERD_CONF");
        if (!conf_path)
            conf_path = env ? env : cd_conf_default_path();
        if (cd_conf_runtime_dir(conf_path, rundir, sizeof rundir) < 0) {
            fprintf(stderr, "clusterctl: cannot read [cluster] of %s (use -s RUNDIR to name the runtime dir)\n",
                    conf_path);
            return EXIT_USAGE;
        }
    }
    const char *cmd = argv[optind];
    int extra = argc - optind - 1;
    if (strcmp(cmd, CD_CTL_CMD_STATUS) == 0 && extra == 0) {
        char *r = must(CD_CTL_CMD_STATUS);
        print_status(stdout, r);
        free(r);
        return 0;
    }
    if (strcmp(cmd, CD_CTL_CMD_RELOAD) == 0 && extra == 0)
        return cmd_reload();
    if (strcmp(cmd, CD_CTL_CMD_SCALE) == 0 && extra == 1)
        return cmd_scale(argv[optind + 1]);
    if (strcmp(cmd, CD_CTL_CMD_STOP) == 0 && extra <= 1) {
        if (extra == 1 && strcmp(argv[optind + 1], "--now") != 0) {
            usage(stderr);
            return EXIT_USAGE;
        }
        return cmd_stop(now || extra == 1);
    }
    if (strcmp(cmd, CD_CTL_CMD_REOPEN_LOGS) == 0 && extra == 0) {
        free(must(CD_CTL_CMD_REOPEN_LOGS));
        return 0;
    }
    if ((strcmp(cmd, CD_CTL_CMD_DRAIN) == 0 || strcmp(cmd, CD_CTL_CMD_UNDRAIN) == 0) && extra == 0) {
        free(must(cmd));
        printf(cmd[0] == 'd' ? "draining: /healthz/ready answers 503; listeners keep accepting\n"
                             : "undrained: /healthz/ready answers as the services say\n");
        return 0;
    }
    if (strcmp(cmd, "events") == 0 && extra == 0)
        return cmd_events();
    if (strcmp(cmd, CD_CTL_CMD_UPGRADE) == 0 && extra == 0)
        return cmd_upgrade();
    if (strcmp(cmd, "top") == 0 && extra == 0)
        return cd_top_run(top_fetch, NULL);
    usage(stderr);
    return EXIT_USAGE;
}
