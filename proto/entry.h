/*
 * Idle-list entries `<sandbox-id>|<endpoint>|<origin-request-id or ->`
 * (docs/DESIGN.md section 4) and the reasons the provisioner leaves on
 * faas:err:{rid}:<request-id>.
 */
#ifndef FAAS_ENTRY_H
#define FAAS_ENTRY_H

#include <stddef.h>

#include "error.h"
#include "keys.h"

#define FAAS_ENDPOINT_MAX  200
#define FAAS_ENTRY_MAX     (FAAS_SBXID_LEN + FAAS_ENDPOINT_MAX + 40)
#define FAAS_REASON_MAX    512

/*
 * The reason of a cold start refused for want of host capacity: the
 * gateway keeps the call waiting for a returned sandbox instead of failing
 * it (docs/DESIGN.md section 10).
 */
#define FAAS_REASON_HOST_FULL  "host full"

enum faas_endpoint_type {
    FAAS_ENDPOINT_UNIX = 1,
    FAAS_ENDPOINT_TCP,
};

enum faas_start_type {
    FAAS_START_COLD = 1,   /* same numbers as proto StartType */
    FAAS_START_WARM = 2,
    FAAS_START_STOLEN = 3,
};

typedef struct faas_entry_s {
    char  sandbox_id[FAAS_SBXID_LEN + 1];
    char  endpoint[FAAS_ENDPOINT_MAX + 1];   /* as written: unix:... tcp:... */
    int   type;                              /* enum faas_endpoint_type */
    char  path[FAAS_ENDPOINT_MAX + 1];       /* unix socket path */
    char  host[FAAS_ENDPOINT_MAX + 1];       /* tcp host */
    unsigned port;                           /* tcp port */
    char  origin[FAAS_REQID_LEN + 1];        /* "" when "-" */
} faas_entry_t;

/*
 * Parses an entry. Rejects a bad sandbox id, an endpoint that is neither
 * unix:<absolute path shorter than 108 bytes> nor tcp:<host>:<port>, and an
 * origin that is neither "-" nor a request id. Returns 0 or -1 with err set.
 */
int faas_entry_parse(const char *s, size_t len, faas_entry_t *e,
                     faas_error_t *err);

/*
 * Formats an entry; origin NULL or "" writes "-". Returns the length, or -1
 * when buf is too small.
 */
int faas_entry_format(char *buf, size_t size, const char *sandbox_id,
                      const char *endpoint, const char *origin);

/*
 * The start type of an invocation served by e: WARM when taken at once
 * (LPOP); after a wait (BLPOP or a hand-off), COLD when e is a fresh
 * sandbox (its origin is the request it was provisioned for, whichever
 * waiting request takes it) and STOLEN when e was returned by another
 * request (origin "-"): that request's cold start was hidden.
 */
int faas_entry_start_type(const faas_entry_t *e, int from_blpop);

/* "cold", "warm", "stolen" (or "-" for anything else). */
const char *faas_start_type_name(int type);

/*
 * Makes a provisioner's failure reason safe for an HTTP body and a log
 * line: control bytes become spaces, at most FAAS_REASON_MAX - 1 bytes are
 * kept, an empty reason becomes "cold start failed". Writes into out
 * (FAAS_REASON_MAX bytes) and returns its length.
 */
size_t faas_reason_clean(const char *s, size_t len, char *out);

#endif
