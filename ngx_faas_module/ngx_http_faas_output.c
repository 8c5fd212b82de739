/*
 * The answer to the client: the function's (its status, headers and
 * body) or a JSON error, each with X-Faas-Request-Id and X-Faas-Start.
 */
#include "ngx_http_faas_module.h"

#include "record.h"


static ngx_str_t  ngx_http_faas_json_type = ngx_string("application/json");


static ngx_int_t
ngx_http_faas_add_header(ngx_http_request_t *r, const char *name,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = value;
    h->value.len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_faas_retry_after(ngx_http_request_t *r, time_t seconds)
{
    u_char  *p, *last;

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_sprintf(p, "%T", seconds);

    return ngx_http_faas_add_header(r, "Retry-After", p, last - p);
}


static ngx_int_t
ngx_http_faas_common_headers(ngx_http_request_t *r)
{
    const char           *s;
    ngx_http_faas_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_faas_module);

    if (ngx_http_faas_add_header(r, "X-Faas-Request-Id", ctx->request_id,
                                 ngx_strlen(ctx->request_id))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->start_type) {
        s = faas_start_type_name((int) ctx->start_type);
        if (ngx_http_faas_add_header(r, "X-Faas-Start", (u_char *) s,
                                     ngx_strlen(s))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The function's answer (checked by ngx_http_faas_answer_refused). The
 * body is sent from where the answer was unpacked, the call's pool, which
 * lasts as long as the request.
 */
static ngx_int_t
ngx_http_faas_send(ngx_http_request_t *r, ngx_http_faas_call_t *call,
    ngx_uint_t status, Faas__InvokeResponse *resp)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = resp->body.len;

    if (ngx_http_faas_answer_headers(r, call, resp) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_faas_common_headers(r) != NGX_OK) {
        return NGX_ERROR;
    }

    if (resp->body.len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = resp->body.data;
    b->last = resp->body.data + resp->body.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_faas_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *msg)
{
    u_char               *p, *q;
    size_t                len, i;
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_chain_t           out;
    ngx_http_faas_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_faas_module);

    if (ctx && !ctx->body_read) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }
    }

    len = sizeof("{\"error\":\"\",\"request_id\":\"\"}\n") - 1
          + 2 * ngx_strlen(msg) + FAAS_REQID_LEN;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = b->last;
    p = ngx_cpymem(p, "{\"error\":\"", sizeof("{\"error\":\"") - 1);

    q = (u_char *) msg;
    for (i = 0; q[i]; i++) {
        if (q[i] == '"' || q[i] == '\\') {
            *p++ = '\\';
        }
        *p++ = (q[i] < 0x20) ? ' ' : q[i];
    }

    p = ngx_sprintf(p, "\",\"request_id\":\"%s\"}\n",
                    ctx ? ctx->request_id : (u_char *) "");
    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = ngx_http_faas_json_type;
    r->headers_out.content_type_len = ngx_http_faas_json_type.len;

    if (ctx && ngx_http_faas_common_headers(r) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}



static ngx_int_t
ngx_http_faas_send_answer(ngx_http_request_t *r, ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp)
{
    const char  *msg;

    if (resp->status == FAAS__INVOKE_STATUS__OK
        || resp->status == FAAS__INVOKE_STATUS__FUNCTION_ERROR
        || resp->body.len)
    {
        return ngx_http_faas_send(r, call, call->http_status, resp);
    }

    msg = resp->error && resp->error[0] ? resp->error
          : resp->status == FAAS__INVOKE_STATUS__TIMEOUT
          ? "function timed out" : "invocation failed";

    return ngx_http_faas_send_error(r, call->http_status, msg);
}


/*
 * The NGX_HTTP_FAAS_RESPOND step: the agent's answer (call->resp), an
 * error answer (call->error), or nginx's own page for call->http_status.
 */
void
ngx_http_faas_respond(ngx_http_faas_call_t *call)
{
    ngx_int_t              rc;
    ngx_connection_t      *c;
    ngx_http_request_t    *r = call->r;
    Faas__InvokeResponse  *resp = call->resp;

    c = r->connection;

    if (resp) {
        /* (it stays in call->pool: the body may not be sent yet) */
        rc = ngx_http_faas_send_answer(r, call, resp);

    } else if (call->error) {
        if (call->retry_after) {
            /* back-pressure: the caller may come again */
            (void) ngx_http_faas_retry_after(r, call->retry_after);
        }

        rc = ngx_http_faas_send_error(r, call->http_status, call->error);

    } else {
        rc = call->http_status;
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
