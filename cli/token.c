/*
 * Development tokens: HS256 JWTs signed with the shared secret the gateway
 * reads through faas_jwt_key (the file's content without its final
 * newline). Production set-ups use RS256/ES256 tokens from a real issuer;
 * the gateway accepts either, by configuration.
 */
#include "faasctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jwt.h>

#include "cleanup.h"


#define SECRET_MAX 65536


/* See faasctl.h. */
char *
fctl_token_mint(const char *secret_file, const char *subject, long ttl_s,
                const char *issuer, const char *audience, faas_error_t *err)
{
    cleanup_close int   fd = -1;
    unsigned char       secret[SECRET_MAX + 1];
    ssize_t             n;
    size_t              len = 0;
    jwt_t              *jwt = NULL;
    char               *tok;
    time_t              now = time(NULL);

    fd = open(secret_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        faas_error_set(err, errno, "secret file %s", secret_file);
        return NULL;
    }
    while ((n = read(fd, secret + len, SECRET_MAX + 1 - len)) > 0) {
        len += (size_t) n;
        if (len > SECRET_MAX) {
            faas_error_set(err, 0, "secret file %s: larger than %d bytes",
                           secret_file, SECRET_MAX);
            return NULL;
        }
    }
    if (n < 0) {
        faas_error_set(err, errno, "secret file %s", secret_file);
        return NULL;
    }
    while (len && (secret[len - 1] == '\n' || secret[len - 1] == '\r')) {
        len--;
    }
    if (len == 0) {
        faas_error_set(err, 0, "secret file %s is empty", secret_file);
        return NULL;
    }
    secret[len] = '\0';
    if (strstr((char *) secret, "-----BEGIN") != NULL) {
        faas_error_set(err, 0, "secret file %s holds a PEM key; `faasctl "
                       "token` mints HS256 tokens from a shared secret",
                       secret_file);
        return NULL;
    }
    if (jwt_new(&jwt) != 0
        || jwt_add_grant(jwt, "sub", subject) != 0
        || jwt_add_grant_int(jwt, "iat", (long) now) != 0
        || jwt_add_grant_int(jwt, "exp", (long) now + ttl_s) != 0
        || (issuer && jwt_add_grant(jwt, "iss", issuer) != 0)
        || (audience && jwt_add_grant(jwt, "aud", audience) != 0)
        || jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int) len) != 0) {
        faas_error_set(err, errno, "building the token");
        jwt_free(jwt);
        explicit_bzero(secret, sizeof(secret));
        return NULL;
    }
    explicit_bzero(secret, sizeof(secret));
    tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    if (tok == NULL) {
        faas_error_set(err, errno, "encoding the token");
    }
    return tok;
}
