#include "trace.h"

#include <string.h>

#include "reqid.h"

#define OFF_TRACE   3
#define OFF_PARENT  36
#define OFF_FLAGS   53


/* An all-zero id is invalid (2^-64 odds at worst): never send one. */
static void
not_all_zeros(char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (p[i] != '0') {
            return;
        }
    }
    p[n - 1] = '1';
}


int
faas_traceparent_make(const char *v, size_t len, char *out,
                      faas_error_t *err)
{
    int   rc;
    char  fresh[FAAS_REQID_LEN + 1];

    memcpy(out, "00-", 3);

    if (faas_traceparent_valid(v, len)) {
        memcpy(out + OFF_TRACE, v + OFF_TRACE, FAAS_TRACE_ID_LEN);
        memcpy(out + OFF_FLAGS, v + OFF_FLAGS, 2);

    } else {
        rc = faas_request_id_new(fresh, err);
        if (rc < 0) {
            return rc;
        }
        memcpy(out + OFF_TRACE, fresh, FAAS_TRACE_ID_LEN);
        not_all_zeros(out + OFF_TRACE, FAAS_TRACE_ID_LEN);
        memcpy(out + OFF_FLAGS, "01", 2);
    }

    rc = faas_request_id_new(fresh, err);
    if (rc < 0) {
        return rc;
    }
    memcpy(out + OFF_PARENT, fresh, 16);
    not_all_zeros(out + OFF_PARENT, 16);

    out[OFF_PARENT - 1] = '-';
    out[OFF_FLAGS - 1] = '-';
    out[FAAS_TRACEPARENT_LEN] = '\0';
    return 0;
}
