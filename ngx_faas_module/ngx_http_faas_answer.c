/*
 * What a function may send back. Its answer comes from code the platform
 * does not trust, and goes to clients and proxies that trust the gateway:
 *
 *   - the status must be 200-599 (1xx would switch a proxy's connection to
 *     a tunnel, or let a body that is itself an HTTP response follow a 100
 *     on a kept-alive connection); anything else is a 502;
 *   - the body is at most faas_max_response_body (a 502 beyond);
 *   - a header whose name is not an RFC 9110 token, or whose value holds a
 *     control character other than HTAB, is dropped (logged once per
 *     call); so are the hop-by-hop and framing headers, which belong to
 *     the gateway's own connection, and any header the function's
 *     Connection header names;
 *   - on the shared host (/fn/<name>/...), a Set-Cookie with a Domain is
 *     dropped and its Path kept below /fn/<name>/ (invoker/cookie.h); on
 *     the function's own host (faas_function_host) it is left as sent.
 *
 * The answer is unpacked into the call's pool (ngx_http_faas_answer_unpack)
 * and its body is sent from there: the agent's frame is copied once.
 */
#include "ngx_http_faas_module.h"

#include "answer.h"
#include "cookie.h"
#include "record.h"


static void *
ngx_http_faas_pb_alloc(void *data, size_t size)
{
    return ngx_palloc(data, size);
}


static void
ngx_http_faas_pb_free(void *data, void *p)
{
    /* only large blocks (a body) are given back before the pool goes */
    ngx_pfree(data, p);
}


/* An agent's InvokeResponse frame unpacked into call's pool, or NULL. */
Faas__InvokeResponse *
ngx_http_faas_answer_unpack(ngx_http_faas_call_t *call, u_char *buf,
    size_t len)
{
    call->pb_alloc.alloc = ngx_http_faas_pb_alloc;
    call->pb_alloc.free = ngx_http_faas_pb_free;
    call->pb_alloc.allocator_data = call->pool;

    return faas__invoke_response__unpack(&call->pb_alloc, len, buf);
}


void
ngx_http_faas_answer_free(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp)
{
    faas__invoke_response__free_unpacked(resp, &call->pb_alloc);
}


/*
 * NULL when the function's answer may reach the client, else why not (the
 * call is then answered 502 with it, and the reason logged).
 */
const char *
ngx_http_faas_answer_refused(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp)
{
    if (resp->status == FAAS__INVOKE_STATUS__OK
        && !faas_answer_status_ok(resp->http_status))
    {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: function %V answered HTTP status %uD, "
                      "not in 200-599: 502", call->request_id,
                      &call->fn->name, resp->http_status);
        return "function answered an invalid HTTP status";
    }

    if (resp->body.len > call->flcf->max_response_body) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: function %V answered %uz bytes, more than "
                      "faas_max_response_body %uz: 502", call->request_id,
                      &call->fn->name, resp->body.len,
                      call->flcf->max_response_body);
        return "function response too large";
    }

    return NULL;
}


/*
 * A Set-Cookie on the shared host, kept below the function's path prefix
 * (cookie.h): NGX_OK with v set, NGX_DECLINED when it names a Domain and
 * is dropped.
 */
static ngx_int_t
ngx_http_faas_cookie_scope(ngx_http_request_t *r, ngx_str_t *scope,
    ngx_str_t *v)
{
    u_char   *out;
    ssize_t   n;

    out = ngx_pnalloc(r->pool, FAAS_COOKIE_SCOPED_MAX(v->len, scope->len));
    if (out == NULL) {
        return NGX_ERROR;
    }

    n = faas_cookie_scope((char *) v->data, v->len, (char *) scope->data,
                          scope->len, (char *) out);
    if (n < 0) {
        return NGX_DECLINED;
    }

    v->data = out;
    v->len = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_faas_header_add(ngx_http_request_t *r, ngx_http_faas_call_t *call,
    Faas__Header *h)
{
    ngx_int_t             rc;
    ngx_str_t             v;
    ngx_table_elt_t      *e;
    ngx_http_faas_ctx_t  *ctx;

    /* the strings live in the call's pool until the request is gone */
    v.data = (u_char *) h->value;
    v.len = ngx_strlen(h->value);

    if (ngx_strcasecmp((u_char *) h->name, (u_char *) "content-type") == 0) {
        r->headers_out.content_type = v;
        r->headers_out.content_type_len = v.len;
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_faas_module);

    if (ctx->scope.len
        && ngx_strcasecmp((u_char *) h->name, (u_char *) "set-cookie") == 0)
    {
        rc = ngx_http_faas_cookie_scope(r, &ctx->scope, &v);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_INFO, call->log, 0,
                          "faas: %s: function %V set a cookie with a Domain "
                          "on the shared host, dropped", call->request_id,
                          &call->fn->name);
            return NGX_OK;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    e = ngx_list_push(&r->headers_out.headers);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->hash = 1;
    e->key.data = (u_char *) h->name;
    e->key.len = ngx_strlen(h->name);
    e->value = v;

    return NGX_OK;
}


/*
 * The function's headers into r->headers_out, but for the bad ones and
 * those that are not the function's to set (above).
 */
ngx_int_t
ngx_http_faas_answer_headers(ngx_http_request_t *r,
    ngx_http_faas_call_t *call, Faas__InvokeResponse *resp)
{
    size_t         i;
    const char    *connection;
    ngx_uint_t     logged;
    Faas__Header  *h;

    connection = NULL;

    for (i = 0; i < resp->n_headers; i++) {
        h = resp->headers[i];

        if (faas_answer_header_valid(h->name, h->value)
            && ngx_strcasecmp((u_char *) h->name, (u_char *) "connection")
               == 0)
        {
            connection = h->value;
        }
    }

    logged = 0;

    for (i = 0; i < resp->n_headers; i++) {
        h = resp->headers[i];

        if (!faas_answer_header_valid(h->name, h->value)) {
            if (!logged) {
                ngx_log_error(NGX_LOG_WARN, call->log, 0,
                              "faas: %s: function %V answered a header "
                              "that is not valid HTTP, dropped",
                              call->request_id, &call->fn->name);
                logged = 1;
            }
            continue;
        }

        if (faas_answer_header_own(h->name, connection)) {
            continue;
        }

        if (ngx_http_faas_header_add(r, call, h) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
