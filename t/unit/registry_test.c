/*
 * faas-registry pieces without servers: access-key generation, AES-256-GCM
 * sealing (round trip, tampering, wrong key), HMAC/SHA-256 against RFC
 * vectors, the master-key parser, the query formatter's escaping, and the
 * single-file zip wrapper (read back with libzip).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "../../registry/registry.h"
#include "tap.h"

int
main(void)
{
    faas_error_t err;
    char         k1[FAAS_KEY_LEN + 1], k2[FAAS_KEY_LEN + 1], hex[65], *plain;
    uint8_t      master[32], other[32], *sealed;
    size_t       slen, i, zlen;
    int          good;
    void        *zipped;

    /* keys */
    is_int(faas_keys_generate(k1, &err), 0, "generate a key");
    is_int(faas_keys_generate(k2, &err), 0, "generate another");
    is_int(strlen(k1), 46, "fk_ + 43 base64url characters");
    ok(strncmp(k1, "fk_", 3) == 0, "prefix fk_");
    good = 1;
    for (i = 3; i < 46; i++) {
        good &= strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789-_", k1[i]) != NULL;
    }
    ok(good, "base64url alphabet only: %s", k1);
    ok(strcmp(k1, k2) != 0, "two keys differ");

    /* master key */
    is_int(faas_keys_parse_master("00112233445566778899aabbccddeeff"
                                  "00112233445566778899AABBCCDDEEFF",
                                  master, &err), 0, "parse a master key");
    ok(master[0] == 0x00 && master[1] == 0x11 && master[31] == 0xff,
       "bytes decoded");
    ok(faas_keys_parse_master("abc", other, &err) < 0
       && strstr(err.msg, "64 hex") != NULL, "short master key refused");
    ok(faas_keys_parse_master("zz112233445566778899aabbccddeeff"
                              "00112233445566778899aabbccddeeff", other,
                              &err) < 0, "non-hex master key refused");
    memset(other, 7, sizeof(other));

    /* sealing */
    is_int(faas_keys_encrypt(master, k1, &sealed, &slen, &err), 0, "seal");
    is_int(slen, 12 + 46 + 16, "nonce + ciphertext + tag");
    ok(memmem(sealed, slen, k1 + 3, 20) == NULL, "no plaintext inside");
    plain = faas_keys_decrypt(master, sealed, slen, &err);
    is_str(plain, k1, "unseal gives the key back");
    free(plain);
    ok(faas_keys_decrypt(other, sealed, slen, &err) == NULL,
       "another master key cannot open it");
    sealed[20] ^= 1;
    ok(faas_keys_decrypt(master, sealed, slen, &err) == NULL
       && strstr(err.msg, "authenticate") != NULL,
       "a flipped ciphertext bit is detected");
    sealed[20] ^= 1;
    sealed[slen - 1] ^= 0x80;
    ok(faas_keys_decrypt(master, sealed, slen, &err) == NULL,
       "a flipped tag bit is detected");
    ok(faas_keys_decrypt(master, sealed, 10, &err) == NULL,
       "a short blob is refused");
    free(sealed);
    {
        uint8_t *s2;
        size_t   l2;
        faas_keys_encrypt(master, k1, &sealed, &slen, &err);
        faas_keys_encrypt(master, k1, &s2, &l2, &err);
        ok(memcmp(sealed, s2, slen) != 0, "fresh nonce every time");
        free(sealed);
        free(s2);
    }

    /* digests: RFC 4231 test case 2, FIPS 180-2 "abc" */
    faas_keys_digest("Jefe", "what do ya want for nothing?", hex);
    is_str(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b9"
                "64ec3843", "HMAC-SHA256 test vector");
    faas_sha256_hex("abc", 3, hex);
    is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
                "f20015ad", "SHA-256 test vector");

    /* query formatter (escaping needs a handle, not a connection) */
    {
        MYSQL *c = mysql_init(NULL);
        char  *q;

        q = faas_db_fmt(c, "SELECT %s, %s, %d, %L, %U, %x, %r, 100%%",
                        "a'b\\c", (const char *) NULL, -3, -5LL, 7ULL,
                        "\x01\xff", (size_t) 2, "raw");
        is_str(q, "SELECT 'a\\'b\\\\c', NULL, -3, -5, 7, X'01ff', raw, 100%",
               "strings escaped and quoted, numbers, hex, raw");
        free(q);
        q = faas_db_fmt(c, "%s", "x\"; DROP TABLE t; --\n\x1a");
        ok(q != NULL && strstr(q, "\\\"") != NULL && strstr(q, "\\n") != NULL
           && strstr(q, "\\Z") != NULL, "quotes, newlines, ^Z escaped: %s",
           q);
        free(q);
        ok(faas_db_fmt(c, "%q", 1) == NULL, "unknown directive refused");
        mysql_close(c);
    }

    /* wrapping a single file */
    {
        const char  *src = "def handler(e, c):\n    return 1\n";
        zip_error_t  zerr;
        zip_source_t *zs;
        zip_t       *za;
        zip_file_t  *zf;
        char         buf[128];
        zip_int64_t  n;

        is_int(faas_zip_wrap("app.py", src, strlen(src), &zipped, &zlen,
                             &err), 0, "wrap a file");
        zip_error_init(&zerr);
        zs = zip_source_buffer_create(zipped, zlen, 0, &zerr);
        za = zs ? zip_open_from_source(zs, ZIP_RDONLY | ZIP_CHECKCONS, &zerr)
                : NULL;
        ok(za != NULL, "the wrapped zip opens with ZIP_CHECKCONS");
        if (za != NULL) {
            is_int(zip_get_num_entries(za, 0), 1, "one entry");
            is_str(zip_get_name(za, 0, 0), "app.py", "named as given");
            zf = zip_fopen_index(za, 0, 0);
            n = zf ? zip_fread(zf, buf, sizeof(buf) - 1) : -1;
            buf[n > 0 ? n : 0] = '\0';
            is_str(buf, src, "content intact");
            if (zf) {
                zip_fclose(zf);
            }
            zip_discard(za);
        } else if (zs != NULL) {
            zip_source_free(zs);
        }
        zip_error_fini(&zerr);
        free(zipped);
    }
    return done_testing();
}
