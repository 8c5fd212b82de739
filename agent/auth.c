/*
 * The TCP listener's shared token. Both sides are hashed first, so the
 * comparison takes the same time whatever the length or content of the
 * presented token.
 */
#include "agent.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

/*
 * Returns 1 if the len bytes at got equal the NUL-terminated expected token,
 * else 0. An empty expected token never matches.
 */
int
faas_auth_token_ok(const char *expected, const uint8_t *got, size_t len)
{
    uint8_t want[SHA256_DIGEST_LENGTH], have[SHA256_DIGEST_LENGTH];
    size_t  elen;
    int     same;

    if (expected == NULL || expected[0] == '\0') {
        return 0;
    }
    elen = strlen(expected);
    SHA256((const uint8_t *) expected, elen, want);
    SHA256(got != NULL ? got : (const uint8_t *) "", len, have);
    same = CRYPTO_memcmp(want, have, sizeof(want)) == 0;
    return same && elen == len;
}
