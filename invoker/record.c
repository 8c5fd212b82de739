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
    Faas__ProvisionRequest                 m = FAAS__PROVISION_REQUEST__INIT;
    cleanup_json json_t                   *env = NULL;
    cleanup_free Faas__ProvisionRequest__EnvEntry *ents = NULL;
    cleanup_free Faas__ProvisionRequest__EnvEntry **ptrs = NULL;
    cleanup_free char                    **dumped = NULL;
    json_error_t                           jerr;
    const char                            *k;
    json_t                                *v;
    size_t                                 n = 0, i;
    int                                    rc = 0;

    m.rid = S(a->rid);
    m.function = S(a->function);
    m.version = a->version;
    m.origin_request_id = S(a->origin_request_id);
    m.runtime = S(a->runtime);
    m.handler = S(a->handler);
    m.code_key = S(a->code_key);
    m.code_sha256 = S(a->code_sha256);
    m.memory_mb = a->memory_mb;
    m.timeout_ms = a->timeout_ms;
    m.keep_alive_s = a->keep_alive_s;
    m.enqueued_ms = a->enqueued_ms;

    if (a->env_json != NULL && a->env_json[0] != '\0') {
        env = json_loads(a->env_json, 0, &jerr);
        if (env == NULL || !json_is_object(env)) {
            return faas_error_set(err, 0, "env is not a JSON object");
        }
        n = json_object_size(env);
    }
    if (n > 0) {
        ents = calloc(n, sizeof(*ents));
        ptrs = calloc(n, sizeof(*ptrs));
        dumped = calloc(n, sizeof(*dumped));
        if (ents == NULL || ptrs == NULL || dumped == NULL) {
            return faas_error_set(err, 0, "out of memory");
        }
        i = 0;
        json_object_foreach(env, k, v) {
            faas__provision_request__env_entry__init(&ents[i]);
            ents[i].key = (char *) k;
            if (json_is_string(v)) {
                ents[i].value = (char *) json_string_value(v);
            } else {
                dumped[i] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                ents[i].value = S(dumped[i]);
            }
            ptrs[i] = &ents[i];
            i++;
        }
        m.n_env = n;
        m.env = ptrs;
    }

    *len = faas__provision_request__get_packed_size(&m);
    *out = malloc(*len ? *len : 1);
    if (*out == NULL) {
        rc = faas_error_set(err, 0, "out of memory");
    } else {
        faas__provision_request__pack(&m, *out);
    }
    for (i = 0; i < n; i++) {
        free(dumped[i]);
    }
    return rc;
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
