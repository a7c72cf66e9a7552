/*
 * fuzz_events_hook.c - the answers of the events service's HTTP hooks
 * (outside input: an application backend's JSON) through
 * cd_events__hook_answer_parse (services/events/hook_proto.c), the parser
 * hooks.c applies an answer with.
 *
 * Invariants: a refused answer gets -EINVAL (with a reason) or -ENOMEM.
 * An accepted one holds only what the handler API may be given: accept
 * -1, 0 or 1; a message of 1 to CD_HOOK_NAME_MAX bytes without NUL;
 * data, ack and every emit's args well-formed JSON lying inside the body
 * (ack and args arrays); room names of 1 to CD_EVENTS_ROOM_MAX bytes of
 * valid UTF-8 without NUL, at most CD_HOOK_LIST_MAX per list; at most
 * CD_HOOK_LIST_MAX emits whose event names are 1 to CD_HOOK_NAME_MAX
 * bytes, valid UTF-8 and not reserved; at most CD_EVENTS_ATTACH_MAX
 * attachments each.  Freeing leaves nothing behind (ASan).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "services/events/hooks.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            abort();                                                                                         \
    } while (0)

static void check_str(const char *s, size_t max)
{
    size_t len = strlen(s);
    CHECK(len >= 1 && len <= max && cd_utf8_valid(s, len));
}

static void check_list(char **l, size_t n)
{
    CHECK(n <= CD_HOOK_LIST_MAX);
    for (size_t i = 0; i < n; i++)
        check_str(l[i], CD_EVENTS_ROOM_MAX);
}

/* [v, v + len) is one well-formed JSON value inside [body, end), of kind
 * open ('[' for arrays, 0 for any). */
static void check_json(const char *v, size_t len, const char *body, const char *end, char open)
{
    CHECK(v >= body && v + len <= end && len > 0);
    CHECK(!open || v[0] == open);
    CHECK(cd_events__json_skip(v, v + len, CD_EVENTS_JSON_DEPTH) == v + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data, *end = body + size;
    cd_hook_answer a;
    const char *why = NULL;
    int rc = cd_events__hook_answer_parse(body, size, &a, &why);
    if (rc < 0) {
        CHECK((rc == -EINVAL || rc == -ENOMEM) && why && *why);
        cd_events__hook_answer_free(&a);
        return 0;
    }
    CHECK(rc == 0);
    CHECK(a.accept >= -1 && a.accept <= 1);
    CHECK(a.disconnect == 0 || a.disconnect == 1);
    if (a.message)
        CHECK(strlen(a.message) >= 1 && strlen(a.message) <= CD_HOOK_NAME_MAX);
    if (a.data)
        check_json(a.data, a.data_len, body, end, 0);
    if (a.ack)
        check_json(a.ack, a.ack_len, body, end, '[');
    CHECK(a.ack_bins.n <= CD_EVENTS_ATTACH_MAX);
    check_list(a.join, a.njoin);
    check_list(a.leave, a.nleave);
    CHECK(a.nemit <= CD_HOOK_LIST_MAX);
    for (size_t i = 0; i < a.nemit; i++) {
        const cd_hook_emit *e = &a.emit[i];
        check_str(e->event, CD_HOOK_NAME_MAX);
        CHECK(!cd_events__reserved_event(e->event));
        if (e->args)
            check_json(e->args, e->args_len, body, end, '[');
        CHECK(e->bins.n <= CD_EVENTS_ATTACH_MAX);
        check_list(e->rooms, e->nrooms);
        check_list(e->except, e->nexcept);
        CHECK(e->to || (!e->nrooms && !e->nexcept));
    }
    cd_events__hook_answer_free(&a);
    return 0;
}
