/*
 * fuzz_events_proto.c - the events service's pure codecs
 * (services/events/events_proto.c): the JSON scanner and string decoder,
 * member lookup and Socket.IO packet parsing (the bus messages are
 * fuzz_events_bus.c's); and the WebSocket handshake's header helpers
 * (http/websocket.c).
 * Every input goes through all of them.
 *
 * Besides "no crash, no out-of-bounds read", the invariants the service
 * relies on:
 *   - an accepted JSON value's span lies within the input, and scanning
 *     that span alone accepts exactly it again;
 *   - a decoded string is valid UTF-8 without NUL, fits its buffer, and
 *     ends where the scanner says the token ends;
 *   - a parsed EVENT's (or BINARY_EVENT's) name and arguments lie within
 *     the packet, and the packet the service relays for it ("2[" name
 *     ["," args] "]", or "5<n>-[...]") parses again to the same name,
 *     arguments and attachment count; a binary packet announces at most
 *     CD_EVENTS_ATTACH_MAX attachments, and names "_placeholder" when
 *     it announces any.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "clusterd/websocket.h"
#include "services/events/events.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            abort();                                                                                         \
    } while (0)

static void check_json(const char *s, const char *end)
{
    const char *e = cd_events__json_skip(s, end, CD_EVENTS_JSON_DEPTH);
    if (!e)
        return;
    CHECK(e > s && e <= end);
    CHECK(cd_events__json_skip(s, e, CD_EVENTS_JSON_DEPTH) == e);
    const char *v = cd_events__json_ws(s, e);
    CHECK(cd_events__json_skip(v, e, CD_EVENTS_JSON_DEPTH) == e);
    /* What the scanner accepts may go to clients in text frames. */
    CHECK(cd_utf8_valid(v, (size_t)(e - v)));
    if (*v == '"') {
        char out[64];
        const char *next = NULL;
        int n = cd_events__json_string(v, e, out, sizeof out, &next);
        CHECK(n >= 0 || n == -EINVAL || n == -E2BIG);
        if (n >= 0) {
            CHECK((size_t)n < sizeof out && out[n] == '\0' && strlen(out) == (size_t)n);
            CHECK(next == e);
            CHECK(cd_utf8_valid(out, (size_t)n));
        }
    }
    static const char *const keys[] = {"room", "event", "args", ""};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *val = NULL, *val_end = NULL;
        int rc = cd_events__json_get(s, end, keys[k], &val, &val_end);
        CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL);
        CHECK(rc != -EINVAL || *v != '{'); /* a well-formed object is never -EINVAL */
        if (rc == 0) {
            CHECK(*v == '{' && val >= s && val < val_end && val_end <= e);
            CHECK(cd_events__json_skip(val, val_end, CD_EVENTS_JSON_DEPTH) == val_end);
        }
    }
}

/* Whether needle occurs in [h, h + n). */
static int strstr_len(const char *h, size_t n, const char *needle)
{
    return h && memmem(h, n, needle, strlen(needle)) != NULL;
}

static void check_sio(const char *s, size_t len)
{
    cd_sio_packet p;
    int rc = cd_events__sio_parse(s, len, &p);
    CHECK(rc == 0 || rc == -EPROTO || rc == -EMSGSIZE);
    if (rc != 0)
        return;
    const char *end = s + len;
    int binary = p.type == CD_SIO_BINARY_EVENT || p.type == CD_SIO_BINARY_ACK;
    CHECK(p.type >= CD_SIO_CONNECT && p.type <= CD_SIO_BINARY_ACK && p.type != CD_SIO_CONNECT_ERROR);
    CHECK(!p.data || (p.data >= s && p.data + p.data_len == end));
    CHECK(p.nsp_len >= 1);
    CHECK(binary ? p.nattach <= CD_EVENTS_ATTACH_MAX : p.nattach == 0);
    CHECK(!binary || !p.nattach || strstr_len(p.data, p.data_len, "_placeholder"));
    if (p.type != CD_SIO_EVENT && p.type != CD_SIO_BINARY_EVENT)
        return;
    CHECK(p.name >= s && p.name + p.name_len <= end && p.name_len >= 2 && p.name[0] == '"');
    CHECK(p.args >= p.name + p.name_len && p.args + p.args_len <= end);
    /* The relayed packet, built the way socketio.c's relay_event builds
     * it: the same name, arguments and attachment count. */
    size_t rl = 24 + p.name_len + 1 + p.args_len + 1;
    char *r = malloc(rl);
    CHECK(r);
    size_t o = binary ? (size_t)snprintf(r, rl, "5%zu-[", p.nattach) : (memcpy(r, "2[", 2), 2);
    memcpy(r + o, p.name, p.name_len), o += p.name_len;
    if (p.args_len) {
        r[o++] = ',';
        memcpy(r + o, p.args, p.args_len), o += p.args_len;
    }
    r[o++] = ']';
    cd_sio_packet q;
    CHECK(cd_events__sio_parse(r, o, &q) == 0 && q.type == p.type && q.nattach == p.nattach);
    CHECK(q.name_len == p.name_len && memcmp(q.name, p.name, p.name_len) == 0);
    CHECK(q.args_len == p.args_len && memcmp(q.args, p.args, p.args_len) == 0);
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *end = s + size;
    check_json(s, end);
    check_sio(s, size);
    /* Engine.IO messages: the Socket.IO packet follows a '4'. */
    if (size && s[0] == '4')
        check_sio(s + 1, size - 1);
    (void)cd_utf8_valid(s, size);

    /* The header helpers take C strings. */
    char *z = malloc(size + 1);
    CHECK(z);
    memcpy(z, data, size);
    z[size] = '\0';
    (void)cd_ws_header_has_token(z, "websocket");
    char acc[29];
    if (cd_ws_accept_key(z, acc) == 0)
        CHECK(strlen(acc) == 28);
    free(z);
    return 0;
}
