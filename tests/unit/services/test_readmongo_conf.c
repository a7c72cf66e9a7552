/*
 * test_readmongo_conf.c - unit tests of the readmongo service's config
 * (its key table and conf_new/conf_check, services/readmongo/conf.c), the code the
 * master runs to validate a [readmongo] section.  Runs in criterion's test
 * processes; no database, no worker.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "conf/keys.h"
#include "services/readmongo/readmongo.h"
#include "services/service.h"

extern const cd_service_type cd_service_readmongo;

static const cd_service_type *t = &cd_service_readmongo;

static int set(void *c, const char *k, const char *v)
{
    char err[256] = "";
    int rc = cd_conf_key_set(t->keys, c, k, v, err, sizeof err);
    if (rc == -1)
        cr_assert(err[0], "%s = %s: no message", k, v);
    return rc;
}

static int check(void *c, char *err, size_t errlen)
{
    err[0] = '\0';
    return t->conf_check(c, err, errlen);
}

Test(readmongo_conf, defaults_are_short_and_complete)
{
    char err[256];
    cd_readmongo_conf *c = t->conf_new();

    cr_assert_eq(set(c, "collections", "users, orders products"), 0);
    cr_assert_eq(check(c, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(c->uri, "mongodb://127.0.0.1:27017");
    cr_assert_str_eq(c->database, "demo");
    cr_assert_eq(c->ncollections, 3);
    cr_assert_str_eq(c->collections[2], "products");
    cr_assert_eq(c->server_selection_timeout_ms, 2000);
    cr_assert_eq(c->connect_timeout_ms, 1000);
    cr_assert_gt(c->socket_timeout_ms, c->max_time_ms);
    cr_assert_leq(c->socket_timeout_ms, 5000);
    cr_assert_leq(c->default_limit, c->max_limit);
    t->conf_free(c);
}

Test(readmongo_conf, keys_with_units)
{
    char err[256];
    cd_readmongo_conf *c = t->conf_new();

    cr_assert_eq(set(c, "uri", "mongodb://db.example:27018/shop?appname=x"), 0);
    cr_assert_eq(set(c, "collections", "a"), 0);
    cr_assert_eq(set(c, "concurrency", "4"), 0);
    cr_assert_eq(set(c, "queue_size", "10"), 0);
    cr_assert_eq(set(c, "queue_timeout", "750ms"), 0);
    cr_assert_eq(set(c, "max_time", "3s"), 0);
    cr_assert_eq(set(c, "max_filter_size", "4k"), 0);
    cr_assert_eq(set(c, "max_filter_depth", "8"), 0);
    cr_assert_eq(set(c, "max_response_size", "1m"), 0);
    cr_assert_eq(c->stream_chunk, 64 * 1024, "stream_chunk defaults to 64k");
    cr_assert_eq(set(c, "stream_chunk", "16k"), 0);
    cr_assert_eq(check(c, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(c->database, "shop", "the URI's database when `database` is absent");
    cr_assert_eq(c->concurrency, 4);
    cr_assert_eq(set(c, "threads", "3"), 0, "the old name of concurrency is still read");
    cr_assert_eq(c->concurrency, 3);
    cr_assert_eq(c->queue_timeout_ms, 750);
    cr_assert_eq(c->max_time_ms, 3000);
    cr_assert_eq(c->socket_timeout_ms, 4000, "default socket timeout follows max_time");
    cr_assert_eq(c->max_filter_size, 4096);
    cr_assert_eq(c->max_response_size, 1024 * 1024);
    cr_assert_eq(c->stream_chunk, 16 * 1024);
    t->conf_free(c);
}

Test(readmongo_conf, timeouts_from_uri_unless_configured)
{
    char err[256];
    cd_readmongo_conf *c = t->conf_new();

    cr_assert_eq(set(c, "uri", "mongodb://h/?serverSelectionTimeoutMS=700&socketTimeoutMS=9000"), 0);
    cr_assert_eq(set(c, "collections", "a"), 0);
    cr_assert_eq(set(c, "connect_timeout", "300ms"), 0);
    cr_assert_eq(set(c, "socket_timeout", "5s"), 0);
    cr_assert_eq(check(c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c->server_selection_timeout_ms, 700);
    cr_assert_eq(c->connect_timeout_ms, 300);
    cr_assert_eq(c->socket_timeout_ms, 5000, "the config key wins over the URI");
    t->conf_free(c);
}

Test(readmongo_conf, refuses_bad_values)
{
    cd_readmongo_conf *c = t->conf_new();

    cr_assert_eq(set(c, "no_such_key", "1"), -2);
    cr_assert_eq(set(c, "concurrency", "0"), -1);
    cr_assert_eq(set(c, "concurrency", "lots"), -1);
    cr_assert_eq(set(c, "threads", "65"), -1);
    cr_assert_eq(set(c, "queue_size", "-1"), -1);
    cr_assert_eq(set(c, "max_time", "soon"), -1);
    cr_assert_eq(set(c, "max_filter_size", "2g"), -1);
    cr_assert_eq(set(c, "max_filter_depth", "1000"), -1);
    cr_assert_eq(set(c, "stream_chunk", "100"), -1);
    cr_assert_eq(set(c, "stream_chunk", "1g"), -1);
    cr_assert_eq(set(c, "collections", "ok, system.users"), -1);
    cr_assert_eq(set(c, "collections", "a$b"), -1);
    cr_assert_eq(set(c, "database", "a.b"), -1);
    cr_assert_eq(set(c, "database", ""), -1);
    t->conf_free(c);
}

Test(readmongo_conf, check_catches_inconsistencies)
{
    char err[256];
    cd_readmongo_conf *c;

    c = t->conf_new();
    cr_assert_eq(check(c, err, sizeof err), -1, "no collections");
    cr_assert(strstr(err, "collections"), "%s", err);
    t->conf_free(c);

    c = t->conf_new();
    set(c, "collections", "a");
    set(c, "uri", "http://not-mongo");
    cr_assert_eq(check(c, err, sizeof err), -1);
    cr_assert(strstr(err, "uri"), "%s", err);
    t->conf_free(c);

    c = t->conf_new();
    set(c, "collections", "a");
    set(c, "max_time", "2s");
    set(c, "socket_timeout", "2s");
    cr_assert_eq(check(c, err, sizeof err), -1);
    cr_assert(strstr(err, "socket_timeout"), "%s", err);
    t->conf_free(c);

    c = t->conf_new();
    set(c, "collections", "a");
    set(c, "default_limit", "50");
    set(c, "max_limit", "10");
    cr_assert_eq(check(c, err, sizeof err), -1);
    cr_assert(strstr(err, "default_limit"), "%s", err);
    t->conf_free(c);
}
