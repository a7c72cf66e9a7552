/* Unit tests for core/util.c: units, numbers, listen addresses. */
#include <arpa/inet.h>
#include <errno.h>
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

Test(util, percent_decoding)
{
    char out[16];
    cr_assert_eq(cd_percent_decode("a%20b+c", 7, out, sizeof out, 1), 5);
    cr_assert_str_eq(out, "a b c");
    cr_assert_eq(cd_percent_decode("a+b", 3, out, sizeof out, 0), 3);
    cr_assert_str_eq(out, "a+b", "'+' stays outside query strings");
    cr_assert_eq(cd_percent_decode("%7B%7d", 6, out, sizeof out, 0), 2);
    cr_assert_str_eq(out, "{}");
    cr_assert_eq(cd_percent_decode("%", 1, out, sizeof out, 0), -EINVAL);
    cr_assert_eq(cd_percent_decode("%4", 2, out, sizeof out, 0), -EINVAL);
    cr_assert_eq(cd_percent_decode("%zz", 3, out, sizeof out, 0), -EINVAL);
    cr_assert_eq(cd_percent_decode("a%00b", 5, out, sizeof out, 0), -EINVAL, "no encoded NUL");
    cr_assert_eq(cd_percent_decode("0123456789abcdef", 16, out, sizeof out, 0), -ENAMETOOLONG);
    cr_assert_eq(cd_percent_decode("", 0, out, sizeof out, 0), 0);
    cr_assert_str_eq(out, "");
}

Test(util, query_param_first_match_decoded)
{
    char out[8];

    cr_assert_eq(cd_query_param("a=1&b=x+y%21&b=2", "b", out, sizeof out), 4);
    cr_assert_str_eq(out, "x y!");
    cr_assert_eq(cd_query_param("ab=1", "a", out, sizeof out), -1);
    cr_assert_eq(cd_query_param("a&b", "a", out, sizeof out), 0);
    cr_assert_eq(cd_query_param("a=%", "a", out, sizeof out), -2);
    cr_assert_eq(cd_query_param("a=123456789", "a", out, sizeof out), -2);
    cr_assert_eq(cd_query_param("", "a", out, sizeof out), -1);
}
