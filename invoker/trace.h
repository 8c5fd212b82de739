/*
 * W3C trace context (docs/DESIGN.md section 5, "Trace context"): the
 * gateway keeps a client's valid traceparent's trace id and flags, starts
 * a trace when there is none or it is malformed, and names itself the
 * parent of the function's span.
 */
#ifndef FAAS_TRACE_H
#define FAAS_TRACE_H

#include <stddef.h>

#include "error.h"
#include "ids.h"

/*
 * Writes the traceparent the gateway passes on, and a NUL, into out (56
 * bytes): version 00, the client's trace id and flags when its header
 * (v, len; v NULL when absent) is valid (faas_traceparent_valid), else a
 * fresh trace id and flags 01 (sampled); a fresh parent id either way (the
 * gateway's span). Returns 0, or a negative value with err set (no random
 * bytes).
 */
int faas_traceparent_make(const char *v, size_t len, char *out,
                          faas_error_t *err);

#endif
