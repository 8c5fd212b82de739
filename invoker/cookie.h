/*
 * A function's Set-Cookie on the shared host (docs/DESIGN.md section 8):
 * functions served under one origin (/fn/<name>/...) must not set cookies
 * for other hosts or for each other's paths. On a function's own host
 * (faas_function_host) its cookies are left as it sent them.
 */
#ifndef FAAS_COOKIE_H
#define FAAS_COOKIE_H

#include <stddef.h>
#include <sys/types.h>

/* The size of out that faas_cookie_scope needs. */
#define FAAS_COOKIE_SCOPED_MAX(len, plen)  (2 * (len) + (plen) + 9)

/*
 * The Set-Cookie value (len bytes, RFC 6265 syntax) scoped to prefix
 * ("/fn/<name>", no trailing slash) into out (FAAS_COOKIE_SCOPED_MAX
 * bytes, NUL-terminated): the name=value pair and every attribute but
 * Path as sent, then one "; Path=": the function's last Path when it is
 * prefix or below "prefix/", else prefix + its Path when that starts with
 * '/', else "prefix/". Returns the length written, or -1 when the cookie
 * names a Domain attribute and must be dropped.
 */
ssize_t faas_cookie_scope(const char *value, size_t len, const char *prefix,
                          size_t plen, char *out);

#endif
