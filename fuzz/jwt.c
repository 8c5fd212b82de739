/*
 * A bearer token as the gateway's JWT path hands it to libjwt: the module
 * (ngx_faas_module/ngx_http_faas_jwt.c) needs nginx, so this target feeds
 * jwt_decode() with an HS256 secret, as the module does, and checks the
 * algorithm it reports. An unsigned token reaches no further in the
 * module either: its claims are read only after the signature passed.
 */
#include "fuzz.h"

#include <jwt.h>

#define SECRET "fuzz-secret-0123456789abcdef"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char  *tok = fuzz_strndup(data, size);
    jwt_t *jwt = NULL;

    if (jwt_decode(&jwt, tok, (const unsigned char *) SECRET,
                   (int) strlen(SECRET)) == 0 && jwt != NULL) {
        /* a forged token would verify only under the pinned algorithm */
        if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
            abort();
        }
        (void) jwt_get_grant(jwt, "sub");
    }
    jwt_free(jwt);
    free(tok);
    return 0;
}
