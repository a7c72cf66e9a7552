/* Unit tests for core/util.c: units, numbers, listen addresses. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>

#include "core/util.h"

Test(util, durations)
{
    long long v;
    cr_assert_eq(cd_parse_duration_ms("500ms", &v), 0);
    cr_assert_eq(v, 500);
    cr_assert_eq(cd_parse_duration_ms("30s", &v), 0);
    cr_assert_eq(v, 30000);
    cr_assert_eq(cd_parse_duration_ms("2m", &v), 0);
    cr_assert_eq(v, 120000);
    cr_assert_eq(cd_parse_duration_ms("1h", &v), 0);
    cr_assert_eq(v, 3600000);
    cr_assert_eq(cd_parse_duration_ms("7", &v), 0);
    cr_assert_eq(v, 7000);
    cr_assert_eq(cd_parse_duration_ms("", &v), -1);
    cr_assert_eq(cd_parse_duration_ms("-1s", &v), -1);
    cr_assert_eq(cd_parse_duration_ms("5 s", &v), -1);
    cr_assert_eq(cd_parse_duration_ms("5d", &v), -1);
    cr_assert_eq(cd_parse_duration_ms("99999999999999999999s", &v), -1);
}

Test(util, sizes)
{
    long long v;
    cr_assert_eq(cd_parse_size("512", &v), 0);
    cr_assert_eq(v, 512);
    cr_assert_eq(cd_parse_size("64k", &v), 0);
    cr_assert_eq(v, 65536);
    cr_assert_eq(cd_parse_size("1M", &v), 0);
    cr_assert_eq(v, 1048576);
    cr_assert_eq(cd_parse_size("2gb", &v), 0);
    cr_assert_eq(v, 2LL << 30);
    cr_assert_eq(cd_parse_size("1t", &v), -1);
    cr_assert_eq(cd_parse_size("k", &v), -1);
    cr_assert_eq(cd_parse_size("12kk", &v), -1);
}

Test(util, listen_addresses)
{
    struct sockaddr_storage ss;
    socklen_t len;
    cr_assert_eq(cd_parse_listen("127.0.0.1:8080", &ss, &len), 0);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    cr_assert_eq(in->sin_family, AF_INET);
    cr_assert_eq(ntohs(in->sin_port), 8080);
    cr_assert_eq(cd_parse_listen("[::1]:81", &ss, &len), 0);
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert_eq(cd_parse_listen(":90", &ss, &len), 0);
    cr_assert_eq(cd_parse_listen("8080", &ss, &len), 0);
    cr_assert_eq(cd_parse_listen("1.2.3.4:0", &ss, &len), -1);
    cr_assert_eq(cd_parse_listen("1.2.3.4:70000", &ss, &len), -1);
    cr_assert_eq(cd_parse_listen("example.org:80", &ss, &len), -1);
}
