/*
 * dummy.c - the dummy service: a canned JSON answer (worker).
 *
 * It measures the framework's own cost, so it does nothing else.  For tests
 * of draining and concurrency, ?delay_ms=N (at most max_delay) answers after
 * an ev_timer: the loop keeps serving meanwhile.
 *
 * Config keys: body (default {"service":"dummy","ok":true}), max_delay
 * (default 10s).
 */
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "services/service.h"

typedef struct dummy_conf {
    char *body;
    size_t body_len;
    long long max_delay_ms;
} dummy_conf;

typedef struct delayed {
    ev_timer timer;
    cd_request *req;
    const dummy_conf *conf;
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

static int dummy_conf_set(void *conf, const char *key, const char *value, char *err, size_t errlen)
{
    dummy_conf *c = conf;
    if (strcmp(key, "body") == 0) {
        char *b = strdup(value);
        if (!b)
            return -1;
        free(c->body);
        c->body = b;
        c->body_len = strlen(b);
        return 0;
    }
    if (strcmp(key, "max_delay") == 0) {
        if (cd_parse_duration_ms(value, &c->max_delay_ms) < 0 || c->max_delay_ms > 3600000) {
            strncpy(err, "expected a duration up to 1h, e.g. 500ms or 10s", errlen - 1);
            err[errlen - 1] = '\0';
            return -1;
        }
        return 0;
    }
    return -2;
}

static void dummy_conf_free(void *conf)
{
    dummy_conf *c = conf;
    free(c->body);
    free(c);
}

static void delayed_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    delayed *d = (delayed *)t; /* timer is the first member */
    cd_request_respond(d->req, 200, "application/json", d->conf->body, d->conf->body_len);
    free(d);
}

static void dummy_handle(cd_service *svc, cd_request *req)
{
    const dummy_conf *c = svc->conf;
    if (cd_request_subpath(req)[0] != '\0') {
        cd_request_respond_error(req, 404, "dummy has no sub-resources");
        return;
    }
    char buf[32];
    int n = cd_request_query_param(req, "delay_ms", buf, sizeof buf);
    if (n == -1) {
        cd_request_respond(req, 200, "application/json", c->body, c->body_len);
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
    d->conf = c;
    ev_timer_init(&d->timer, delayed_cb, (double)ms / 1000.0, 0.);
    ev_timer_start(svc->loop, &d->timer);
}

const cd_service_type cd_service_dummy = {
    .name = "dummy",
    .methods = CD_M_GET | CD_M_HEAD,
    .conf_new = dummy_conf_new,
    .conf_set = dummy_conf_set,
    .conf_free = dummy_conf_free,
    .handle = dummy_handle,
};
