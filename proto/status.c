#include "status.h"

#include "faas.pb-c.h"


const char *
faas_status_name(unsigned status)
{
    /* A table, not the protobuf descriptor: the gateway prints these on
     * every request and needs no lookup. */
    static const char *names[] = {
        [FAAS__INVOKE_STATUS__OK] = "OK",
        [FAAS__INVOKE_STATUS__FUNCTION_ERROR] = "FUNCTION_ERROR",
        [FAAS__INVOKE_STATUS__TIMEOUT] = "TIMEOUT",
        [FAAS__INVOKE_STATUS__SANDBOX_GONE] = "SANDBOX_GONE",
        [FAAS__INVOKE_STATUS__SANDBOX_CRASHED] = "SANDBOX_CRASHED",
        [FAAS__INVOKE_STATUS__OVERLOADED] = "OVERLOADED",
        [FAAS__INVOKE_STATUS__BAD_REQUEST] = "BAD_REQUEST",
        [FAAS__INVOKE_STATUS__UNAUTHORIZED] = "UNAUTHORIZED",
        [FAAS__INVOKE_STATUS__AGENT_DRAINING] = "AGENT_DRAINING",
        [FAAS__INVOKE_STATUS__SANDBOX_BUSY] = "SANDBOX_BUSY",
    };

    if (status >= sizeof(names) / sizeof(names[0]) || names[status] == NULL) {
        return "UNKNOWN";
    }
    return names[status];
}
