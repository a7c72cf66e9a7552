/*
 * hook_proto.c - the HTTP hooks' protocol, pure (any process): the
 * connect_hook, event_hook and disconnect_hook keys (master and workers),
 * the JSON bodies POSTed to the backend, and the parser of its answers
 * (worker).  No socket, no loop: the unit tests and the fuzz target
 * (tests/fuzz/fuzz_events_hook.c) run it as it is.
 *
 * An answer is outside input, from a backend that may be buggy, slow or
 * not ours: the parser checks the whole body with the service's own JSON
 * scanner (events_proto.c: syntax, UTF-8, nesting) before reading any
 * member, bounds every list and name, and keeps raw JSON values (data,
 * args, ack) as the bytes the backend sent, so they reach clients exactly
 * as written.  The handler API checks them again as packets
 * (placeholders against attachments) when hooks.c sends them.
 *
 * Binary: socket.io's placeholders ({"_placeholder":true,"num":N}) stay in
 * the arguments both ways, and the attachments travel beside them as
 * base64 strings, "attachments" in a body, "attachments" in an emit and
 * "ack_attachments" for an ack in an answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/json.h"
#include "services/events/events.h"
#include "services/events/hooks.h"

/* ---- the keys ---- */

static const char *const key_names[CD_HOOK_KINDS] = {"connect_hook", "event_hook", "disconnect_hook"};

/* One item "NSP=URL": whether it has that shape; *eq at the '='. */
static const char *bad_item(const char *t, const char **eq)
{
    *eq = strchr(t, '=');
    if (t[0] != '/' || !*eq)
        return "expected /namespace=http://host/path";
    const char *u = *eq + 1;
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return "the URL must start with http:// or https://";
    if (strlen(u) <= (u[4] == 's' ? 8u : 7u))
        return "the URL names no host";
    return NULL;
}

static int set_hook(void *conf, int kind, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    char *copy = strdup(value), *save = NULL;
    if (!copy || (!c->hooks && !(c->hooks = calloc(1, sizeof *c->hooks)))) {
        free(copy);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        const char *eq, *why = bad_item(t, &eq);
        if (why) {
            snprintf(err, errlen, "'%.100s': %s", t, why);
            free(copy);
            return -1;
        }
    }
    free(copy);
    char *v = strdup(value);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(c->hooks->spec[kind]);
    c->hooks->spec[kind] = v;
    return 0;
}

int cd_events__set_connect_hook(void *conf, const char *value, char *err, size_t errlen)
{
    return set_hook(conf, CD_HOOK_CONNECT, value, err, errlen);
}

int cd_events__set_event_hook(void *conf, const char *value, char *err, size_t errlen)
{
    return set_hook(conf, CD_HOOK_EVENT, value, err, errlen);
}

int cd_events__set_disconnect_hook(void *conf, const char *value, char *err, size_t errlen)
{
    return set_hook(conf, CD_HOOK_DISCONNECT, value, err, errlen);
}

static void free_urls(cd_events_hooks_conf *h)
{
    for (int k = 0; k < CD_HOOK_KINDS; k++)
        for (int n = 0; n < CD_EVENTS_NSP_MAX; n++) {
            free(h->url[k][n]);
            h->url[k][n] = NULL;
        }
}

/* Resolves one key's items against the namespaces (known only now: the
 * keys may come in any order). */
static int resolve(cd_events_conf *c, int kind, char *err, size_t errlen)
{
    cd_events_hooks_conf *h = c->hooks;
    char *copy = strdup(h->spec[kind]), *save = NULL;
    int rc = -1;
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        const char *eq;
        bad_item(t, &eq); /* checked by the setter */
        int n = cd_events__nsp_index(c, t, (size_t)(eq - t));
        if (n < 0) {
            snprintf(err, errlen, "%s: namespace '%.*s' is not in namespaces", key_names[kind],
                     (int)(eq - t) > 64 ? 64 : (int)(eq - t), t);
            goto out;
        }
        if (h->url[kind][n]) {
            snprintf(err, errlen, "%s: namespace '%s' is given twice", key_names[kind], c->namespaces[n]);
            goto out;
        }
        if (!(h->url[kind][n] = strdup(eq + 1))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

int cd_events__hooks_conf_check(cd_events_conf *c, char *err, size_t errlen)
{
    if (!c->hooks)
        return 0;
    free_urls(c->hooks);
    for (int k = 0; k < CD_HOOK_KINDS; k++)
        if (c->hooks->spec[k] && resolve(c, k, err, errlen) < 0)
            return -1;
    return 0;
}

void cd_events__hooks_conf_free(cd_events_conf *c)
{
    if (!c->hooks)
        return;
    free_urls(c->hooks);
    for (int k = 0; k < CD_HOOK_KINDS; k++)
        free(c->hooks->spec[k]);
    free(c->hooks);
    c->hooks = NULL;
}

int cd_events__hooks_any(const cd_events_conf *c, int nsp)
{
    if (!c->hooks || nsp < 0 || nsp >= CD_EVENTS_NSP_MAX)
        return 0;
    for (int k = 0; k < CD_HOOK_KINDS; k++)
        if (c->hooks->url[k][nsp])
            return 1;
    return 0;
}

/* ---- the bodies ---- */

static void put_str(cd_buf *b, const char *s)
{
    if (s)
        cd_json_str(b, s, strlen(s));
    else
        cd_buf_append(b, "null", 4);
}

/* {"type":"...","sid":..,"namespace":..,"user":..[,"data":..] */
static void put_who(cd_buf *b, const char *type, const cd_hook_who *w)
{
    cd_buf_printf(b, "{\"type\":\"%s\",\"sid\":", type);
    put_str(b, w->sid);
    cd_buf_append(b, ",\"namespace\":", 13);
    put_str(b, w->nsp);
    cd_buf_append(b, ",\"user\":", 8);
    put_str(b, w->user);
    if (w->data) {
        cd_buf_append(b, ",\"data\":", 8);
        cd_buf_append(b, w->data, w->data_len);
    }
}

int cd_events__hook_body_connect(cd_buf *b, const cd_hook_who *w, const char *auth, size_t auth_len,
                                 const char *const *hnames, const char *const *hvalues, size_t nh)
{
    put_who(b, "connect", w);
    cd_buf_append(b, ",\"auth\":", 8);
    if (auth && auth_len)
        cd_buf_append(b, auth, auth_len);
    else
        cd_buf_append(b, "null", 4);
    cd_buf_append(b, ",\"headers\":{", 12);
    int first = 1;
    for (size_t i = 0; i < nh; i++) {
        if (!hvalues[i])
            continue;
        char name[128];
        size_t n = strlen(hnames[i]);
        if (n >= sizeof name)
            continue;
        for (size_t j = 0; j <= n; j++) /* lower case, as Node's req.headers */
            name[j] = (char)(hnames[i][j] >= 'A' && hnames[i][j] <= 'Z' ? hnames[i][j] + 32 : hnames[i][j]);
        if (!first)
            cd_buf_append(b, ",", 1);
        first = 0;
        cd_json_str(b, name, n);
        cd_buf_append(b, ":", 1);
        cd_json_str(b, hvalues[i], strlen(hvalues[i]));
    }
    cd_buf_append(b, "}}", 2);
    return b->oom ? -ENOMEM : 0;
}

int cd_events__hook_body_event(cd_buf *b, const cd_hook_who *w, const char *event, const cd_sio_args *args,
                               int ack)
{
    put_who(b, "event", w);
    cd_buf_append(b, ",\"event\":", 9);
    put_str(b, event);
    cd_buf_append(b, ",\"args\":", 8);
    if (args && args->json && args->json_len)
        cd_buf_append(b, args->json, args->json_len);
    else
        cd_buf_append(b, "[]", 2);
    if (args && args->nbin) {
        cd_buf_append(b, ",\"attachments\":[", 16);
        for (size_t i = 0; i < args->nbin; i++) {
            size_t n = (args->bin_len[i] + 2) / 3 * 4;
            if (cd_buf_reserve(b, n + 3) < 0)
                return -ENOMEM;
            b->p[b->len++] = i ? ',' : '"';
            if (i)
                b->p[b->len++] = '"';
            b->len += cd_events__b64_encode(args->bin[i], args->bin_len[i], b->p + b->len);
            b->p[b->len++] = '"';
            b->p[b->len] = '\0';
        }
        cd_buf_append(b, "]", 1);
    }
    cd_buf_printf(b, ",\"ack\":%s}", ack ? "true" : "false");
    return b->oom ? -ENOMEM : 0;
}

int cd_events__hook_body_disconnect(cd_buf *b, const cd_hook_who *w, const char *reason)
{
    put_who(b, "disconnect", w);
    cd_buf_append(b, ",\"reason\":", 10);
    put_str(b, reason);
    cd_buf_append(b, "}", 1);
    return b->oom ? -ENOMEM : 0;
}

/* ---- the answers ---- */

/* Walks the array at v (already checked well-formed): 1 with the next
 * item in [*it, *it_end), 0 at its end.  *cur starts at v. */
static int next_item(const char **cur, const char *end, const char **it, const char **it_end)
{
    const char *p = cd_events__json_ws(*cur, end);
    if (*p == '[' || *p == ',')
        p = cd_events__json_ws(p + 1, end);
    if (*p == ']')
        return 0;
    *it = p;
    *it_end = cd_events__json_skip(p, end, CD_EVENTS_JSON_DEPTH);
    *cur = *it_end;
    return 1;
}

static int is_array(const char *v) { return *v == '['; }

/* A member that must be a boolean: 1, 0, or -1 (wrong type). */
static int boolean(const char *v, const char *ve)
{
    if (ve - v == 4 && memcmp(v, "true", 4) == 0)
        return 1;
    if (ve - v == 5 && memcmp(v, "false", 5) == 0)
        return 0;
    return -1;
}

/* A JSON string of 1..cap-1 bytes, malloc'd into *out. */
static int string(const char *v, const char *end, size_t cap, char **out)
{
    char buf[CD_HOOK_NAME_MAX + 1];
    if (cap > sizeof buf || *v != '"')
        return -EINVAL;
    int n = cd_events__json_string(v, end, buf, cap, NULL);
    if (n <= 0)
        return -EINVAL;
    return (*out = strdup(buf)) ? 0 : -ENOMEM;
}

/* A list of room names: an array of strings, or one string. */
static int room_list(const char *v, const char *end, char ***out, size_t *n)
{
    char **l = calloc(CD_HOOK_LIST_MAX, sizeof *l);
    if (!l)
        return -ENOMEM;
    *out = l;
    if (*v == '"')
        return (*n = 1, string(v, end, CD_EVENTS_ROOM_MAX + 1, &l[0]));
    if (!is_array(v))
        return -EINVAL;
    const char *cur = v, *it, *ie;
    while (next_item(&cur, end, &it, &ie)) {
        if (*n == CD_HOOK_LIST_MAX)
            return -EINVAL;
        int rc = string(it, end, CD_EVENTS_ROOM_MAX + 1, &l[(*n)++]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Base64 strings into bins. */
static int bins(const char *v, const char *end, cd_hook_bins *b)
{
    if (!is_array(v))
        return -EINVAL;
    const char *cur = v, *it, *ie;
    while (next_item(&cur, end, &it, &ie)) {
        if (b->n == CD_EVENTS_ATTACH_MAX || *it != '"')
            return -EINVAL;
        /* base64 has no escapes: the token's bytes are the text */
        size_t len = (size_t)(ie - it) - 2;
        unsigned char *d = malloc(len / 4 * 3 + 3);
        if (!d)
            return -ENOMEM;
        b->bin[b->n++] = d;
        long got = cd_events__b64_decode(it + 1, len, d);
        if (got < 0)
            return -EINVAL;
        b->len[b->n - 1] = (size_t)got;
    }
    return 0;
}

/* One member of the answer object: NULL when absent. */
static const char *member(const char *obj, const char *end, const char *key, const char **ve)
{
    const char *v;
    return cd_events__json_get(obj, end, key, &v, ve) == 0 ? v : NULL;
}

static int parse_emit(const char *obj, const char *end, cd_hook_emit *e, const char **why)
{
    const char *v, *ve;
    int rc;
    if (*obj != '{')
        return (*why = "an emit is not an object", -EINVAL);
    if (!(v = member(obj, end, "event", &ve)) || (rc = string(v, end, CD_HOOK_NAME_MAX + 1, &e->event)) < 0)
        return (*why = "an emit has no event name (a string of 1 to 255 bytes)", -EINVAL);
    if (cd_events__reserved_event(e->event))
        return (*why = "an emit names an event Socket.IO reserves", -EINVAL);
    if ((v = member(obj, end, "args", &ve))) {
        if (!is_array(v))
            return (*why = "an emit's args is not an array", -EINVAL);
        e->args = v;
        e->args_len = (size_t)(ve - v);
    }
    if ((v = member(obj, end, "attachments", &ve)) && (rc = bins(v, end, &e->bins)) < 0)
        return (*why = "an emit's attachments are not base64 strings (at most 16)", rc);
    if (!(v = member(obj, end, "to", &ve)))
        return 0;
    if (*v != '{')
        return (*why = "an emit's to is not an object", -EINVAL);
    e->to = 1;
    const char *r;
    if ((r = member(v, end, "rooms", &ve)) && (rc = room_list(r, end, &e->rooms, &e->nrooms)) < 0)
        return (*why = "an emit's to.rooms is not a list of room names", rc);
    if ((r = member(v, end, "except", &ve)) && (rc = room_list(r, end, &e->except, &e->nexcept)) < 0)
        return (*why = "an emit's to.except is not a list of room names", rc);
    return 0;
}

static int parse_emits(const char *v, const char *end, cd_hook_answer *a, const char **why)
{
    if (!is_array(v))
        return (*why = "emit is not an array", -EINVAL);
    if (!(a->emit = calloc(CD_HOOK_LIST_MAX, sizeof *a->emit)))
        return -ENOMEM;
    const char *cur = v, *it, *ie;
    while (next_item(&cur, end, &it, &ie)) {
        if (a->nemit == CD_HOOK_LIST_MAX)
            return (*why = "more than 64 emits", -EINVAL);
        int rc = parse_emit(it, end, &a->emit[a->nemit++], why);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The members of a well-formed object at obj. */
static int parse_members(const char *obj, const char *end, cd_hook_answer *a, const char **why)
{
    const char *v, *ve;
    int rc;
    if ((v = member(obj, end, "accept", &ve)) && (a->accept = boolean(v, ve)) < 0)
        return (*why = "accept is not a boolean", -EINVAL);
    if ((v = member(obj, end, "message", &ve)) && (rc = string(v, end, CD_HOOK_NAME_MAX + 1, &a->message)) < 0)
        return (*why = "message is not a string of 1 to 255 bytes", rc);
    if ((v = member(obj, end, "data", &ve))) {
        a->data = v;
        a->data_len = (size_t)(ve - v);
    }
    if ((v = member(obj, end, "ack", &ve))) {
        if (!is_array(v))
            return (*why = "ack is not an array", -EINVAL);
        a->ack = v;
        a->ack_len = (size_t)(ve - v);
    }
    if ((v = member(obj, end, "ack_attachments", &ve)) && (rc = bins(v, end, &a->ack_bins)) < 0)
        return (*why = "ack_attachments are not base64 strings (at most 16)", rc);
    if ((v = member(obj, end, "join", &ve)) && (rc = room_list(v, end, &a->join, &a->njoin)) < 0)
        return (*why = "join is not a list of room names (1 to 128 bytes, at most 64)", rc);
    if ((v = member(obj, end, "leave", &ve)) && (rc = room_list(v, end, &a->leave, &a->nleave)) < 0)
        return (*why = "leave is not a list of room names (1 to 128 bytes, at most 64)", rc);
    if ((v = member(obj, end, "emit", &ve)) && (rc = parse_emits(v, end, a, why)) < 0)
        return rc;
    if ((v = member(obj, end, "disconnect", &ve)) && (a->disconnect = boolean(v, ve)) < 0)
        return (*why = "disconnect is not a boolean", -EINVAL);
    return 0;
}

int cd_events__hook_answer_parse(const char *body, size_t len, cd_hook_answer *a, const char **why)
{
    memset(a, 0, sizeof *a);
    a->accept = -1;
    *why = "out of memory";
    const char *end = body + len, *p = cd_events__json_ws(body, end);
    if (p == end)
        return 0; /* an empty body: nothing to do */
    const char *after = cd_events__json_skip(p, end, CD_EVENTS_JSON_DEPTH);
    if (!after || *p != '{' || cd_events__json_ws(after, end) != end)
        return (*why = "not one JSON object", -EINVAL);
    int rc = parse_members(p, after, a, why);
    if (rc == -ENOMEM)
        *why = "out of memory";
    return rc;
}

static void free_bins(cd_hook_bins *b)
{
    for (size_t i = 0; i < b->n; i++)
        free((void *)b->bin[i]);
    b->n = 0;
}

static void free_list(char **l, size_t n)
{
    if (!l)
        return;
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

void cd_events__hook_answer_free(cd_hook_answer *a)
{
    free(a->message);
    free_bins(&a->ack_bins);
    free_list(a->join, a->njoin);
    free_list(a->leave, a->nleave);
    for (size_t i = 0; a->emit && i < a->nemit; i++) {
        cd_hook_emit *e = &a->emit[i];
        free(e->event);
        free_bins(&e->bins);
        free_list(e->rooms, e->nrooms);
        free_list(e->except, e->nexcept);
    }
    free(a->emit);
    memset(a, 0, sizeof *a);
}
