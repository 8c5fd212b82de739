/*
 * A bearer token as the gateway's JWT path hands it to libjwt: the module
 * (ngx_faas_module/ngx_http_faas_jwt.c) needs nginx, so this target feeds
 * jwt_decode() with an HS256 secret, as the module does. libjwt itself is
 * Debian's build, not instrumented: the fuzzer steers by the coverage of
 * this file and common/, and ASan sees libjwt's heap only through malloc.
 *
 * Input without a NUL byte: the token as it is. Input with NUL bytes:
 * a mode byte, the header JSON, NUL, the claims JSON, NUL, a signature;
 * header and claims are base64url-encoded into a token, and with mode bit
 * 0 set the signature is the right HMAC-SHA256 under the secret, so the
 * fuzzer reaches libjwt's claim parsing and grant lookups instead of
 * stopping at the signature.
 *
 * Checks: only the pinned algorithm verifies; a verified token's "sub"
 * is what jansson reads from its claims.
 */
#include "fuzz.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base64.h"

#define SECRET "fuzz-secret-0123456789abcdef"

/* b64url(header) "." b64url(claims) "." signature, malloc'd */
static char *
token_build(const uint8_t *data, size_t size)
{
    fuzz_in_t      in = { data + 1, data + size };
    const uint8_t *h, *c, *s;
    size_t         hl, cl, sl, n;
    unsigned char  mac[EVP_MAX_MD_SIZE];
    unsigned int   maclen = 0;
    char          *tok, *p;

    h = fuzz_field(&in, 0, &hl);
    c = fuzz_field(&in, 0, &cl);
    s = in.p;
    sl = (size_t) (in.end - in.p);

    n = FAAS_BASE64_LEN(hl) + FAAS_BASE64_LEN(cl)
        + FAAS_BASE64_LEN(EVP_MAX_MD_SIZE) + sl + 4;
    tok = malloc(n);
    if (tok == NULL) {
        abort();
    }
    p = tok + faas_base64url_encode(tok, h, hl);
    *p++ = '.';
    p += faas_base64url_encode(p, c, cl);

    if (data[0] & 1) {
        HMAC(EVP_sha256(), SECRET, (int) strlen(SECRET),
             (const unsigned char *) tok, (size_t) (p - tok), mac, &maclen);
        *p++ = '.';
        p += faas_base64url_encode(p, mac, maclen);
    } else {
        *p++ = '.';
        memcpy(p, s, sl);
        p += sl;
        *p = '\0';
    }
    return tok;
}


/* A verified token's sub: libjwt and jansson read the same claims. */
static void
check_sub(jwt_t *jwt, const char *tok)
{
    const char *dot1 = strchr(tok, '.'), *dot2, *want, *got;
    uint8_t    *raw;
    size_t      rawlen;
    json_t     *claims;

    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL
        || faas_base64_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1), &raw,
                              &rawlen) < 0) {
        return;
    }
    claims = json_loadb((const char *) raw, rawlen, JSON_DECODE_ANY, NULL);
    want = json_string_value(json_object_get(claims, "sub"));
    got = jwt_get_grant(jwt, "sub");
    if (want && (got == NULL || strcmp(want, got) != 0)) {
        abort();
    }
    (void) jwt_get_grant_int(jwt, "exp");
    (void) jwt_get_grant_bool(jwt, "admin");
    free(jwt_get_grants_json(jwt, NULL));
    free(jwt_get_grants_json(jwt, "aud"));
    json_decref(claims);
    free(raw);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char  *tok;
    jwt_t *jwt = NULL;

    if (size > 0 && memchr(data, 0, size) != NULL) {
        tok = token_build(data, size);
    } else {
        tok = fuzz_strndup(data, size);
    }

    if (jwt_decode(&jwt, tok, (const unsigned char *) SECRET,
                   (int) strlen(SECRET)) == 0 && jwt != NULL) {
        /* a forged token would verify only under the pinned algorithm */
        if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
            abort();
        }
        check_sub(jwt, tok);
    }
    jwt_free(jwt);
    free(tok);
    return 0;
}
