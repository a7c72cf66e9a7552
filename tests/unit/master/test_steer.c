/*
 * Unit tests for master/steer.c: the reuseport steering program sends new
 * connections only to the chosen sockets of the group, by index, and
 * spreads them over all of those.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/util.h"
#include "master/master.h"

#define NL 4

/* Opens NL listeners of one reuseport group on a free loopback port. */
static int group(int *l)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    l[0] = cd_listen_reuseport((struct sockaddr *)&a, sizeof a, 64);
    cr_assert_geq(l[0], 0);
    socklen_t al = sizeof a;
    cr_assert_eq(getsockname(l[0], (struct sockaddr *)&a, &al), 0);
    for (int i = 1; i < NL; i++) {
        l[i] = cd_listen_reuseport((struct sockaddr *)&a, sizeof a, 64);
        cr_assert_geq(l[i], 0);
    }
    return ntohs(a.sin_port);
}

/* Makes n connections and counts how many each listener queued. */
static void spread(int port, const int *l, int n, int *count)
{
    memset(count, 0, NL * sizeof *count);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(c, 0);
        cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
        struct pollfd p[NL];
        for (int k = 0; k < NL; k++)
            p[k] = (struct pollfd){.fd = l[k], .events = POLLIN};
        cr_assert_gt(poll(p, NL, 2000), 0, "connection %d queued nowhere", i);
        int found = 0;
        for (int k = 0; k < NL && !found; k++) {
            int fd = accept(l[k], NULL, NULL); /* the listeners are non-blocking */
            if (fd >= 0) {
                count[k]++;
                found = 1;
                close(fd);
            }
        }
        cr_assert(found, "connection %d queued nowhere", i);
        close(c);
    }
}

Test(steer, only_the_chosen_indices_get_connections)
{
    int l[NL], count[NL];
    int port = group(l);
    const int chosen[] = {0, 2, 3};
    cr_assert_eq(cd_steer_set(l[1], chosen, 3), 0);
    spread(port, l, 90, count);
    cr_assert_eq(count[1], 0, "index 1 was not chosen but got %d", count[1]);
    cr_assert_gt(count[0], 0);
    cr_assert_gt(count[2], 0);
    cr_assert_gt(count[3], 0);
    for (int i = 0; i < NL; i++)
        close(l[i]);
}

Test(steer, a_single_index_gets_everything)
{
    int l[NL], count[NL];
    int port = group(l);
    const int one[] = {3};
    cr_assert_eq(cd_steer_set(l[0], one, 1), 0);
    spread(port, l, 20, count);
    cr_assert_eq(count[3], 20);
    /* Re-steering replaces the program: now 0 and 1. */
    const int two[] = {0, 1};
    cr_assert_eq(cd_steer_set(l[0], two, 2), 0);
    spread(port, l, 40, count);
    cr_assert_eq(count[2] + count[3], 0);
    cr_assert_gt(count[0], 0);
    cr_assert_gt(count[1], 0);
    for (int i = 0; i < NL; i++)
        close(l[i]);
}

Test(steer, nothing_to_steer_to_is_refused)
{
    int l[NL];
    group(l);
    cr_assert_eq(cd_steer_set(l[0], NULL, 0), -EINVAL);
    for (int i = 0; i < NL; i++)
        close(l[i]);
}
