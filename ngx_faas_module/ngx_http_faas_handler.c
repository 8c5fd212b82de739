/*
 * The /fn/<name>[/path] content handler: the request's side of a call.
 *
 *   function name (host or path) -> JWT / access key -> metadata (cache or HGETALL)
 *   -> access check -> body -> the event and the call's Redis keys
 *   -> NGX_HTTP_FAAS_ACQUIRE
 *
 * From there the call (ngx_http_faas_call.c) moves through the steps of
 * the table below, one phase file each, until NGX_HTTP_FAAS_RESPOND.
 */
#include "ngx_http_faas_module.h"

#include "event.h"
#include "partition.h"
#include "reqid.h"


static void ngx_http_faas_fn_done(ngx_http_faas_fn_t *fn, ngx_int_t rc,
    void *data);
static ngx_int_t ngx_http_faas_with_fn(ngx_http_request_t *r,
    ngx_http_faas_call_t *call);
static void ngx_http_faas_body_done(ngx_http_request_t *r);
static ngx_int_t ngx_http_faas_redis_down(ngx_http_request_t *r);
static ngx_uint_t ngx_http_faas_client_gone(ngx_http_request_t *r);
static ngx_int_t ngx_http_faas_trace(ngx_http_request_t *r,
    ngx_http_faas_ctx_t *ctx);


/* what runs each step of a call (ngx_http_faas_call_next) */
static ngx_http_faas_step_pt  ngx_http_faas_steps[NGX_HTTP_FAAS_NSTEPS] = {
    ngx_http_faas_acquire,          /* NGX_HTTP_FAAS_ACQUIRE */
    ngx_http_faas_provision,        /* NGX_HTTP_FAAS_PROVISION */
    ngx_http_faas_wait,             /* NGX_HTTP_FAAS_WAIT */
    ngx_http_faas_wq_join,          /* NGX_HTTP_FAAS_QUEUE */
    ngx_http_faas_invoke,           /* NGX_HTTP_FAAS_INVOKE */
    ngx_http_faas_respond           /* NGX_HTTP_FAAS_RESPOND */
};


static ngx_table_elt_t *
ngx_http_faas_header_in(ngx_http_request_t *r, const char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }
            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * 503 "Redis is unavailable" with Retry-After: the worker reconnects by
 * itself (backoff capped at 2 s), so a retry a second later may succeed.
 */
static ngx_int_t
ngx_http_faas_redis_down(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    ngx_str_set(&h->value, "1");

    return ngx_http_faas_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "Redis is unavailable");
}


/*
 * The function on its own host: <name><faas_function_host>, the whole URI
 * its path, its cookies left as sent. NGX_DECLINED for another host.
 */
static ngx_int_t
ngx_http_faas_route_host(ngx_http_request_t *r, ngx_http_faas_ctx_t *ctx)
{
    ngx_str_t                 *host, *suffix;
    ngx_http_faas_loc_conf_t  *flcf;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_faas_module);
    suffix = &flcf->function_host;
    host = &r->headers_in.server;      /* lowercase, without the port */

    if (suffix->len == 0 || host->len <= suffix->len
        || ngx_strncmp(host->data + host->len - suffix->len, suffix->data,
                       suffix->len) != 0)
    {
        return NGX_DECLINED;
    }

    ctx->function.data = host->data;
    ctx->function.len = host->len - suffix->len;
    ctx->path = r->uri;
    ngx_str_null(&ctx->scope);

    return NGX_OK;
}


/*
 * The call's traceparent (docs/DESIGN.md section 5, "Trace context"): the
 * client's trace continued, or a new one when its header is absent,
 * malformed or sent twice (W3C: more than one is invalid).
 */
static ngx_int_t
ngx_http_faas_trace(ngx_http_request_t *r, ngx_http_faas_ctx_t *ctx)
{
    ngx_str_t         v;
    ngx_uint_t        i, n;
    faas_error_t      err;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = 0;
    ngx_str_null(&v);

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == sizeof("traceparent") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "traceparent",
                                   h[i].key.len) == 0)
            {
                v = h[i].value;
                n++;
            }
        }
    }

    if (n != 1) {
        ngx_str_null(&v);
    }

    if (faas_traceparent_make((char *) v.data, v.len,
                              (char *) ctx->traceparent, &err) < 0)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "faas: %s",
                      err.msg);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The function on the shared host: the first path segment below the
 * location; the rest is its path, and <location>/<name> its cookies' scope.
 */
static ngx_int_t
ngx_http_faas_route_path(ngx_http_request_t *r, ngx_http_faas_ctx_t *ctx)
{
    u_char                    *p, *end;
    size_t                     loc;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    end = r->uri.data + r->uri.len;
    loc = 0;

    if (clcf->name.len <= r->uri.len
        && ngx_strncmp(p, clcf->name.data, clcf->name.len) == 0)
    {
        loc = clcf->name.len;
        p += loc;
    }

    while (loc && clcf->name.data[loc - 1] == '/') {
        loc--;
    }

    while (p < end && *p == '/') {
        p++;
    }

    ctx->function.data = p;
    while (p < end && *p != '/') {
        p++;
    }

    ctx->function.len = p - ctx->function.data;
    ctx->path.data = p;
    ctx->path.len = end - p;

    ctx->scope.len = loc + 1 + ctx->function.len;
    ctx->scope.data = ngx_pnalloc(r->pool, ctx->scope.len);
    if (ctx->scope.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(ctx->scope.data, clcf->name.data, loc);
    *p++ = '/';
    ngx_memcpy(p, ctx->function.data, ctx->function.len);

    return NGX_OK;
}


/*
 * The caller's credentials into ctx (user, jwt_ok, key): NGX_OK, or the
 * answer to a refused or malformed token.
 */
static ngx_int_t
ngx_http_faas_credentials(ngx_http_request_t *r, ngx_http_faas_ctx_t *ctx)
{
    ngx_str_t         token;
    ngx_int_t         rc;
    ngx_table_elt_t  *h;
    const char       *why;

    rc = ngx_http_faas_jwt_bearer(r, &token);

    if (rc == NGX_ERROR) {
        ngx_http_faas_unauthorized(r, "malformed Authorization");
        return ngx_http_faas_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                        "malformed Authorization header");
    }

    if (rc == NGX_OK) {
        why = NULL;
        rc = ngx_http_faas_jwt_verify(r, ngx_http_get_module_loc_conf(r,
                                      ngx_http_faas_module),
                                      &token, &ctx->user, NULL, &why);
        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "faas: %s: token refused: %s", ctx->request_id,
                          why);
            ngx_http_faas_unauthorized(r, why);
            return ngx_http_faas_send_error(r, NGX_HTTP_UNAUTHORIZED, why);
        }

        ctx->jwt_ok = 1;
    }

    h = ngx_http_faas_header_in(r, "X-Faas-Key", sizeof("X-Faas-Key") - 1);
    if (h) {
        ctx->key = h->value;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_faas_handler(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    faas_error_t           err;
    ngx_http_faas_fn_t    *fn;
    ngx_http_faas_ctx_t   *ctx;
    ngx_http_faas_call_t  *call;

    ctx = ngx_http_get_module_ctx(r, ngx_http_faas_module);
    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_faas_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_http_set_ctx(r, ctx, ngx_http_faas_module);
    }

    if (faas_request_id_new((char *) ctx->request_id, &err) < 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "faas: %s",
                      err.msg);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_faas_trace(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_faas_route_host(r, ctx);
    if (rc == NGX_DECLINED) {
        rc = ngx_http_faas_route_path(r, ctx);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!faas_name_valid((char *) ctx->function.data, ctx->function.len)) {
        return ngx_http_faas_send_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such function");
    }

    rc = ngx_http_faas_credentials(r, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_faas_redis_ready() != NGX_OK) {
        return ngx_http_faas_redis_down(r);
    }

    call = ngx_http_faas_call_create(r, ctx, ngx_http_faas_steps);
    if (call == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fn = ngx_http_faas_fn_cached(&ctx->function);
    if (fn) {
        call->fn = fn;
        return ngx_http_faas_with_fn(r, call);
    }

    ngx_http_faas_call_start(call);

    rc = ngx_http_faas_fn_fetch(&ctx->function, ngx_http_faas_fn_done, call);
    if (rc != NGX_OK) {
        ngx_http_faas_call_end(call);
        return ngx_http_faas_redis_down(r);
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_faas_fn_done(ngx_http_faas_fn_t *fn, ngx_int_t rc, void *data)
{
    ngx_http_faas_call_t  *call = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = call->r;

    if (r == NULL) {
        if (fn) {
            ngx_http_faas_fn_unref(fn);
        }
        ngx_http_faas_call_end(call);
        return;
    }

    c = r->connection;

    switch (rc) {

    case NGX_OK:
        call->fn = fn;
        rc = ngx_http_faas_with_fn(r, call);
        break;

    case NGX_DECLINED:
        rc = ngx_http_faas_send_error(r, NGX_HTTP_NOT_FOUND,
                                      "no such function");
        break;

    case NGX_ABORT:
        rc = ngx_http_faas_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                      "bad function metadata");
        break;

    default:
        rc = ngx_http_faas_redis_down(r);
        break;
    }

    ngx_http_faas_call_end(call);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_faas_with_fn(ngx_http_request_t *r, ngx_http_faas_call_t *call)
{
    ngx_int_t             rc;
    ngx_http_faas_fn_t   *fn = call->fn;
    ngx_http_faas_ctx_t  *ctx = call->ctx;

    if (ctx->jwt_ok && ctx->user.len == fn->owner.len
        && ngx_strncmp(ctx->user.data, fn->owner.data, fn->owner.len) == 0)
    {
        call->owner = 1;

    } else if (ctx->key.len
               && ngx_http_faas_key_check(call->fmcf, fn, &ctx->key)
                  == NGX_OK)
    {
        if (!ctx->jwt_ok) {
            ngx_str_set(&ctx->user, "key");
        }

    } else if (fn->public) {
        /* anyone */

    } else if (ctx->jwt_ok || ctx->key.len) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "faas: %s: access to \"%V\" denied", call->request_id,
                      &fn->name);
        return ngx_http_faas_send_error(r, NGX_HTTP_FORBIDDEN,
                                        "access denied");

    } else {
        ngx_http_faas_unauthorized(r, NULL);
        return ngx_http_faas_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                        "credentials required");
    }

    if (r->headers_in.content_length_n > (off_t) call->flcf->max_body) {
        r->keepalive = 0;
        return ngx_http_faas_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "request body too large");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_faas_body_done);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static u_char *
ngx_http_faas_body(ngx_http_request_t *r, size_t *len, size_t max)
{
    u_char       *buf, *p;
    size_t        n;
    ssize_t       got;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return (u_char *) "";
    }

    n = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        n += b->in_file ? (size_t) (b->file_last - b->file_pos)
                        : (size_t) (b->last - b->pos);
    }

    if (n > max) {
        *len = n;
        return NULL;
    }

    cl = r->request_body->bufs;
    if (cl->next == NULL && !cl->buf->in_file) {
        /* the usual body (faas reads it into one buffer): used in place */
        *len = n;
        return cl->buf->pos;
    }

    buf = ngx_pnalloc(r->pool, n + 1);
    if (buf == NULL) {
        return NULL;
    }

    p = buf;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            got = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                                b->file_pos);
            if (got != b->file_last - b->file_pos) {
                return NULL;
            }
            p += got;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *len = n;
    return buf;
}


/*
 * The request's headers for the event, without the credentials, with the
 * gateway's traceparent instead of the client's.
 */
static faas_event_header_t *
ngx_http_faas_event_headers(ngx_http_request_t *r, ngx_http_faas_ctx_t *ctx,
    size_t *nheaders)
{
    size_t                n;
    ngx_uint_t            i;
    ngx_list_part_t      *part;
    ngx_table_elt_t      *h;
    faas_event_header_t  *hdrs;

    n = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    hdrs = ngx_pnalloc(r->pool, (n + 1) * sizeof(faas_event_header_t));
    if (hdrs == NULL) {
        return NULL;
    }

    n = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0) {
                continue;
            }
            /* the function gets the gateway's traceparent, added below */
            if (h[i].key.len == sizeof("traceparent") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "traceparent",
                                   h[i].key.len) == 0)
            {
                continue;
            }
            /* credentials are not handed to the function */
            if ((h[i].key.len == sizeof("X-Faas-Key") - 1
                 && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Faas-Key",
                                    h[i].key.len) == 0)
                || (h[i].key.len == sizeof("Authorization") - 1
                    && ngx_strncasecmp(h[i].key.data,
                                       (u_char *) "Authorization",
                                       h[i].key.len) == 0))
            {
                continue;
            }
            hdrs[n].name = (char *) h[i].key.data;
            hdrs[n].name_len = h[i].key.len;
            hdrs[n].value = (char *) h[i].value.data;
            hdrs[n].value_len = h[i].value.len;
            n++;
        }
    }

    hdrs[n].name = "traceparent";
    hdrs[n].name_len = sizeof("traceparent") - 1;
    hdrs[n].value = (char *) ctx->traceparent;
    hdrs[n].value_len = FAAS_TRACEPARENT_LEN;
    n++;

    *nheaders = n;
    return hdrs;
}


static void *
ngx_http_faas_event_alloc(void *data, size_t size)
{
    return ngx_pnalloc(data, size);
}


static void
ngx_http_faas_event_free(void *data, void *p)
{
    /* only a large block goes back before the pool does */
    ngx_pfree(data, p);
}


/* The Lambda-style event of the request into call->event. */
static ngx_int_t
ngx_http_faas_event(ngx_http_request_t *r, ngx_http_faas_call_t *call,
    u_char *body, size_t blen)
{
    char                *ev, ip[NGX_SOCKADDR_STRLEN + 1];
    size_t               evlen, n;
    faas_error_t         err;
    faas_event_req_t     req;
    faas_event_alloc_t   al;

    ngx_memzero(&req, sizeof(faas_event_req_t));

    req.headers = ngx_http_faas_event_headers(r, call->ctx, &req.nheaders);
    if (req.headers == NULL) {
        return NGX_ERROR;
    }

    req.method = (char *) r->method_name.data;
    req.method_len = r->method_name.len;

    /* the path below /fn/<name>, or the whole URI on the function's host */
    if (call->ctx->path.len) {
        req.path = (char *) call->ctx->path.data;
        req.path_len = call->ctx->path.len;
    } else {
        req.path = "/";
        req.path_len = 1;
    }

    req.query = (char *) r->args.data;
    req.query_len = r->args.len;

    n = ngx_sock_ntop(r->connection->sockaddr, r->connection->socklen,
                      (u_char *) ip, NGX_SOCKADDR_STRLEN, 0);
    ip[n] = '\0';
    req.source_ip = ip;
    req.protocol = r->http_protocol.len ? "HTTP/1.1" : "HTTP/1.0";
    if (r->http_version == NGX_HTTP_VERSION_10) {
        req.protocol = "HTTP/1.0";
    } else if (r->http_version == NGX_HTTP_VERSION_20) {
        req.protocol = "HTTP/2.0";
    }
    req.request_id = (char *) call->request_id;
    req.function = (char *) call->fn->name.data;
    req.body = body;
    req.body_len = blen;
    req.time_ms = (unsigned long long) ngx_time() * 1000
                  + (ngx_timeofday())->msec;

    /* written once, into the call's pool, and sent to the agent from there */
    al.alloc = ngx_http_faas_event_alloc;
    al.free = ngx_http_faas_event_free;
    al.data = call->pool;

    ev = faas_event_build_with(&req, &al, &evlen, &err);
    if (ev == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "faas: %s: %s",
                      call->request_id, err.msg);
        return NGX_ERROR;
    }

    call->event = (u_char *) ev;
    call->event_len = evlen;

    return NGX_OK;
}


/* The Redis keys of the call's revision and request. */
static void
ngx_http_faas_call_keys(ngx_http_faas_call_t *call)
{
    unsigned             p1, p2;
    ngx_http_faas_fn_t  *fn = call->fn;

    faas_key_idle(call->idle_key, FAAS_KEY_MAX, (char *) fn->rid.data,
                  fn->rid.len);
    faas_key_count(call->count_key, FAAS_KEY_MAX, (char *) fn->rid.data,
                   fn->rid.len);
    faas_key_err(call->err_key, FAAS_KEY_MAX, (char *) fn->rid.data,
                 fn->rid.len, (char *) call->request_id);
    faas_partition_pair((char *) fn->rid.data, fn->rid.len, &p1, &p2);
    faas_key_prov_queue(call->queue_key[0], FAAS_KEY_MAX,
                        faas_partition_shard(p1, call->fmcf->shards));
    faas_key_prov_queue(call->queue_key[1], FAAS_KEY_MAX,
                        faas_partition_shard(p2, call->fmcf->shards));
}


static void
ngx_http_faas_body_done(ngx_http_request_t *r)
{
    u_char                *body;
    size_t                 blen;
    ngx_http_faas_ctx_t   *ctx;
    ngx_http_faas_call_t  *call;

    ctx = ngx_http_get_module_ctx(r, ngx_http_faas_module);
    call = ctx->call;
    ctx->body_read = 1;

    body = ngx_http_faas_body(r, &blen, call->flcf->max_body);
    if (body == NULL) {
        if (blen > call->flcf->max_body) {
            ngx_http_finalize_request(r, ngx_http_faas_send_error(r,
                                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "request body too large"));
            return;
        }

        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_faas_event(r, call, body, blen) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_faas_call_keys(call);

    /* the user, for the record, even if the client goes away */
    if (ctx->user.len) {
        call->user.data = ngx_pstrdup(call->pool, &ctx->user);
        call->user.len = call->user.data ? ctx->user.len : 0;
    }

    /* notice a client that goes away while we wait */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    if (ngx_http_faas_client_gone(r)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "faas: %s: client closed before the call began",
                      call->request_id);
        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_ACQUIRE);
}


/*
 * Whether the client has already closed. Its FIN may have been read with
 * the request (an edge-triggered event that came before the handler above
 * was set): no later event would tell ngx_http_test_reading.
 */
static ngx_uint_t
ngx_http_faas_client_gone(ngx_http_request_t *r)
{
    u_char             buf;
    ssize_t            n;
    ngx_connection_t  *c;

#if (NGX_HTTP_V2)
    if (r->stream) {
        return 0;
    }
#endif

    c = r->connection;

#if (NGX_HAVE_EPOLLRDHUP)
    if ((ngx_event_flags & NGX_USE_EPOLL_EVENT) && ngx_use_epoll_rdhup) {
        return c->read->pending_eof || c->read->eof;
    }
#endif

    n = recv(c->fd, &buf, 1, MSG_PEEK);

    return n == 0 || (n == -1 && ngx_socket_errno != NGX_EAGAIN);
}
