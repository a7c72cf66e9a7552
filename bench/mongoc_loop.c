/*
 * mongoc_loop.c - the raw ceiling for the readmongo benchmark.
 *
 *   mongoc_loop URI COLLECTION FILTER_JSON LIMIT THREADS SECONDS [--json]
 *
 * THREADS threads share one mongoc_client_pool and run the same find
 * (filter, limit) back to back for SECONDS seconds, iterating every returned
 * document and turning it into relaxed extended JSON (what an HTTP server has
 * to do before it can answer).  No HTTP, no event loop: no HTTP server doing
 * the same find at the same concurrency can beat it.  Prints one line:
 *   ops=N errors=E seconds=S ops_per_s=R docs_per_op=D p50_us=.. p99_us=..
 * or with --json the same as one JSON object.
 *
 * Built by bench/run.sh:
 *   gcc -O2 -pthread mongoc_loop.c $(pkg-config --cflags --libs libmongoc-1.0)
 */
#include <mongoc/mongoc.h>

#include "core/buf.h"
#include "services/readmongo/readmongo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LAT_BUCKETS 200000 /* 10 us buckets up to 2 s */

static mongoc_client_pool_t *g_pool;
static const char *g_db;
static const char *g_coll;
static bson_t g_filter;
static bson_t g_opts;
static double g_deadline;
static atomic_ullong g_ops, g_errors, g_docs;
static atomic_uint g_lat[LAT_BUCKETS];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    (void)arg;
    mongoc_client_t *client = mongoc_client_pool_pop(g_pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, g_db, g_coll);
    while (now_s() < g_deadline) {
        double t0 = now_s();
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &g_filter, &g_opts, NULL);
        const bson_t *doc;
        unsigned long long n = 0;
        size_t bytes = 0;
        while (mongoc_cursor_next(cur, &doc)) {
            /* The same JSON rendering readmongo does (services/readmongo/readmongo_json.c). */
            cd_buf out = {0};
            cd_readmongo__json(doc, &out);
            bytes += out.len;
            cd_buf_free(&out);
            n++;
        }
        bson_error_t err;
        if (mongoc_cursor_error(cur, &err)) {
            atomic_fetch_add(&g_errors, 1);
            if (atomic_load(&g_errors) <= 3)
                fprintf(stderr, "mongoc_loop: find: %s\n", err.message);
        } else {
            atomic_fetch_add(&g_ops, 1);
            atomic_fetch_add(&g_docs, n);
            double us = (now_s() - t0) * 1e6;
            size_t b = (size_t)(us / 10.0);
            if (b >= LAT_BUCKETS)
                b = LAT_BUCKETS - 1;
            atomic_fetch_add(&g_lat[b], 1);
        }
        mongoc_cursor_destroy(cur);
        (void)bytes;
    }
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(g_pool, client);
    return NULL;
}

static double percentile_us(unsigned long long total, double q)
{
    unsigned long long want = (unsigned long long)(q * (double)total);
    unsigned long long seen = 0;
    for (size_t i = 0; i < LAT_BUCKETS; i++) {
        seen += atomic_load(&g_lat[i]);
        if (seen > want)
            return (double)i * 10.0 + 5.0;
    }
    return (double)LAT_BUCKETS * 10.0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s URI COLLECTION FILTER_JSON LIMIT THREADS SECONDS [--json]\n", argv[0]);
        return 2;
    }
    const char *uri_s = argv[1];
    g_coll = argv[2];
    const char *filter_s = argv[3];
    long limit = strtol(argv[4], NULL, 10);
    int threads = atoi(argv[5]);
    double seconds = atof(argv[6]);
    int as_json = argc > 7 && strcmp(argv[7], "--json") == 0;
    if (threads < 1 || threads > 1024 || seconds <= 0 || seconds > 600 || limit < 0) {
        fprintf(stderr, "mongoc_loop: bad THREADS/SECONDS/LIMIT\n");
        return 2;
    }

    mongoc_init();
    bson_error_t err;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_s, &err);
    if (!uri) {
        fprintf(stderr, "mongoc_loop: bad uri: %s\n", err.message);
        return 2;
    }
    g_db = mongoc_uri_get_database(uri);
    if (!g_db) {
        fprintf(stderr, "mongoc_loop: the URI must name a database (mongodb://host:port/DB)\n");
        return 2;
    }
    if (!bson_init_from_json(&g_filter, filter_s, -1, &err)) {
        fprintf(stderr, "mongoc_loop: bad filter: %s\n", err.message);
        return 2;
    }
    bson_init(&g_opts);
    if (limit > 0)
        BSON_APPEND_INT64(&g_opts, "limit", limit);
    BSON_APPEND_INT64(&g_opts, "maxTimeMS", 5000);

    g_pool = mongoc_client_pool_new(uri);
    mongoc_client_pool_max_size(g_pool, (uint32_t)threads);
    mongoc_client_pool_set_error_api(g_pool, MONGOC_ERROR_API_VERSION_2);

    /* One round trip first, so connection setup is not measured. */
    {
        mongoc_client_t *c = mongoc_client_pool_pop(g_pool);
        bson_t ping = BSON_INITIALIZER;
        BSON_APPEND_INT32(&ping, "ping", 1);
        if (!mongoc_client_command_simple(c, "admin", &ping, NULL, NULL, &err)) {
            fprintf(stderr, "mongoc_loop: ping: %s\n", err.message);
            return 1;
        }
        bson_destroy(&ping);
        mongoc_client_pool_push(g_pool, c);
    }

    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    double t0 = now_s();
    g_deadline = t0 + seconds;
    for (int i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, run, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    double elapsed = now_s() - t0;

    unsigned long long ops = atomic_load(&g_ops), errors = atomic_load(&g_errors);
    double docs_per_op = ops ? (double)atomic_load(&g_docs) / (double)ops : 0.0;
    double p50 = percentile_us(ops, 0.50), p99 = percentile_us(ops, 0.99);
    if (as_json)
        printf("{\"ops\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"ops_per_s\":%.1f,"
               "\"docs_per_op\":%.2f,\"p50_us\":%.0f,\"p99_us\":%.0f}\n",
               ops, errors, elapsed, (double)ops / elapsed, docs_per_op, p50, p99);
    else
        printf("ops=%llu errors=%llu seconds=%.3f ops_per_s=%.1f docs_per_op=%.2f p50_us=%.0f p99_us=%.0f\n",
               ops, errors, elapsed, (double)ops / elapsed, docs_per_op, p50, p99);

    free(tid);
    mongoc_client_pool_destroy(g_pool);
    mongoc_uri_destroy(uri);
    bson_destroy(&g_filter);
    bson_destroy(&g_opts);
    mongoc_cleanup();
    return errors && !ops ? 1 : 0;
}
