/*
 * fuzz_conf.c - whole configuration files through the real parser
 * (conf/conf.c with libinih, the key tables and every service's conf hooks).
 *
 * The input is the file's bytes.  Whatever they are, cd_conf_load_text must
 * either build a config or fail with "file:line: why"; never crash, leak or
 * read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cd_conf *c = NULL;
    char err[512];

    if (cd_conf_load_text("fuzz.ini", (const char *)data, size, &c, err, sizeof err) == 0)
        cd_conf_free(c);
    else if (strncmp(err, "fuzz.ini", 8) != 0)
        abort(); /* every error names the file */
    return 0;
}
