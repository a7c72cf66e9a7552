/*
 * clusterd/clusterd.h - the whole public API in one include (installed).
 *
 * Only what the headers of include/clusterd/ declare is API; the rest of
 * clusterd is private and may change in any release.  The API's version is
 * CLUSTERD_ABI_VERSION (clusterd/service.h), checked when a module loads.
 * clusterd/websocket.h is left out: its functions are compiled into the
 * modules that use them (events), not exported by the clusterd executable.
 */
#ifndef CLUSTERD_CLUSTERD_H
#define CLUSTERD_CLUSTERD_H

#include "clusterd/buf.h"
#include "clusterd/conf.h"
#include "clusterd/fiber.h"
#include "clusterd/json.h"
#include "clusterd/log.h"
#include "clusterd/pool.h"
#include "clusterd/request.h"
#include "clusterd/service.h"
#include "clusterd/text.h"
#include "clusterd/timer.h"

#endif
