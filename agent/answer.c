/*
 * The runtime's answer frame (JSON, from inside the sandbox: untrusted)
 * mapped to the fields of an InvokeResponse. Fuzzed
 * (fuzz/agent_answer.c).
 */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

static const char base64_error_body[] =
    "{\"errorType\":\"Runtime.MarshalError\","
    "\"errorMessage\":\"body is not valid base64\"}";

/* The error body and its content-type header. */
static void
answer_error_body(faas_runtime_answer_t *a, char *body)
{
    a->err_body = body;
    a->resp.body.data = (uint8_t *) body;
    a->resp.body.len = body ? strlen(body) : 0;
    a->resp.headers = &a->ctype_ptr;
    a->resp.n_headers = 1;
}

/* headers: strings as they are, numbers and booleans as their JSON text. */
static void
answer_headers(faas_runtime_answer_t *a, json_t *h)
{
    const char *key;
    json_t     *hv;
    size_t      nh, i = 0;

    if (!json_is_object(h) || json_object_size(h) == 0) {
        return;
    }
    nh = json_object_size(h);
    a->hdrs = calloc(nh, sizeof(*a->hdrs));
    a->hp = calloc(nh, sizeof(*a->hp));
    a->dumps = calloc(nh, sizeof(*a->dumps));
    if (a->hdrs == NULL || a->hp == NULL || a->dumps == NULL) {
        nh = 0;
    }
    json_object_foreach(h, key, hv)
    {
        if (i >= nh) {
            break;
        }
        faas__header__init(&a->hdrs[i]);
        a->hdrs[i].name = (char *) key;
        if (json_is_string(hv)) {
            a->hdrs[i].value = (char *) json_string_value(hv);
        } else {
            a->dumps[i] = json_dumps(hv, JSON_ENCODE_ANY | JSON_COMPACT);
            a->hdrs[i].value = a->dumps[i] ? a->dumps[i] : "";
        }
        a->hp[i] = &a->hdrs[i];
        i++;
    }
    a->ndumps = i;
    a->resp.headers = a->hp;
    a->resp.n_headers = i;
}

/* A statusCode that is no three-digit number is sent as 0, which the
 * gateway refuses like any status outside 200-599 (a cast to 32 bits would
 * turn 4294967496 into 200). */
static uint32_t
status_code(json_int_t n)
{
    return n >= 0 && n <= 999 ? (uint32_t) n : 0;
}


/* ok true: the handler's response object. */
static void
answer_ok(faas_runtime_answer_t *a, json_t *r)
{
    json_t *v;

    a->status = FAAS__INVOKE_STATUS__OK;
    v = json_object_get(r, "statusCode");
    a->http_status = json_is_integer(v) ? status_code(json_integer_value(v))
                                        : 200;
    answer_headers(a, json_object_get(r, "headers"));
    v = json_object_get(r, "body");
    if (json_is_string(v)) {
        if (!json_is_true(json_object_get(r, "isBase64Encoded"))) {
            a->resp.body.data = (uint8_t *) json_string_value(v);
            a->resp.body.len = json_string_length(v);
        } else if (faas_base64_decode(json_string_value(v),
                                      json_string_length(v), &a->body_dec,
                                      &a->resp.body.len) < 0) {
            a->status = FAAS__INVOKE_STATUS__FUNCTION_ERROR;
            a->http_status = 0;
            snprintf(a->error, sizeof(a->error),
                     "handler returned isBase64Encoded with a body that is "
                     "not base64");
            answer_error_body(a, strdup(base64_error_body));
        } else {
            a->resp.body.data = a->body_dec;
        }
    } else if (v != NULL && !json_is_null(v)) {
        a->body_json = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        a->resp.body.data = (uint8_t *) a->body_json;
        a->resp.body.len = a->body_json ? strlen(a->body_json) : 0;
    }
}

/* ok false: the handler raised; a Lambda-style error body. */
static void
answer_error(faas_runtime_answer_t *a, json_t *e)
{
    json_t     *eb = json_object();
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *msg = json_string_value(json_object_get(e, "message"));

    if (type == NULL) {
        type = "Runtime.Unknown";
    }
    a->status = FAAS__INVOKE_STATUS__FUNCTION_ERROR;
    snprintf(a->error, sizeof(a->error), "handler error %s", type);
    json_object_set_new(eb, "errorType", json_string(type));
    json_object_set_new(eb, "errorMessage", json_string(msg ? msg : ""));
    answer_error_body(a, json_dumps(eb, JSON_COMPACT));
    json_decref(eb);
}

int
faas_runtime_answer_parse(faas_runtime_answer_t *a, const uint8_t *frame,
                          size_t len, const char *request_id,
                          const char **why)
{
    json_error_t jerr;
    const char  *id, *logs;

    memset(a, 0, sizeof(*a));
    faas__invoke_response__init(&a->resp);
    faas__header__init(&a->ctype);
    a->ctype.name = "content-type";
    a->ctype.value = "application/json";
    a->ctype_ptr = &a->ctype;
    a->json = json_loadb((const char *) frame, len, JSON_ALLOW_NUL, &jerr);
    if (a->json == NULL) {
        *why = "runtime answer is not JSON";
        return -1;
    }
    id = json_string_value(json_object_get(a->json, "id"));
    if (id == NULL || strcmp(id, request_id) != 0) {
        *why = "runtime answer has the wrong id";
        return -1;
    }
    logs = json_string_value(json_object_get(a->json, "logs"));
    if (logs != NULL && logs[0] != '\0') {
        a->logs = logs;
        a->logs_len = json_string_length(json_object_get(a->json, "logs"));
    }
    if (json_is_true(json_object_get(a->json, "ok"))) {
        answer_ok(a, json_object_get(a->json, "response"));
    } else {
        answer_error(a, json_object_get(a->json, "error"));
    }
    return 0;
}

void
faas_runtime_answer_free(faas_runtime_answer_t *a)
{
    size_t i;

    for (i = 0; a->dumps != NULL && i < a->ndumps; i++) {
        free(a->dumps[i]);
    }
    free(a->dumps);
    free(a->hdrs);
    free(a->hp);
    free(a->body_json);
    free(a->body_dec);
    free(a->err_body);
    json_decref(a->json);
    a->json = NULL;
}
