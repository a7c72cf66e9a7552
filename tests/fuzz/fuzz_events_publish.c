/*
 * fuzz_events_publish.c - POST {route}/publish bodies through
 * cd_events__publish_parse (services/events/events_proto.c), the function
 * cd_events__publish (broadcast.c) uses to check a body and build the packet it
 * broadcasts.
 *
 * Invariants: a refused body gets -EINVAL, -EMSGSIZE or -ENOMEM with a
 * reason and no packet; an accepted one yields a room name of 1 to
 * CD_EVENTS_ROOM_MAX bytes (valid UTF-8, no NUL) and a packet that is valid
 * UTF-8 (it goes to clients in text frames), within max_message_size, and
 * a well-formed Socket.IO EVENT whose name is not a reserved one: exactly
 * what a client may receive.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/text.h"
#include "services/events/events.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            abort();                                                                                         \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t max = 4096; /* small, so the size limit is reached too */
    cd_events_publish p;
    const char *why = NULL;
    int rc = cd_events__publish_parse((const char *)data, size, max, &p, &why);
    if (rc < 0) {
        CHECK(rc == -EINVAL || rc == -EMSGSIZE || rc == -ENOMEM);
        CHECK(why && *why && !p.packet);
        return 0;
    }
    CHECK(rc == 0);
    CHECK(p.room_len >= 1 && p.room_len <= CD_EVENTS_ROOM_MAX && strlen(p.room) == p.room_len);
    CHECK(cd_utf8_valid(p.room, p.room_len));
    CHECK(p.packet && p.packet_len <= max && p.packet_len > 2);
    CHECK(cd_utf8_valid(p.packet, p.packet_len));
    /* "4" + Socket.IO EVENT, like every message a client gets. */
    CHECK(p.packet[0] == '4');
    cd_sio_packet s;
    CHECK(cd_events__sio_parse(p.packet + 1, p.packet_len - 1, &s) == 0);
    CHECK(s.type == CD_SIO_EVENT && s.ack_id == -1 && s.nsp_len == 1);
    const char *e = cd_events__json_skip(s.data, p.packet + p.packet_len, CD_EVENTS_JSON_DEPTH);
    CHECK(e == p.packet + p.packet_len);
    char name[16];
    int n = cd_events__json_string(s.name, s.name + s.name_len, name, sizeof name, NULL);
    CHECK(n != 0 && (n < 0 || !cd_events__reserved_event(name)));
    free(p.packet);
    return 0;
}
