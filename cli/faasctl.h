/*
 * faasctl: the command-line client of the platform.
 *
 *   faasctl.c  options, commands, output
 *   http.c     one HTTP(S) request with libcurl (TCP or a Unix socket)
 *   pack.c     a directory or a single file packed into a zip (libzip)
 *   token.c    development JWTs (HS256, libjwt) from a secret file
 *   top.c      the figures of `faasctl top` from execution records
 */
#ifndef FAASCTL_H
#define FAASCTL_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>

#include <stdio.h>
#include <jansson.h>

#include "error.h"

/* Exit codes scripts can rely on. */
enum {
    FCTL_EXIT_OK = 0,
    FCTL_EXIT_FAILED = 1,      /* the server answered an error (4xx/5xx) */
    FCTL_EXIT_USAGE = 2,       /* bad arguments or unreadable local input */
    FCTL_EXIT_UNREACHABLE = 3, /* no answer: connection, TLS, timeout */
    FCTL_EXIT_NOT_FOUND = 4,   /* 404: no such function / record */
};

/* Where and how to reach the platform (filled from options and env). */
typedef struct {
    const char *url;           /* https://host[:port], no trailing slash */
    const char *unix_socket;   /* CURLOPT_UNIX_SOCKET_PATH, or NULL */
    const char *token;         /* bearer JWT, or NULL */
    const char *user;          /* X-Faas-User: testing only, or NULL */
    const char *cacert;        /* CA bundle / self-signed cert, or NULL */
    int         insecure;      /* skip TLS verification */
    long        timeout_s;     /* whole-request timeout */
    int         verbose;       /* print the request line and status */
} fctl_conn_t;

/* One answer. fctl_resp_free() releases its strings. */
typedef struct {
    long    status;
    char   *body;              /* NUL-terminated, len bytes before the NUL */
    size_t  len;
    char   *content_type;
    char   *request_id;        /* X-Faas-Request-Id */
    char   *start;             /* X-Faas-Start */
    char   *www_auth;          /* WWW-Authenticate */
} fctl_resp_t;

/*
 * Sends method path (path starts with "/") with an optional body of len
 * bytes (content type ctype) and extra headers ("Name: value", NULL-ended
 * array or NULL). Returns 0 with *resp filled for any HTTP status, or -1
 * with err set when no answer came (resp is then empty).
 */
int fctl_http(const fctl_conn_t *c, const char *method, const char *path,
              const char *ctype, const void *body, size_t len,
              const char *const *headers, fctl_resp_t *resp,
              faas_error_t *err);

void fctl_resp_free(fctl_resp_t *resp);

/*
 * Packs path (a directory: every regular file below it, ".git" skipped,
 * symlinks followed; or one file stored under its base name) into a zip in
 * memory. Returns 0 with *out (malloc'd, caller frees) and *outlen, or -1.
 */
int fctl_pack(const char *path, unsigned char **out, size_t *outlen,
              faas_error_t *err);

/*
 * Mints an HS256 JWT with sub, iat, exp = now + ttl_s, and iss / aud when
 * not NULL, signed with the content of secret_file minus its final newline
 * (what the gateway's faas_jwt_key reads). Returns a malloc'd string or
 * NULL with err set.
 */
char *fctl_token_mint(const char *secret_file, const char *subject,
                      long ttl_s, const char *issuer, const char *audience,
                      faas_error_t *err);

/* How many records `faasctl top` reads per function and refresh. */
#define FCTL_TOP_PAGE  1000

typedef struct {
    long       calls;          /* in the window */
    double     rate;           /* calls per second */
    long long  p50_us, p99_us; /* the gateway's total time */
    long       cold;           /* calls that started a sandbox */
    long       errors;         /* status not OK, or HTTP 5xx */
} fctl_top_stats_t;

/*
 * The figures of the records of execs (the executions endpoint's array)
 * whose timestamp_ms is in (now_ms - window_ms, now_ms]. When execs is a
 * full page (FCTL_TOP_PAGE) the rate is over the span it covers. Returns 0,
 * or -1 out of memory.
 */
int fctl_top_stats(json_t *execs, long long now_ms, long long window_ms,
                   fctl_top_stats_t *st);

void fctl_top_header(FILE *out, long window_s);
void fctl_top_row(FILE *out, const char *name, const fctl_top_stats_t *st);

#endif
