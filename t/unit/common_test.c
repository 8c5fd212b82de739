/* common/: base64, clocks and UTF-8 validation. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "clock.h"
#include "tap.h"
#include "utf8.h"


static void
test_base64_encode(void)
{
    char   *s, url[FAAS_BASE64_LEN(3) + 1];
    size_t  len;

    s = faas_base64_encode("ab", 2, &len);
    is_str(s, "YWI=", "base64 of two bytes");
    is_int(len, 4, "its length");
    free(s);
    s = faas_base64_encode("", 0, &len);
    is_str(s, "", "base64 of nothing");
    is_int(len, 0, "empty length");
    free(s);
    s = faas_base64_encode("\xfb\xff", 2, NULL);
    is_str(s, "+/8=", "standard alphabet");
    free(s);

    is_int(faas_base64url_encode(url, "\xfb\xff", 2), 3, "url: no padding");
    is_str(url, "-_8", "url-safe alphabet");
    is_int(faas_base64url_encode(url, "abc", 3), 4, "url: whole groups");
    is_str(url, "YWJj", "url: three bytes");
}


static void
test_base64_decode(void)
{
    uint8_t *out;
    size_t   len;

#define DEC(str) faas_base64_decode((str), strlen(str), &out, &len)

    is_int(DEC("YWI="), 0, "padded");
    ok(len == 2 && memcmp(out, "ab", 2) == 0, "padded: bytes");
    free(out);
    is_int(DEC("YWI"), 0, "unpadded");
    ok(len == 2 && memcmp(out, "ab", 2) == 0, "unpadded: bytes");
    free(out);
    is_int(DEC("-_8"), 0, "url-safe alphabet");
    ok(len == 2 && memcmp(out, "\xfb\xff", 2) == 0, "url-safe: bytes");
    free(out);
    is_int(DEC("+/8="), 0, "standard alphabet");
    ok(len == 2 && memcmp(out, "\xfb\xff", 2) == 0, "standard: bytes");
    free(out);
    is_int(DEC("YW\nJj\r\n"), 0, "whitespace skipped");
    ok(len == 3 && memcmp(out, "abc", 3) == 0, "whitespace: bytes");
    free(out);
    is_int(DEC(""), 0, "empty");
    is_int(len, 0, "empty: no bytes");
    free(out);
    is_int(DEC("YW*="), -1, "bad character");
    is_int(DEC("YW=I"), -1, "data after padding");
    is_int(DEC("Y"), -1, "a lone sextet");
    is_int(DEC("YQ==="), -1, "three padding characters");
#undef DEC
}


static void
test_clock(void)
{
    uint64_t        m0 = faas_mono_us(), w = faas_now_ms();
    struct timespec ts;

    ok(w > 1600000000000ULL, "wall clock in milliseconds since 1970");
    ok(faas_now_us() / 1000 >= w, "microseconds agree with milliseconds");
    usleep(2000);
    ok(faas_mono_us() - m0 >= 2000, "monotonic microseconds advance");
    ok(faas_mono_ms() >= m0 / 1000 + 2, "monotonic milliseconds advance");
    ts = faas_deadline_after_ms(1500);
    ok(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L, "deadline normalised");
    ok((uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000
           >= w + 1500,
       "deadline 1.5 s ahead");
}


static void
test_utf8(void)
{
#define V(str) faas_utf8_valid((str), sizeof(str) - 1)

    ok(V(""), "empty");
    ok(V("plain ascii"), "ascii");
    ok(V("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "2, 3 and 4 bytes");
    ok(V("a\0b"), "NUL is valid UTF-8");
    ok(!V("\xc3\x28"), "bad continuation");
    ok(!V("\xc0\xaf"), "overlong");
    ok(!V("\xe0\x80\xaf"), "overlong three bytes");
    ok(!V("\xed\xa0\x80"), "surrogate");
    ok(!V("\xf4\x90\x80\x80"), "past U+10FFFF");
    ok(!V("\xe2\x82"), "cut sequence");
    ok(!V("\xff"), "never a lead byte");
#undef V
    is_int(faas_utf8_char_len("\xe2\x82\xac!", 4), 3, "length of a char");
    is_int(faas_utf8_char_len("a", 1), 1, "length of ascii");
    is_int(faas_utf8_char_len("", 0), 0, "nothing");
    is_int(faas_utf8_char_len("\xe2\x82", 2), 0, "cut char");
}


int
main(void)
{
    test_base64_encode();
    test_base64_decode();
    test_clock();
    test_utf8();
    return done_testing();
}
