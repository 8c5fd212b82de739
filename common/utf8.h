/* UTF-8 validation (RFC 3629: no overlong forms, no surrogates). */
#ifndef FAAS_UTF8_H
#define FAAS_UTF8_H

#include <stddef.h>

/*
 * The length (1 to 4) of the valid UTF-8 character that s[0..n) starts
 * with, or 0 when it starts with none (n == 0, a bad or cut sequence).
 */
size_t faas_utf8_char_len(const char *s, size_t n);

/* 1 if s[0..n) is valid UTF-8, else 0. */
int faas_utf8_valid(const char *s, size_t n);

#endif
