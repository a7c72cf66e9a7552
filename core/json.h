/*
 * json.h - the JSON string writer is public API now:
 * include/clusterd/json.h.  This name stays for the layers that used it.
 */
#include "clusterd/json.h"
