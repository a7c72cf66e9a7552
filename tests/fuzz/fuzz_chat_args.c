/*
 * fuzz_chat_args.c - the chat example's reader of event arguments
 * (examples/chat/chat_args.c, compiled in here as the module compiles it).
 *
 * Besides "no crash, no out-of-bounds read", the invariants the chat
 * relies on:
 *   - a read result has at most CHAT_ARGS_MAX values, each string holding
 *     exactly its length in bytes (no NUL inside) and fitting its buffer;
 *   - it is never more lenient than the events service: an input it
 *     accepts is one well-formed JSON value for the service's scanner
 *     (which checks it before any handler sees it), and then every string
 *     it decoded is valid UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "examples/chat/chat_args.c"
#include "services/events/events.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            abort();                                                                                         \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static chat_args a;
    const char *p = (const char *)data;
    if (chat_args_parse(p, size, &a) < 0 || size == 0)
        return 0;
    CHECK(a.n >= 0 && a.n <= CHAT_ARGS_MAX);
    const char *end = cd_events__json_skip(p, p + size, CD_EVENTS_JSON_DEPTH);
    CHECK(end != NULL && cd_events__json_ws(end, p + size) == p + size);
    for (int i = 0; i < a.n; i++) {
        if (a.v[i].is_bool) {
            CHECK(a.v[i].b == 0 || a.v[i].b == 1);
            continue;
        }
        CHECK(a.v[i].len < CHAT_ARG_CAP && strlen(a.v[i].s) == a.v[i].len);
        CHECK(cd_utf8_valid(a.v[i].s, a.v[i].len));
    }
    return 0;
}
