/*
 * Protobuf messages the gateway writes and reads (proto/faas.proto):
 * ProvisionRequest (to faas:prov:q:<shard>), ExecutionRecord (to
 * faas:records), the InvokeRequest frame to an agent and its answer.
 */
#ifndef FAAS_RECORD_H
#define FAAS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "faas.pb-c.h"

/*
 * A ProvisionRequest names the revision and the call that asked; the
 * provisioner reads the rest from faas:rev:{rid} (docs/DESIGN.md section 5).
 */
typedef struct faas_prov_args_s {
    const char        *rid;
    const char        *origin_request_id;
    unsigned long long enqueued_ms;
} faas_prov_args_t;

/*
 * Packs a ProvisionRequest into a malloc'd buffer (*out, caller frees).
 * Returns 0, or -1 with err set.
 */
int faas_prov_request_pack(const faas_prov_args_t *a, uint8_t **out,
                           size_t *len, faas_error_t *err);

typedef struct faas_record_args_s {
    const char        *request_id;
    const char        *function;
    unsigned           version;
    const char        *user;
    int                start_type;    /* enum faas_start_type */
    int                status;        /* Faas__InvokeStatus */
    unsigned           http_status;
    unsigned long long duration_us;
    unsigned long long total_us;
    unsigned long long cold_start_us;
    unsigned long long memory_bytes;
    const char        *log_key;
    const char        *agent_host;
    unsigned long long timestamp_ms;
    const char        *sandbox_id;
    const char        *trace_id;
} faas_record_args_t;

/* Packs an ExecutionRecord (NULL strings become ""). As above. */
int faas_record_pack(const faas_record_args_t *a, uint8_t **out, size_t *len,
                     faas_error_t *err);

typedef struct faas_invoke_args_s {
    const char         *token;        /* non-NULL: AgentHello frame first */
    const char         *request_id;
    const char         *sandbox_id;
    const char         *function;
    unsigned            version;
    const uint8_t      *event;
    size_t              event_len;
    unsigned long long  deadline_ms;
    unsigned            timeout_ms;
    unsigned            memory_mb;
    const char         *user;
    const char         *traceparent;
} faas_invoke_args_t;

/*
 * The bytes to write to an agent: [AgentHello frame] InvokeRequest frame,
 * each a 4-byte big-endian length and the message. malloc'd, caller frees.
 */
int faas_invoke_request_frame(const faas_invoke_args_t *a, uint8_t **out,
                              size_t *len, faas_error_t *err);

#endif
