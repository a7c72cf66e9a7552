/*
 * test_events_auth.c - unit tests of the events service's JWT checks
 * (services/events/auth.c).  The keys are made by each test with OpenSSL
 * (RSA 2048, EC P-256) and written to a scratch folder, and the tokens are
 * signed here with OpenSSL directly, in the JOSE encodings (base64url, raw
 * R||S for ECDSA), not with libjwt: so a test shows that what any issuer
 * (jsonwebtoken in Node, PyJWT) signs is accepted, and that libjwt's own
 * leniencies (any alg, "none") do not get through auth.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "services/events/events.h"

static char dir[64];
static cd_events_conf *conf;
static const char *secret = "0123456789abcdef0123456789abcdef";

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/cd_events_auth_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    conf = cd_events__conf_new();
    cr_assert_not_null(conf);
    conf->auth = CD_EVENTS_AUTH_JWT;
}

static void teardown(void)
{
    cd_events__conf_free(conf);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(events_auth, .init = setup, .fini = teardown);

/* ---- keys and tokens ---- */

static char *write_file(const char *name, const void *data, size_t len)
{
    char *path;
    cr_assert_geq(asprintf(&path, "%s/%s", dir, name), 0);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

/* Writes k's public key as PEM to dir/name; returns the path. */
static char *write_pubkey(const char *name, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_PUBKEY(b, k));
    char *pem;
    long n = BIO_get_mem_data(b, &pem);
    char *path = write_file(name, pem, (size_t)n);
    BIO_free(b);
    return path;
}

static void use_key(int alg, char *path)
{
    conf->jwt_alg = alg;
    free(conf->jwt_key_file);
    conf->jwt_key_file = path;
}

static cd_events_auth *load(void)
{
    cd_events_auth *a = NULL;
    char err[256] = "";
    cr_assert_eq(cd_events__auth_new(conf, &a, err, sizeof err), 0, "%s", err);
    return a;
}

static void b64url(const unsigned char *in, size_t len, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = t[v >> 6 & 63];
        if (i + 2 < len)
            out[o++] = t[v & 63];
    }
    out[o] = '\0';
}

/* The signature of [in, in+len) under alg ("HS256" with hkey, "RS256",
 * "ES256" with key, anything else: none) into sig (JOSE form). */
static size_t sign(const char *alg, EVP_PKEY *key, const void *hkey, size_t hlen, const char *in, size_t len,
                   unsigned char *sig)
{
    size_t n = 0;
    if (strcmp(alg, "HS256") == 0) {
        unsigned int m = 0;
        cr_assert_not_null(HMAC(EVP_sha256(), hkey, (int)hlen, (const unsigned char *)in, len, sig, &m));
        return m;
    }
    if (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0)
        return 0;
    unsigned char der[512];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    n = sizeof der;
    cr_assert(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1);
    cr_assert(EVP_DigestSign(ctx, der, &n, (const unsigned char *)in, len) == 1);
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'R') {
        memcpy(sig, der, n);
        return n;
    }
    /* ECDSA: DER SEQUENCE { r, s } -> r || s, 32 bytes each (RFC 7518 3.4). */
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    cr_assert_not_null(es);
    cr_assert_eq(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
    cr_assert_eq(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* A token "header.payload.signature" for claims (a JSON object). */
static char *token_with(const char *alg, EVP_PKEY *key, const void *hkey, size_t hlen, const char *claims)
{
    char head[64], *t = malloc(3 * strlen(claims) + 1024);
    unsigned char sig[512];
    snprintf(head, sizeof head, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    b64url((const unsigned char *)head, strlen(head), t);
    strcat(t, ".");
    b64url((const unsigned char *)claims, strlen(claims), t + strlen(t));
    size_t n = sign(alg, key, hkey, hlen, t, strlen(t), sig);
    strcat(t, ".");
    b64url(sig, n, t + strlen(t));
    return t;
}

static char *hs256(const char *claims)
{
    return token_with("HS256", NULL, secret, strlen(secret), claims);
}

/* Checks {"token":"<tok>"}; returns the result, *why set. */
static int check(cd_events_auth *a, const char *tok, cd_events_identity *id, const char **why)
{
    char *payload;
    cr_assert_geq(asprintf(&payload, "{\"token\":\"%s\"}", tok), 0);
    int rc = cd_events__auth_check(a, payload, strlen(payload), id, why);
    free(payload);
    return rc;
}

static void expect_refused(cd_events_auth *a, const char *tok, const char *reason)
{
    cd_events_identity id;
    const char *why = NULL;
    cr_expect_eq(check(a, tok, &id, &why), -EACCES, "accepted, expected \"%s\"", reason);
    cr_expect_str_eq(why ? why : "(null)", reason);
    cr_expect_null(id.user);
    cr_expect_eq(id.nrooms, 0);
}

static void expect_alice(cd_events_auth *a, const char *tok)
{
    cd_events_identity id;
    const char *why = NULL;
    cr_assert_eq(check(a, tok, &id, &why), 0, "refused: %s", why);
    cr_expect_str_eq(id.user, "alice");
    cd_events__identity_free(&id);
}

static char *claims(long exp_in, long nbf_in)
{
    static char buf[256];
    long now = (long)time(NULL);
    snprintf(buf, sizeof buf, "{\"sub\":\"alice\",\"rooms\":[\"team:42:*\",\"lobby\"],\"exp\":%ld,\"nbf\":%ld}",
             now + exp_in, now + nbf_in);
    return buf;
}

/* ---- HS256 ---- */

Test(events_auth, hs256_good_token_gives_the_user_and_its_rooms)
{
    use_key(CD_EVENTS_JWT_HS256, write_file("secret", "0123456789abcdef0123456789abcdef\n", 33));
    cd_events_auth *a = load();
    char *tok = hs256(claims(60, -60));
    cd_events_identity id;
    const char *why = NULL;
    cr_assert_eq(check(a, tok, &id, &why), 0, "refused: %s", why);
    cr_expect_str_eq(id.user, "alice");
    cr_assert_eq(id.nrooms, 2);
    cr_expect(cd_events__room_allowed(&id, "team:42:general"));
    cr_expect(cd_events__room_allowed(&id, "lobby"));
    cr_expect(!cd_events__room_allowed(&id, "team:43:general"));
    cr_expect(!cd_events__room_allowed(&id, "lobby2"));
    cd_events__identity_free(&id);
    free(tok);
    cd_events__auth_free(a);
}

Test(events_auth, hs256_refuses_another_secret_expiry_and_nbf)
{
    use_key(CD_EVENTS_JWT_HS256, write_file("secret", secret, strlen(secret)));
    cd_events_auth *a = load();
    char *tok = token_with("HS256", NULL, "another-secret", 14, claims(60, -60));
    expect_refused(a, tok, "invalid token");
    free(tok);
    tok = hs256(claims(-1, -60));
    expect_refused(a, tok, "token expired");
    free(tok);
    tok = hs256(claims(60, 30));
    expect_refused(a, tok, "token not yet valid");
    free(tok);
    tok = hs256("{\"sub\":\"alice\",\"exp\":\"tomorrow\"}");
    expect_refused(a, tok, "invalid token");
    free(tok);
    tok = hs256("{\"sub\":\"alice\"}"); /* no exp: valid for ever, as jsonwebtoken has it */
    expect_alice(a, tok);
    free(tok);
    cd_events__auth_free(a);
}

Test(events_auth, alg_none_is_refused)
{
    use_key(CD_EVENTS_JWT_HS256, write_file("secret", secret, strlen(secret)));
    cd_events_auth *a = load();
    char *tok = token_with("none", NULL, NULL, 0, claims(60, -60));
    cr_assert_eq(tok[strlen(tok) - 1], '.', "an unsigned token ends with its empty signature");
    expect_refused(a, tok, "invalid token");
    free(tok);
    cd_events__auth_free(a);
}

Test(events_auth, a_token_or_payload_in_a_bad_shape_is_refused)
{
    use_key(CD_EVENTS_JWT_HS256, write_file("secret", secret, strlen(secret)));
    cd_events_auth *a = load();
    cd_events_identity id;
    const char *why = NULL;
    cr_expect_eq(cd_events__auth_check(a, NULL, 0, &id, &why), -EACCES);
    cr_expect_str_eq(why, "missing token");
    cr_expect_eq(cd_events__auth_check(a, "{}", 2, &id, &why), -EACCES);
    cr_expect_str_eq(why, "missing token");
    cr_expect_eq(cd_events__auth_check(a, "{\"token\":\"\"}", 12, &id, &why), -EACCES);
    cr_expect_str_eq(why, "missing token");
    cr_expect_eq(cd_events__auth_check(a, "{\"token\":42}", 12, &id, &why), -EACCES);
    cr_expect_str_eq(why, "invalid token");
    cr_expect_eq(cd_events__auth_check(a, "{\"token\":", 9, &id, &why), -EACCES);
    cr_expect_str_eq(why, "invalid token");
    expect_refused(a, "not.a.jwt", "invalid token");
    expect_refused(a, "abc", "invalid token");
    cd_events__auth_free(a);
}

Test(events_auth, a_token_over_8k_is_refused_even_when_well_signed)
{
    use_key(CD_EVENTS_JWT_HS256, write_file("secret", secret, strlen(secret)));
    cd_events_auth *a = load();
    char *big = malloc(8000), *c = malloc(8200);
    memset(big, 'x', 7000);
    big[7000] = '\0';
    snprintf(c, 8200, "{\"sub\":\"alice\",\"pad\":\"%s\"}", big);
    char *tok = hs256(c);
    cr_assert_gt(strlen(tok), CD_EVENTS_JWT_MAX);
    expect_refused(a, tok, "invalid token");
    free(tok);
    big[5000] = '\0'; /* under the limit: the same token is fine */
    snprintf(c, 8200, "{\"sub\":\"alice\",\"pad\":\"%s\"}", big);
    tok = hs256(c);
    cr_assert_leq(strlen(tok), CD_EVENTS_JWT_MAX);
    expect_alice(a, tok);
    free(tok);
    free(big);
    free(c);
    cd_events__auth_free(a);
}

Test(events_auth, the_rooms_claim_is_named_by_the_config)
{
    use_key(CD_EVENTS_JWT_HS256, write_file("secret", secret, strlen(secret)));
    free(conf->jwt_rooms_claim);
    conf->jwt_rooms_claim = strdup("scopes");
    cd_events_auth *a = load();
    cd_events_identity id;
    const char *why = NULL;
    char *tok = hs256("{\"sub\":\"bob\",\"rooms\":[\"a\"],\"scopes\":\"news:*\"}");
    cr_assert_eq(check(a, tok, &id, &why), 0, "refused: %s", why);
    cr_expect(cd_events__room_allowed(&id, "news:today"));
    cr_expect(!cd_events__room_allowed(&id, "a"));
    cd_events__identity_free(&id);
    free(tok);
    tok = hs256("{\"sub\":\"bob\"}"); /* no claim: no room may be joined */
    cr_assert_eq(check(a, tok, &id, &why), 0, "refused: %s", why);
    cr_expect_eq(id.nrooms, 0);
    cr_expect(!cd_events__room_allowed(&id, "news:today"));
    cd_events__identity_free(&id);
    free(tok);
    tok = hs256("{\"sub\":\"bob\",\"scopes\":[1,2]}");
    expect_refused(a, tok, "invalid token");
    free(tok);
    cd_events__auth_free(a);
}

/* ---- RS256 and ES256 ---- */

Test(events_auth, rs256_good_and_wrong_key)
{
    EVP_PKEY *k = EVP_RSA_gen(2048), *other = EVP_RSA_gen(2048);
    cr_assert(k && other);
    use_key(CD_EVENTS_JWT_RS256, write_pubkey("rsa.pem", k));
    cd_events_auth *a = load();
    char *tok = token_with("RS256", k, NULL, 0, claims(60, -60));
    expect_alice(a, tok);
    free(tok);
    tok = token_with("RS256", other, NULL, 0, claims(60, -60));
    expect_refused(a, tok, "invalid token");
    free(tok);
    tok = token_with("RS256", k, NULL, 0, claims(-5, -60));
    expect_refused(a, tok, "token expired");
    free(tok);
    cd_events__auth_free(a);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

Test(events_auth, hs256_macd_with_the_rsa_public_key_is_refused)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    cr_assert_not_null(k);
    char *path = write_pubkey("rsa.pem", k);
    use_key(CD_EVENTS_JWT_RS256, path);
    cd_events_auth *a = load();
    /* The classic alg confusion: the public key's PEM text as HMAC secret. */
    FILE *f = fopen(path, "r");
    char pem[4096];
    size_t n = fread(pem, 1, sizeof pem, f);
    fclose(f);
    char *tok = token_with("HS256", NULL, pem, n, claims(60, -60));
    expect_refused(a, tok, "invalid token");
    free(tok);
    cd_events__auth_free(a);
    EVP_PKEY_free(k);
}

Test(events_auth, es256_good_and_wrong_key)
{
    EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    cr_assert(k && other);
    use_key(CD_EVENTS_JWT_ES256, write_pubkey("ec.pem", k));
    cd_events_auth *a = load();
    char *tok = token_with("ES256", k, NULL, 0, claims(60, -60));
    expect_alice(a, tok);
    free(tok);
    tok = token_with("ES256", other, NULL, 0, claims(60, -60));
    expect_refused(a, tok, "invalid token");
    free(tok);
    tok = hs256(claims(60, -60)); /* a good HS256 token, but ES256 is configured */
    expect_refused(a, tok, "invalid token");
    free(tok);
    cd_events__auth_free(a);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

Test(events_auth, a_key_of_the_wrong_kind_is_refused_at_load)
{
    EVP_PKEY *rsa = EVP_RSA_gen(2048), *small = EVP_RSA_gen(1024), *ec = EVP_EC_gen("P-256"),
             *p384 = EVP_EC_gen("P-384");
    cr_assert(rsa && small && ec && p384);
    char *fifo;
    cr_assert_geq(asprintf(&fifo, "%s/fifo", dir), 0);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    struct {
        int alg;
        char *path;
        const char *why;
    } bad[] = {
        {CD_EVENTS_JWT_RS256, write_pubkey("ec.pem", ec), "RSA"},
        {CD_EVENTS_JWT_RS256, write_pubkey("small.pem", small), "2048"},
        {CD_EVENTS_JWT_ES256, write_pubkey("rsa.pem", rsa), "EC"},
        {CD_EVENTS_JWT_ES256, write_pubkey("p384.pem", p384), "P-256"},
        {CD_EVENTS_JWT_RS256, write_file("secret", secret, strlen(secret)), "PEM"},
        {CD_EVENTS_JWT_HS256, write_file("empty", "\n", 1), "empty"},
        {CD_EVENTS_JWT_HS256, strdup("/nonexistent/key"), "No such file"},
        {CD_EVENTS_JWT_HS256, fifo, "not a file"}, /* refused, not waited on */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        use_key(bad[i].alg, bad[i].path);
        cd_events_auth *a = NULL;
        char err[256] = "";
        cr_expect_eq(cd_events__auth_new(conf, &a, err, sizeof err), -1, "%s loaded", bad[i].path);
        cr_expect(strstr(err, bad[i].why), "%s: \"%s\" does not say %s", bad[i].path, err, bad[i].why);
        /* conf_check says the same, naming the file */
        cr_expect_eq(cd_events__conf_check(conf, err, sizeof err), -1);
        cr_expect(strstr(err, bad[i].path), "%s", err);
    }
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(p384);
}
