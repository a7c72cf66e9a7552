/*
 * fuzz_events_auth.c - Socket.IO CONNECT payloads through
 * cd_events__auth_check (services/events/auth.c), the JWT check a worker
 * makes when auth = jwt: the JSON around the token, the token's base64url
 * parts, libjwt's parsing of its header and claims, and auth.c's reading of
 * exp, nbf, sub and the rooms claim.
 *
 * The key is an HS256 secret (written to a scratch file once, as a config
 * would name it); the seed corpus holds tokens signed with it, valid until
 * 2100, so the claim readers are reached, not only the signature check.
 *
 * Invariants: the answer is 0 or -EACCES (-ENOMEM only when out of memory)
 * with one of the four reasons the spec names; an accepted identity has a
 * user that is NULL or 1 to CD_EVENTS_ROOM_MAX - 5 bytes, and room patterns
 * that are C strings; nothing leaks (identity_free).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "services/events/events.h"

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            abort();                                                                                         \
    } while (0)

/* The secret the seed corpus is signed with. */
#define SECRET "clusterd-fuzz-secret-0123456789ab"

static cd_events_auth *load(void)
{
    char path[] = "/tmp/cd_fuzz_auth_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, SECRET "\n", sizeof SECRET) == (ssize_t)sizeof SECRET);
    close(fd);
    cd_events_conf *conf = cd_events__conf_new();
    CHECK(conf);
    conf->auth = CD_EVENTS_AUTH_JWT;
    conf->jwt_key_file = strdup(path);
    cd_events_auth *a = NULL;
    char err[256];
    CHECK(cd_events__auth_new(conf, &a, err, sizeof err) == 0);
    cd_events__conf_free(conf);
    unlink(path);
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cd_events_auth *a;
    if (!a)
        a = load(); /* kept for the process's life, as a worker keeps it */
    cd_events_identity id;
    const char *why = NULL;
    int rc = cd_events__auth_check(a, (const char *)data, size, &id, &why);
    if (rc < 0) {
        CHECK(rc == -EACCES || rc == -ENOMEM);
        CHECK(why);
        CHECK(!strcmp(why, "missing token") || !strcmp(why, "invalid token") || !strcmp(why, "token expired") ||
              !strcmp(why, "token not yet valid"));
        CHECK(!id.user && !id.rooms && !id.nrooms);
        return 0;
    }
    CHECK(rc == 0);
    CHECK(!id.user || (strlen(id.user) >= 1 && strlen(id.user) <= CD_EVENTS_ROOM_MAX - 5));
    for (size_t i = 0; i < id.nrooms; i++)
        CHECK(id.rooms[i] && strlen(id.rooms[i]) <= CD_EVENTS_ROOM_MAX);
    (void)cd_events__room_allowed(&id, "team:42:general");
    cd_events__identity_free(&id);
    return 0;
}
