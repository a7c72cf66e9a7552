/*
 * file.c - answers whose body is a file (worker process, loop thread):
 * cd_response_file of clusterd/request.h, the body sent with sendfile(2).
 *
 * The status line and headers are queued on the connection like any
 * answer's (response.c, with the service's own headers and the length of
 * the file's part as Content-Length); the file itself is not copied but
 * left on the connection (c->file_*) and sent by server.c's flush once
 * everything queued before it is out: sendfile on the non-blocking socket
 * moves what the socket buffer takes, and when it is full the connection
 * waits for EV_WRITE like any other answer, so a slow client never holds
 * the loop.  Each flush sends at most FAIR_SHARE bytes before letting the
 * loop serve others, so one fast client reading a large file cannot
 * starve the rest.  Nothing else is queued on a connection while its file
 * is out: the next request is parsed only once the answer is written.
 *
 * Reading the file happens inside sendfile, on the loop thread.  For files
 * on a local disk that is a page-cache copy, or a disk read of at most one
 * socket buffer when the file is cold: the same trade nginx makes with
 * `sendfile on` and no thread pool.  Files on network filesystems would
 * want the pool; clusterd's static service is meant for a local root.
 *
 * A file that shrinks while it is sent cannot deliver the Content-Length
 * already promised, so the connection is closed (the client sees a short
 * body, never the next answer's bytes in its place).
 */
#include <errno.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "http/conn.h"

#define FAIR_SHARE (4u << 20)

void cd_response_file(cd_request *r, int status, const char *content_type, int fd, off_t offset, size_t len)
{
    cd_conn *c = cd_http__answer_start(r, status, r->head ? 0 : len);
    if (c) {
        size_t at = c->out_len - c->out_off; /* what was queued before, to undo a half answer */
        if (cd_http__queue_head(c, r, r->reqid, status, content_type, len, NULL) < 0) {
            if (c->out_len - c->out_off > at)
                c->out_len = c->out_off + at;
            c->keepalive = 0;
            c->state = CS_CLOSING;
        } else if (!r->head && len > 0) {
            c->file_fd = fd;
            c->file_off = offset;
            c->file_left = len;
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    cd_http__answer_done(r, c);
}

void cd_http__file_close(cd_conn *c)
{
    if (c->file_left > 0)
        close(c->file_fd);
    c->file_left = 0;
}

int cd_http__file_flush(cd_conn *c)
{
    size_t sent = 0;
    while (c->file_left > 0) {
        if (sent >= FAIR_SHARE)
            return 0; /* the rest on the next EV_WRITE, after the others */
        size_t want = c->file_left < FAIR_SHARE ? c->file_left : FAIR_SHARE;
        ssize_t n = sendfile(c->fd, c->file_fd, &c->file_off, want);
        if (n > 0) {
            c->file_left -= (size_t)n;
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        cd_http__file_close(c); /* the client is gone, or the file shrank (n == 0) */
        return -1;
    }
    close(c->file_fd); /* all of it is out */
    return 1;
}
