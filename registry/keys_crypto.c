/*
 * Access-key cryptography (OpenSSL): key generation, AES-256-GCM sealing of
 * keys at rest with the master key, HMAC-SHA256 digests for the Redis mirror.
 *
 * Key format shown to users: "fk_" + base64url(32 random bytes) without
 * padding (46 characters). Sealed form stored in MySQL:
 * nonce (12 bytes) || ciphertext || GCM tag (16 bytes).
 */
#include "registry.h"

#include <errno.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"

#define NONCE_LEN 12
#define TAG_LEN   16



int
faas_keys_generate(char out[FAAS_KEY_LEN + 1], faas_error_t *err)
{
    uint8_t raw[32];
    char    enc[FAAS_BASE64_LEN(sizeof(raw)) + 1];
    size_t  n;

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return faas_error_set(err, 0, "RAND_bytes failed");
    }
    /* 32 bytes: 43 url-safe characters after the prefix. */
    n = faas_base64url_encode(enc, raw, sizeof(raw));
    memcpy(out, "fk_", 3);
    memcpy(out + 3, enc, n + 1);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(enc, sizeof(enc));
    return 0;
}


int
faas_keys_encrypt(const uint8_t key[32], const char *plain, uint8_t **out,
                  size_t *out_len, faas_error_t *err)
{
    EVP_CIPHER_CTX *ctx;
    size_t          n = strlen(plain);
    uint8_t        *buf;
    int             l1 = 0, l2 = 0, ok;

    buf = malloc(NONCE_LEN + n + TAG_LEN);
    if (buf == NULL) {
        return faas_error_set(err, ENOMEM, "encrypt");
    }
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx != NULL && RAND_bytes(buf, NONCE_LEN) == 1
         && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) == 1
         && EVP_EncryptUpdate(ctx, buf + NONCE_LEN, &l1,
                              (const uint8_t *) plain, (int) n) == 1
         && EVP_EncryptFinal_ex(ctx, buf + NONCE_LEN + l1, &l2) == 1
         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
                                buf + NONCE_LEN + l1 + l2) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(buf);
        return faas_error_set(err, 0, "AES-256-GCM encryption failed");
    }
    *out = buf;
    *out_len = NONCE_LEN + (size_t) (l1 + l2) + TAG_LEN;
    return 0;
}


char *
faas_keys_decrypt(const uint8_t key[32], const uint8_t *in, size_t len,
                  faas_error_t *err)
{
    EVP_CIPHER_CTX *ctx;
    char           *out;
    size_t          n;
    int             l1 = 0, l2 = 0, ok;

    if (len < NONCE_LEN + TAG_LEN) {
        faas_error_set(err, 0, "sealed key too short");
        return NULL;
    }
    n = len - NONCE_LEN - TAG_LEN;
    out = malloc(n + 1);
    if (out == NULL) {
        faas_error_set(err, ENOMEM, "decrypt");
        return NULL;
    }
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx != NULL
         && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) == 1
         && EVP_DecryptUpdate(ctx, (uint8_t *) out, &l1, in + NONCE_LEN,
                              (int) n) == 1
         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                (void *) (in + len - TAG_LEN)) == 1
         && EVP_DecryptFinal_ex(ctx, (uint8_t *) out + l1, &l2) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(out);
        faas_error_set(err, 0, "sealed key does not authenticate"
                       " (wrong master key?)");
        return NULL;
    }
    out[l1 + l2] = '\0';
    return out;
}


static void
to_hex(const uint8_t *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}


void
faas_keys_digest(const char *secret, const char *key, char out[65])
{
    uint8_t  md[32];
    unsigned mdlen = 0;

    HMAC(EVP_sha256(), secret, (int) strlen(secret), (const uint8_t *) key,
         strlen(key), md, &mdlen);
    to_hex(md, 32, out);
}


void
faas_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[32];

    SHA256(data, len, md);
    to_hex(md, 32, out);
}


int
faas_keys_parse_master(const char *hex, uint8_t key[32], faas_error_t *err)
{
    int    i, hi, lo;

    if (hex == NULL || strlen(hex) != 64) {
        return faas_error_set(err, 0,
                              "config: master_key must be 64 hex characters");
    }
    for (i = 0; i < 32; i++) {
        hi = OPENSSL_hexchar2int((unsigned char) hex[2 * i]);
        lo = OPENSSL_hexchar2int((unsigned char) hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return faas_error_set(err, 0,
                                  "config: master_key must be 64 hex"
                                  " characters");
        }
        key[i] = (uint8_t) (hi << 4 | lo);
    }
    return 0;
}
