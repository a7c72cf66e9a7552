/*
 * stream.c - mongo-c-driver's sockets, made of waits on the worker's loop
 * (worker process, loop thread, inside the readmongo fibers).
 *
 * mongo-c-driver is a blocking library: a query writes its command, then
 * waits for the reply in poll(2).  Its public stream interface
 * (mongoc_stream_t, with mongoc_client_set_stream_initiator) lets an
 * application supply the sockets, and this file supplies ones whose waits
 * are cd_fiber_wait_fd: a readv that finds no data parks the calling fiber
 * on the loop's epoll and the loop goes on serving; when the reply arrives
 * the loop resumes the fiber where the driver left off.  The driver keeps
 * doing everything it does (server selection, monitoring, the handshake,
 * SCRAM, TLS, retries, cursors) and never knows; the loop never waits on
 * the database, and no thread wakes up for a query.
 *
 * The initiator connects as the driver's own would (mongoc-client.c's
 * mongoc_client_connect), without its waits:
 * - a host name is looked up by getaddrinfo in a short-lived thread the
 *   fiber awaits (cd_fiber_run_blocking, bounded by connectTimeoutMS); a
 *   literal address needs none;
 * - connect(2) is non-blocking, awaited for writability within
 *   connectTimeoutMS, address after address;
 * - TLS is the driver's own stream on top (mongoc_stream_tls_new_with_hostname
 *   and its handshake, whose waits come back here as poll), with the
 *   options the URI gives;
 * - the driver's buffered stream goes on top of it all, as with its own
 *   sockets (fewer, larger reads).
 *
 * Timeouts are the driver's: readv and writev get its timeout_msec
 * (socketTimeoutMS), 0 meaning "do not wait" and < 0 "no limit".
 */
#include "services/readmongo/exec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "clusterd/fiber.h"

/* Our streams' type: mongoc_stream_poll polls only streams of one type. */
#define CD_RM_STREAM_TYPE 0x6364

typedef struct loop_stream {
    mongoc_stream_t s; /* first: the driver holds a pointer to it */
    int fd;
    int timed_out;
} loop_stream;

static long long deadline_of(int32_t timeout_msec)
{
    return timeout_msec > 0 ? cd_readmongo__now_ms() + timeout_msec : timeout_msec;
}

/* Waits for fd on the fiber until deadline (from deadline_of): 1 ready, 0
 * the time is up. */
static int await(loop_stream *ls, int events, long long deadline)
{
    long long left;

    if (deadline == 0)
        left = 0;
    else if (deadline < 0)
        left = -1;
    else if ((left = deadline - cd_readmongo__now_ms()) < 0)
        left = 0;
    if (left == 0 || !cd_fiber_wait_fd(ls->fd, events, left)) {
        ls->timed_out = 1;
        errno = ETIMEDOUT;
        return 0;
    }
    return 1;
}

/* Moves iov past n bytes; returns the new start (and *cnt). */
static struct iovec *advance(struct iovec *iov, size_t *cnt, size_t n)
{
    while (*cnt && n >= iov->iov_len) {
        n -= iov->iov_len;
        iov++;
        (*cnt)--;
    }
    if (*cnt && n) {
        iov->iov_base = (char *)iov->iov_base + n;
        iov->iov_len -= n;
    }
    return iov;
}

/* Copies the caller's iovec (advance changes it). */
static struct iovec *iov_copy(const mongoc_iovec_t *iov, size_t cnt, struct iovec *small,
                              size_t nsmall)
{
    struct iovec *v = cnt <= nsmall ? small : malloc(cnt * sizeof *v);

    if (v)
        for (size_t i = 0; i < cnt; i++) {
            v[i].iov_base = iov[i].iov_base;
            v[i].iov_len = iov[i].iov_len;
        }
    return v;
}

static ssize_t ls_readv(mongoc_stream_t *s, mongoc_iovec_t *iov, size_t iovcnt, size_t min_bytes,
                        int32_t timeout_msec)
{
    loop_stream *ls = (loop_stream *)s;
    struct iovec small[8], *v = iov_copy(iov, iovcnt, small, 8), *cur = v;
    long long deadline = deadline_of(timeout_msec);
    size_t cnt = iovcnt, total = 0;
    ssize_t ret = -1;

    if (!v)
        return -1;
    ls->timed_out = 0;
    while (cnt) {
        ssize_t n = readv(ls->fd, cur, (int)(cnt > IOV_MAX ? IOV_MAX : cnt));
        if (n > 0) {
            total += (size_t)n;
            cur = advance(cur, &cnt, (size_t)n);
            if (total >= min_bytes)
                break;
            continue;
        }
        if (n == 0) {
            errno = ECONNRESET; /* the server closed mid-reply */
            break;
        }
        if (errno == EINTR)
            continue;
        /* Nothing yet: wait for something even when min_bytes is 0 (the
         * driver's TLS layer reads that way, and its socket stream waits
         * too; returning would make it spin on the loop), unless the
         * caller said not to wait (timeout 0: the TLS handshake). */
        if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
            (total >= min_bytes && (total > 0 || deadline == 0)))
            break;
        if (!await(ls, EV_READ, deadline))
            break;
    }
    if (total >= min_bytes || cnt == 0)
        ret = (ssize_t)total;
    if (v != small)
        free(v);
    return ret;
}

static ssize_t ls_writev(mongoc_stream_t *s, mongoc_iovec_t *iov, size_t iovcnt,
                         int32_t timeout_msec)
{
    loop_stream *ls = (loop_stream *)s;
    struct iovec small[8], *v = iov_copy(iov, iovcnt, small, 8), *cur = v;
    long long deadline = deadline_of(timeout_msec);
    size_t cnt = iovcnt, total = 0;
    ssize_t ret = -1;

    if (!v)
        return -1;
    ls->timed_out = 0;
    while (cnt) {
        struct msghdr m = {.msg_iov = cur, .msg_iovlen = cnt > IOV_MAX ? IOV_MAX : cnt};
        ssize_t n = sendmsg(ls->fd, &m, MSG_NOSIGNAL);
        if (n >= 0) {
            total += (size_t)n;
            cur = advance(cur, &cnt, (size_t)n);
            continue;
        }
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || !await(ls, EV_WRITE, deadline))
            break;
    }
    if (cnt == 0)
        ret = (ssize_t)total;
    if (v != small)
        free(v);
    return ret;
}

static int ls_close(mongoc_stream_t *s)
{
    loop_stream *ls = (loop_stream *)s;
    int rc = 0;

    if (ls->fd >= 0) {
        rc = close(ls->fd);
        ls->fd = -1;
    }
    return rc;
}

static void ls_destroy(mongoc_stream_t *s)
{
    ls_close(s);
    free(s);
}

static int ls_flush(mongoc_stream_t *s)
{
    (void)s;
    return 0;
}

static int ls_setsockopt(mongoc_stream_t *s, int level, int optname, void *optval,
                         mongoc_socklen_t optlen)
{
    return setsockopt(((loop_stream *)s)->fd, level, optname, optval, optlen);
}

/* Closed by the peer (or broken): a read would see EOF or an error now. */
static bool ls_check_closed(mongoc_stream_t *s)
{
    loop_stream *ls = (loop_stream *)s;
    char c;

    if (ls->fd < 0)
        return true;
    ssize_t n = recv(ls->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static bool ls_timed_out(mongoc_stream_t *s)
{
    return ((loop_stream *)s)->timed_out;
}

static bool ls_should_retry(mongoc_stream_t *s)
{
    (void)s;
    return false;
}

static void poll_now(mongoc_stream_poll_t *streams, size_t n, struct pollfd *p)
{
    for (size_t i = 0; i < n; i++) {
        p[i].fd = ((loop_stream *)streams[i].stream)->fd;
        p[i].events = (short)streams[i].events;
        p[i].revents = 0;
    }
}

/* mongoc_stream_poll for our streams (the driver's monitoring, and the TLS
 * handshake): whatever is ready now, else a wait on the loop for the first
 * of them.  Several streams (a replica set's members, scanned at once) are
 * awaited through one epoll descriptor, which is itself readable when any
 * of them is ready. */
static ssize_t ls_poll(mongoc_stream_poll_t *streams, size_t nstreams, int32_t timeout)
{
    struct pollfd small[8], *p = nstreams <= 8 ? small : calloc(nstreams, sizeof *p);
    long long deadline = deadline_of(timeout);
    ssize_t ret = -1;
    int ep = -1;

    if (!p)
        return -1;
    for (;;) {
        poll_now(streams, nstreams, p);
        int n = poll(p, nstreams, 0);
        if (n != 0 || deadline == 0) {
            if (n > 0)
                for (size_t i = 0; i < nstreams; i++)
                    streams[i].revents = p[i].revents;
            ret = n;
            break;
        }
        long long left = deadline < 0 ? -1 : deadline - cd_readmongo__now_ms();
        if (deadline > 0 && left <= 0) {
            ret = 0;
            break;
        }
        if (nstreams == 1) {
            int ev = ((p[0].events & POLLIN) ? EV_READ : 0) | ((p[0].events & POLLOUT) ? EV_WRITE : 0);
            if (!cd_fiber_wait_fd(p[0].fd, ev ? ev : EV_READ, left)) {
                ret = 0;
                break;
            }
            continue;
        }
        if (ep < 0) {
            if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
                break;
            for (size_t i = 0; i < nstreams; i++) {
                struct epoll_event e = {.events = (uint32_t)p[i].events};
                epoll_ctl(ep, EPOLL_CTL_ADD, p[i].fd, &e);
            }
        }
        if (!cd_fiber_wait_fd(ep, EV_READ, left)) {
            ret = 0;
            break;
        }
    }
    if (ep >= 0)
        close(ep);
    if (p != small)
        free(p);
    return ret;
}

static mongoc_stream_t *loop_stream_new(int fd)
{
    loop_stream *ls = calloc(1, sizeof *ls);

    if (!ls)
        return NULL;
    ls->fd = fd;
    ls->s.type = CD_RM_STREAM_TYPE;
    ls->s.destroy = ls_destroy;
    ls->s.close = ls_close;
    ls->s.flush = ls_flush;
    ls->s.writev = ls_writev;
    ls->s.readv = ls_readv;
    ls->s.setsockopt = ls_setsockopt;
    ls->s.check_closed = ls_check_closed;
    ls->s.poll = ls_poll;
    ls->s.failed = ls_destroy;
    ls->s.timed_out = ls_timed_out;
    ls->s.should_retry = ls_should_retry;
    return &ls->s;
}

/* ---- name lookup in a thread ---- */

typedef struct lookup {
    char host[BSON_HOST_NAME_MAX + 1];
    char port[8];
    int family;
    int rc;
    struct addrinfo *res;
} lookup;

static void lookup_free(void *arg)
{
    lookup *l = arg;

    if (l->res)
        freeaddrinfo(l->res);
    free(l);
}

static void lookup_run(void *arg)
{
    lookup *l = arg;
    struct addrinfo hints = {.ai_family = l->family, .ai_socktype = SOCK_STREAM};

    l->rc = getaddrinfo(l->host, l->port, &hints, &l->res);
}

/* The addresses of host, looked up off the loop (cd_fiber_run_blocking);
 * NULL with *error.  The caller frees *keep (lookup_free). */
static struct addrinfo *resolve(const mongoc_host_list_t *host, long long timeout_ms,
                                lookup **keep, bson_error_t *error)
{
    lookup *l = calloc(1, sizeof *l);
    int rc;

    *keep = NULL;
    if (!l) {
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_NAME_RESOLUTION,
                       "Failed to resolve '%s': out of resources", host->host);
        return NULL;
    }
    snprintf(l->host, sizeof l->host, "%s", host->host);
    snprintf(l->port, sizeof l->port, "%u", host->port);
    l->family = host->family == AF_INET6 ? AF_INET6 : host->family == AF_INET ? AF_INET : AF_UNSPEC;
    if ((rc = cd_fiber_run_blocking(lookup_run, lookup_free, l, timeout_ms)) <= 0) {
        if (rc < 0)
            free(l);
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_NAME_RESOLUTION,
                       "Failed to resolve '%s': %s", host->host, rc < 0 ? "no thread" : "timed out");
        return NULL;
    }
    if (l->rc != 0) {
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_NAME_RESOLUTION,
                       "Failed to resolve '%s': %s", host->host, gai_strerror(l->rc));
        lookup_free(l);
        return NULL;
    }
    *keep = l;
    return l->res;
}

/* ---- connecting ---- */

/* A non-blocking connect to addr within deadline: the descriptor, or -1. */
static int connect_one(int family, const struct sockaddr *addr, socklen_t len, long long deadline)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, err = 0;
    socklen_t elen = sizeof err;

    if (fd < 0)
        return -1;
    if (family != AF_UNIX) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    if (connect(fd, addr, len) == 0)
        return fd;
    if (errno == EINPROGRESS || errno == EAGAIN) {
        long long left = deadline - cd_readmongo__now_ms();
        if (left > 0 && cd_fiber_wait_fd(fd, EV_WRITE, left) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
            return fd;
    }
    close(fd);
    return -1;
}

static int connect_host(const mongoc_uri_t *uri, const mongoc_host_list_t *host,
                        bson_error_t *error)
{
    int32_t timeout = mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 10000);
    long long deadline = cd_readmongo__now_ms() + (timeout > 0 ? timeout : 10000);
    int fd = -1;

    if (host->family == AF_UNIX) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(host->host) >= sizeof a.sun_path) {
            bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_INVALID_TYPE,
                           "UNIX domain socket path too long");
            return -1;
        }
        strcpy(a.sun_path, host->host);
        fd = connect_one(AF_UNIX, (struct sockaddr *)&a, sizeof a, deadline);
    } else {
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(host->port)};
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(host->port)};
        if (inet_pton(AF_INET, host->host, &a4.sin_addr) == 1) {
            fd = connect_one(AF_INET, (struct sockaddr *)&a4, sizeof a4, deadline);
        } else if (inet_pton(AF_INET6, host->host, &a6.sin6_addr) == 1) {
            fd = connect_one(AF_INET6, (struct sockaddr *)&a6, sizeof a6, deadline);
        } else {
            lookup *l;
            struct addrinfo *ai = resolve(host, deadline - cd_readmongo__now_ms(), &l, error);
            if (!ai)
                return -1;
            for (; ai && fd < 0 && cd_readmongo__now_ms() < deadline; ai = ai->ai_next)
                fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline);
            lookup_free(l);
        }
    }
    if (fd < 0)
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT,
                       "Failed to connect to target host: %s", host->host_and_port);
    return fd;
}

#ifdef MONGOC_ENABLE_SSL
/* The TLS options the URI gives (the driver's own initiator takes them
 * from its client, which does not show them). */
static void tls_opts(const mongoc_uri_t *uri, mongoc_ssl_opt_t *o)
{
    *o = *mongoc_ssl_opt_get_default();
    o->pem_file = mongoc_uri_get_option_as_utf8(uri, MONGOC_URI_TLSCERTIFICATEKEYFILE, NULL);
    o->pem_pwd = mongoc_uri_get_option_as_utf8(uri, MONGOC_URI_TLSCERTIFICATEKEYFILEPASSWORD, NULL);
    o->ca_file = mongoc_uri_get_option_as_utf8(uri, MONGOC_URI_TLSCAFILE, NULL);
    int insecure = mongoc_uri_get_option_as_bool(uri, MONGOC_URI_TLSINSECURE, false);
    o->weak_cert_validation =
        insecure || mongoc_uri_get_option_as_bool(uri, MONGOC_URI_TLSALLOWINVALIDCERTIFICATES, false);
    o->allow_invalid_hostname =
        insecure || mongoc_uri_get_option_as_bool(uri, MONGOC_URI_TLSALLOWINVALIDHOSTNAMES, false);
}
#endif

mongoc_stream_t *cd_readmongo__stream_initiator(const mongoc_uri_t *uri,
                                                const mongoc_host_list_t *host, void *user_data,
                                                bson_error_t *error)
{
    mongoc_stream_t *s;
    int fd;

    (void)user_data;
    if ((fd = connect_host(uri, host, error)) < 0)
        return NULL;
    if (!(s = loop_stream_new(fd))) {
        close(fd);
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "out of memory");
        return NULL;
    }
    const char *mech = mongoc_uri_get_auth_mechanism(uri);
    if (mongoc_uri_get_tls(uri) || (mech && strcmp(mech, "MONGODB-X509") == 0)) {
#ifdef MONGOC_ENABLE_SSL
        mongoc_ssl_opt_t opts;
        int32_t timeout = mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 10000);
        tls_opts(uri, &opts);
        mongoc_stream_t *tls = mongoc_stream_tls_new_with_hostname(s, host->host, &opts, true);
        if (!tls) {
            mongoc_stream_destroy(s);
            bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET,
                           "Failed initialize TLS state.");
            return NULL;
        }
        s = tls;
        if (!mongoc_stream_tls_handshake_block(s, host->host, timeout, error)) {
            mongoc_stream_destroy(s);
            return NULL;
        }
#else
        mongoc_stream_destroy(s);
        bson_set_error(error, MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER,
                       "TLS is not enabled in this build of mongo-c-driver.");
        return NULL;
#endif
    }
    return mongoc_stream_buffered_new(s, 1024);
}
