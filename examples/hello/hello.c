/*
 * hello.c - a service of your own, built out of tree (examples/hello; see
 * docs/services.md for the walk-through).
 *
 * [hello]
 * module = /usr/local/lib/clusterd/hello.so   (or just: module = hello)
 * type = hello
 * route = /hello
 * greeting = Hi there                          (this module's own keys)
 * file = /etc/hostname
 *
 * GET /hello answers JSON: the greeting, the first line of `file` (read on
 * a thread of the service's pool, since a read may block and the loop must
 * not), this worker's slot, how many requests this worker answered and how
 * many the whole cluster did.  The cluster figure comes from the bus: each
 * worker publishes its own count after every answer, and every worker
 * keeps the latest count it heard from each slot.  It answers with custom
 * headers (X-Hello, Cache-Control).
 *
 * Build: cc $(pkg-config --cflags clusterd) -shared -fPIC hello.c -o hello.so
 * It links nothing of clusterd's: the clusterd executable provides the API.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clusterd/clusterd.h>
#include <clusterd/json.h>
#include <clusterd/pool.h>

#define MAX_SLOTS 1024

/* ---- Config: conf_new's struct, filled by the keys table ---- */

typedef struct hello_conf {
    char *greeting; /* CD_KEY_STRP: owned, freed by conf_free */
    char *file;
    int threads;
} hello_conf;

static void *hello_conf_new(void)
{
    hello_conf *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->greeting = strdup("hello");
    c->file = strdup("/etc/hostname");
    c->threads = 1;
    if (!c->greeting || !c->file) {
        free(c->greeting);
        free(c->file);
        free(c);
        return NULL;
    }
    return c;
}

static void hello_conf_free(void *conf)
{
    hello_conf *c = conf;
    if (!c)
        return;
    free(c->greeting);
    free(c->file);
    free(c);
}

static int hello_conf_check(void *conf, char *err, size_t errlen)
{
    hello_conf *c = conf;
    if (c->file[0] != '/') {
        snprintf(err, errlen, "file must be an absolute path");
        return -1;
    }
    return 0;
}

static const cd_conf_key hello_keys[] = {
    CD_CONF_KEY("greeting", CD_KEY_STRP, hello_conf, greeting, 1, 0),
    CD_CONF_KEY("file", CD_KEY_STRP, hello_conf, file, 1, 0),
    CD_CONF_KEY("threads", CD_KEY_INT, hello_conf, threads, 1, 16),
    {0},
};

/* ---- Per-worker state ---- */

typedef struct hello_state {
    cd_pool *pool;
    long long served;                /* by this worker */
    long long counts[MAX_SLOTS];     /* the latest count heard from each slot */
} hello_state;

/* One request's trip through the pool. */
typedef struct job {
    cd_pool_work w; /* first: the pool gives it back */
    cd_service *svc;
    cd_request *req;
    char line[256]; /* work's result: the file's first line */
    int err;        /* or -errno */
} job;

typedef struct count_msg {
    int slot;
    long long served;
} count_msg;

static void on_count(cd_service *svc, const void *msg, size_t len)
{
    hello_state *st = svc->state;
    count_msg m;
    if (len != sizeof m)
        return;
    memcpy(&m, msg, sizeof m);
    if (m.slot >= 0 && m.slot < MAX_SLOTS && m.served > st->counts[m.slot])
        st->counts[m.slot] = m.served;
}

static int hello_init(cd_service *svc, char *err, size_t errlen)
{
    const hello_conf *c = svc->conf;
    hello_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = cd_pool_new(svc->loop, (size_t)c->threads, 64, &st->pool);
    if (rc < 0) {
        snprintf(err, errlen, "thread pool: %s", strerror(-rc));
        free(st);
        return -1;
    }
    svc->state = st;
    cd_service_subscribe(svc, on_count);
    return 0;
}

/* On a pool thread: may block, must not touch the request or the loop. */
static void read_first_line(cd_pool_work *w)
{
    job *j = (job *)w;
    const hello_conf *c = j->svc->conf;
    FILE *f = fopen(c->file, "re");
    if (!f) {
        j->err = -errno;
        return;
    }
    if (!fgets(j->line, sizeof j->line, f))
        j->line[0] = '\0';
    fclose(f);
    j->line[strcspn(j->line, "\r\n")] = '\0';
}

static void answer(job *j)
{
    cd_service *svc = j->svc;
    hello_state *st = svc->state;
    const hello_conf *c = svc->conf;
    st->served++;
    if (svc->slot >= 0 && svc->slot < MAX_SLOTS && st->served > st->counts[svc->slot])
        st->counts[svc->slot] = st->served;
    count_msg m = {svc->slot, st->served};
    (void)cd_service_publish(svc, &m, sizeof m); /* best effort: a lost count is caught up by the next */
    long long cluster = 0;
    for (int i = 0; i < MAX_SLOTS; i++)
        cluster += st->counts[i];
    cd_buf b = {0};
    cd_buf_printf(&b, "{\"greeting\":");
    cd_json_str(&b, c->greeting, strlen(c->greeting));
    cd_buf_printf(&b, ",\"file\":");
    cd_json_str(&b, j->line, strlen(j->line));
    cd_buf_printf(&b, ",\"worker\":%d,\"served\":%lld,\"cluster\":%lld}\n", svc->slot, st->served, cluster);
    if (b.oom) {
        cd_request_respond_error(j->req, 500, "out of memory");
    } else {
        cd_response_header(j->req, "X-Hello", c->greeting);
        cd_response_header(j->req, "Cache-Control", "no-store");
        cd_request_respond(j->req, 200, "application/json", b.p, b.len);
    }
    cd_buf_free(&b);
}

/* Back on the loop thread. */
static void job_done(cd_pool_work *w, int status)
{
    job *j = (job *)w;
    if (status == -ECANCELED) /* the pool is being destroyed: no loop, no answer */
        cd_request_drop(j->req);
    else if (j->err < 0)
        cd_request_respond_error(j->req, 500, strerror(-j->err));
    else
        answer(j);
    free(j);
}

static void hello_handle(cd_service *svc, cd_request *req)
{
    hello_state *st = svc->state;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    j->svc = svc;
    j->req = req;
    if (cd_pool_submit(st->pool, &j->w, read_first_line, job_done) < 0) {
        free(j);
        cd_request_respond_error(req, 503, "busy");
    }
}

static void hello_destroy(cd_service *svc)
{
    hello_state *st = svc->state;
    cd_pool_destroy(st->pool); /* outstanding jobs get done(-ECANCELED) */
    free(st);
}

const cd_service_type cd_service_hello = {
    .abi = CLUSTERD_ABI_VERSION,
    .name = "hello",
    .methods = CD_M_GET | CD_M_HEAD,
    .conf_new = hello_conf_new,
    .keys = hello_keys,
    .conf_check = hello_conf_check,
    .conf_free = hello_conf_free,
    .init = hello_init,
    .handle = hello_handle,
    .destroy = hello_destroy,
    .uses_bus = 1,
};
