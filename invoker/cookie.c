/*
 * Set-Cookie scoping on the shared host (cookie.h). Attributes are parsed
 * as RFC 6265 section 5.2 says a browser does: split at ';', the name up
 * to '=', both trimmed of spaces and tabs, names compared without case.
 */
#include "cookie.h"

#include <string.h>
#include <strings.h>

typedef struct span_s {
    const char *p;
    size_t      len;
} span_t;


static span_t
trim(const char *p, size_t len)
{
    span_t s;

    while (len && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }
    s.p = p;
    s.len = len;
    return s;
}


static int
named(span_t name, const char *what)
{
    return name.len == strlen(what) && strncasecmp(name.p, what, name.len) == 0;
}


/* The Path a cookie gets: below prefix, whatever the function asked. */
static char *
scoped_path(char *o, span_t path, int has_path, const char *prefix,
            size_t plen)
{
    int under = has_path && path.len >= plen
                && memcmp(path.p, prefix, plen) == 0
                && (path.len == plen || path.p[plen] == '/');

    if (under) {
        memcpy(o, path.p, path.len);
        return o + path.len;
    }
    memcpy(o, prefix, plen);
    o += plen;
    if (has_path && path.len && path.p[0] == '/') {
        memcpy(o, path.p, path.len);
        return o + path.len;
    }
    *o++ = '/';
    return o;
}


ssize_t
faas_cookie_scope(const char *value, size_t len, const char *prefix,
                  size_t plen, char *out)
{
    const char *p = value, *end = value + len, *semi, *eq;
    char       *o = out;
    span_t      name, path = { NULL, 0 };
    int         has_path = 0;

    semi = memchr(p, ';', len);
    if (semi == NULL) {
        semi = end;
    }
    memcpy(o, p, (size_t) (semi - p));
    o += semi - p;

    for (p = semi; p < end; p = semi) {
        p++;
        semi = memchr(p, ';', (size_t) (end - p));
        if (semi == NULL) {
            semi = end;
        }
        eq = memchr(p, '=', (size_t) (semi - p));
        name = trim(p, (size_t) ((eq ? eq : semi) - p));

        if (named(name, "domain")) {
            return -1;
        }
        if (named(name, "path")) {
            has_path = 1;
            path = eq ? trim(eq + 1, (size_t) (semi - eq - 1))
                      : trim(semi, 0);
            continue;
        }
        *o++ = ';';
        memcpy(o, p, (size_t) (semi - p));
        o += semi - p;
    }

    memcpy(o, "; Path=", 7);
    o = scoped_path(o + 7, path, has_path, prefix, plen);
    *o = '\0';
    return o - out;
}
