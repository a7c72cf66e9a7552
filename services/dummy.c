/*
 * dummy.c - the dummy service: a canned JSON answer (worker).
 *
 * It measures the framework's own cost, so it does nothing else.  For tests
 * of draining and concurrency, ?delay_ms=N (at most max_delay) answers after
 * an ev_timer: the loop keeps serving meanwhile.
 *
 * Config keys: body (default {"service":"dummy","ok":true}), body_file (a
 * file whose content is the body, read by each worker when it starts, so a
 * missing file is a boot failure), max_delay (default 10s).
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/keys.h"
#include "core/util.h"
#include "services/service.h"

typedef struct dummy_conf {
    char *body;
    size_t body_len;
    char *body_file;
    long long max_delay_ms;
} dummy_conf;

/* Per-worker state: the body to serve. */
typedef struct dummy_state {
    char *body;
    size_t body_len;
} dummy_state;

#define BODY_FILE_MAX (1 << 20)

typedef struct delayed {
    ev_timer timer;
    cd_request *req;
    const dummy_state *st;
} delayed;

static void *dummy_conf_new(void)
{
    dummy_conf *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->body = strdup("{\"service\":\"dummy\",\"ok\":true}");
    if (!c->body) {
        free(c);
        return NULL;
    }
    c->body_len = strlen(c->body);
    c->max_delay_ms = 10000;
    return c;
}

static const cd_conf_key dummy_keys[] = {
    CD_CONF_KEY("body", CD_KEY_STRP, dummy_conf, body, 0, 0),
    CD_CONF_KEY("body_file", CD_KEY_STRP, dummy_conf, body_file, 0, 0),
    CD_CONF_KEY("max_delay", CD_KEY_MS, dummy_conf, max_delay_ms, 0, 3600000),
    {0},
};

static int dummy_conf_check(void *conf, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    dummy_conf *c = conf;
    c->body_len = strlen(c->body);
    return 0;
}

static void dummy_conf_free(void *conf)
{
    dummy_conf *c = conf;
    free(c->body);
    free(c->body_file);
    free(c);
}

static int dummy_init(cd_service *svc, char *err, size_t errlen)
{
    const dummy_conf *c = svc->conf;
    dummy_state *st = calloc(1, sizeof *st);
    if (!st)
        return -1;
    svc->state = st;
    if (!c->body_file) {
        st->body = c->body;
        st->body_len = c->body_len;
        return 0;
    }
    /* A failed init must clean up after itself: destroy is not called. */
    FILE *f = fopen(c->body_file, "re");
    if (!f) {
        snprintf(err, errlen, "body_file %s: %s", c->body_file, strerror(errno));
        free(st);
        svc->state = NULL;
        return -1;
    }
    char *buf = malloc(BODY_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, BODY_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > BODY_FILE_MAX) {
        snprintf(err, errlen, "body_file %s: %s", c->body_file, buf ? "larger than 1m" : "out of memory");
        free(buf);
        free(st);
        svc->state = NULL;
        return -1;
    }
    st->body = buf;
    st->body_len = n;
    return 0;
}

static void dummy_destroy(cd_service *svc)
{
    const dummy_conf *c = svc->conf;
    dummy_state *st = svc->state;
    if (st && st->body != c->body)
        free(st->body);
    free(st);
}

static void delayed_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    delayed *d = (delayed *)t; /* timer is the first member */
    cd_request_respond(d->req, 200, "application/json", d->st->body, d->st->body_len);
    free(d);
}

static void dummy_handle(cd_service *svc, cd_request *req)
{
    const dummy_conf *c = svc->conf;
    const dummy_state *st = svc->state;
    if (cd_request_subpath(req)[0] != '\0') {
        cd_request_respond_error(req, 404, "dummy has no sub-resources");
        return;
    }
    char buf[32];
    int n = cd_request_query_param(req, "delay_ms", buf, sizeof buf);
    if (n == -1) {
        cd_request_respond(req, 200, "application/json", st->body, st->body_len);
        return;
    }
    long long ms;
    if (n < 0 || cd_parse_int(buf, 0, c->max_delay_ms, &ms) < 0) {
        cd_request_respond_error(req, 400, "delay_ms must be an integer between 0 and max_delay");
        return;
    }
    delayed *d = malloc(sizeof *d);
    if (!d) {
        cd_request_respond_error(req, 503, "out of memory");
        return;
    }
    d->req = req;
    d->st = st;
    ev_timer_init(&d->timer, delayed_cb, (double)ms / 1000.0, 0.);
    ev_timer_start(svc->loop, &d->timer);
}

const cd_service_type cd_service_dummy = {
    .name = "dummy",
    .methods = CD_M_GET | CD_M_HEAD,
    .conf_new = dummy_conf_new,
    .keys = dummy_keys,
    .conf_check = dummy_conf_check,
    .conf_free = dummy_conf_free,
    .init = dummy_init,
    .handle = dummy_handle,
    .destroy = dummy_destroy,
};
