#include "record.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cleanup.h"
#include "frame.h"

#define S(s) ((char *) ((s) != NULL ? (s) : ""))


int
faas_prov_request_pack(const faas_prov_args_t *a, uint8_t **out,
                       size_t *len, faas_error_t *err)
{
    Faas__ProvisionRequest  m = FAAS__PROVISION_REQUEST__INIT;

    m.rid = S(a->rid);
    m.origin_request_id = S(a->origin_request_id);
    m.enqueued_ms = a->enqueued_ms;

    *len = faas__provision_request__get_packed_size(&m);
    *out = malloc(*len ? *len : 1);
    if (*out == NULL) {
        return faas_error_set(err, 0, "out of memory");
    }
    faas__provision_request__pack(&m, *out);
    return 0;
}


int
faas_record_pack(const faas_record_args_t *a, uint8_t **out, size_t *len,
                 faas_error_t *err)
{
    Faas__ExecutionRecord m = FAAS__EXECUTION_RECORD__INIT;

    m.request_id = S(a->request_id);
    m.function = S(a->function);
    m.version = a->version;
    m.user = S(a->user);
    m.start_type = (Faas__StartType) a->start_type;
    m.status = (Faas__InvokeStatus) a->status;
    m.http_status = a->http_status;
    m.duration_us = a->duration_us;
    m.total_us = a->total_us;
    m.cold_start_us = a->cold_start_us;
    m.memory_bytes = a->memory_bytes;
    m.log_key = S(a->log_key);
    m.agent_host = S(a->agent_host);
    m.timestamp_ms = a->timestamp_ms;
    m.sandbox_id = S(a->sandbox_id);
    m.trace_id = S(a->trace_id);

    *len = faas__execution_record__get_packed_size(&m);
    *out = malloc(*len ? *len : 1);
    if (*out == NULL) {
        return faas_error_set(err, 0, "out of memory");
    }
    faas__execution_record__pack(&m, *out);
    return 0;
}


int
faas_invoke_request_frame(const faas_invoke_args_t *a, uint8_t **out,
                          size_t *len, faas_error_t *err)
{
    Faas__InvokeRequest m = FAAS__INVOKE_REQUEST__INIT;
    Faas__AgentHello    h = FAAS__AGENT_HELLO__INIT;
    size_t              hlen = 0, mlen, off = 0;
    uint8_t            *buf;

    m.request_id = S(a->request_id);
    m.sandbox_id = S(a->sandbox_id);
    m.function = S(a->function);
    m.version = a->version;
    m.event.data = (uint8_t *) a->event;
    m.event.len = a->event_len;
    m.deadline_ms = a->deadline_ms;
    m.timeout_ms = a->timeout_ms;
    m.memory_mb = a->memory_mb;
    m.user = S(a->user);
    m.traceparent = S(a->traceparent);

    if (a->token != NULL) {
        h.token = (char *) a->token;
        hlen = 4 + faas__agent_hello__get_packed_size(&h);
    }
    mlen = faas__invoke_request__get_packed_size(&m);
    if (mlen > 0xffffffffu - 4) {
        return faas_error_set(err, 0, "invoke request too large");
    }
    buf = malloc(hlen + 4 + mlen);
    if (buf == NULL) {
        return faas_error_set(err, 0, "out of memory");
    }
    if (a->token != NULL) {
        faas_frame_put_len(buf, (uint32_t) (hlen - 4));
        faas__agent_hello__pack(&h, buf + 4);
        off = hlen;
    }
    faas_frame_put_len(buf + off, (uint32_t) mlen);
    faas__invoke_request__pack(&m, buf + off + 4);
    *out = buf;
    *len = hlen + 4 + mlen;
    return 0;
}
