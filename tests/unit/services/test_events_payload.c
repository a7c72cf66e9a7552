/*
 * test_events_payload.c - unit tests of Engine.IO v4 polling payloads
 * (services/events/eio_payload.c): packets joined by \x1e both ways,
 * binary packets as "b<base64>" both ways, and the bodies a client must
 * not get away with (empty packets, bad types, bad base64, over the
 * limit), plus base64 against RFC 4648's test vectors.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "services/events/events.h"

#define LIT(s) s, sizeof(s) - 1

static void expect_text(const cd_eio_packet *p, const char *s)
{
    cr_expect_eq(p->binary, 0);
    cr_expect_eq(p->len, strlen(s), "length %zu for %s", p->len, s);
    cr_expect(p->len == strlen(s) && memcmp(p->data, s, p->len) == 0, "%.*s != %s", (int)p->len, p->data, s);
}

Test(events_payload, decodes_one_and_several_text_packets)
{
    cd_eio_payload pl;
    cr_assert_eq(cd_events__payload_decode(LIT("40"), 100, &pl), 0);
    cr_assert_eq(pl.n, 1);
    expect_text(&pl.pkts[0], "40");
    cd_events__payload_free(&pl);

    cr_assert_eq(cd_events__payload_decode(LIT("3\x1e" "42[\"a\",1]\x1e" "6"), 100, &pl), 0);
    cr_assert_eq(pl.n, 3);
    expect_text(&pl.pkts[0], "3");
    expect_text(&pl.pkts[1], "42[\"a\",1]");
    expect_text(&pl.pkts[2], "6");
    cd_events__payload_free(&pl);
}

Test(events_payload, decodes_binary_packets_from_base64)
{
    cd_eio_payload pl;
    /* "451-[...]" then two attachments: 01 02 03 and "hi". */
    const char body[] = "451-[\"up\",{\"_placeholder\":true,\"num\":0}]\x1e" "bAQID\x1e" "baGk=";
    cr_assert_eq(cd_events__payload_decode(body, sizeof body - 1, 1000, &pl), 0);
    cr_assert_eq(pl.n, 3);
    cr_expect_eq(pl.pkts[1].binary, 1);
    cr_expect_eq(pl.pkts[1].len, 3);
    cr_expect(memcmp(pl.pkts[1].data, "\x01\x02\x03", 3) == 0);
    cr_expect_eq(pl.pkts[2].binary, 1);
    cr_expect_eq(pl.pkts[2].len, 2);
    cr_expect(memcmp(pl.pkts[2].data, "hi", 2) == 0);
    cd_events__payload_free(&pl);
    /* "b" alone is an empty attachment. */
    cr_assert_eq(cd_events__payload_decode(LIT("b"), 10, &pl), 0);
    cr_expect_eq(pl.pkts[0].binary, 1);
    cr_expect_eq(pl.pkts[0].len, 0);
    cd_events__payload_free(&pl);
}

Test(events_payload, refuses_bad_bodies)
{
    static const struct {
        const char *body;
        size_t len;
    } bad[] = {
        {LIT("")},              /* nothing */
        {LIT("\x1e")},          /* two empty packets */
        {LIT("40\x1e")},        /* a trailing separator: an empty packet */
        {LIT("\x1e" "40")},     /* a leading one */
        {LIT("40\x1e\x1e" "3")}, /* one in the middle */
        {LIT("7")},             /* no such type */
        {LIT("x")},
        {LIT("42[]\x1e" "9")},  /* the second is bad: nothing is taken */
        {LIT("b!!!!")},         /* not base64 */
        {LIT("bAQI")},          /* fine */
        {LIT("bA")},            /* one character of a quantum */
        {LIT("bAQ=")},          /* padding that does not complete a quantum */
        {LIT("bAR==")},         /* non-canonical: leftover bits set */
        {LIT("bAQ==x")},        /* after the padding */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cd_eio_payload pl;
        int rc = cd_events__payload_decode(bad[i].body, bad[i].len, 100, &pl);
        if (i == 9) { /* the control: the same shape, well-formed */
            cr_expect_eq(rc, 0);
            cd_events__payload_free(&pl);
            continue;
        }
        cr_expect_eq(rc, -EINVAL, "case %zu: %d", i, rc);
        cr_expect_null(pl.pkts, "case %zu left packets", i);
    }
}

Test(events_payload, refuses_bodies_over_the_limit)
{
    cd_eio_payload pl;
    cr_expect_eq(cd_events__payload_decode(LIT("42[\"abc\"]"), 8, &pl), -EMSGSIZE);
    cr_expect_eq(cd_events__payload_decode(LIT("42[\"abc\"]"), 9, &pl), 0);
    cd_events__payload_free(&pl);
}

Test(events_payload, encodes_a_queue_that_decodes_back)
{
    cd_eio_buf b = {0};
    cr_assert_eq(cd_events__payload_put(&b, 0, LIT("0{\"sid\":\"x\"}")), 0);
    cr_expect_eq(b.len, cd_events__payload_size(0, 12) - 1, "no separator before the first");
    cr_assert_eq(cd_events__payload_put(&b, 0, LIT("2")), 0);
    cr_assert_eq(cd_events__payload_put(&b, 1, LIT("\x00\xff\x10\x80")), 0);
    cr_assert_eq(cd_events__payload_put(&b, 1, "", 0), 0);
    const char want[] = "0{\"sid\":\"x\"}\x1e" "2\x1e" "bAP8QgA==\x1e" "b";
    cr_expect_eq(b.len, sizeof want - 1);
    cr_expect(b.len == sizeof want - 1 && memcmp(b.p, want, b.len) == 0, "%.*s", (int)b.len, b.p);

    cd_eio_payload pl;
    cr_assert_eq(cd_events__payload_decode(b.p, b.len, b.len, &pl), 0);
    cr_assert_eq(pl.n, 4);
    expect_text(&pl.pkts[0], "0{\"sid\":\"x\"}");
    expect_text(&pl.pkts[1], "2");
    cr_expect_eq(pl.pkts[2].binary, 1);
    cr_expect(pl.pkts[2].len == 4 && memcmp(pl.pkts[2].data, "\x00\xff\x10\x80", 4) == 0);
    cr_expect_eq(pl.pkts[3].binary, 1);
    cr_expect_eq(pl.pkts[3].len, 0);
    cd_events__payload_free(&pl);
    cd_events__payload_reset(&b);
    cr_expect_null(b.p);
    cr_expect_eq(b.len, 0);
}

Test(events_payload, base64_matches_rfc4648_vectors)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        unsigned char back[16];
        size_t n = cd_events__b64_encode((const unsigned char *)plain[i], strlen(plain[i]), out);
        cr_expect(n == strlen(enc[i]) && memcmp(out, enc[i], n) == 0, "encode %s", plain[i]);
        long m = cd_events__b64_decode(enc[i], strlen(enc[i]), back);
        cr_expect(m == (long)strlen(plain[i]) && memcmp(back, plain[i], (size_t)m) == 0, "decode %s", enc[i]);
        /* Without its padding, as Node's decoder also takes it. */
        size_t unpadded = strcspn(enc[i], "=");
        m = cd_events__b64_decode(enc[i], unpadded, back);
        cr_expect(m == (long)strlen(plain[i]), "decode unpadded %.*s", (int)unpadded, enc[i]);
    }
}
