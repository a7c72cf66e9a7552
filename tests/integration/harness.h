/*
 * harness.h - helpers for integration tests: start the real clusterd binary
 * on a free loopback port with a config written to a temp dir, talk HTTP to
 * it over plain sockets, find its workers, stop it.  Every wait is bounded.
 *
 * The binary is taken from $CLUSTERD_BIN (set by CMake/ctest, default
 * ./clusterd); scripts from $CLUSTERD_SRC (the source tree).
 */
#ifndef CD_TEST_HARNESS_H
#define CD_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct th_server {
    pid_t pid;           /* the master */
    int port;            /* its HTTP port on 127.0.0.1 */
    char dir[256];       /* temp dir holding services.ini and stderr.log */
    char conf_path[300]; /* dir/services.ini */
    char log_path[300];  /* dir/stderr.log: the master's and workers' stderr */
} th_server;

typedef struct th_response {
    int status;          /* 0 when no response at all */
    int err;             /* errno of a connect/read/write failure, else 0 */
    char headers[4096];  /* raw header block */
    char *body;          /* malloc'd, NUL-terminated; free with th_response_free */
    size_t body_len;
} th_response;

/* A free TCP port on 127.0.0.1 (bound then released). */
int th_free_port(void);

/* Writes `conf_fmt` (printf format; "%d" is given the port first) into a new
 * temp dir, then starts `clusterd -c conf <extra args>` and waits (up to
 * 10 s) until it answers GET `ready_path` with 200 and has `workers` worker
 * processes.  Returns 0 or -1 (the log is printed on failure).  extra_args
 * is a NULL-terminated list or NULL. */
int th_start(th_server *s, int workers, const char *ready_path, const char *const *extra_args,
             const char *conf_fmt, ...);
/* Rewrites the config file (same format rules as th_start). */
int th_write_conf(th_server *s, const char *conf_fmt, ...);
/* Sends sig to the master and waits up to timeout_ms for it to exit.
 * Returns its wait status, or -1 on timeout (then it is SIGKILLed). */
int th_stop(th_server *s, int sig, int timeout_ms);

/* Removes the temp dir (call after the last look at the log). */
void th_cleanup(th_server *s);
/* The end of a test (its suite's fini): stops the server if it still runs
 * (SIGTERM), then removes its dir unless the log holds a sanitizer report.
 * Returns 0, or -1 when there is such a report (the log is printed and
 * kept). */
int th_finish(th_server *s);

/* Worker pids of the master (its children), up to max; returns the count. */
int th_workers(const th_server *s, pid_t *pids, int max);
/* Waits up to timeout_ms until the master has exactly n workers, none of them
 * in `exclude` (may be NULL/0).  Returns 0 or -1. */
int th_wait_workers(const th_server *s, int n, const pid_t *exclude, int nexclude, int timeout_ms);
/* Whether the log contains `needle` (waits up to timeout_ms for it). */
int th_log_contains(const th_server *s, const char *needle, int timeout_ms);

/* One HTTP/1.1 request on a new connection with Connection: close.
 * method, path; body may be NULL. timeout_ms bounds the whole exchange. */
int th_http(th_response *r, int port, const char *method, const char *path, const char *body,
            int timeout_ms);
/* Sends raw bytes on a new connection and reads until EOF or timeout;
 * returns a malloc'd NUL-terminated buffer (len in *len) or NULL. */
char *th_raw(int port, const char *data, size_t len, int timeout_ms, size_t *outlen);
void th_response_free(th_response *r);

/* A blocking TCP connection to 127.0.0.1:port, or -1. */
int th_connect(int port);

/* A keep-alive client loop (GET /dummy) in a child process for ms
 * milliseconds (at most 200000 requests).  A failure is any request without
 * a full 200 answer; bodies_changed counts answers whose body differs from
 * first_body.  Collect with th_client_result (waits at most 30 s). */
typedef struct th_loop_result {
    int ok, failed, bodies_changed;
} th_loop_result;
pid_t th_client_loop(int port, int ms, int *rfd, const char *first_body);
th_loop_result th_client_result(pid_t pid, int rfd);

/* Runs argv (argv[0] a path) to completion, its stdout and stderr in out
 * (NUL-terminated).  Returns its exit code, or -1. */
int th_run(const char *const argv[], char *out, size_t cap);

/* harness_mongo.c.  The source tree ($CLUSTERD_SRC, else "."). */
const char *th_src_dir(void);
/* SIGSTOPs pid and waits (bounded) until every one of its threads is
 * stopped: kill() returns before a busy Go thread (FerretDB's) has taken
 * the signal, and it could still answer a query meanwhile.  0, or -1 when
 * it did not stop. */
int th_freeze(pid_t pid);
/* A suite's main() that needs FerretDB: exits 77 saying why when
 * scripts/ferretdb.sh check says it cannot be had, else runs criterion. */
int th_main_with_ferretdb(int argc, char *argv[]);

/* Runs `node $CLUSTERD_SRC/tests/socketio/SCRIPT args...` (args NULL-terminated,
 * at most 13) in its own process group, output in logdir/node-SCRIPT.log
 * (printed to stderr at the end); the group is SIGKILLed at timeout_ms and
 * when node exits.  Returns node's exit status (0 = its checks passed), 127
 * when the npm packages are missing, or -1 on timeout (harness_node.c). */
int th_node(const char *logdir, const char *script, int timeout_ms, const char *const *args);

/* Milliseconds on a monotonic clock. */
long long th_now_ms(void);

#endif
