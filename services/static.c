/*
 * static.c - the static service: the files under a root directory, as
 * Express's express.static serves them (worker process, loop thread).
 *
 *     [www]
 *     type = static
 *     route = /
 *     root = www             ; required: a directory (relative: to the config file's)
 *     index = index.html     ; a directory's file ("" for none); never a listing
 *     max_age = 1h           ; Cache-Control: public, max-age=3600 (default 0)
 *     dotfiles = deny        ; or allow: names starting with '.'
 *
 * GET and HEAD only.  The request path is turned into an open file by
 * static_path.c, which is where the safety lives (decode once; refuse
 * NUL, backslashes, encoded slashes, "..", dotfiles; openat2 with
 * RESOLVE_BENEATH from the root's directory fd, so no symlink leads out).
 * A refusal is a 404 (a 400 for a malformed %-escape) with the same body
 * as a missing file, so an answer never tells what exists outside the
 * root; it is logged at debug level, once, with the path as sent.
 *
 * An answer carries Content-Type by extension, ETag (inode, size, mtime),
 * Last-Modified, Cache-Control and Accept-Ranges; If-None-Match or, without
 * it, If-Modified-Since gives 304; one byte range gives 206 with
 * Content-Range (If-Range is honoured), a range past the end 416, several
 * ranges the whole file.  The body leaves through cd_response_file
 * (http/file.c): sendfile on the non-blocking socket, continued on
 * EV_WRITE, so a slow client never holds the loop.  open and fstat run on
 * the loop: on a local disk they are metadata lookups in the kernel's
 * caches (the same trade nginx makes); a root on a network filesystem
 * would want the thread pool.
 *
 * The root is resolved to an absolute path when the config is read (a
 * relative one against the config file's directory, cd_conf_dir, so the
 * same file works wherever clusterd starts), so the master (at -t, start
 * and reload) checks it is a directory with file:line, and each worker
 * opens it once at init and keeps the fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clusterd/log.h"
#include "clusterd/service.h"
#include "services/static.h"

typedef struct static_conf {
    char *root; /* absolute */
    char *index;
    long long max_age_ms;
    int allow_dot;
} static_conf;

static void *static_conf_new(void)
{
    static_conf *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->index = strdup("index.html");
    if (!c->index) {
        free(c);
        return NULL;
    }
    return c;
}

static int set_root(void *field, const char *value, char *err, size_t errlen)
{
    char **root = field;
    char path[PATH_MAX], real[PATH_MAX];
    struct stat st;
    if (value[0] == '/')
        snprintf(path, sizeof path, "%s", value);
    else if (snprintf(path, sizeof path, "%s/%s", cd_conf_dir(), value) >= (int)sizeof path) {
        snprintf(err, errlen, "'%s': path too long", value);
        return -1;
    }
    if (!realpath(path, real) || stat(real, &st) < 0) {
        snprintf(err, errlen, "'%s': %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a directory", path);
        return -1;
    }
    char *copy = strdup(real);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*root);
    *root = copy;
    return 0;
}

static int set_dotfiles(void *field, const char *value, char *err, size_t errlen)
{
    int *allow = field;
    if (strcmp(value, "deny") == 0)
        *allow = 0;
    else if (strcmp(value, "allow") == 0)
        *allow = 1;
    else {
        snprintf(err, errlen, "'%s' is neither deny nor allow", value);
        return -1;
    }
    return 0;
}

static const cd_conf_key static_keys[] = {
    CD_CONF_KEY_FUNC_AT("root", set_root, static_conf, root),
    CD_CONF_KEY("index", CD_KEY_STRP, static_conf, index, 0, 0),
    CD_CONF_KEY("max_age", CD_KEY_MS, static_conf, max_age_ms, 0, 10LL * 365 * 86400 * 1000),
    CD_CONF_KEY_FUNC_AT("dotfiles", set_dotfiles, static_conf, allow_dot),
    {0},
};

static int static_conf_check(void *conf, char *err, size_t errlen)
{
    const static_conf *c = conf;
    if (!c->root) {
        snprintf(err, errlen, "root is required (the directory whose files are served)");
        return -1;
    }
    const char *ix = c->index;
    if (strchr(ix, '/') || strchr(ix, '\\') || strcmp(ix, ".") == 0 || strcmp(ix, "..") == 0) {
        snprintf(err, errlen, "index must be a file name (e.g. index.html), not '%s'", ix);
        return -1;
    }
    return 0;
}

static void static_conf_free(void *conf)
{
    static_conf *c = conf;
    free(c->root);
    free(c->index);
    free(c);
}

typedef struct static_state {
    int rootfd;
} static_state;

static int static_init(cd_service *svc, char *err, size_t errlen)
{
    const static_conf *c = svc->conf;
    static_state *st = malloc(sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->rootfd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->rootfd < 0) {
        snprintf(err, errlen, "root %s: %s", c->root, strerror(errno));
        free(st);
        return -1;
    }
    svc->state = st;
    return 0;
}

static void static_destroy(cd_service *svc)
{
    static_state *st = svc->state;
    close(st->rootfd);
    free(st);
    svc->state = NULL;
}

/* A path that resolved to nothing servable: 400 for a bad %-escape, else
 * 404, the same whatever the reason. */
static void refuse(cd_service *svc, cd_request *r, int rc)
{
    if (rc == -EINVAL) {
        cd_debug("[%s] refused a malformed path (%.200s)", svc->name, cd_request_path(r));
        cd_request_respond_error(r, 400, "malformed percent-encoding in the path");
        return;
    }
    if (rc != -ENOENT && rc != -ENOTDIR)
        cd_debug("[%s] refused a path (%.200s): %s", svc->name, cd_request_path(r), strerror(-rc));
    cd_request_respond_error(r, 404, "not found");
}

/* The range to send: 0 the whole file, 1 one part in [*first, *last],
 * -1 unsatisfiable.  If-Range (an ETag or the Last-Modified date) that no
 * longer matches asks for the whole file. */
static int want_range(cd_request *r, const struct stat *sb, const char *etag, const char *lm, off_t *first,
                      off_t *last)
{
    const char *range = cd_request_header(r, "Range");
    if (!range || !(cd_request_method(r) & CD_M_GET))
        return 0;
    const char *if_range = cd_request_header(r, "If-Range");
    if (if_range && strcmp(if_range, etag) != 0 && strcmp(if_range, lm) != 0)
        return 0;
    return cd_static_range(range, sb->st_size, first, last);
}

static void static_handle(cd_service *svc, cd_request *r)
{
    const static_conf *c = svc->conf;
    const static_state *st = svc->state;
    struct stat sb;
    const char *type = NULL;
    int fd = cd_static_resolve(st->rootfd, cd_request_subpath(r), c->index, c->allow_dot, &sb, &type);
    if (fd < 0) {
        refuse(svc, r, fd);
        return;
    }
    char etag[80], lm[40], cc[48], cr[80];
    cd_static_etag(&sb, etag, sizeof etag);
    cd_static_http_date(sb.st_mtim.tv_sec, lm, sizeof lm);
    snprintf(cc, sizeof cc, "public, max-age=%lld", c->max_age_ms / 1000);
    cd_response_header(r, "ETag", etag);
    cd_response_header(r, "Last-Modified", lm);
    cd_response_header(r, "Cache-Control", cc);
    if (cd_static_not_modified(cd_request_header(r, "If-None-Match"), cd_request_header(r, "If-Modified-Since"),
                               etag, sb.st_mtim.tv_sec)) {
        close(fd);
        cd_request_respond(r, 304, NULL, NULL, 0);
        return;
    }
    cd_response_header(r, "Accept-Ranges", "bytes");
    off_t first = 0, last = sb.st_size - 1;
    int rg = want_range(r, &sb, etag, lm, &first, &last);
    if (rg < 0) {
        close(fd);
        snprintf(cr, sizeof cr, "bytes */%lld", (long long)sb.st_size);
        cd_response_header(r, "Content-Range", cr);
        cd_request_respond_error(r, 416, "range not satisfiable");
        return;
    }
    if (rg > 0) {
        snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", (long long)first, (long long)last, (long long)sb.st_size);
        cd_response_header(r, "Content-Range", cr);
        cd_response_file(r, 206, type, fd, first, (size_t)(last - first + 1));
        return;
    }
    cd_response_file(r, 200, type, fd, 0, (size_t)sb.st_size);
}

const cd_service_type cd_service_static = {
    .abi = CLUSTERD_ABI_VERSION,
    .name = "static",
    .methods = CD_M_GET | CD_M_HEAD,
    .conf_new = static_conf_new,
    .keys = static_keys,
    .conf_check = static_conf_check,
    .conf_free = static_conf_free,
    .init = static_init,
    .handle = static_handle,
    .destroy = static_destroy,
};
