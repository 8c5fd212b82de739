/*
 * Base64, standard (RFC 4648 section 4) and url-safe (section 5). One copy
 * for every program: event bodies, code uploads, access keys.
 */
#ifndef FAAS_BASE64_H
#define FAAS_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* The encoded length of len bytes, padding included, without the NUL. */
#define FAAS_BASE64_LEN(len)  (4 * (((len) + 2) / 3))

/*
 * Standard alphabet with '=' padding, into a malloc'd NUL-terminated string
 * (caller frees); *olen (when not NULL) gets its length. NULL when out of
 * memory.
 */
char *faas_base64_encode(const void *in, size_t len, size_t *olen);

/*
 * Url-safe alphabet without padding into out, which must hold
 * FAAS_BASE64_LEN(len) + 1 bytes; NUL-terminates and returns the length.
 */
size_t faas_base64url_encode(char *out, const void *in, size_t len);

/*
 * Decodes either alphabet, padding optional, whitespace (space, tab, CR,
 * LF) skipped, into a malloc'd buffer (caller frees). Returns 0, or -1 on
 * bad input or when out of memory.
 */
int faas_base64_decode(const char *in, size_t len, uint8_t **out,
                       size_t *olen);

#endif
