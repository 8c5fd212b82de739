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
 *     Connection header names.
 *
 * The answer is unpacked into the call's pool (ngx_http_faas_answer_unpack)
 * and its body is sent from there: the agent's frame is copied once.
 */
#include "ngx_http_faas_module.h"

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
        && (resp->http_status < 200 || resp->http_status > 599))
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


/* RFC 9110 tchar */
static ngx_uint_t
ngx_http_faas_tchar(u_char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9')
           || (c != '\0' && ngx_strchr("!#$%&'*+-.^_`|~", c) != NULL);
}


static ngx_uint_t
ngx_http_faas_header_valid(Faas__Header *h)
{
    u_char  *p;

    if (h->name == NULL || h->name[0] == '\0' || h->value == NULL) {
        return 0;
    }

    for (p = (u_char *) h->name; *p; p++) {
        if (!ngx_http_faas_tchar(*p)) {
            return 0;
        }
    }

    for (p = (u_char *) h->value; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/* 1 when name is one of the comma-separated tokens of list. */
static ngx_uint_t
ngx_http_faas_listed(const char *name, const char *list)
{
    size_t       len;
    const char  *p, *end;

    len = ngx_strlen(name);
    p = list;

    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }

        for (end = p; *end && *end != ',' && *end != ' ' && *end != '\t';
             end++)
        {
            /* void */
        }

        if ((size_t) (end - p) == len
            && ngx_strncasecmp((u_char *) p, (u_char *) name, len) == 0)
        {
            return 1;
        }

        p = end;
    }

    return 0;
}


/*
 * 1 for a header that belongs to one connection, or that the gateway sets
 * itself: nginx writes Content-Length and its own framing, and X-Faas-*
 * are the platform's.
 */
static ngx_uint_t
ngx_http_faas_header_own(const char *name, const char *connection)
{
    static const char  *hop[] = {
        "connection", "keep-alive", "upgrade", "te", "trailer",
        "transfer-encoding", "content-length", NULL
    };

    ngx_uint_t  i;

    for (i = 0; hop[i]; i++) {
        if (ngx_strcasecmp((u_char *) name, (u_char *) hop[i]) == 0) {
            return 1;
        }
    }

    return ngx_strncasecmp((u_char *) name, (u_char *) "proxy-", 6) == 0
           || ngx_strncasecmp((u_char *) name, (u_char *) "x-faas-", 7) == 0
           || (connection && ngx_http_faas_listed(name, connection));
}


static ngx_int_t
ngx_http_faas_header_add(ngx_http_request_t *r, Faas__Header *h)
{
    ngx_str_t         v;
    ngx_table_elt_t  *e;

    /* the strings live in the call's pool until the request is gone */
    v.data = (u_char *) h->value;
    v.len = ngx_strlen(h->value);

    if (ngx_strcasecmp((u_char *) h->name, (u_char *) "content-type") == 0) {
        r->headers_out.content_type = v;
        r->headers_out.content_type_len = v.len;
        return NGX_OK;
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

        if (ngx_http_faas_header_valid(h)
            && ngx_strcasecmp((u_char *) h->name, (u_char *) "connection")
               == 0)
        {
            connection = h->value;
        }
    }

    logged = 0;

    for (i = 0; i < resp->n_headers; i++) {
        h = resp->headers[i];

        if (!ngx_http_faas_header_valid(h)) {
            if (!logged) {
                ngx_log_error(NGX_LOG_WARN, call->log, 0,
                              "faas: %s: function %V answered a header "
                              "that is not valid HTTP, dropped",
                              call->request_id, &call->fn->name);
                logged = 1;
            }
            continue;
        }

        if (ngx_http_faas_header_own(h->name, connection)) {
            continue;
        }

        if (ngx_http_faas_header_add(r, h) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
