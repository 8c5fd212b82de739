/*
 * The names of the InvokeStatus values of faas.proto, as logs, tools and
 * execution records print them.
 */
#ifndef FAAS_STATUS_H
#define FAAS_STATUS_H

/* "OK", "FUNCTION_ERROR", ..., "SANDBOX_BUSY"; "UNKNOWN" for any other. */
const char *faas_status_name(unsigned status);

#endif
