/* Request ids: 32 lowercase hex digits from the kernel's CSPRNG. */
#ifndef FAAS_REQID_H
#define FAAS_REQID_H

#include "error.h"

/*
 * Writes a fresh request id and a NUL into out (33 bytes). Random bytes are
 * drawn in batches with getrandom(2). Returns 0, or -errno with err set.
 * Not thread-safe (one caller per process, e.g. one nginx worker).
 */
int faas_request_id_new(char *out, faas_error_t *err);

#endif
