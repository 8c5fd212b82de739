/*
 * What a function may send back (docs/DESIGN.md section 8): its status and
 * headers come from code the platform does not trust and go to clients and
 * proxies that trust the gateway. The checks, without nginx, so the
 * gateway (ngx_faas_module/ngx_http_faas_answer.c) and the fuzz target
 * (fuzz/answer.c) run the same code.
 */
#ifndef FAAS_ANSWER_H
#define FAAS_ANSWER_H

#include <stdint.h>

/* 1 when a function's HTTP status may reach the client: 200-599. */
int faas_answer_status_ok(uint32_t status);

/*
 * 1 when name is an RFC 9110 token and value holds no control character
 * other than HTAB (no CR, LF, NUL, DEL). NULL or empty name: 0.
 */
int faas_answer_header_valid(const char *name, const char *value);

/*
 * 1 for a header that is not the function's to send: hop-by-hop and
 * framing headers (Connection, Keep-Alive, Upgrade, TE, Trailer,
 * Transfer-Encoding, Content-Length, Proxy-*), the platform's X-Faas-*,
 * and any header named in connection (the function's Connection header's
 * value, or NULL).
 */
int faas_answer_header_own(const char *name, const char *connection);

#endif
