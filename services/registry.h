/*
 * registry.h - binding config sections to service types (master and workers).
 */
#ifndef CD_SERVICES_REGISTRY_H
#define CD_SERVICES_REGISTRY_H

#include <stddef.h>

#include "conf/conf.h"

/* The binder conf/ calls for every service section (a cd_conf_bind_fn;
 * clusterd registers it with cd_conf_set_binder before reading a config).
 * Finds the section's type (loading its module), builds its conf from
 * conf_new, the type's `keys` and conf_check.  Returns 0, or -1 with
 * "path:line: why" in err. */
int cd_service_bind(cd_conf_service *svc, const char *path, char *err, size_t errlen);

/* The dlopen handle of the module file `value` names, as `module = value`
 * does: an absolute path, or a bare name (NAME or NAME.so) searched in the
 * module directories, then in extra_dir (when not NULL); each file mapped
 * once, and afresh when it changed.  Its path in path (pathlen bytes, at
 * least 1300).  NULL with the reason in err.  (services/sio.c loads
 * Socket.IO handler modules with it.) */
void *cd_module_load(const char *value, const char *extra_dir, char *path, size_t pathlen, char *err, size_t errlen);

#endif
