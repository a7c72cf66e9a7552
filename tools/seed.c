/*
 * seed.c - cd-seed: fills the demo database that the readmongo service
 * serves, so a new user can query it at once.  A standalone command-line
 * program, run by hand or by the run script before clusterd starts; it is
 * not part of any clusterd process.
 *
 *   cd-seed URI DB [N]
 *
 * Three collections, each seeded only when it is empty (so a second run, or
 * a database the user already filled, is left alone):
 *   users     N documents      ObjectId _id, strings, int32/int64/double,
 *                              bool, dates, nested address, array of tags
 *   orders    3N/2 documents   ObjectId _id and user_id (the _id of a user),
 *                              array of nested line items, dates
 *   products  N/10 documents   string _id ("SKU-00001"), nested dimensions
 * N defaults to 2000.  The data is generated from a fixed seed, so every
 * run produces the same documents (ObjectIds included) and examples in the
 * README stay true.
 */
#include <mongoc/mongoc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2024-01-01T00:00:00Z: dates and ObjectId timestamps count from here. */
#define EPOCH_MS 1704067200000LL
#define DAY_MS 86400000LL
#define BATCH 500

static const char *const first_names[] = {"Ada", "Alan", "Barbara", "Claude", "Dennis", "Edsger",
                                          "Frances", "Grace", "Hedy", "Ken", "Linus", "Margaret",
                                          "Niklaus", "Radia", "Tim", "Yukihiro"};
static const char *const last_names[] = {"Lovelace", "Turing", "Liskov", "Shannon", "Ritchie",
                                         "Dijkstra", "Allen", "Hopper", "Lamarr", "Thompson",
                                         "Torvalds", "Hamilton", "Wirth", "Perlman", "Lee", "Matsumoto"};
static const char *const cities[] = {"Lisbon", "Berlin", "Osaka", "Lagos", "Lima", "Oslo", "Pune",
                                     "Quebec"};
static const char *const tags[] = {"admin", "beta", "vip", "newsletter", "mobile", "trial"};
static const char *const statuses[] = {"pending", "paid", "shipped", "delivered", "cancelled"};
static const char *const categories[] = {"books", "garden", "kitchen", "music", "tools", "toys"};
static const char *const adjectives[] = {"Blue", "Compact", "Deluxe", "Quiet", "Rapid", "Solid"};
static const char *const nouns[] = {"Kettle", "Lamp", "Drill", "Chair", "Speaker", "Novel"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* xorshift64*: small, fixed-seed, good enough for demo data. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* BSON_APPEND_UTF8 evaluates its value twice (once for strlen), which
 * would call pick() twice; this evaluates it once. */
static void put_str(bson_t *d, const char *key, const char *value)
{
    bson_append_utf8(d, key, -1, value, -1);
}

/* A deterministic ObjectId: 4-byte timestamp, 1-byte kind, 7-byte serial. */
static void make_oid(bson_oid_t *oid, int kind, uint64_t serial, int64_t at_ms)
{
    uint32_t ts = (uint32_t)(at_ms / 1000);

    oid->bytes[0] = (uint8_t)(ts >> 24);
    oid->bytes[1] = (uint8_t)(ts >> 16);
    oid->bytes[2] = (uint8_t)(ts >> 8);
    oid->bytes[3] = (uint8_t)ts;
    oid->bytes[4] = (uint8_t)kind;
    for (int i = 0; i < 7; i++)
        oid->bytes[11 - i] = (uint8_t)(serial >> (8 * i));
}

/* The time in user i's ObjectId: derived from i alone, so orders can
 * rebuild the ObjectId of the user they refer to. */
static int64_t user_oid_ms(long i)
{
    return EPOCH_MS + (int64_t)(i * 37 % 365) * DAY_MS;
}

static void user_doc(bson_t *d, long i)
{
    char name[64], email[96], key[16];
    bson_oid_t oid;
    bson_t addr, arr;
    int64_t signup = EPOCH_MS + (int64_t)(i * 37 % 365) * DAY_MS + (int64_t)pick(DAY_MS);
    const char *first = first_names[pick(COUNT(first_names))];
    const char *last = last_names[pick(COUNT(last_names))];

    make_oid(&oid, 1, (uint64_t)i, user_oid_ms(i));
    snprintf(name, sizeof name, "%s %s", first, last);
    snprintf(email, sizeof email, "%c.%s%ld@example.com", first[0] | 0x20, last, i);
    BSON_APPEND_OID(d, "_id", &oid);
    BSON_APPEND_INT32(d, "n", (int32_t)i);
    put_str(d, "name", name);
    put_str(d, "email", email);
    BSON_APPEND_INT32(d, "age", (int32_t)(18 + pick(60)));
    BSON_APPEND_DOUBLE(d, "score", (double)pick(10000) / 100.0);
    BSON_APPEND_INT64(d, "balance_cents", (int64_t)pick(10000000) - 1000000);
    BSON_APPEND_BOOL(d, "active", pick(4) != 0);
    BSON_APPEND_DATE_TIME(d, "signup", signup);
    if (pick(5) == 0)
        BSON_APPEND_NULL(d, "last_login");
    else
        BSON_APPEND_DATE_TIME(d, "last_login", signup + (int64_t)pick(90) * DAY_MS);
    BSON_APPEND_DOCUMENT_BEGIN(d, "address", &addr);
    put_str(&addr, "city", cities[pick(COUNT(cities))]);
    BSON_APPEND_INT32(&addr, "zip", (int32_t)(10000 + pick(89999)));
    bson_append_document_end(d, &addr);
    BSON_APPEND_ARRAY_BEGIN(d, "tags", &arr);
    unsigned ntags = pick(4);
    for (unsigned t = 0; t < ntags; t++) {
        snprintf(key, sizeof key, "%u", t);
        put_str(&arr, key, tags[(i + t) % COUNT(tags)]);
    }
    bson_append_array_end(d, &arr);
}

static void order_doc(bson_t *d, long i, long nusers)
{
    char key[16], sku[16];
    bson_oid_t oid, user;
    bson_t items, item, ship;
    int64_t placed = EPOCH_MS + (int64_t)(i * 13 % 400) * DAY_MS + (int64_t)pick(DAY_MS);
    long u = nusers > 0 ? (long)pick((unsigned)nusers) : 0;
    double total = 0;

    make_oid(&oid, 2, (uint64_t)i, placed);
    make_oid(&user, 1, (uint64_t)u, user_oid_ms(u));
    BSON_APPEND_OID(d, "_id", &oid);
    BSON_APPEND_INT32(d, "n", (int32_t)i);
    BSON_APPEND_OID(d, "user_id", &user);
    BSON_APPEND_DATE_TIME(d, "placed", placed);
    put_str(d, "status", statuses[pick(COUNT(statuses))]);
    BSON_APPEND_ARRAY_BEGIN(d, "items", &items);
    unsigned nitems = 1 + pick(4);
    for (unsigned k = 0; k < nitems; k++) {
        int qty = 1 + (int)pick(5);
        double price = (double)(100 + pick(9900)) / 100.0;
        snprintf(key, sizeof key, "%u", k);
        snprintf(sku, sizeof sku, "SKU-%05u", 1 + pick(200));
        BSON_APPEND_DOCUMENT_BEGIN(&items, key, &item);
        put_str(&item, "sku", sku);
        BSON_APPEND_INT32(&item, "qty", qty);
        BSON_APPEND_DOUBLE(&item, "price", price);
        bson_append_document_end(&items, &item);
        total += qty * price;
    }
    bson_append_array_end(d, &items);
    BSON_APPEND_DOUBLE(d, "total", (double)(int64_t)(total * 100 + 0.5) / 100.0);
    BSON_APPEND_DOCUMENT_BEGIN(d, "shipping", &ship);
    put_str(&ship, "method", pick(3) ? "standard" : "express");
    put_str(&ship, "city", cities[pick(COUNT(cities))]);
    bson_append_document_end(d, &ship);
    if (pick(6) == 0)
        put_str(d, "note", "leave at the door");
}

static void product_doc(bson_t *d, long i)
{
    char id[32], name[64], key[16];
    bson_t dims, arr;

    snprintf(id, sizeof id, "SKU-%05ld", i + 1);
    snprintf(name, sizeof name, "%s %s", adjectives[pick(COUNT(adjectives))],
             nouns[pick(COUNT(nouns))]);
    put_str(d, "_id", id);
    put_str(d, "name", name);
    put_str(d, "category", categories[pick(COUNT(categories))]);
    BSON_APPEND_DOUBLE(d, "price", (double)(100 + pick(19900)) / 100.0);
    BSON_APPEND_INT32(d, "stock", (int32_t)pick(500));
    BSON_APPEND_DATE_TIME(d, "created", EPOCH_MS - (int64_t)pick(1000) * DAY_MS);
    BSON_APPEND_DOCUMENT_BEGIN(d, "dims_cm", &dims);
    BSON_APPEND_DOUBLE(&dims, "w", (double)(1 + pick(100)));
    BSON_APPEND_DOUBLE(&dims, "h", (double)(1 + pick(100)));
    BSON_APPEND_DOUBLE(&dims, "d", (double)(1 + pick(100)));
    bson_append_document_end(d, &dims);
    BSON_APPEND_ARRAY_BEGIN(d, "tags", &arr);
    unsigned ntags = 1 + pick(3);
    for (unsigned t = 0; t < ntags; t++) {
        snprintf(key, sizeof key, "%u", t);
        put_str(&arr, key, t == 0 ? categories[i % COUNT(categories)] : tags[pick(COUNT(tags))]);
    }
    bson_append_array_end(d, &arr);
}

/* Whether the collection holds at least one document: 1, 0, or -1 with e. */
static int has_documents(mongoc_collection_t *coll, bson_error_t *e)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    const bson_t *doc;
    int found;

    BSON_APPEND_INT32(&opts, "limit", 1);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
    found = mongoc_cursor_next(cur, &doc) ? 1 : 0;
    if (!found && mongoc_cursor_error(cur, e))
        found = -1;
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return found;
}

enum { K_USERS, K_ORDERS, K_PRODUCTS };

/* Seeds one collection with n documents unless it has some.  Returns 0 or -1. */
static int seed(mongoc_client_t *client, const char *db, const char *name, int kind, long n,
                long nusers)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db, name);
    bson_t *docs[BATCH];
    bson_error_t e;
    long done = 0;
    int rc = -1;

    int has = has_documents(coll, &e);
    if (has < 0) {
        fprintf(stderr, "cd-seed: %s.%s: %s\n", db, name, e.message);
        goto out;
    }
    if (has) {
        printf("cd-seed: %s.%s already has documents; left alone\n", db, name);
        rc = 0;
        goto out;
    }
    while (done < n) {
        size_t k = 0;
        for (; k < BATCH && done + (long)k < n; k++) {
            docs[k] = bson_new();
            long i = done + (long)k;
            if (kind == K_USERS)
                user_doc(docs[k], i);
            else if (kind == K_ORDERS)
                order_doc(docs[k], i, nusers);
            else
                product_doc(docs[k], i);
        }
        bool ok = mongoc_collection_insert_many(coll, (const bson_t **)docs, k, NULL, NULL, &e);
        for (size_t j = 0; j < k; j++)
            bson_destroy(docs[j]);
        if (!ok) {
            fprintf(stderr, "cd-seed: inserting into %s.%s: %s\n", db, name, e.message);
            goto out;
        }
        done += (long)k;
    }
    printf("cd-seed: %s.%s: inserted %ld documents\n", db, name, n);
    rc = 0;
out:
    mongoc_collection_destroy(coll);
    return rc;
}

/* Drops the driver's warnings: FerretDB answers the driver's closing
 * endSessions with "no such command", which is harmless. */
static void log_cb(mongoc_log_level_t level, const char *domain, const char *msg, void *data)
{
    (void)data;
    if (level <= MONGOC_LOG_LEVEL_CRITICAL)
        fprintf(stderr, "cd-seed: mongoc %s: %s\n", domain, msg);
}

int main(int argc, char **argv)
{
    mongoc_uri_t *uri = NULL;
    mongoc_client_t *client = NULL;
    bson_error_t e;
    long n = 2000;
    int rc = 1;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: cd-seed URI DB [N]\n");
        return 2;
    }
    if (argc == 4) {
        char *end;
        n = strtol(argv[3], &end, 10);
        if (*end || n < 1 || n > 10000000) {
            fprintf(stderr, "cd-seed: N must be an integer from 1 to 10000000\n");
            return 2;
        }
    }
    mongoc_init();
    mongoc_log_set_handler(log_cb, NULL);
    if (!(uri = mongoc_uri_new_with_error(argv[1], &e))) {
        fprintf(stderr, "cd-seed: %s\n", e.message);
        goto out;
    }
    /* Fail in seconds, not the driver's default 30, when nothing listens. */
    if (mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, -1) < 0)
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
    if (!(client = mongoc_client_new_from_uri_with_error(uri, &e))) {
        fprintf(stderr, "cd-seed: %s\n", e.message);
        goto out;
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname(client, "cd-seed");
    if (seed(client, argv[2], "users", K_USERS, n, n) < 0 ||
        seed(client, argv[2], "orders", K_ORDERS, n * 3 / 2, n) < 0 ||
        seed(client, argv[2], "products", K_PRODUCTS, n / 10 > 0 ? n / 10 : 1, n) < 0)
        goto out;
    rc = 0;
out:
    if (client)
        mongoc_client_destroy(client);
    if (uri)
        mongoc_uri_destroy(uri);
    mongoc_cleanup();
    return rc;
}
