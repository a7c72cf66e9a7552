/*
 * chat_args.h - the chat example's reader of an event's arguments (any
 * process, any thread; pure: no loop, no socket, no allocation).
 *
 * The chat's events take only strings and booleans, positionally
 * (["lobby", "hi"], ["lobby", true]), so this reads a JSON array of those
 * and nothing else: a number, an object, an array or null among them is
 * refused, and the handler answers "bad arguments".  The events service
 * checks that the JSON is well-formed before a handler sees it, but this
 * reader assumes nothing of the sort (tests/fuzz/fuzz_chat_args.c).
 */
#ifndef CHAT_ARGS_H
#define CHAT_ARGS_H

#include <stddef.h>

#define CHAT_ARGS_MAX 4      /* arguments read; more are refused */
#define CHAT_ARG_CAP 1024    /* decoded bytes of one string, with its NUL */

typedef struct chat_args {
    int n;
    struct {
        int is_bool;          /* else a string */
        int b;                /* the boolean */
        size_t len;           /* the string's decoded length (UTF-8) */
        char s[CHAT_ARG_CAP]; /* NUL-terminated; a string holding NUL is refused */
    } v[CHAT_ARGS_MAX];
} chat_args;

/* Reads json[0..len) as an array of at most CHAT_ARGS_MAX strings or
 * booleans (len 0: no arguments).  0, or -EINVAL (not such an array),
 * -E2BIG (too many, or a string longer than CHAT_ARG_CAP - 1 bytes). */
int chat_args_parse(const char *json, size_t len, chat_args *out);

#endif
