/*
 * reply.h - clusterctl's reader of the master's answers (clusterctl
 * process): the flat JSON objects of ipc/control_proto.h, read by key.
 *
 * The master writes every answer itself (master/control.c), one object
 * with at most one level of arrays ("workers", the latency buckets), so a
 * reader that finds "key": and reads the value after it is enough, and
 * clusterctl needs no JSON library.  Everything here is pure and bounded by
 * the NUL at the end of the answer; tests/fuzz/fuzz_control.c and
 * fuzz_top.c run it on any bytes.  Used by clusterctl.c (the commands) and
 * top_view.c (the live view).
 */
#ifndef CD_CTL_REPLY_H
#define CD_CTL_REPLY_H

#include <stddef.h>

/* The raw value text after the first "key": in json, or NULL. */
const char *json_find(const char *json, const char *key);
/* The number after "key":, or -1 when absent. */
double json_num(const char *json, const char *key);
/* Whether "key": is true. */
int json_bool(const char *json, const char *key);
/* The string value of "key" into out (cap >= 1 bytes), its escapes decoded;
 * "" when absent; cut to fit (never in the middle of a character). */
void json_str(const char *json, const char *key, char *out, size_t cap);
/* Iterates over the objects of "workers":[...]: the start of the next one
 * at or after p, or NULL. */
const char *next_worker(const char *p);
/* Reads the array of numbers after "key": into out (at most max of them);
 * returns how many, or -1 when key is absent or not an array. */
int json_nums(const char *json, const char *key, double *out, int max);

#endif
