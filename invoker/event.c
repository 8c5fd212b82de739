#include "event.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "cleanup.h"
#include "utf8.h"


static int
hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}


/*
 * The event is written straight into one growing buffer: no JSON tree,
 * a few allocations per request instead of ~100 (this runs in the nginx
 * worker for every call). The output is what jansson's json_dumps() of the
 * same object made before (same keys, order and escapes).
 */

typedef struct {
    char  *p;
    size_t len, cap;
    int    oom;
} sbuf_t;


static void
sb_put(sbuf_t *b, const char *s, size_t n)
{
    char  *np;
    size_t cap;

    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}


#define sb_lit(b, s) sb_put((b), (s), sizeof(s) - 1)


static void
sb_str0(sbuf_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}


/*
 * Appends s as a JSON string. s must be valid UTF-8 unless sanitize is set:
 * then a string that is not has its NUL and non-ASCII bytes written as '?'.
 */
static void
sb_jstr(sbuf_t *b, const char *s, size_t n, int sanitize)
{
    static const char hex[] = "0123456789ABCDEF";
    const char       *run;
    char              esc[6];
    size_t            i;
    int               bad = sanitize && !faas_utf8_valid(s, n);

    sb_lit(b, "\"");
    run = s;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        const char   *rep = NULL;

        if (bad && (c == 0 || c >= 0x80)) {
            rep = "?";
        } else if (c == '"') {
            rep = "\\\"";
        } else if (c == '\\') {
            rep = "\\\\";
        } else if (c < 0x20) {
            switch (c) {
            case '\b': rep = "\\b"; break;
            case '\f': rep = "\\f"; break;
            case '\n': rep = "\\n"; break;
            case '\r': rep = "\\r"; break;
            case '\t': rep = "\\t"; break;
            default:
                esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
                esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
                sb_put(b, run, (size_t) (s + i - run));
                sb_put(b, esc, 6);
                run = s + i + 1;
                continue;
            }
        } else {
            continue;
        }
        sb_put(b, run, (size_t) (s + i - run));
        sb_str0(b, rep);
        run = s + i + 1;
    }
    sb_put(b, run, (size_t) (s + n - run));
    sb_lit(b, "\"");
}


/* One text as the event holds it: made valid UTF-8 (bytes of an invalid
 * text become '?'), in a buffer owned by the caller's arena. */
typedef struct {
    char  *s;
    size_t len;
} text_t;


static text_t
clean(char **arena, const char *s, size_t n, int lower)
{
    text_t t = {*arena, n};
    size_t i;

    for (i = 0; i < n; i++) {
        t.s[i] = lower ? (char) tolower((unsigned char) s[i]) : s[i];
    }
    if (!faas_utf8_valid(t.s, n)) {
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char) t.s[i];
            if (c == 0 || c >= 0x80) {
                t.s[i] = '?';
            }
        }
    }
    *arena += n;
    return t;
}


/* A key as jansson kept it: cut at its first NUL. */
static text_t
as_key(text_t t)
{
    char *z = memchr(t.s, '\0', t.len);

    if (z != NULL) {
        t.len = (size_t) (z - t.s);
    }
    return t;
}


/* Name/value pairs grouped by name, in order of first appearance. */
typedef struct {
    text_t *names;  /* per pair */
    text_t *values; /* per pair */
    size_t *group;  /* per pair: index of the first pair of its name */
    size_t  n;
} pairs_t;


static void
pairs_add(pairs_t *p, text_t name, text_t value)
{
    size_t i;

    name = as_key(name);
    p->names[p->n] = name;
    p->values[p->n] = value;
    p->group[p->n] = p->n;
    for (i = 0; i < p->n; i++) {
        if (p->group[i] == i && p->names[i].len == name.len &&
            memcmp(p->names[i].s, name.s, name.len) == 0) {
            p->group[p->n] = i;
            break;
        }
    }
    p->n++;
}


/* {"name":"v1,v2",...} (multi 0) or {"name":["v1","v2"],...} (multi 1). */
static void
pairs_write(sbuf_t *b, const pairs_t *p, int multi)
{
    size_t i, j;
    int    first = 1, vfirst;

    sb_lit(b, "{");
    for (i = 0; i < p->n; i++) {
        if (p->group[i] != i) {
            continue;
        }
        if (!first) {
            sb_lit(b, ",");
        }
        first = 0;
        sb_jstr(b, p->names[i].s, p->names[i].len, 0);
        sb_put(b, multi ? ":[" : ":\"", 2);
        vfirst = 1;
        for (j = i; j < p->n; j++) {
            if (p->group[j] != i) {
                continue;
            }
            if (multi) {
                if (!vfirst) {
                    sb_lit(b, ",");
                }
                sb_jstr(b, p->values[j].s, p->values[j].len, 0);
            } else {
                if (!vfirst) {
                    sb_lit(b, ",");
                }
                /* the value without its quotes */
                size_t at = b->len;
                sb_jstr(b, p->values[j].s, p->values[j].len, 0);
                if (!b->oom) {
                    memmove(b->p + at, b->p + at + 1, b->len - at - 2);
                    b->len -= 2;
                    b->p[b->len] = '\0';
                }
            }
            vfirst = 0;
        }
        sb_put(b, multi ? "]" : "\"", 1);
    }
    sb_lit(b, "}");
}


/* The joined value of name in p (cut at a NUL), or NULL. */
static text_t
pairs_get(const pairs_t *p, const char *name, char **arena)
{
    text_t t = {NULL, 0};
    size_t i, j, nl = strlen(name);

    for (i = 0; i < p->n; i++) {
        if (p->group[i] == i && p->names[i].len == nl &&
            memcmp(p->names[i].s, name, nl) == 0) {
            break;
        }
    }
    if (i == p->n) {
        return t;
    }
    t.s = *arena;
    for (j = i; j < p->n; j++) {
        if (p->group[j] != i) {
            continue;
        }
        if (t.len > 0 || j > i) {
            t.s[t.len++] = ',';
        }
        memcpy(t.s + t.len, p->values[j].s, p->values[j].len);
        t.len += p->values[j].len;
    }
    *arena += t.len;
    return as_key(t);
}


/* Percent-decodes (and '+' -> ' ') s into the arena. */
static text_t
url_decode(char **arena, const char *s, size_t len)
{
    text_t t = {*arena, 0};
    size_t i;
    int    h, l;

    for (i = 0; i < len; i++) {
        if (s[i] == '+') {
            t.s[t.len++] = ' ';
        } else if (s[i] == '%' && i + 2 < len
                   && (h = hexval((unsigned char) s[i + 1])) >= 0
                   && (l = hexval((unsigned char) s[i + 2])) >= 0)
        {
            t.s[t.len++] = (char) (h * 16 + l);
            i += 2;
        } else {
            t.s[t.len++] = s[i];
        }
    }
    *arena += t.len;
    return t;
}


static void
sb_num(sbuf_t *b, unsigned long long v)
{
    char buf[32];
    int  n = snprintf(buf, sizeof(buf), "%llu", v);

    sb_put(b, buf, (size_t) n);
}


char *
faas_event_build(const faas_event_req_t *req, size_t *len, faas_error_t *err)
{
    sbuf_t             b = {NULL, 0, 0, 0};
    pairs_t            hp, qp;
    cleanup_free char *mem = NULL;
    cleanup_free char *cookie_mem = NULL;
    text_t            *cookies = NULL, ua, host, path, method;
    size_t             i, need, nq = 0, ncookies = 0, cookie_cap = 0;
    char              *arena, tbuf[64];
    const char        *p, *end, *amp, *eq;
    time_t             secs;
    struct tm          tm;
    int                b64 = 0;

    /* room: every header name and value twice (cleaned, then the joined
     * user-agent/host), the query decoded, cookies, path, method */
    need = 2 * req->query_len + 2 * (req->path_len + req->method_len) + 64;
    for (i = 0; i < req->nheaders; i++) {
        need += 2 * (req->headers[i].name_len + req->headers[i].value_len) + 2;
    }
    for (i = 0, p = req->query; i < req->query_len; i++) {
        nq += p[i] == '&';
    }
    nq++;
    mem = malloc(need + (req->nheaders + nq) * 2 * (2 * sizeof(text_t)
                                                     + sizeof(size_t)));
    if (mem == NULL) {
        return faas_error_set(err, 0, "out of memory"), NULL;
    }
    hp.names = (text_t *) mem;
    hp.values = hp.names + req->nheaders;
    qp.names = hp.values + req->nheaders;
    qp.values = qp.names + nq;
    hp.group = (size_t *) (qp.values + nq);
    qp.group = hp.group + req->nheaders;
    arena = (char *) (qp.group + nq);
    hp.n = qp.n = 0;

    /* headers (names lowercased), cookies */
    for (i = 0; i < req->nheaders; i++) {
        const faas_event_header_t *h = &req->headers[i];
        text_t                     name, value;

        name = clean(&arena, h->name, h->name_len, 1);
        value = clean(&arena, h->value, h->value_len, 0);
        pairs_add(&hp, name, value);
        if (!(name.len == 6 && memcmp(name.s, "cookie", 6) == 0)) {
            continue;
        }
        for (p = h->value, end = h->value + h->value_len; p < end;) {
            const char *semi;

            while (p < end && *p == ' ') {
                p++;
            }
            if (p >= end) {
                break;
            }
            semi = memchr(p, ';', (size_t) (end - p));
            if (semi == NULL) {
                semi = end;
            }
            if (semi > p) {
                if (ncookies == cookie_cap) {
                    text_t *nc;
                    cookie_cap = cookie_cap ? cookie_cap * 2 : 8;
                    nc = realloc(cookie_mem, cookie_cap * sizeof(text_t));
                    if (nc == NULL) {
                        return faas_error_set(err, 0, "out of memory"), NULL;
                    }
                    cookie_mem = (char *) nc;
                }
                cookies = (text_t *) cookie_mem;
                /* points into the header value: written with sanitize */
                cookies[ncookies].s = (char *) p;
                cookies[ncookies].len = (size_t) (semi - p);
                ncookies++;
            }
            p = semi + 1;
        }
    }

    /* the query */
    for (p = req->query, end = req->query + req->query_len; p < end;) {
        text_t k, v;

        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL) {
            amp = end;
        }
        if (amp == p) {
            p++;
            continue;
        }
        eq = memchr(p, '=', (size_t) (amp - p));
        k = url_decode(&arena, p, (size_t) ((eq ? eq : amp) - p));
        k = clean(&arena, k.s, k.len, 0);
        if (eq != NULL) {
            v = url_decode(&arena, eq + 1, (size_t) (amp - eq - 1));
            v = clean(&arena, v.s, v.len, 0);
        } else {
            v.s = arena;
            v.len = 0;
        }
        pairs_add(&qp, k, v);
        p = amp + 1;
    }

    ua = pairs_get(&hp, "user-agent", &arena);
    host = pairs_get(&hp, "host", &arena);
    path = clean(&arena, req->path ? req->path : "",
                 req->path ? req->path_len : 0, 0);
    method = clean(&arena, req->method ? req->method : "",
                   req->method ? req->method_len : 0, 0);
    secs = (time_t) (req->time_ms / 1000);
    gmtime_r(&secs, &tm);
    strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S +0000", &tm);

#define PATH_STR sb_jstr(&b, path.s, path.len, 0)
#define METHOD_STR sb_jstr(&b, method.s, method.len, 0)
#define STR0(s) sb_jstr(&b, (s), strlen(s), 1)

    sb_lit(&b, "{\"version\":\"2.0\",\"routeKey\":\"$default\",\"rawPath\":");
    PATH_STR;
    sb_lit(&b, ",\"rawQueryString\":");
    sb_jstr(&b, req->query ? req->query : "", req->query ? req->query_len : 0,
            1);
    if (ncookies > 0) {
        sb_lit(&b, ",\"cookies\":[");
        for (i = 0; i < ncookies; i++) {
            if (i > 0) {
                sb_lit(&b, ",");
            }
            sb_jstr(&b, cookies[i].s, cookies[i].len, 1);
        }
        sb_lit(&b, "]");
    }
    sb_lit(&b, ",\"headers\":");
    pairs_write(&b, &hp, 0);
    if (qp.n > 0) {
        sb_lit(&b, ",\"queryStringParameters\":");
        pairs_write(&b, &qp, 0);
        sb_lit(&b, ",\"multiValueQueryStringParameters\":");
        pairs_write(&b, &qp, 1);
    } else {
        sb_lit(&b, ",\"queryStringParameters\":null,"
                   "\"multiValueQueryStringParameters\":null");
    }

    sb_lit(&b, ",\"requestContext\":{\"accountId\":\"anonymous\",\"apiId\":");
    STR0(req->function ? req->function : "");
    sb_lit(&b, ",\"domainName\":");
    sb_jstr(&b, host.s ? host.s : "", host.len, 0);
    sb_lit(&b, ",\"http\":{\"method\":");
    METHOD_STR;
    sb_lit(&b, ",\"path\":");
    PATH_STR;
    sb_lit(&b, ",\"protocol\":");
    STR0(req->protocol ? req->protocol : "HTTP/1.1");
    sb_lit(&b, ",\"sourceIp\":");
    STR0(req->source_ip ? req->source_ip : "");
    sb_lit(&b, ",\"userAgent\":");
    sb_jstr(&b, ua.s ? ua.s : "", ua.len, 0);
    sb_lit(&b, "},\"requestId\":");
    STR0(req->request_id ? req->request_id : "");
    sb_lit(&b, ",\"routeKey\":\"$default\",\"stage\":\"$default\",\"time\":");
    STR0(tbuf);
    sb_lit(&b, ",\"timeEpoch\":");
    sb_num(&b, req->time_ms);
    sb_lit(&b, ",\"httpMethod\":");
    METHOD_STR;
    sb_lit(&b, ",\"path\":");
    PATH_STR;
    sb_lit(&b, ",\"resourcePath\":");
    PATH_STR;
    sb_lit(&b, ",\"identity\":{\"sourceIp\":");
    STR0(req->source_ip ? req->source_ip : "");
    sb_lit(&b, ",\"userAgent\":");
    sb_jstr(&b, ua.s ? ua.s : "", ua.len, 0);
    sb_lit(&b, "},\"requestTimeEpoch\":");
    sb_num(&b, req->time_ms);
    sb_lit(&b, "},\"body\":");

    if (req->body_len == 0) {
        sb_lit(&b, "null");
    } else if (faas_utf8_valid((const char *) req->body, req->body_len)) {
        sb_jstr(&b, (const char *) req->body, req->body_len, 0);
    } else {
        size_t blen;
        char  *enc = faas_base64_encode(req->body, req->body_len, &blen);

        if (enc == NULL) {
            free(b.p);
            return faas_error_set(err, 0, "out of memory"), NULL;
        }
        sb_jstr(&b, enc, blen, 0);
        free(enc);
        b64 = 1;
    }
    if (b64) {
        sb_lit(&b, ",\"isBase64Encoded\":true,\"resource\":");
    } else {
        sb_lit(&b, ",\"isBase64Encoded\":false,\"resource\":");
    }
    PATH_STR;
    sb_lit(&b, ",\"path\":");
    PATH_STR;
    sb_lit(&b, ",\"httpMethod\":");
    METHOD_STR;
    sb_lit(&b, ",\"multiValueHeaders\":");
    pairs_write(&b, &hp, 1);
    sb_lit(&b, ",\"pathParameters\":null,\"stageVariables\":null}");

#undef PATH_STR
#undef METHOD_STR
#undef STR0

    if (b.oom) {
        free(b.p);
        faas_error_set(err, 0, "event: out of memory");
        return NULL;
    }
    *len = b.len;
    return b.p;
}
