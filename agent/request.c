/*
 * The checks an InvokeRequest passes before it runs: ids (request, sandbox,
 * function) and the event, which must be one JSON value because it is
 * spliced into the runtime frame as it is. Bytes from the gateway: fuzzed
 * (fuzz/agent_request.c).
 */
#include "agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "utf8.h"

/* ---- validation ------------------------------------------------------- */

/* Request ids go into log keys: [A-Za-z0-9_-]{1,64}. */
static int
request_id_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')) {
            return 0;
        }
    }
    return n >= 1 && n <= 64;
}

/* ---- event validation ------------------------------------------------- */

/*
 * A JSON syntax check that allocates nothing: the event is spliced into the
 * runtime frame as it is, so it only has to be one valid JSON value (any
 * type, RFC 8259; strings valid UTF-8, \u0000 allowed, nesting up to
 * JSON_CHECK_DEPTH). About 20 times cheaper than parsing it into a tree.
 */
#define JSON_CHECK_DEPTH 2048

typedef struct {
    const unsigned char *p, *end, *start;
    const char          *why;
} jcheck_t;

static void
jc_ws(jcheck_t *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static int
jc_hex4(const unsigned char *p, unsigned *v)
{
    unsigned i, c, r = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];
        if (c >= '0' && c <= '9') {
            c -= '0';
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;
        } else {
            return -1;
        }
        r = r << 4 | c;
    }
    *v = r;
    return 0;
}

static int
jc_string(jcheck_t *j)
{
    unsigned v, lo;

    j->p++; /* the opening quote */
    while (j->p < j->end) {
        unsigned c = *j->p;

        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c < 0x20) {
            j->why = "control character in a string";
            return -1;
        }
        if (c == '\\') {
            if (j->end - j->p < 2) {
                break;
            }
            c = j->p[1];
            if (c == 'u') {
                if (j->end - j->p < 6 || jc_hex4(j->p + 2, &v) < 0) {
                    j->why = "invalid \\u escape";
                    return -1;
                }
                j->p += 6;
                if (v >= 0xdc00 && v <= 0xdfff) {
                    j->why = "invalid Unicode surrogate";
                    return -1;
                }
                if (v >= 0xd800 && v <= 0xdbff) {
                    if (j->end - j->p < 6 || j->p[0] != '\\' ||
                        j->p[1] != 'u' || jc_hex4(j->p + 2, &lo) < 0 ||
                        lo < 0xdc00 || lo > 0xdfff) {
                        j->why = "invalid Unicode surrogate pair";
                        return -1;
                    }
                    j->p += 6;
                }
                continue;
            }
            if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' &&
                c != 'n' && c != 'r' && c != 't') {
                j->why = "invalid escape";
                return -1;
            }
            j->p += 2;
            continue;
        }
        if (c >= 0x80) {
            size_t k = faas_utf8_char_len((const char *) j->p,
                                          (size_t) (j->end - j->p));
            if (k == 0) {
                j->why = "invalid UTF-8 in a string";
                return -1;
            }
            j->p += k;
            continue;
        }
        j->p++;
    }
    j->why = "unterminated string";
    return -1;
}

static int
jc_digits(jcheck_t *j)
{
    const unsigned char *s = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        j->p++;
    }
    return j->p > s ? 0 : -1;
}

static int
jc_number(jcheck_t *j)
{
    if (*j->p == '-') {
        j->p++;
    }
    if (j->p < j->end && *j->p == '0') {
        j->p++;
    } else if (jc_digits(j) < 0) {
        goto bad;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (jc_digits(j) < 0) {
            goto bad;
        }
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }
        if (jc_digits(j) < 0) {
            goto bad;
        }
    }
    return 0;
bad:
    j->why = "invalid number";
    return -1;
}

static int
jc_word(jcheck_t *j, const char *w, size_t n)
{
    if ((size_t) (j->end - j->p) < n || memcmp(j->p, w, n) != 0) {
        j->why = "invalid token";
        return -1;
    }
    j->p += n;
    return 0;
}

static int
jc_value(jcheck_t *j, unsigned depth)
{
    unsigned char open;

    jc_ws(j);
    if (j->p >= j->end) {
        j->why = "unexpected end of input";
        return -1;
    }
    switch (*j->p) {
    case '"':
        return jc_string(j);
    case 't':
        return jc_word(j, "true", 4);
    case 'f':
        return jc_word(j, "false", 5);
    case 'n':
        return jc_word(j, "null", 4);
    case '{':
    case '[':
        break;
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) {
            return jc_number(j);
        }
        j->why = "invalid token";
        return -1;
    }
    if (depth >= JSON_CHECK_DEPTH) {
        j->why = "maximum nesting depth exceeded";
        return -1;
    }
    open = *j->p++;
    jc_ws(j);
    if (j->p < j->end && *j->p == (open == '{' ? '}' : ']')) {
        j->p++;
        return 0;
    }
    for (;;) {
        if (open == '{') {
            jc_ws(j);
            if (j->p >= j->end || *j->p != '"') {
                j->why = "string or '}' expected";
                return -1;
            }
            if (jc_string(j) < 0) {
                return -1;
            }
            jc_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                j->why = "':' expected";
                return -1;
            }
            j->p++;
        }
        if (jc_value(j, depth + 1) < 0) {
            return -1;
        }
        jc_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == (open == '{' ? '}' : ']')) {
            j->p++;
            return 0;
        }
        j->why = open == '{' ? "',' or '}' expected" : "',' or ']' expected";
        return -1;
    }
}

int
faas_json_check(const char *data, size_t len, char *why, size_t wlen)
{
    jcheck_t j;

    j.start = j.p = (const unsigned char *) data;
    j.end = j.p + len;
    j.why = NULL;
    if (jc_value(&j, 0) == 0) {
        jc_ws(&j);
        if (j.p == j.end) {
            return 0;
        }
        j.why = "end of input expected";
    }
    snprintf(why, wlen, "%s near offset %zu", j.why ? j.why : "invalid",
             (size_t) (j.p - j.start));
    return -1;
}

/* Writes a reason into why and returns status. */
static Faas__InvokeStatus
refuse(Faas__InvokeStatus status, char *why, size_t wlen, const char *fmt,
       ...)
    __attribute__((format(printf, 4, 5)));

static Faas__InvokeStatus
refuse(Faas__InvokeStatus status, char *why, size_t wlen, const char *fmt,
       ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, wlen, fmt, ap);
    va_end(ap);
    return status;
}

Faas__InvokeStatus
faas_invoke_ids_check(const Faas__InvokeRequest *req, char *why, size_t wlen)
{
    if (!request_id_ok(req->request_id)) {
        return refuse(FAAS__INVOKE_STATUS__BAD_REQUEST, why, wlen,
                      "bad request: request_id must be 1-64 of "
                      "[A-Za-z0-9_-]");
    }
    if (!faas_sbxid_valid(req->sandbox_id, strlen(req->sandbox_id))) {
        return refuse(FAAS__INVOKE_STATUS__SANDBOX_GONE, why, wlen,
                      "no such sandbox: invalid sandbox id");
    }
    if (req->function[0] != '\0'
        && !faas_name_valid(req->function, strlen(req->function))) {
        return refuse(FAAS__INVOKE_STATUS__BAD_REQUEST, why, wlen,
                      "bad request: invalid function name");
    }
    return FAAS__INVOKE_STATUS__OK;
}

Faas__InvokeStatus
faas_invoke_event_check(const Faas__InvokeRequest *req, char *why,
                        size_t wlen)
{
    char jwhy[128];

    if (req->event.len > 0 &&
        faas_json_check((const char *) req->event.data, req->event.len, jwhy,
                        sizeof(jwhy)) < 0) {
        return refuse(FAAS__INVOKE_STATUS__BAD_REQUEST, why, wlen,
                      "bad request: event is not JSON: %s", jwhy);
    }
    return FAAS__INVOKE_STATUS__OK;
}
