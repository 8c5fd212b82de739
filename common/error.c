#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
faas_error_set(faas_error_t *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    size_t  n;

    if (err != NULL) {
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = errnum;
        if (errnum != 0) {
            n = strlen(err->msg);
            snprintf(err->msg + n, sizeof(err->msg) - n, ": %s",
                     strerror(errnum));
        }
    }
    return errnum != 0 ? -errnum : -1;
}


int
faas_error_wrap(faas_error_t *err, const char *fmt, ...)
{
    char    prefix[FAAS_ERROR_MAX], old[FAAS_ERROR_MAX];
    va_list ap;
    size_t  n, m;

    if (err == NULL) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* Built by hand: snprintf("%s: %s") trips -Wformat-truncation. */
    n = strlen(prefix);
    memcpy(err->msg, prefix, n);
    if (n + 2 < sizeof(err->msg)) {
        memcpy(err->msg + n, ": ", 2);
        n += 2;
        m = strlen(old);
        if (m > sizeof(err->msg) - 1 - n) {
            m = sizeof(err->msg) - 1 - n;
        }
        memcpy(err->msg + n, old, m);
        n += m;
    }
    err->msg[n] = '\0';
    return err->code != 0 ? -err->code : -1;
}


void
faas_error_clear(faas_error_t *err)
{
    if (err != NULL) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}
