/*
 * conf.c - the [section] of an events service: its keys, their defaults
 * and bounds, the cross-key checks, and the Origin allowlist (master and
 * workers: the master validates the config, each worker parses the same
 * bytes again and reads the result only).
 *
 * The defaults are Socket.IO's own, so clients behave as they do against
 * Node.  The check that matters most: a broadcast (one message plus the
 * names of the rooms it goes to) must fit in one bus message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "services/events/events.h"

#define BUS_MSG_MAX (1 << 20) /* ipc/bus.c's largest message */

void *cd_events__conf_new(void)
{
    cd_events_conf *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    /* Socket.IO's own defaults, so clients behave as they do with Node. */
    c->ping_interval_ms = 25000;
    c->ping_timeout_ms = 20000;
    c->max_message_size = 1000000;
    c->max_send_queue = 4 << 20;
    c->max_clients = 10000;
    c->max_rooms = 64;
    return c;
}

static void free_origins(cd_events_conf *c)
{
    for (size_t i = 0; i < c->norigins; i++)
        free(c->origins[i]);
    free(c->origins);
    c->origins = NULL;
    c->norigins = 0;
}

/* Origins: "https://a.example, http://localhost:3000"; "*" or empty: any. */
static int set_origins(cd_events_conf *c, const char *value)
{
    char *copy = strdup(value), *save = NULL;
    int rc = -1;
    if (!copy)
        return -1;
    free_origins(c);
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        if (strcmp(t, "*") == 0) {
            free_origins(c);
            break;
        }
        char **n = realloc(c->origins, (c->norigins + 1) * sizeof *n);
        if (!n)
            goto out;
        c->origins = n;
        if (!(c->origins[c->norigins] = strdup(t)))
            goto out;
        c->norigins++;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

static int set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

int cd_events__conf_set(void *conf, const char *key, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    long long v;
    if (strcmp(key, "ping_interval") == 0 || strcmp(key, "ping_timeout") == 0) {
        if (cd_parse_duration_ms(value, &v) < 0 || v < 100 || v > 3600000)
            return set_err(err, errlen, "expected a duration between 100ms and 1h, e.g. 25s");
        *(key[5] == 'i' ? &c->ping_interval_ms : &c->ping_timeout_ms) = v;
        return 0;
    }
    if (strcmp(key, "max_message_size") == 0) {
        if (cd_parse_size(value, &v) < 0 || v < 1024 || v > 1000000)
            return set_err(err, errlen, "expected a size between 1k and 1000000");
        c->max_message_size = v;
        return 0;
    }
    if (strcmp(key, "max_send_queue") == 0) {
        if (cd_parse_size(value, &v) < 0 || v < 1024 || v > (1LL << 30))
            return set_err(err, errlen, "expected a size between 1k and 1g");
        c->max_send_queue = v;
        return 0;
    }
    if (strcmp(key, "max_clients") == 0) {
        if (cd_parse_int(value, 1, 1000000, &v) < 0)
            return set_err(err, errlen, "expected an integer between 1 and 1000000");
        c->max_clients = v;
        return 0;
    }
    if (strcmp(key, "max_rooms") == 0) {
        if (cd_parse_int(value, 1, 1024, &v) < 0)
            return set_err(err, errlen, "expected an integer between 1 and 1024");
        c->max_rooms = v;
        return 0;
    }
    if (strcmp(key, "origins") == 0) {
        if (set_origins(c, value) < 0)
            return set_err(err, errlen, "out of memory");
        return 0;
    }
    return -2;
}

int cd_events__conf_check(void *conf, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    if (c->max_send_queue < c->max_message_size)
        return set_err(err, errlen, "max_send_queue must be at least max_message_size");
    /* A broadcast must fit in one bus message (1m) with its room list. */
    if (c->max_message_size + c->max_rooms * (2 + CD_EVENTS_ROOM_MAX) + 64 > BUS_MSG_MAX)
        return set_err(err, errlen, "max_message_size plus max_rooms room names must fit in a 1m bus "
                                    "message: lower one of them");
    return 0;
}

void cd_events__conf_free(void *conf)
{
    cd_events_conf *c = conf;
    free_origins(c);
    free(c);
}

int cd_events__origin_allowed(const cd_events_conf *conf, const char *origin)
{
    if (!conf->norigins || !origin) /* non-browser clients send none */
        return 1;
    for (size_t i = 0; i < conf->norigins; i++)
        if (strcasecmp(conf->origins[i], origin) == 0)
            return 1;
    return 0;
}
