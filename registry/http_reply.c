/*
 * What the api_*.c handlers use to read a request and answer it: query
 * arguments, JSON errors, the mapping of error codes to HTTP statuses, the
 * admin check (an admin claim vouched for by the gateway, or a configured
 * subject: never a user name built into the code). Below both http.c (the server and router) and the handlers.
 */
#include "registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <microhttpd.h>

#include "log.h"


int
faas_is_admin(faas_registry_t *reg, const faas_http_req_t *req)
{
    size_t  i;
    json_t *v;

    if (req->admin) {
        return 1;
    }
    json_array_foreach(reg->admin_subjects, i, v) {
        if (req->user != NULL && strcmp(json_string_value(v), req->user) == 0) {
            return 1;
        }
    }
    return 0;
}


const char *
faas_http_arg(faas_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}


int
faas_http_error(faas_http_resp_t *resp, int status, const char *code,
                const char *fmt, ...)
{
    char    msg[FAAS_ERROR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (resp->json != NULL) {
        json_decref(resp->json);
    }
    resp->json = json_pack("{s:{s:s,s:s}}", "error", "code", code,
                           "message", msg);
    resp->status = status;
    return status;
}


int
faas_http_fail(faas_http_resp_t *resp, const faas_error_t *err)
{
    switch (err->code) {
    case FAAS_E_UNAVAILABLE:
        faas_warn(NULL, "unavailable: %s", err->msg);
        return faas_http_error(resp, 503, "unavailable",
                               "a backing service is unavailable,"
                               " retry later");
    case FAAS_E_EXISTS:
        return faas_http_error(resp, 409, "conflict", "%s", err->msg);
    case FAAS_E_NOTFOUND:
        return faas_http_error(resp, 404, "not_found", "%s", err->msg);
    case FAAS_E_INVALID:
        return faas_http_error(resp, 400, "invalid", "%s", err->msg);
    case FAAS_E_QUOTA:
        return faas_http_error(resp, 403, "quota_exceeded", "%s", err->msg);
    default:
        faas_err(NULL, "internal error: %s", err->msg);
        return faas_http_error(resp, 500, "internal", "internal error");
    }
}
