/*
 * fuzz_control.c - both ends of the control plane on any bytes:
 *   - the master's request parser, cd_control_parse (master/control.c),
 *     given the input as one request off the socket;
 *   - clusterctl's reader of the master's JSON answers (ctl/reply.c:
 *     json_*; ctl/clusterctl.c: the status table, the worker count), given
 *     the input as an answer, and the escaping round trip: any text the
 *     master puts in an error (cd_json_str) reads back as the same text.
 * clusterctl's table and count are static: this file includes its source
 * with main renamed, so the code fuzzed is the code shipped.
 *
 * Invariants: a request is accepted only when it is at most
 * CD_CTL_MAX_REQUEST bytes with no NUL, as a known op (scale: 1 to
 * CD_CTL_MAX_WORKERS workers), and a refusal always says why; no crash, leak or
 * out-of-bounds read anywhere; the error text round-trips exactly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "ipc/control_proto.h"
#include "master/master.h"

#define main clusterctl_main
#include "ctl/clusterctl.c"
#undef main

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    return devnull ? 0 : -1;
}

static void request_side(const uint8_t *data, size_t size)
{
    cd_ctl_request r;
    const char *why = NULL;
    if (cd_control_parse(data, size, &r, &why) < 0) {
        if (!why || !why[0])
            abort();
        return;
    }
    if (size > CD_CTL_MAX_REQUEST || (size && memchr(data, '\0', size)))
        abort();
    if (r.op < CD_CTL_STATUS || r.op > CD_CTL_UNDRAIN) /* the last op */
        abort();
    if (r.op == CD_CTL_SCALE ? r.workers < 1 || r.workers > CD_CTL_MAX_WORKERS : r.workers != 0)
        abort();
}

static void answer_side(const uint8_t *data, size_t size)
{
    char *r = malloc(size + 1);
    if (!r)
        return;
    memcpy(r, data, size);
    r[size] = '\0';
    char err[600];
    json_bool(r, "ok");
    json_str(r, "error", err, sizeof err);
    if (strlen(err) >= sizeof err)
        abort();
    print_status(devnull, r);
    int ready, total;
    count_workers(r, -1, &ready, &total);
    count_workers(r, json_num(r, "generation"), &ready, &total);
    if (ready > total)
        abort();

    /* The master's error text (up to the first NUL, as a C string) through
     * its JSON writer and back through clusterctl's reader. */
    size_t tl = strnlen(r, 500);
    r[tl] = '\0';
    cd_buf o = {0};
    cd_buf_printf(&o, "{\"ok\":false,\"error\":");
    cd_json_str(&o, r, tl);
    cd_buf_printf(&o, "}");
    if (o.p && !o.oom) {
        json_str(o.p, "error", err, sizeof err);
        if (strcmp(err, r) != 0)
            abort();
        if (json_bool(o.p, "ok"))
            abort();
    }
    cd_buf_free(&o);
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    request_side(data, size);
    answer_side(data, size);
    return 0;
}
