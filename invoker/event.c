#include "event.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cleanup.h"


char *
faas_base64_encode(const unsigned char *in, size_t len, size_t *olen)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char  *out, *o;
    size_t i;

    out = malloc(4 * ((len + 2) / 3) + 1);
    if (out == NULL) {
        return NULL;
    }
    o = out;
    for (i = 0; i + 2 < len; i += 3) {
        *o++ = tbl[in[i] >> 2];
        *o++ = tbl[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *o++ = tbl[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *o++ = tbl[in[i + 2] & 63];
    }
    if (i < len) {
        *o++ = tbl[in[i] >> 2];
        if (i + 1 < len) {
            *o++ = tbl[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
            *o++ = tbl[(in[i + 1] & 15) << 2];
        } else {
            *o++ = tbl[(in[i] & 3) << 4];
            *o++ = '=';
        }
        *o++ = '=';
    }
    *o = '\0';
    if (olen != NULL) {
        *olen = (size_t) (o - out);
    }
    return out;
}


/* A JSON string of s; bytes that are not valid UTF-8 become '?'. */
static json_t *
jstr(const char *s, size_t len)
{
    json_t *j;
    char   *copy;
    size_t  i;

    if (s == NULL) {
        return json_string("");
    }
    j = json_stringn(s, len);
    if (j != NULL) {
        return j;
    }
    copy = malloc(len + 1);
    if (copy == NULL) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        copy[i] = (c == 0 || c >= 0x80) ? '?' : (char) c;
    }
    j = json_stringn(copy, len);
    free(copy);
    return j;
}


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


/* Percent-decodes (and '+' -> ' ') into a malloc'd buffer. */
static char *
url_decode(const char *s, size_t len, size_t *olen)
{
    char  *out;
    size_t i, n = 0;
    int    h, l;

    out = malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] == '%' && i + 2 < len
                   && (h = hexval((unsigned char) s[i + 1])) >= 0
                   && (l = hexval((unsigned char) s[i + 2])) >= 0)
        {
            out[n++] = (char) (h * 16 + l);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    *olen = n;
    return out;
}


/* Appends value to single[name] (joined with ",") and multi[name] (array). */
static int
add_multi(json_t *single, json_t *multi, const char *name,
          json_t *value)
{
    json_t *old, *arr;

    old = json_object_get(single, name);
    if (old == NULL) {
        if (json_object_set(single, name, value) < 0) {
            return -1;
        }
    } else {
        const char *a = json_string_value(old);
        const char *b = json_string_value(value);
        size_t      la = json_string_length(old);
        size_t      lb = json_string_length(value);
        char       *joined = malloc(la + lb + 2);

        if (joined == NULL) {
            return -1;
        }
        memcpy(joined, a, la);
        joined[la] = ',';
        memcpy(joined + la + 1, b, lb);
        if (json_object_set_new(single, name, json_stringn(joined, la + lb + 1))
            < 0)
        {
            free(joined);
            return -1;
        }
        free(joined);
    }

    arr = json_object_get(multi, name);
    if (arr == NULL) {
        arr = json_array();
        if (arr == NULL || json_object_set_new(multi, name, arr) < 0) {
            return -1;
        }
    }
    return json_array_append(arr, value);
}


static int
parse_query(const char *q, size_t len, json_t *single, json_t *multi)
{
    const char *p = q, *end = q + len, *amp, *eq;

    while (p < end) {
        cleanup_free char *k = NULL;
        cleanup_free char *v = NULL;
        cleanup_json json_t *jk = NULL;
        cleanup_json json_t *jv = NULL;
        size_t klen, vlen;

        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL) {
            amp = end;
        }
        if (amp == p) {
            p++;
            continue;
        }
        eq = memchr(p, '=', (size_t) (amp - p));
        if (eq == NULL) {
            k = url_decode(p, (size_t) (amp - p), &klen);
            v = url_decode("", 0, &vlen);
        } else {
            k = url_decode(p, (size_t) (eq - p), &klen);
            v = url_decode(eq + 1, (size_t) (amp - eq - 1), &vlen);
        }
        if (k == NULL || v == NULL) {
            return -1;
        }
        jk = jstr(k, klen);
        jv = jstr(v, vlen);
        if (jk == NULL || jv == NULL) {
            return -1;
        }
        if (add_multi(single, multi, json_string_value(jk), jv) < 0) {
            return -1;
        }
        p = amp + 1;
    }
    return 0;
}


static int
add_headers(const faas_event_req_t *req, json_t *single, json_t *multi,
            json_t *cookies)
{
    size_t i, j;

    for (i = 0; i < req->nheaders; i++) {
        const faas_event_header_t *h = &req->headers[i];
        cleanup_free char *name = malloc(h->name_len + 1);
        cleanup_json json_t *jn = NULL;
        cleanup_json json_t *jv = NULL;

        if (name == NULL) {
            return -1;
        }
        for (j = 0; j < h->name_len; j++) {
            name[j] = (char) tolower((unsigned char) h->name[j]);
        }
        name[h->name_len] = '\0';
        jn = jstr(name, h->name_len);
        jv = jstr(h->value, h->value_len);
        if (jn == NULL || jv == NULL) {
            return -1;
        }
        if (add_multi(single, multi, json_string_value(jn), jv) < 0) {
            return -1;
        }
        if (strcmp(name, "cookie") == 0) {
            const char *p = h->value, *end = h->value + h->value_len, *semi;

            while (p < end) {
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
                if (semi > p
                    && json_array_append_new(cookies,
                                             jstr(p, (size_t) (semi - p)))
                           < 0)
                {
                    return -1;
                }
                p = semi + 1;
            }
        }
    }
    return 0;
}


static int
set(json_t *o, const char *k, json_t *v)
{
    return v == NULL ? -1 : json_object_set_new(o, k, v);
}


char *
faas_event_build(const faas_event_req_t *req, size_t *len, faas_error_t *err)
{
    cleanup_json json_t *ev = json_object();
    cleanup_json json_t *hdr = json_object();
    cleanup_json json_t *mhdr = json_object();
    cleanup_json json_t *qs = json_object();
    cleanup_json json_t *mqs = json_object();
    cleanup_json json_t *cookies = json_array();
    json_t             *rc, *http, *ident;
    char                tbuf[64];
    const char         *ua, *host;
    time_t              secs;
    struct tm           tm;
    char               *out;
    int                 b64 = 0, rv = 0;

    if (ev == NULL || hdr == NULL || mhdr == NULL || qs == NULL || mqs == NULL
        || cookies == NULL)
    {
        return faas_error_set(err, 0, "out of memory"), NULL;
    }
    if (add_headers(req, hdr, mhdr, cookies) < 0
        || parse_query(req->query, req->query_len, qs, mqs) < 0)
    {
        faas_error_set(err, 0, "event: cannot encode headers or query");
        return NULL;
    }

    ua = json_string_value(json_object_get(hdr, "user-agent"));
    host = json_string_value(json_object_get(hdr, "host"));
    secs = (time_t) (req->time_ms / 1000);
    gmtime_r(&secs, &tm);
    strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S +0000", &tm);

    rc = json_object();
    http = json_object();
    ident = json_object();
    if (rc == NULL || http == NULL || ident == NULL) {
        json_decref(rc);
        json_decref(http);
        json_decref(ident);
        faas_error_set(err, 0, "out of memory");
        return NULL;
    }
    rv |= set(http, "method", jstr(req->method, req->method_len));
    rv |= set(http, "path", jstr(req->path, req->path_len));
    rv |= set(http, "protocol", json_string(req->protocol ? req->protocol
                                                          : "HTTP/1.1"));
    rv |= set(http, "sourceIp", json_string(req->source_ip ? req->source_ip
                                                           : ""));
    rv |= set(http, "userAgent", json_string(ua ? ua : ""));
    rv |= set(ident, "sourceIp", json_string(req->source_ip ? req->source_ip
                                                            : ""));
    rv |= set(ident, "userAgent", json_string(ua ? ua : ""));

    rv |= set(rc, "accountId", json_string("anonymous"));
    rv |= set(rc, "apiId", json_string(req->function ? req->function : ""));
    rv |= set(rc, "domainName", json_string(host ? host : ""));
    rv |= set(rc, "http", http);
    rv |= set(rc, "requestId", json_string(req->request_id));
    rv |= set(rc, "routeKey", json_string("$default"));
    rv |= set(rc, "stage", json_string("$default"));
    rv |= set(rc, "time", json_string(tbuf));
    rv |= set(rc, "timeEpoch", json_integer((json_int_t) req->time_ms));
    /* v1 names */
    rv |= set(rc, "httpMethod", jstr(req->method, req->method_len));
    rv |= set(rc, "path", jstr(req->path, req->path_len));
    rv |= set(rc, "resourcePath", jstr(req->path, req->path_len));
    rv |= set(rc, "identity", ident);
    rv |= set(rc, "requestTimeEpoch", json_integer((json_int_t) req->time_ms));

    rv |= set(ev, "version", json_string("2.0"));
    rv |= set(ev, "routeKey", json_string("$default"));
    rv |= set(ev, "rawPath", jstr(req->path, req->path_len));
    rv |= set(ev, "rawQueryString", jstr(req->query, req->query_len));
    if (json_array_size(cookies) > 0) {
        rv |= json_object_set(ev, "cookies", cookies);
    }
    rv |= json_object_set(ev, "headers", hdr);
    if (json_object_size(qs) > 0) {
        rv |= json_object_set(ev, "queryStringParameters", qs);
        rv |= json_object_set(ev, "multiValueQueryStringParameters", mqs);
    } else {
        rv |= set(ev, "queryStringParameters", json_null());
        rv |= set(ev, "multiValueQueryStringParameters", json_null());
    }
    rv |= set(ev, "requestContext", rc);

    if (req->body_len == 0) {
        rv |= set(ev, "body", json_null());
    } else {
        json_t *b = json_stringn((const char *) req->body, req->body_len);

        if (b == NULL) {
            size_t blen;
            char  *enc = faas_base64_encode(req->body, req->body_len, &blen);

            if (enc == NULL) {
                faas_error_set(err, 0, "out of memory");
                return NULL;
            }
            b = json_stringn(enc, blen);
            free(enc);
            b64 = 1;
        }
        rv |= set(ev, "body", b);
    }
    rv |= set(ev, "isBase64Encoded", json_boolean(b64));

    /* v1 REST-proxy fields */
    rv |= set(ev, "resource", jstr(req->path, req->path_len));
    rv |= set(ev, "path", jstr(req->path, req->path_len));
    rv |= set(ev, "httpMethod", jstr(req->method, req->method_len));
    rv |= json_object_set(ev, "multiValueHeaders", mhdr);
    rv |= set(ev, "pathParameters", json_null());
    rv |= set(ev, "stageVariables", json_null());

    if (rv != 0) {
        faas_error_set(err, 0, "event: cannot build the JSON");
        return NULL;
    }
    out = json_dumps(ev, JSON_COMPACT);
    if (out == NULL) {
        faas_error_set(err, 0, "event: cannot serialise the JSON");
        return NULL;
    }
    *len = strlen(out);
    return out;
}
