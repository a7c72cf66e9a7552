/*
 * conf.c - the [section] of an events service: its keys (a cd_conf_key
 * table, clusterd/conf.h: clusterd parses and bounds them), their defaults,
 * the cross-key checks, and the Origin allowlist (master and workers: the
 * master validates the config, each worker parses the same bytes again
 * and reads the result only).
 *
 * The defaults are Socket.IO's own, so clients behave as they do against
 * Node.  The check that matters most: a broadcast (one message plus the
 * names of the rooms it goes to) must fit in one bus message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
static int set_origins(void *conf, const char *value, char *err, size_t errlen)
{
    cd_events_conf *c = conf;
    char *copy = strdup(value), *save = NULL;
    if (!copy)
        goto nomem;
    free_origins(c);
    for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        if (strcmp(t, "*") == 0) {
            free_origins(c);
            break;
        }
        char **n = realloc(c->origins, (c->norigins + 1) * sizeof *n);
        if (!n)
            goto nomem;
        c->origins = n;
        if (!(c->origins[c->norigins] = strdup(t)))
            goto nomem;
        c->norigins++;
    }
    free(copy);
    return 0;
nomem:
    free(copy);
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Bounds: pings from 100 ms (a test's pace) to 1 h; a message from 1k to
 * Socket.IO's own default maxPayload; a queue of at least one message
 * (conf_check) up to 1g. */
const cd_conf_key cd_events__keys[] = {
    CD_CONF_KEY("ping_interval", CD_KEY_MS, cd_events_conf, ping_interval_ms, 100, 3600000),
    CD_CONF_KEY("ping_timeout", CD_KEY_MS, cd_events_conf, ping_timeout_ms, 100, 3600000),
    CD_CONF_KEY("max_message_size", CD_KEY_SIZE, cd_events_conf, max_message_size, 1024, 1000000),
    CD_CONF_KEY("max_send_queue", CD_KEY_SIZE, cd_events_conf, max_send_queue, 1024, 1LL << 30),
    CD_CONF_KEY("max_clients", CD_KEY_INT, cd_events_conf, max_clients, 1, 1000000),
    CD_CONF_KEY("max_rooms", CD_KEY_INT, cd_events_conf, max_rooms, 1, 1024),
    CD_CONF_KEY_FUNC("origins", set_origins),
    {0},
};

static int set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
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
