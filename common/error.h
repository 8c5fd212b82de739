/*
 * Errors, the crun way: a fallible function takes a faas_error_t *, fills it
 * with faas_error_set() and returns a negative value; callers return that
 * value and may add context with faas_error_wrap() on the way up.
 */
#ifndef FAAS_ERROR_H
#define FAAS_ERROR_H

#include <stddef.h>

#define FAAS_ERROR_MAX 512

typedef struct faas_error_s {
    int  code;                 /* errno-style code, 0 when not from errno */
    char msg[FAAS_ERROR_MAX];  /* "context: context: cause: strerror" */
} faas_error_t;

/*
 * Sets err (if not NULL) to the formatted message, followed by ": strerror"
 * when errnum != 0. Returns -1 when errnum is 0, else -errnum, so callers can
 * write `return faas_error_set(err, errno, "open %s", path);`.
 */
int faas_error_set(faas_error_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to err's message. Returns -1 or -err->code. */
int faas_error_wrap(faas_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void faas_error_clear(faas_error_t *err);

#endif
