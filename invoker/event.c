#include "event.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
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
    char                     *p;
    size_t                    len, cap;
    int                       oom;
    const faas_event_alloc_t *al;
} sbuf_t;


/* Room for n more bytes and the NUL: a new block, the text moved over
 * (the first block is sized so that this is rare: event_size_hint). */
static int
sb_grow(sbuf_t *b, size_t n)
{
    char  *np;
    size_t cap = b->cap ? b->cap : 1024;

    while (cap < b->len + n + 1) {
        cap *= 2;
    }
    np = b->al->alloc(b->al->data, cap);
    if (np == NULL) {
        b->oom = 1;
        return -1;
    }
    if (b->p != NULL) {
        memcpy(np, b->p, b->len + 1);
        b->al->free(b->al->data, b->p);
    }
    b->p = np;
    b->cap = cap;
    return 0;
}


static void
sb_put(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap && sb_grow(b, n) < 0) {
        return;
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


/* What the event is written from: the request's texts, cleaned and grouped.
 * Every text lives in mem (the arena) or in the request itself. */
typedef struct {
    char    *mem;        /* the pairs' arrays, then the arena */
    char    *arena;      /* next free byte of the arena */
    pairs_t  hp;         /* headers */
    pairs_t  qp;         /* query parameters */
    text_t  *cookies;    /* point into the header values */
    size_t   ncookies;
    size_t   cookie_cap;
    text_t   ua, host, path, method;
    char     time[64];
} event_parts_t;


static void
parts_free(event_parts_t *e)
{
    free(e->mem);
    free(e->cookies);
}


/* Sizes and allocates the pairs' arrays and the arena in one block. */
static int
parts_alloc(event_parts_t *e, const faas_event_req_t *req)
{
    size_t i, need, nq = 0;

    /* room: every header name and value twice (cleaned, then the joined
     * user-agent/host), the query decoded, cookies, path, method */
    need = 2 * req->query_len + 2 * (req->path_len + req->method_len) + 64;
    for (i = 0; i < req->nheaders; i++) {
        need += 2 * (req->headers[i].name_len + req->headers[i].value_len) + 2;
    }
    for (i = 0; i < req->query_len; i++) {
        nq += req->query[i] == '&';
    }
    nq++;
    e->mem = malloc(need + (req->nheaders + nq) * 2 * (2 * sizeof(text_t)
                                                        + sizeof(size_t)));
    if (e->mem == NULL) {
        return -1;
    }
    e->hp.names = (text_t *) e->mem;
    e->hp.values = e->hp.names + req->nheaders;
    e->qp.names = e->hp.values + req->nheaders;
    e->qp.values = e->qp.names + nq;
    e->hp.group = (size_t *) (e->qp.values + nq);
    e->qp.group = e->hp.group + req->nheaders;
    e->arena = (char *) (e->qp.group + nq);
    e->hp.n = e->qp.n = 0;
    return 0;
}


static int
cookie_add(event_parts_t *e, const char *s, size_t len)
{
    text_t *nc;

    if (e->ncookies == e->cookie_cap) {
        e->cookie_cap = e->cookie_cap ? e->cookie_cap * 2 : 8;
        nc = realloc(e->cookies, e->cookie_cap * sizeof(text_t));
        if (nc == NULL) {
            return -1;
        }
        e->cookies = nc;
    }
    /* points into the header value: written with sanitize */
    e->cookies[e->ncookies].s = (char *) s;
    e->cookies[e->ncookies].len = len;
    e->ncookies++;
    return 0;
}


/* Splits a Cookie header's value at ';', leading spaces dropped. */
static int
cookies_split(event_parts_t *e, const char *value, size_t value_len)
{
    const char *p, *end, *semi;

    for (p = value, end = value + value_len; p < end;) {
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
        if (semi > p && cookie_add(e, p, (size_t) (semi - p)) < 0) {
            return -1;
        }
        p = semi + 1;
    }
    return 0;
}


/* The headers (names lowercased) and the cookies. */
static int
parts_headers(event_parts_t *e, const faas_event_req_t *req)
{
    size_t i;

    for (i = 0; i < req->nheaders; i++) {
        const faas_event_header_t *h = &req->headers[i];
        text_t                     name, value;

        name = clean(&e->arena, h->name, h->name_len, 1);
        value = clean(&e->arena, h->value, h->value_len, 0);
        pairs_add(&e->hp, name, value);
        if (!(name.len == 6 && memcmp(name.s, "cookie", 6) == 0)) {
            continue;
        }
        if (cookies_split(e, h->value, h->value_len) < 0) {
            return -1;
        }
    }
    return 0;
}


/* The query split at '&' and '=', each part percent-decoded. */
static void
parts_query(event_parts_t *e, const faas_event_req_t *req)
{
    const char *p, *end, *amp, *eq;
    text_t      k, v;

    for (p = req->query, end = req->query + req->query_len; p < end;) {
        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL) {
            amp = end;
        }
        if (amp == p) {
            p++;
            continue;
        }
        eq = memchr(p, '=', (size_t) (amp - p));
        k = url_decode(&e->arena, p, (size_t) ((eq ? eq : amp) - p));
        k = clean(&e->arena, k.s, k.len, 0);
        if (eq != NULL) {
            v = url_decode(&e->arena, eq + 1, (size_t) (amp - eq - 1));
            v = clean(&e->arena, v.s, v.len, 0);
        } else {
            v.s = e->arena;
            v.len = 0;
        }
        pairs_add(&e->qp, k, v);
        p = amp + 1;
    }
}


/* The single texts: user agent, host, path, method, the request time. */
static void
parts_singles(event_parts_t *e, const faas_event_req_t *req)
{
    time_t    secs;
    struct tm tm;

    e->ua = pairs_get(&e->hp, "user-agent", &e->arena);
    e->host = pairs_get(&e->hp, "host", &e->arena);
    e->path = clean(&e->arena, req->path ? req->path : "",
                    req->path ? req->path_len : 0, 0);
    e->method = clean(&e->arena, req->method ? req->method : "",
                      req->method ? req->method_len : 0, 0);
    secs = (time_t) (req->time_ms / 1000);
    gmtime_r(&secs, &tm);
    strftime(e->time, sizeof(e->time), "%d/%b/%Y:%H:%M:%S +0000", &tm);
}


static void
sb_text(sbuf_t *b, text_t t)
{
    sb_jstr(b, t.s ? t.s : "", t.len, 0);
}


/* A NUL-terminated text from the request, sanitized; NULL as dflt. */
static void
sb_opt(sbuf_t *b, const char *s, const char *dflt)
{
    s = s ? s : dflt;
    sb_jstr(b, s, strlen(s), 1);
}


/* version .. multiValueQueryStringParameters */
static void
write_request_line(sbuf_t *b, const faas_event_req_t *req,
                   const event_parts_t *e)
{
    size_t i;

    sb_lit(b, "{\"version\":\"2.0\",\"routeKey\":\"$default\",\"rawPath\":");
    sb_text(b, e->path);
    sb_lit(b, ",\"rawQueryString\":");
    sb_jstr(b, req->query ? req->query : "", req->query ? req->query_len : 0,
            1);
    if (e->ncookies > 0) {
        sb_lit(b, ",\"cookies\":[");
        for (i = 0; i < e->ncookies; i++) {
            if (i > 0) {
                sb_lit(b, ",");
            }
            sb_jstr(b, e->cookies[i].s, e->cookies[i].len, 1);
        }
        sb_lit(b, "]");
    }
    sb_lit(b, ",\"headers\":");
    pairs_write(b, &e->hp, 0);
    if (e->qp.n > 0) {
        sb_lit(b, ",\"queryStringParameters\":");
        pairs_write(b, &e->qp, 0);
        sb_lit(b, ",\"multiValueQueryStringParameters\":");
        pairs_write(b, &e->qp, 1);
    } else {
        sb_lit(b, ",\"queryStringParameters\":null,"
                  "\"multiValueQueryStringParameters\":null");
    }
}


/* requestContext, both versions' fields in one object */
static void
write_request_context(sbuf_t *b, const faas_event_req_t *req,
                      const event_parts_t *e)
{
    sb_lit(b, ",\"requestContext\":{\"accountId\":\"anonymous\",\"apiId\":");
    sb_opt(b, req->function, "");
    sb_lit(b, ",\"domainName\":");
    sb_text(b, e->host);
    sb_lit(b, ",\"http\":{\"method\":");
    sb_text(b, e->method);
    sb_lit(b, ",\"path\":");
    sb_text(b, e->path);
    sb_lit(b, ",\"protocol\":");
    sb_opt(b, req->protocol, "HTTP/1.1");
    sb_lit(b, ",\"sourceIp\":");
    sb_opt(b, req->source_ip, "");
    sb_lit(b, ",\"userAgent\":");
    sb_text(b, e->ua);
    sb_lit(b, "},\"requestId\":");
    sb_opt(b, req->request_id, "");
    sb_lit(b, ",\"routeKey\":\"$default\",\"stage\":\"$default\",\"time\":");
    sb_opt(b, e->time, "");
    sb_lit(b, ",\"timeEpoch\":");
    sb_num(b, req->time_ms);
    sb_lit(b, ",\"httpMethod\":");
    sb_text(b, e->method);
    sb_lit(b, ",\"path\":");
    sb_text(b, e->path);
    sb_lit(b, ",\"resourcePath\":");
    sb_text(b, e->path);
    sb_lit(b, ",\"identity\":{\"sourceIp\":");
    sb_opt(b, req->source_ip, "");
    sb_lit(b, ",\"userAgent\":");
    sb_text(b, e->ua);
    sb_lit(b, "},\"requestTimeEpoch\":");
    sb_num(b, req->time_ms);
    sb_lit(b, "}");
}


/* The body as text if it is UTF-8, else base64: returns 1 if base64,
 * -1 out of memory. */
static int
write_body(sbuf_t *b, const faas_event_req_t *req)
{
    size_t blen;
    char  *enc;

    sb_lit(b, ",\"body\":");
    if (req->body_len == 0) {
        sb_lit(b, "null");
        return 0;
    }
    if (faas_utf8_valid((const char *) req->body, req->body_len)) {
        sb_jstr(b, (const char *) req->body, req->body_len, 0);
        return 0;
    }
    enc = faas_base64_encode(req->body, req->body_len, &blen);
    if (enc == NULL) {
        return -1;
    }
    sb_jstr(b, enc, blen, 0);
    free(enc);
    return 1;
}


/* isBase64Encoded .. the end of the event */
static void
write_rest(sbuf_t *b, const event_parts_t *e, int b64)
{
    if (b64) {
        sb_lit(b, ",\"isBase64Encoded\":true,\"resource\":");
    } else {
        sb_lit(b, ",\"isBase64Encoded\":false,\"resource\":");
    }
    sb_text(b, e->path);
    sb_lit(b, ",\"path\":");
    sb_text(b, e->path);
    sb_lit(b, ",\"httpMethod\":");
    sb_text(b, e->method);
    sb_lit(b, ",\"multiValueHeaders\":");
    pairs_write(b, &e->hp, 1);
    sb_lit(b, ",\"pathParameters\":null,\"stageVariables\":null}");
}


/*
 * A size the event rarely outgrows: the fixed text, each request text as
 * many times as the event repeats it (path 5, query 3, headers 2), with
 * room for escapes; the body escaped or base64-encoded.
 */
static size_t
event_size_hint(const faas_event_req_t *req)
{
    size_t i, n;

    n = 1024 + 6 * (req->path_len + req->method_len) + 4 * req->query_len;
    for (i = 0; i < req->nheaders; i++) {
        n += 3 * (req->headers[i].name_len + req->headers[i].value_len) + 16;
    }
    return n + req->body_len + req->body_len / 3 + 16;
}


char *
faas_event_build_with(const faas_event_req_t *req,
                      const faas_event_alloc_t *al, size_t *len,
                      faas_error_t *err)
{
    event_parts_t e = {0};
    sbuf_t        b = {NULL, 0, 0, 0, al};
    int           b64;

    if (parts_alloc(&e, req) < 0 || parts_headers(&e, req) < 0) {
        parts_free(&e);
        return faas_error_set(err, 0, "out of memory"), NULL;
    }
    parts_query(&e, req);
    parts_singles(&e, req);

    if (sb_grow(&b, event_size_hint(req)) < 0) {
        parts_free(&e);
        return faas_error_set(err, 0, "event: out of memory"), NULL;
    }
    b.p[0] = '\0';

    write_request_line(&b, req, &e);
    write_request_context(&b, req, &e);
    b64 = write_body(&b, req);
    if (b64 < 0) {
        parts_free(&e);
        al->free(al->data, b.p);
        return faas_error_set(err, 0, "out of memory"), NULL;
    }
    write_rest(&b, &e, b64);
    parts_free(&e);

    if (b.oom) {
        if (b.p != NULL) {
            al->free(al->data, b.p);
        }
        faas_error_set(err, 0, "event: out of memory");
        return NULL;
    }
    *len = b.len;
    return b.p;
}


static void *
event_malloc(void *data, size_t size)
{
    (void) data;
    return malloc(size);
}


static void
event_free(void *data, void *p)
{
    (void) data;
    free(p);
}


char *
faas_event_build(const faas_event_req_t *req, size_t *len, faas_error_t *err)
{
    static const faas_event_alloc_t al = {event_malloc, event_free, NULL};

    return faas_event_build_with(req, &al, len, err);
}
