/*
 * hookclient.c - a non-blocking HTTP client on the worker's loop, for the
 * events service's HTTP hooks (worker, loop thread).  It POSTs a JSON body
 * to a URL and calls back with the status and the answer's body, or an
 * error, and never blocks the loop: libcurl's multi interface does the
 * HTTP, driven by libev (curl tells us which sockets to watch and when its
 * next timeout is, CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION; we
 * watch them with ev_io and ev_timer and hand readiness back with
 * curl_multi_socket_action).  One client per worker: its connection cache
 * keeps connections to the backend alive between calls.
 *
 * Why libcurl rather than a client of our own: HTTP/1.1 with keep-alive,
 * chunked answers, redirects refused, TLS (https hooks) and timeouts are
 * all solved there, and Debian ships it (libcurl4-openssl-dev).
 *
 * Bounds: at most max_in_flight requests at once (one more fails at once
 * with -EBUSY, so a slow backend costs memory in proportion to the bound,
 * not to the traffic); each request has a timeout covering the whole
 * exchange, connect included; an answer over max_answer bytes fails with
 * -EMSGSIZE.  The callback runs from the loop, never from inside
 * cd_events__hook_post, exactly once per accepted request (also when the
 * client is freed: -ECANCELED, then it must not call back into it).
 *
 * Hooks go straight to the URL: the proxy variables of the environment
 * (http_proxy, ...) are ignored, since a backend on loopback or the LAN is
 * the normal case and a proxy in between would only add a failure.
 * Expect: 100-continue is off (curl would wait a second for a 100 before
 * sending a body over 1k).  Only http and https are allowed.
 *
 * Helpers here return -errno and do not log; hooks.c decides and logs.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "services/events/hooks.h"

struct cd_hook_req {
    cd_hookclient *hc;
    CURL *easy;
    struct curl_slist *headers;
    cd_hook_cb cb;
    void *arg;
    size_t max_answer;
    int too_big;     /* the answer went over max_answer */
    cd_hook_req *prev, *next;
    char *body;      /* the answer so far */
    size_t len, cap;
    char errbuf[CURL_ERROR_SIZE];
};

/* One socket curl asked us to watch. */
typedef struct hook_sock {
    ev_io io;
    cd_hookclient *hc;
    curl_socket_t fd;
} hook_sock;

struct cd_hookclient {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    size_t in_flight, max_in_flight;
    cd_hook_req *reqs;
};

static void req_unlink(cd_hookclient *hc, cd_hook_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        hc->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    hc->in_flight--;
}

static void req_free(cd_hook_req *r)
{
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

static int curl_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* Reports the transfers curl has finished. */
static void check_done(cd_hookclient *hc)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(hc->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        cd_hook_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(hc->multi, m->easy_handle);
        req_unlink(hc, r);
        cd_hook_result res = {0};
        if (r->too_big) {
            res.err = -EMSGSIZE;
            res.detail = "answer too large";
        } else if (rc != CURLE_OK) {
            res.err = curl_errno(rc);
            res.detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
        } else {
            curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
            res.body = r->body ? r->body : "";
            res.len = r->len;
        }
        r->cb(r->arg, &res);
        req_free(r);
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    hook_sock *s = (hook_sock *)w;
    cd_hookclient *hc = s->hc;
    int flags = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(hc->multi, s->fd, flags, &running);
    check_done(hc);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    cd_hookclient *hc = (cd_hookclient *)((char *)w - offsetof(cd_hookclient, timer));
    int running;
    curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(hc);
}

/* curl's CURLMOPT_TIMERFUNCTION: when to call it back (-1: never).  Even
 * 0 goes through the loop, never a call into curl from inside curl. */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    cd_hookclient *hc = userp;
    ev_timer_stop(hc->loop, &hc->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&hc->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(hc->loop, &hc->timer);
    }
    return 0;
}

/* curl's CURLMOPT_SOCKETFUNCTION: watch fd for what (or stop watching). */
static int socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    cd_hookclient *hc = userp;
    hook_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(hc->loop, &s->io);
            curl_multi_assign(hc->multi, fd, NULL);
            free(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1; /* curl fails the transfer */
        s->hc = hc;
        s->fd = fd;
        ev_init(&s->io, on_io);
        curl_multi_assign(hc->multi, fd, s);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(hc->loop, &s->io);
    ev_io_set(&s->io, fd, events);
    ev_io_start(hc->loop, &s->io);
    return 0;
}

int cd_events__hookclient_new(struct ev_loop *loop, size_t max_in_flight, cd_hookclient **out)
{
    /* Once per process; curl_global_init is thread-safe in curl >= 7.84. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -ENOMEM;
    cd_hookclient *hc = calloc(1, sizeof *hc);
    if (!hc)
        return -ENOMEM;
    hc->multi = curl_multi_init();
    if (!hc->multi) {
        free(hc);
        return -ENOMEM;
    }
    hc->loop = loop;
    hc->max_in_flight = max_in_flight;
    ev_init(&hc->timer, on_timer);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
    *out = hc;
    return 0;
}

void cd_events__hookclient_free(cd_hookclient *hc)
{
    if (!hc)
        return;
    while (hc->reqs) {
        cd_hook_req *r = hc->reqs;
        curl_multi_remove_handle(hc->multi, r->easy);
        req_unlink(hc, r);
        cd_hook_result res = {.err = -ECANCELED, .detail = "cancelled"};
        r->cb(r->arg, &res);
        req_free(r);
    }
    ev_timer_stop(hc->loop, &hc->timer);
    curl_multi_cleanup(hc->multi); /* sockets: CURL_POLL_REMOVE frees their watchers */
    free(hc);
}

size_t cd_events__hookclient_in_flight(const cd_hookclient *hc)
{
    return hc->in_flight;
}

static size_t on_data(char *data, size_t size, size_t n, void *userp)
{
    cd_hook_req *r = userp;
    size_t len = size * n;
    if (len > r->max_answer - r->len) {
        r->too_big = 1;
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

/* The easy handle of one POST; 0 or -ENOMEM. */
static int setup_easy(cd_hook_req *r, const char *url, const char *body, size_t len, long timeout_ms)
{
    CURL *e = r->easy;
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h = r->headers ? curl_slist_append(r->headers, "Expect:") : NULL;
    if (!h)
        return -ENOMEM;
    r->headers = h;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "clusterd-events") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK;
    return bad ? -ENOMEM : 0;
}

int cd_events__hook_post(cd_hookclient *hc, const char *url, const char *body, size_t len, long timeout_ms,
                         size_t max_answer, cd_hook_cb cb, void *arg)
{
    if (hc->in_flight >= hc->max_in_flight)
        return -EBUSY;
    cd_hook_req *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->hc = hc;
    r->cb = cb;
    r->arg = arg;
    r->max_answer = max_answer;
    r->easy = curl_easy_init();
    if (!r->easy || setup_easy(r, url, body, len, timeout_ms) < 0 ||
        curl_multi_add_handle(hc->multi, r->easy) != CURLM_OK) {
        req_free(r); /* curl_easy_cleanup(NULL) is fine */
        return -ENOMEM;
    }
    r->next = hc->reqs;
    if (hc->reqs)
        hc->reqs->prev = r;
    hc->reqs = r;
    hc->in_flight++;
    return 0;
}
