/*
 * registry.c - the list of service types.  Adding a service is one line
 * here plus its file in services/.
 */
#include "services/service.h"

#include <string.h>

extern const cd_service_type cd_service_dummy;
extern const cd_service_type cd_service_readmongo;
extern const cd_service_type cd_service_metrics;
extern const cd_service_type cd_service_health;
extern const cd_service_type cd_service_events;

const cd_service_type *const cd_service_types[] = {
    &cd_service_dummy,
    &cd_service_readmongo,
    &cd_service_metrics,
    &cd_service_health,
    &cd_service_events,
    NULL,
};

const cd_service_type *cd_service_lookup(const char *type)
{
    for (size_t i = 0; cd_service_types[i]; i++)
        if (strcmp(cd_service_types[i]->name, type) == 0)
            return cd_service_types[i];
    return NULL;
}
