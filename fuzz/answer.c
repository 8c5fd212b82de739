/*
 * A function's answer as the gateway checks it (invoker/answer.c, the same
 * code ngx_faas_module/ngx_http_faas_answer.c runs): the status range, the
 * header checks, and the shared host's Set-Cookie scoping
 * (invoker/cookie.c). Input: 4 bytes of status (little endian), then
 * header names and values, each ended by a NUL byte; the first value is
 * also taken as the answer's Connection header.
 *
 * Checks: only 200-599 pass; a header that passes has a token for a name
 * and no CR, LF or other control byte but HTAB in its value; the framing
 * headers never pass; a scoped cookie fits the size promised, names no
 * Domain, ends in one Path below the prefix, and scoping it again gives
 * the same bytes.
 */
#include "fuzz.h"

#include <strings.h>

#include "answer.h"
#include "cookie.h"

#define PREFIX "/fn/f"

static void
check_header(const char *name, const char *value)
{
    const unsigned char *p;

    if (!faas_answer_header_valid(name, value)) {
        return;
    }
    if (name[0] == '\0') {
        abort();
    }
    for (p = (const unsigned char *) name; *p; p++) {
        if (*p <= ' ' || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p)) {
            abort();
        }
    }
    for (p = (const unsigned char *) value; *p; p++) {
        if ((*p < ' ' && *p != '\t') || *p == 0x7f) {
            abort();
        }
    }
}


static void
check_cookie(const char *value)
{
    size_t      len = strlen(value), plen = strlen(PREFIX), max;
    char       *out, *again, *path;
    ssize_t     n, m;

    max = FAAS_COOKIE_SCOPED_MAX(len, plen);
    out = malloc(max);
    n = faas_cookie_scope(value, len, PREFIX, plen, out);
    if (n < 0) {
        free(out);
        return;
    }
    if ((size_t) n >= max || out[n] != '\0' || strlen(out) != (size_t) n) {
        abort();
    }
    path = strstr(out, "; Path=");
    while (path && strstr(path + 1, "; Path=")) {
        path = strstr(path + 1, "; Path=");
    }
    if (path == NULL || strncmp(path + 7, PREFIX, plen) != 0
        || (path[7 + plen] != '\0' && path[7 + plen] != '/')) {
        abort();
    }
    again = malloc(FAAS_COOKIE_SCOPED_MAX((size_t) n, plen));
    m = faas_cookie_scope(out, (size_t) n, PREFIX, plen, again);
    if (m != n || memcmp(out, again, (size_t) n) != 0) {
        abort();
    }
    free(again);
    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t   in = { data, data + size };
    uint32_t    status = 0;
    const char *connection = NULL;
    char       *name, *value, *first = NULL;
    const uint8_t *f;
    size_t      len;
    int         i;

    for (i = 0; i < 4; i++) {
        status |= (uint32_t) fuzz_byte(&in) << (8 * i);
    }
    if (faas_answer_status_ok(status) != (status >= 200 && status <= 599)) {
        abort();
    }

    while (in.p < in.end) {
        f = fuzz_field(&in, 0, &len);
        name = fuzz_strndup(f, len);
        f = fuzz_field(&in, 0, &len);
        value = fuzz_strndup(f, len);
        if (first == NULL) {
            first = strdup(value);
            connection = first;
        }

        check_header(name, value);
        if (name[0] && strchr(name, ',') == NULL && strchr(name, ' ') == NULL
            && strchr(name, '\t') == NULL
            && (strcasecmp(name, "transfer-encoding") == 0
                || strncasecmp(name, "proxy-", 6) == 0
                || strcasecmp(name, value) == 0)
            && !faas_answer_header_own(name, value)) {
            abort();
        }
        (void) faas_answer_header_own(name, connection);
        if (faas_answer_header_valid(name, value)) {
            check_cookie(value);
        }
        free(name);
        free(value);
    }
    free(first);
    return 0;
}
