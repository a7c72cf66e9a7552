/*
 * auth.c - JWT authentication of Socket.IO clients (auth = jwt), and the
 * rooms a token lets its holder join.  Runs in a worker, on its loop (the
 * CONNECT packet), and in the master at conf_check, which loads the key
 * once so that a missing or wrong key is a config error.
 *
 * A client sends its token in the CONNECT payload, {"token":"<jwt>"}
 * (socket.io-client's `auth` option).  libjwt (Debian's 1.10) checks the
 * signature; what it leaves to us is the part that matters most:
 *
 *   - the algorithm.  libjwt 1.10 verifies with whatever algorithm the
 *     token's header names, so a token with "alg":"none" decodes, and an
 *     HS256 token MACed with the text of our RSA public key (which is not
 *     secret) verifies against that same text.  We accept a token only
 *     when its header names exactly the configured algorithm.
 *   - time.  libjwt 1.10 does not look at exp or nbf; we do, against the
 *     wall clock, with no leeway (the clocks are those of one host's
 *     issuer and ours).
 *   - size.  Tokens over CD_EVENTS_JWT_MAX bytes are refused before any
 *     parsing.
 *
 * The key is read and checked once (auth_new): HS256 takes the file's
 * bytes, RS256 and ES256 a PEM public key that OpenSSL must parse as RSA
 * (2048 bits or more) or as an EC key on P-256; libjwt then gets the same
 * PEM text for every check.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "services/events/events.h"

#define KEY_FILE_MAX 65536
#define ROOMS_MAX 1024 /* patterns kept from one token's rooms claim */

struct cd_events_auth {
    jwt_alg_t alg;
    unsigned char *key;
    size_t key_len;
    char *rooms_claim;
};

int cd_events__read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block -t */
    if (fd < 0)
        return -errno;
    struct stat sb;
    int rc = 0;
    char *buf = NULL;
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = -EINVAL;
        goto out;
    }
    if ((size_t)sb.st_size > max) {
        rc = -EFBIG;
        goto out;
    }
    if (!(buf = malloc((size_t)sb.st_size + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO; /* shrank while we read */
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* Whether pem is a public key of the kind alg needs; NULL or why not. */
static const char *check_public_key(const unsigned char *pem, size_t len, int alg)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return "out of memory";
    EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!k)
        return "not a PEM public key (-----BEGIN PUBLIC KEY-----)";
    const char *why = NULL;
    if (alg == CD_EVENTS_JWT_RS256) {
        if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA)
            why = "jwt_alg RS256 needs an RSA public key";
        else if (EVP_PKEY_get_bits(k) < 2048)
            why = "an RSA key for RS256 must have at least 2048 bits";
    } else {
        char group[64] = "";
        if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
            why = "jwt_alg ES256 needs an EC public key";
        else if (!EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, NULL) ||
                 OBJ_sn2nid(group) != NID_X9_62_prime256v1)
            why = "an EC key for ES256 must be on the P-256 curve (prime256v1)";
    }
    EVP_PKEY_free(k);
    return why;
}

int cd_events__auth_new(const cd_events_conf *conf, cd_events_auth **out, char *err, size_t errlen)
{
    static const jwt_alg_t algs[] = {JWT_ALG_HS256, JWT_ALG_RS256, JWT_ALG_ES256};
    cd_events_auth *a = calloc(1, sizeof *a);
    char *buf = NULL;
    size_t len = 0;
    const char *why = NULL;
    if (!a || !(a->rooms_claim = strdup(conf->jwt_rooms_claim ? conf->jwt_rooms_claim : "rooms"))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    a->alg = algs[conf->jwt_alg];
    int rc = conf->jwt_key_file ? cd_events__read_file(conf->jwt_key_file, KEY_FILE_MAX, &buf, &len) : -ENOENT;
    if (rc < 0) {
        snprintf(err, errlen, "%s", rc == -EFBIG ? "larger than 64k" : rc == -EINVAL ? "not a file" : strerror(-rc));
        goto fail;
    }
    if (conf->jwt_alg == CD_EVENTS_JWT_HS256) {
        if (len && buf[len - 1] == '\n')
            buf[--len] = '\0';
        if (len && buf[len - 1] == '\r')
            buf[--len] = '\0';
        if (!len)
            why = "the HS256 secret is empty";
    } else {
        why = check_public_key((unsigned char *)buf, len, conf->jwt_alg);
    }
    if (why) {
        snprintf(err, errlen, "%s", why);
        goto fail;
    }
    a->key = (unsigned char *)buf;
    a->key_len = len;
    *out = a;
    return 0;
fail:
    free(buf);
    cd_events__auth_free(a);
    return -1;
}

void cd_events__auth_free(cd_events_auth *a)
{
    if (!a)
        return;
    if (a->key)
        memset(a->key, 0, a->key_len); /* the HS256 secret */
    free(a->key);
    free(a->rooms_claim);
    free(a);
}

/* A numeric claim (exp, nbf): 0 with *v, -ENOENT when absent, -EINVAL
 * when it is there but not a number. */
static int num_claim(jwt_t *jwt, const char *name, double *v)
{
    char *js = jwt_get_grants_json(jwt, name);
    if (!js)
        return -ENOENT;
    char *end;
    errno = 0;
    *v = strtod(js, &end);
    int rc = (end == js || *end || errno) ? -EINVAL : 0;
    free(js);
    return rc;
}

/* Appends the decoded JSON string at [p, end) to id->rooms. */
static int add_room(cd_events_identity *id, const char *p, const char *end)
{
    char room[CD_EVENTS_ROOM_MAX + 1];
    if (id->nrooms == ROOMS_MAX || cd_events__json_string(p, end, room, sizeof room, NULL) < 0)
        return -EINVAL;
    char **n = realloc(id->rooms, (id->nrooms + 1) * sizeof *n);
    if (!n)
        return -ENOMEM;
    id->rooms = n;
    if (!(n[id->nrooms] = strdup(room)))
        return -ENOMEM;
    id->nrooms++;
    return 0;
}

/* The rooms claim: absent (no rooms), one string, or an array of strings. */
static int rooms_claim(jwt_t *jwt, const char *claim, cd_events_identity *id)
{
    char *js = jwt_get_grants_json(jwt, claim);
    if (!js)
        return 0;
    const char *p = js, *end = js + strlen(js);
    int rc = -EINVAL;
    p = cd_events__json_ws(p, end);
    if (p < end && *p == '"') {
        rc = add_room(id, p, end);
    } else if (p < end && *p == '[') {
        p = cd_events__json_ws(p + 1, end);
        rc = 0;
        while (rc == 0 && p < end && *p != ']') {
            const char *v_end = cd_events__json_skip(p, end, 2);
            if (!v_end || *p != '"') {
                rc = -EINVAL;
                break;
            }
            rc = add_room(id, p, v_end);
            p = cd_events__json_ws(v_end, end);
            if (p < end && *p == ',')
                p = cd_events__json_ws(p + 1, end);
        }
    }
    free(js);
    return rc;
}

/* The token, verified: 0 with *id filled, or -EACCES/-ENOMEM and *why. */
static int check_token(const cd_events_auth *a, const char *token, cd_events_identity *id, const char **why)
{
    jwt_t *jwt = NULL;
    *why = "invalid token";
    if (jwt_decode(&jwt, token, a->key, (int)a->key_len) != 0 || !jwt)
        return -EACCES;
    int rc = -EACCES;
    double exp, nbf, now = (double)time(NULL);
    int has_exp = num_claim(jwt, "exp", &exp), has_nbf = num_claim(jwt, "nbf", &nbf);
    /* The configured algorithm only: never "none", never HS256 MACed with
     * our public key's text (see the essay). */
    if (jwt_get_alg(jwt) != a->alg || has_exp == -EINVAL || has_nbf == -EINVAL)
        goto out;
    if (has_exp == 0 && now >= exp) {
        *why = "token expired";
        goto out;
    }
    if (has_nbf == 0 && now < nbf) {
        *why = "token not yet valid";
        goto out;
    }
    const char *sub = jwt_get_grant(jwt, "sub");
    if (sub && (!sub[0] || strlen(sub) > CD_EVENTS_ROOM_MAX - 5)) /* "user:<sub>" is a room */
        goto out;
    if (sub && !(id->user = strdup(sub))) {
        rc = -ENOMEM;
        goto out;
    }
    rc = rooms_claim(jwt, a->rooms_claim, id);
    if (rc == -EINVAL)
        rc = -EACCES;
out:
    jwt_free(jwt);
    if (rc < 0)
        cd_events__identity_free(id);
    return rc;
}

int cd_events__auth_check(const cd_events_auth *a, const char *p, size_t len, cd_events_identity *id,
                          const char **why)
{
    memset(id, 0, sizeof *id);
    *why = "missing token";
    if (!p || !len)
        return -EACCES;
    const char *v, *v_end;
    int rc = cd_events__json_get(p, p + len, "token", &v, &v_end);
    if (rc == -ENOENT)
        return -EACCES;
    *why = "invalid token";
    if (rc < 0 || *v != '"' || (size_t)(v_end - v) > 2 * CD_EVENTS_JWT_MAX)
        return -EACCES;
    char *token = malloc(CD_EVENTS_JWT_MAX + 1);
    if (!token)
        return -ENOMEM;
    int n = cd_events__json_string(v, v_end, token, CD_EVENTS_JWT_MAX + 1, NULL);
    if (n == 0)
        *why = "missing token";
    rc = n > 0 ? check_token(a, token, id, why) : -EACCES;
    free(token);
    return rc;
}

void cd_events__identity_free(cd_events_identity *id)
{
    free(id->user);
    for (size_t i = 0; i < id->nrooms; i++)
        free(id->rooms[i]);
    free(id->rooms);
    memset(id, 0, sizeof *id);
}

int cd_events__room_allowed(const cd_events_identity *id, const char *room)
{
    for (size_t i = 0; i < id->nrooms; i++)
        if (fnmatch(id->rooms[i], room, 0) == 0)
            return 1;
    return 0;
}
