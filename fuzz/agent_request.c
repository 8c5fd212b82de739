/*
 * A gateway's InvokeRequest frame as the agent decodes it: protobuf unpack,
 * then the checks made before anything runs (agent/request.c). The frame
 * payload is the input; the event's JSON check is also run on the raw
 * input, which reaches it far more often that way.
 */
#include "fuzz.h"

#include "agent.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Faas__InvokeRequest *req;
    char                 why[256];

    (void) faas_json_check((const char *) data, size, why, sizeof(why));
    req = faas__invoke_request__unpack(NULL, size, data);
    if (req == NULL) {
        return 0;
    }
    if (faas_invoke_ids_check(req, why, sizeof(why))
        == FAAS__INVOKE_STATUS__OK) {
        (void) faas_invoke_event_check(req, why, sizeof(why));
    }
    faas__invoke_request__free_unpacked(req, NULL);
    return 0;
}
