/*
 * redis_mp.h - the msgpack reader and the JSON <-> msgpack conversion of
 * redis_json.c, shared with redis_msg.c (pure; events module, its unit
 * tests and fuzz target).
 */
#ifndef CD_EVENTS_REDIS_MP_H
#define CD_EVENTS_REDIS_MP_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "clusterd/buf.h"

/* A bounded reader over [p, end). */
typedef struct cd_mp {
    const unsigned char *p, *end;
} cd_mp;
enum { CD_MP_NIL, CD_MP_BOOL, CD_MP_INT, CD_MP_UINT, CD_MP_FLOAT, CD_MP_STR, CD_MP_BIN, CD_MP_EXT, CD_MP_ARRAY, CD_MP_MAP };
typedef struct cd_mp_val {
    int kind;
    int b;              /* BOOL */
    int64_t i;          /* INT (every integer that fits int64) */
    uint64_t u;         /* UINT: above INT64_MAX */
    double f;           /* FLOAT (32 or 64) */
    signed char ext;    /* EXT's type */
    const unsigned char *ptr; /* STR, BIN, EXT: the payload */
    size_t len;         /* STR, BIN, EXT: bytes; ARRAY: items; MAP: entries (their items follow) */
} cd_mp_val;
/* Reads one header (and a STR, BIN or EXT's payload).  0 or -EINVAL
 * (truncated, 0xc1, a count over the bytes left). */
int cd_mp_next(cd_mp *r, cd_mp_val *v);
/* Skips one whole value, nesting at most depth.  0 or -EINVAL. */
int cd_mp_skip(cd_mp *r, int depth);
/* One value to JSON appended to b (redis_json.c's rules); bins become
 * placeholders numbered from *nbin, and (bin not NULL) bin[k], bin_len[k]
 * is the one placeholder k names: the text and its attachments come from
 * the same walk.  0, -EINVAL, -EMSGSIZE (over CD_EVENTS_BUS_ATTACH_MAX
 * bins), -ENOMEM. */
int cd_mp_to_json(cd_mp *r, cd_buf *b, size_t *nbin, const char **bin, size_t *bin_len);
/* Attachments a packet's placeholders name. */
typedef struct cd_mp_att {
    size_t n;
    const char *const *data;
    const size_t *len;
} cd_mp_att;
/* Packs the JSON value [p, end) (whitespace around allowed), each
 * placeholder replaced by its attachment of att (NULL: none) as bin.
 * 0, -EINVAL, -ENOMEM. */
int cd_mp_pack_json(msgpack_packer *pk, const char *p, const char *end, const cd_mp_att *att);

#endif
