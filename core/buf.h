/*
 * buf.h - the growable buffer is public API now: include/clusterd/buf.h.
 * This name stays for the layers that used it.
 */
#include "clusterd/buf.h"
