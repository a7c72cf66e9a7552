/*
 * request.h - the request API now lives in the public header
 * include/clusterd/request.h; this name stays for the layers that used it.
 */
#include "clusterd/request.h"
