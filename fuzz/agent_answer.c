/*
 * A runtime's answer frame (JSON from inside the sandbox) as the agent maps
 * it (agent/answer.c); the InvokeResponse it makes must pack.
 */
#include "fuzz.h"

#include "agent.h"

#define REQUEST_ID "0123456789abcdef0123456789abcdef"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    faas_runtime_answer_t ans;
    const char           *why;
    uint8_t              *out;
    size_t                n;

    if (faas_runtime_answer_parse(&ans, data, size, REQUEST_ID, &why) == 0) {
        ans.resp.request_id = REQUEST_ID;
        ans.resp.status = ans.status;
        ans.resp.http_status = ans.http_status;
        ans.resp.error = ans.error;
        n = faas__invoke_response__get_packed_size(&ans.resp);
        out = malloc(n ? n : 1);
        if (out == NULL
            || faas__invoke_response__pack(&ans.resp, out) != n) {
            abort();
        }
        free(out);
    }
    faas_runtime_answer_free(&ans);
    return 0;
}
