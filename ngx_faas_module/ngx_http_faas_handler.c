/*
 * The /fn/<name>[/path] content handler and the invocation flow
 * (competitive consumption, DESIGN.md section 1):
 *
 *   JWT / access key -> metadata (cache or HGETALL) -> body -> LPOP idle
 *     hit:  WARM
 *     miss: reserve a count slot (INCR below max concurrency, one Lua
 *           script, so the count never exceeds the limit even for a
 *           moment) + LLEN both shard queues (pipelined), RPUSH a
 *           ProvisionRequest to the shorter queue, then BLPOP idle +
 *           faas:err:{rid}:<request-id> (in slices; after an empty one the
 *           call asks again if the revision has no sandbox at all):
 *           COLD (a fresh sandbox, ours or one provisioned for another
 *           waiting request) or STOLEN (one returned by another request),
 *           a reason (502) or nothing in time (503)
 *           At max concurrency (no slot reserved), the call instead
 *           joins this worker's wait queue of the revision: one BLPOP per
 *           worker serves the queue in order, and new calls join it at once
 *           while it is not empty (no LPOP/INCR/LLEN/DECR each).
 *   -> agent call -> answer; RPUSH the entry back (unless the sandbox died)
 *      (an agent that cannot be reached before anything was sent, e.g. one
 *      that restarts: the entry goes back and the call takes the next one,
 *      waiting a backoff before it calls that agent again, until
 *      faas_cold_start_timeout since the request began; then 503: the
 *      entries stay listed, their sandboxes are fine)
 *      or, when a call of this worker waits for the revision, hand the entry
 *      straight to it (at most NGX_HTTP_FAAS_HANDOFF_MAX times in a row,
 *      then back through Redis); the execution record goes out with the
 *      other records of the event loop iteration (one RPUSH faas:records).
 *
 * Everything asynchronous hangs off an ngx_http_faas_call_t with its own
 * pool and reference count; the request's cleanup handler only detaches
 * it. A callback that finds the call detached undoes what it holds: a
 * popped entry is pushed back, a reserved slot is given back, a finished agent call
 * still returns its sandbox and writes its record.
 */
#include "ngx_http_faas_module.h"

#include "event.h"
#include "partition.h"
#include "record.h"
#include "reqid.h"


#define NGX_HTTP_FAAS_AGENT_GRACE  5000

/* the backoff between calls to an agent that cannot be reached */
#define NGX_HTTP_FAAS_AGENT_BACKOFF_MIN  20
#define NGX_HTTP_FAAS_AGENT_BACKOFF_MAX  200


static ngx_int_t ngx_http_faas_with_fn(ngx_http_request_t *r,
    ngx_http_faas_call_t *call);
static void ngx_http_faas_fn_done(ngx_http_faas_fn_t *fn, ngx_int_t rc,
    void *data);
static void ngx_http_faas_body_done(ngx_http_request_t *r);
static void ngx_http_faas_cleanup(void *data);
static void ngx_http_faas_acquire(ngx_http_faas_call_t *call);
static ngx_int_t ngx_http_faas_parse_entry(ngx_http_faas_call_t *call,
    const char *s, size_t len);
static void ngx_http_faas_lpop_done(redisReply *reply, void *data);
static void ngx_http_faas_provision(ngx_http_faas_call_t *call);
static void ngx_http_faas_pipe_done(redisReply *reply, void *data);
static void ngx_http_faas_wait(ngx_http_faas_call_t *call);
static void ngx_http_faas_blpop_done(redisReply *reply, void *data);
static void ngx_http_faas_invoke(ngx_http_faas_call_t *call);
static void ngx_http_faas_invoke_now(ngx_http_faas_call_t *call);
static void ngx_http_faas_agent_done(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp, ngx_uint_t dispatched,
    ngx_uint_t unreachable, const char *error);
static void ngx_http_faas_agent_unreachable(ngx_http_faas_call_t *call,
    const char *error);
static void ngx_http_faas_agent_retry(ngx_event_t *ev);
static void ngx_http_faas_finish(ngx_http_faas_call_t *call,
    ngx_int_t status, const char *msg);
static ngx_int_t ngx_http_faas_send(ngx_http_request_t *r,
    ngx_http_faas_call_t *call, ngx_uint_t status, Faas__InvokeResponse *resp,
    u_char *body, size_t len);
static ngx_int_t ngx_http_faas_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *msg);
static void ngx_http_faas_push_back(ngx_http_faas_call_t *call,
    const char *entry, size_t len);
static void ngx_http_faas_ignore(redisReply *reply, void *data);
static void ngx_http_faas_wq_join(ngx_http_faas_call_t *call);
static void ngx_http_faas_wq_leave(ngx_http_faas_call_t *call);
static void ngx_http_faas_wq_blpop(void *wq);
static void ngx_http_faas_wq_retry(ngx_event_t *ev);
static void ngx_http_faas_wq_blpop_done(redisReply *reply, void *data);
static void ngx_http_faas_wq_timeout(ngx_event_t *ev);
static ngx_uint_t ngx_http_faas_wq_handoff(ngx_http_faas_call_t *call);
static void ngx_http_faas_handoff_run(ngx_event_t *ev);
static void ngx_http_faas_records_add(uint8_t *buf, size_t len,
    u_char *request_id);


/*
 * INCR faas:count:{rid} unless it is at max concurrency (ARGV[1], 0 for
 * none): the new count, or 0 when no slot was reserved. A count that
 * drifted below zero restarts at 1.
 */
static const char  ngx_http_faas_reserve_lua[] =
    "local max = tonumber(ARGV[1]) "
    "if max > 0 and tonumber(redis.call('get', KEYS[1]) or '0') >= max "
    "then return 0 end "
    "local n = redis.call('incr', KEYS[1]) "
    "if n < 1 then redis.call('set', KEYS[1], 1) n = 1 end "   /* drift */
    "return n";


/* one count reservation + two LLEN replies, pipelined */
typedef struct {
    ngx_http_faas_call_t      *call;
    ngx_uint_t                 pending;
    ngx_uint_t                 failed;
    long long                  count;
    long long                  len[2];
    ngx_uint_t                 index;
} ngx_http_faas_pipe_t;


typedef struct {
    ngx_http_faas_pipe_t      *pipe;
    ngx_uint_t                 which;       /* 0 reserve, 1 and 2 LLEN */
} ngx_http_faas_pipe_op_t;


/*
 * The calls of this worker that wait, at the function's max concurrency,
 * for any sandbox of one revision to come back. Instead of an INCR, two
 * LLENs, a DECR and a BLPOP connection each, they queue here in order and
 * a single BLPOP of the idle list (on the BLPOP pool) serves them one after
 * the other; while the queue is not empty, new calls of that revision join
 * it at once (the function is known to be at its limit). A sandbox a call
 * is done with goes to the first waiter directly (see
 * ngx_http_faas_wq_handoff), within limits, so that the other workers and
 * gateways still get their share through Redis. Calls that asked for a
 * cold start wait here too when every BLPOP connection is taken.
 */
typedef struct {
    ngx_queue_t                link;           /* in ngx_http_faas_wqs */
    ngx_queue_t                waiters;        /* of ngx_http_faas_call_t */
    ngx_uint_t                 nwaiters;
    ngx_uint_t                 nlimited;       /* waiters at max concurrency
                                                  (not for a connection) */
    ngx_uint_t                 blpop;          /* the BLPOP is in flight */
    ngx_event_t                retry;          /* no BLPOP connection free */
    char                       idle_key[FAAS_KEY_MAX];
} ngx_http_faas_wq_t;

/* how soon a wait queue tries again for a BLPOP connection */
#define NGX_HTTP_FAAS_WQ_RETRY_MS  20

static ngx_http_faas_wq_t *ngx_http_faas_wq_get(const char *idle_key);


#define NGX_HTTP_FAAS_WQ_BLPOP_S  1

/*
 * A call waiting for a cold start BLPOPs in slices of this length; after
 * an empty slice it asks for a sandbox again if the revision has none at
 * all (its own was taken by another call and every sandbox has died
 * since: nothing would ever come back).
 */
#define NGX_HTTP_FAAS_COLD_SLICE_MS  1000

/*
 * A sandbox a call is done with goes straight to the first waiter of the
 * same worker at most this many times in a row; then it goes back through
 * Redis (RPUSH), where the other workers' and gateways' waiters get their
 * turn in the idle list's order.
 */
#define NGX_HTTP_FAAS_HANDOFF_MAX  8


static ngx_queue_t  ngx_http_faas_wqs;
static ngx_uint_t   ngx_http_faas_wqs_ready;


static ngx_str_t  ngx_http_faas_json_type = ngx_string("application/json");


static char *
ngx_http_faas_strdup0(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return "";
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return (char *) p;
}


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


static ngx_http_faas_call_t *
ngx_http_faas_call_create(ngx_http_request_t *r, ngx_http_faas_ctx_t *ctx)
{
    ngx_pool_t                *pool;
    ngx_http_cleanup_t        *cln;
    ngx_http_faas_call_t      *call;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    call = ngx_pcalloc(pool, sizeof(ngx_http_faas_call_t));
    if (call == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    call->pool = pool;
    call->log = ngx_cycle->log;
    call->r = r;
    call->ctx = ctx;
    call->refs = 1;
    call->flcf = ngx_http_get_module_loc_conf(r, ngx_http_faas_module);
    call->fmcf = ngx_http_get_module_main_conf(r, ngx_http_faas_module);
    call->t_start_us = ngx_http_faas_now_us();
    ngx_memcpy(call->request_id, ctx->request_id, FAAS_REQID_LEN + 1);

    ctx->call = call;

    cln->handler = ngx_http_faas_cleanup;
    cln->data = ctx;

    return call;
}


void
ngx_http_faas_call_unref(ngx_http_faas_call_t *call)
{
    if (--call->refs) {
        return;
    }

    if (call->fn) {
        ngx_http_faas_fn_unref(call->fn);
    }

    ngx_destroy_pool(call->pool);
}


static void
ngx_http_faas_cleanup(void *data)
{
    ngx_http_faas_ctx_t   *ctx = data;
    ngx_http_faas_call_t  *call;

    call = ctx->call;
    if (call == NULL) {
        return;
    }

    ctx->call = NULL;
    call->r = NULL;
    call->ctx = NULL;

    if (call->wq) {
        /* nobody to give a sandbox to any more */
        ngx_http_faas_wq_leave(call);
        ngx_http_faas_call_unref(call);
    }

    if (call->agent_retry.timer_set) {
        /* waiting for an unreachable agent: the sandbox goes back */
        ngx_del_timer(&call->agent_retry);
        ngx_http_faas_push_back(call, NULL, 0);
        ngx_http_faas_call_unref(call);
    }

    ngx_http_faas_call_unref(call);
}


ngx_int_t
ngx_http_faas_handler(ngx_http_request_t *r)
{
    u_char                    *p, *end, *name;
    ngx_str_t                  token, fname;
    ngx_int_t                  rc;
    faas_error_t               err;
    ngx_table_elt_t           *h;
    const char                *why;
    ngx_http_faas_fn_t        *fn;
    ngx_http_faas_ctx_t       *ctx;
    ngx_http_faas_call_t      *call;
    ngx_http_core_loc_conf_t  *clcf;

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

    /* the function name is the first path segment below the location */
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    end = r->uri.data + r->uri.len;

    if (clcf->name.len <= r->uri.len
        && ngx_strncmp(p, clcf->name.data, clcf->name.len) == 0)
    {
        p += clcf->name.len;
    }

    while (p < end && *p == '/') {
        p++;
    }

    name = p;
    while (p < end && *p != '/') {
        p++;
    }

    fname.data = name;
    fname.len = p - name;
    ctx->function = fname;

    if (!faas_name_valid((char *) fname.data, fname.len)) {
        return ngx_http_faas_send_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such function");
    }

    /* credentials */
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
                                      &token, &ctx->user, &why);
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

    if (ngx_http_faas_redis_ready() != NGX_OK) {
        return ngx_http_faas_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "Redis is unavailable");
    }

    call = ngx_http_faas_call_create(r, ctx);
    if (call == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fn = ngx_http_faas_fn_cached(&fname);
    if (fn) {
        call->fn = fn;
        return ngx_http_faas_with_fn(r, call);
    }

    call->refs++;

    rc = ngx_http_faas_fn_fetch(&fname, ngx_http_faas_fn_done, call);
    if (rc != NGX_OK) {
        call->refs--;
        return ngx_http_faas_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "Redis is unavailable");
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
        ngx_http_faas_call_unref(call);
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
        rc = ngx_http_faas_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "Redis is unavailable");
        break;
    }

    ngx_http_faas_call_unref(call);

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
        /* the owner */

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


static void
ngx_http_faas_body_done(ngx_http_request_t *r)
{
    u_char                     *body, *path, *end;
    char                       *ev, ip[NGX_SOCKADDR_STRLEN + 1];
    size_t                      blen, evlen, n;
    ngx_uint_t                  i;
    faas_error_t                err;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h;
    faas_event_req_t            req;
    faas_event_header_t        *hdrs;
    ngx_http_faas_fn_t         *fn;
    ngx_http_faas_ctx_t        *ctx;
    ngx_http_faas_call_t       *call;
    unsigned                    p1, p2;

    ctx = ngx_http_get_module_ctx(r, ngx_http_faas_module);
    call = ctx->call;
    fn = call->fn;
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

    /* the event */
    n = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    hdrs = ngx_pnalloc(r->pool, (n + 1) * sizeof(faas_event_header_t));
    if (hdrs == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    n = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0) {
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

    /* the path below /fn/<name> */
    path = r->uri.data;
    end = r->uri.data + r->uri.len;
    /* ctx->function points into r->uri */
    path = ctx->function.data + ctx->function.len;

    ngx_memzero(&req, sizeof(faas_event_req_t));
    req.method = (char *) r->method_name.data;
    req.method_len = r->method_name.len;

    if (path < end) {
        req.path = (char *) path;
        req.path_len = end - path;
    } else {
        req.path = "/";
        req.path_len = 1;
    }

    req.query = (char *) r->args.data;
    req.query_len = r->args.len;
    req.headers = hdrs;
    req.nheaders = n;

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
    req.function = (char *) fn->name.data;
    req.body = body;
    req.body_len = blen;
    req.time_ms = (unsigned long long) ngx_time() * 1000
                  + (ngx_timeofday())->msec;

    ev = faas_event_build(&req, &evlen, &err);
    if (ev == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "faas: %s: %s",
                      call->request_id, err.msg);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    call->event = ngx_pnalloc(call->pool, evlen);
    if (call->event == NULL) {
        free(ev);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(call->event, ev, evlen);
    call->event_len = evlen;
    free(ev);

    /* keys */
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

    /* the user, for the record, even if the client goes away */
    if (ctx->user.len) {
        call->user.data = ngx_pstrdup(call->pool, &ctx->user);
        call->user.len = call->user.data ? ctx->user.len : 0;
    }

    /* notice a client that goes away while we wait */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_faas_acquire(call);
}


/*
 * Parses an idle entry into call->entry. A bad entry is logged and dropped:
 * NGX_DECLINED when the call may take another one, NGX_ERROR when it has
 * used up its retries (the call is then finished with 502).
 */
static ngx_int_t
ngx_http_faas_parse_entry(ngx_http_faas_call_t *call, const char *s,
    size_t len)
{
    faas_error_t  err;

    if (faas_entry_parse(s, len, &call->entry, &err) == 0) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, call->log, 0,
                  "faas: %s: dropped a bad entry of %s: %s",
                  call->request_id, call->idle_key, err.msg);

    if (++call->attempts > call->flcf->retries) {
        ngx_http_faas_finish(call, NGX_HTTP_BAD_GATEWAY, "no usable sandbox");
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


static void
ngx_http_faas_acquire(ngx_http_faas_call_t *call)
{
    const char  *argv[2];
    size_t       lens[2];

    ngx_queue_t         *q;
    ngx_http_faas_wq_t  *wq;

    if (!call->incremented && ngx_http_faas_wqs_ready) {
        for (q = ngx_queue_head(&ngx_http_faas_wqs);
             q != ngx_queue_sentinel(&ngx_http_faas_wqs);
             q = ngx_queue_next(q))
        {
            wq = ngx_queue_data(q, ngx_http_faas_wq_t, link);

            if (wq->nlimited
                && ngx_strcmp(wq->idle_key, call->idle_key) == 0)
            {
                /* the function is at its limit: wait behind the others */
                call->t_wait_us = ngx_http_faas_now_us();
                ngx_http_faas_wq_join(call);
                return;
            }
        }
    }

    argv[0] = "LPOP";
    lens[0] = 4;
    argv[1] = call->idle_key;
    lens[1] = ngx_strlen(call->idle_key);

    call->refs++;

    if (ngx_http_faas_redis_command(ngx_http_faas_lpop_done, call, 2, argv,
                                    lens)
        != NGX_OK)
    {
        call->refs--;
        ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                             "Redis is unavailable");
    }
}


static void
ngx_http_faas_lpop_done(redisReply *reply, void *data)
{
    ngx_http_faas_call_t  *call = data;

    ngx_int_t     rc;

    if (call->r == NULL) {
        if (reply && reply->type == REDIS_REPLY_STRING) {
            ngx_http_faas_push_back(call, reply->str, reply->len);
        }
        ngx_http_faas_call_unref(call);
        return;
    }

    call->refs--;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                             "Redis is unavailable");
        return;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        rc = ngx_http_faas_parse_entry(call, reply->str, reply->len);

        if (rc != NGX_OK) {
            if (rc == NGX_DECLINED) {
                ngx_http_faas_acquire(call);
            }
            return;
        }

        call->have_entry = 1;
        call->start_type = FAAS_START_WARM;
        call->cold_us = 0;
        ngx_http_faas_invoke(call);
        return;
    }

    ngx_http_faas_provision(call);
}


static void
ngx_http_faas_provision(ngx_http_faas_call_t *call)
{
    int                       argc, n;
    u_char                   *p, max[NGX_INT_T_LEN];
    ngx_uint_t                i;
    const char               *argv[5];
    size_t                    lens[5];
    ngx_http_faas_pipe_t     *pipe;
    ngx_http_faas_pipe_op_t  *ops;

    if (call->reask) {
        /* the reservation only if the revision has no sandbox at all */
        p = ngx_sprintf(max, "1");

    } else {
        call->t_wait_us = ngx_http_faas_now_us();

        if (call->incremented) {
            /* a retry after SANDBOX_GONE: our request is already queued */
            ngx_http_faas_wait(call);
            return;
        }

        p = ngx_sprintf(max, "%ui", call->fn->max_concurrency);
    }

    pipe = ngx_pcalloc(call->pool, sizeof(ngx_http_faas_pipe_t));
    ops = ngx_pcalloc(call->pool, 3 * sizeof(ngx_http_faas_pipe_op_t));
    if (pipe == NULL || ops == NULL) {
        ngx_http_faas_finish(call, NGX_HTTP_INTERNAL_SERVER_ERROR, NULL);
        return;
    }

    pipe->call = call;
    call->refs++;

    for (i = 0; i < 3; i++) {
        ops[i].pipe = pipe;
        ops[i].which = i;

        if (i == 0) {
            argv[0] = "EVAL";
            argv[1] = ngx_http_faas_reserve_lua;
            argv[2] = "1";
            argv[3] = call->count_key;
            argv[4] = (char *) max;
            argc = 5;

        } else {
            argv[0] = "LLEN";
            argv[1] = call->queue_key[i - 1];
            argc = 2;
        }

        for (n = 0; n < argc; n++) {
            lens[n] = (n == 4) ? (size_t) (p - max) : ngx_strlen(argv[n]);
        }

        if (ngx_http_faas_redis_command(ngx_http_faas_pipe_done, &ops[i],
                                        argc, argv, lens)
            != NGX_OK)
        {
            pipe->failed = 1;
            break;
        }

        pipe->pending++;
    }

    if (pipe->pending == 0) {
        call->refs--;
        ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                             "Redis is unavailable");
    }
}


static void
ngx_http_faas_decr(ngx_http_faas_call_t *call)
{
    const char  *argv[2];
    size_t       lens[2];

    argv[0] = "DECR";
    lens[0] = 4;
    argv[1] = call->count_key;
    lens[1] = ngx_strlen(call->count_key);

    (void) ngx_http_faas_redis_command(ngx_http_faas_ignore, NULL, 2, argv,
                                       lens);
}


static void
ngx_http_faas_pipe_done(redisReply *reply, void *data)
{
    ngx_http_faas_pipe_op_t  *op = data;

    int                    which;
    u_char                *buf;
    size_t                 len;
    const char            *argv[3];
    size_t                 lens[3];
    faas_error_t           err;
    faas_prov_args_t       pa;
    ngx_http_faas_fn_t    *fn;
    ngx_http_faas_pipe_t  *pipe = op->pipe;
    ngx_http_faas_call_t  *call = pipe->call;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        pipe->failed = 1;

    } else if (op->which == 0) {
        pipe->count = reply->integer;
        call->incremented = (reply->integer > 0);

    } else {
        pipe->len[op->which - 1] = reply->integer;
    }

    if (--pipe->pending) {
        return;
    }

    fn = call->fn;

    if (call->r == NULL || pipe->failed) {
        if (call->incremented) {
            ngx_http_faas_decr(call);
            call->incremented = 0;
        }

        if (call->r) {
            ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "Redis is unavailable");
        }

        ngx_http_faas_call_unref(call);
        return;
    }

    call->refs--;

    if (!call->incremented && call->reask) {
        /* sandboxes exist or are on their way: wait on */
        call->reask = 0;
        call->incremented = 1;
        ngx_http_faas_wait(call);
        return;
    }

    call->reask = 0;

    if (!call->incremented) {
        /* at the limit: wait for a returned one */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->log, 0,
                       "faas: %s: at max concurrency %ui, waiting",
                       call->request_id, fn->max_concurrency);
        ngx_http_faas_wq_join(call);
        return;
    }

    /* power of two choices */
    which = faas_shard_choose(pipe->len[0], pipe->len[1]);

    ngx_memzero(&pa, sizeof(faas_prov_args_t));
    pa.rid = (char *) fn->rid.data;
    pa.function = (char *) fn->name.data;
    pa.version = fn->version;
    pa.origin_request_id = (char *) call->request_id;
    pa.runtime = (char *) fn->runtime.data;
    pa.handler = (char *) fn->handler.data;
    pa.code_key = (char *) fn->code_key.data;
    pa.code_sha256 = (char *) fn->code_sha256.data;
    pa.memory_mb = fn->memory_mb;
    pa.timeout_ms = fn->timeout_ms;
    pa.keep_alive_s = fn->keep_alive_s;
    pa.env_json = (char *) fn->env.data;
    pa.enqueued_ms = ngx_http_faas_now_us() / 1000;

    if (faas_prov_request_pack(&pa, &buf, &len, &err) < 0) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0, "faas: %s: %s",
                      call->request_id, err.msg);
        ngx_http_faas_decr(call);
        call->incremented = 0;
        ngx_http_faas_finish(call, NGX_HTTP_BAD_GATEWAY,
                             "bad function metadata");
        return;
    }

    argv[0] = "RPUSH";
    lens[0] = 5;
    argv[1] = call->queue_key[which];
    lens[1] = ngx_strlen(argv[1]);
    argv[2] = (const char *) buf;
    lens[2] = len;

    (void) ngx_http_faas_redis_command(ngx_http_faas_ignore, NULL, 3, argv,
                                       lens);
    free(buf);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, call->log, 0,
                   "faas: %s: provision request to %s (count %L)",
                   call->request_id, call->queue_key[which], pipe->count);

    ngx_http_faas_wait(call);
}


static void
ngx_http_faas_wait(ngx_http_faas_call_t *call)
{
    u_char       tbuf[32], *p;
    ngx_int_t    rc;
    ngx_msec_t   timeout;
    const char  *argv[4];
    size_t       lens[4];

    if (call->wait_deadline == 0) {
        call->wait_deadline = ngx_current_msec
                              + call->flcf->cold_start_timeout;
    }

    timeout = call->wait_deadline - ngx_current_msec;

    if ((ngx_msec_int_t) timeout <= 0) {
        timeout = 1;

    } else if (timeout > NGX_HTTP_FAAS_COLD_SLICE_MS) {
        timeout = NGX_HTTP_FAAS_COLD_SLICE_MS;
    }

    p = ngx_sprintf(tbuf, "%M.%03M", timeout / 1000, timeout % 1000);

    argv[0] = "BLPOP";
    lens[0] = 5;
    argv[1] = call->idle_key;
    lens[1] = ngx_strlen(call->idle_key);
    argv[2] = call->err_key;
    lens[2] = ngx_strlen(call->err_key);
    argv[3] = (const char *) tbuf;
    lens[3] = p - tbuf;

    call->refs++;
    call->waiting = 1;

    rc = ngx_http_faas_redis_blpop(ngx_http_faas_blpop_done, call, 4, argv,
                                   lens, timeout);

    if (rc == NGX_BUSY && ngx_http_faas_wq_get(call->idle_key) != NULL) {
        /*
         * Every BLPOP connection is taken: wait in this worker's queue of
         * the revision instead, served by one BLPOP for all and by the
         * sandboxes calls of this worker are done with. (A failed cold
         * start's reason is then seen only if the queue's count check
         * brings the call back here.)
         */
        call->refs--;
        call->waiting = 0;
        call->wq_busy = 1;
        ngx_http_faas_wq_join(call);
        return;
    }

    if (rc != NGX_OK) {
        call->refs--;
        call->waiting = 0;
        ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                             rc == NGX_BUSY ? "too many waiting requests"
                                            : "Redis is unavailable");
    }
}


static void
ngx_http_faas_blpop_done(redisReply *reply, void *data)
{
    ngx_http_faas_call_t  *call = data;

    u_char        msg[FAAS_REASON_MAX + 64];
    char          reason[FAAS_REASON_MAX];
    redisReply   *k, *v;
    ngx_int_t     rc;

    call->waiting = 0;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        k = reply->element[0];
        v = reply->element[1];

    } else {
        k = NULL;
        v = NULL;
    }

    if (call->r == NULL) {
        if (k && v && v->type == REDIS_REPLY_STRING
            && k->len == (size_t) ngx_strlen(call->idle_key)
            && ngx_strncmp(k->str, call->idle_key, k->len) == 0)
        {
            ngx_http_faas_push_back(call, v->str, v->len);
        }
        ngx_http_faas_call_unref(call);
        return;
    }

    call->refs--;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                             "Redis is unavailable");
        return;
    }

    if ((k == NULL || v == NULL) && reply->type == REDIS_REPLY_NIL
        && (ngx_msec_int_t) (call->wait_deadline - ngx_current_msec) > 0)
    {
        /* an empty slice: ask again if nothing is left, else wait on */
        call->reask = 1;
        call->incremented = 0;
        ngx_http_faas_provision(call);
        return;
    }

    if (k == NULL || v == NULL || v->type != REDIS_REPLY_STRING) {
        ngx_snprintf(msg, sizeof(msg), "no sandbox within %M ms%Z",
                     call->flcf->cold_start_timeout);
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "faas: %s: cold start of %V timed out",
                      call->request_id, &call->fn->rid);
        ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                             (char *) msg);
        return;
    }

    if (k->len == ngx_strlen(call->err_key)
        && ngx_strncmp(k->str, call->err_key, k->len) == 0)
    {
        faas_reason_clean(v->str, v->len, reason);
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: cold start of %V failed: %s",
                      call->request_id, &call->fn->rid, reason);
        ngx_snprintf(msg, sizeof(msg), "cold start failed: %s%Z", reason);
        ngx_http_faas_finish(call, NGX_HTTP_BAD_GATEWAY, (char *) msg);
        return;
    }

    rc = ngx_http_faas_parse_entry(call, v->str, v->len);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_http_faas_wait(call);
        }
        return;
    }

    call->have_entry = 1;
    call->start_type = faas_entry_start_type(&call->entry, 1);
    call->cold_us = ngx_http_faas_now_us() - call->t_wait_us;

    ngx_http_faas_invoke(call);
}


/*
 * Calls the agent of call's entry, unless this call already found that
 * agent unreachable: then it first waits a backoff (20 ms doubling up to
 * 200 ms, within faas_cold_start_timeout since the request began), holding
 * the entry. The timer holds a reference to the call; the cleanup handler
 * returns the entry if the client goes away meanwhile. Like the request's
 * other waits, the timer is not cancelable (README, `nginx -s reload`).
 */
static void
ngx_http_faas_invoke(ngx_http_faas_call_t *call)
{
    ngx_msec_t  elapsed, timeout, delay;

    if (call->agent_down[0] == '\0'
        || ngx_strcmp(call->agent_down, call->entry.endpoint) != 0)
    {
        ngx_http_faas_invoke_now(call);
        return;
    }

    elapsed = (ngx_msec_t) ((ngx_http_faas_now_us() - call->t_start_us)
                            / 1000);
    timeout = call->flcf->cold_start_timeout;

    if (elapsed >= timeout) {
        /* one last try */
        ngx_http_faas_invoke_now(call);
        return;
    }

    call->agent_backoff = call->agent_backoff
                          ? ngx_min(2 * call->agent_backoff,
                                    NGX_HTTP_FAAS_AGENT_BACKOFF_MAX)
                          : NGX_HTTP_FAAS_AGENT_BACKOFF_MIN;

    delay = ngx_min(call->agent_backoff, timeout - elapsed);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, call->log, 0,
                   "faas: %s: agent %s down, calling again in %M ms",
                   call->request_id, call->entry.endpoint, delay);

    call->refs++;
    call->agent_retry.handler = ngx_http_faas_agent_retry;
    call->agent_retry.data = call;
    call->agent_retry.log = call->log;
    ngx_add_timer(&call->agent_retry, delay);
}


static void
ngx_http_faas_invoke_now(ngx_http_faas_call_t *call)
{
    u_char              *frame;
    size_t               len;
    ngx_int_t            rc;
    faas_error_t         err;
    faas_invoke_args_t   ia;
    ngx_http_faas_fn_t  *fn = call->fn;

    if (call->ctx) {
        call->ctx->start_type = call->start_type;
    }

    ngx_memzero(&ia, sizeof(faas_invoke_args_t));
    ia.request_id = (char *) call->request_id;
    ia.sandbox_id = call->entry.sandbox_id;
    ia.function = (char *) fn->name.data;
    ia.version = fn->version;
    ia.event = call->event;
    ia.event_len = call->event_len;
    ia.deadline_ms = ngx_http_faas_now_us() / 1000 + fn->timeout_ms;
    ia.timeout_ms = fn->timeout_ms;
    ia.memory_mb = fn->memory_mb;
    ia.user = ngx_http_faas_strdup0(call->pool, &call->user);

    if (faas_invoke_request_frame(&ia, &frame, &len, &err) < 0) {
        ngx_http_faas_push_back(call, NULL, 0);
        ngx_http_faas_finish(call, NGX_HTTP_INTERNAL_SERVER_ERROR, NULL);
        return;
    }

    call->refs++;

    rc = ngx_http_faas_agent_invoke(call, frame, len,
                                    fn->timeout_ms
                                    + NGX_HTTP_FAAS_AGENT_GRACE,
                                    ngx_http_faas_agent_done);
    free(frame);

    if (rc == NGX_OK) {
        return;
    }

    if (rc == NGX_DECLINED) {
        /* the agent is not there (stopped, restarting): nothing ran */
        ngx_http_faas_agent_done(call, NULL, 0, 1, "agent unreachable");
        return;
    }

    if (rc == NGX_ABORT) {
        /* an entry no connection can be made for: try another sandbox */
        ngx_http_faas_agent_done(call, NULL, 0, 0, "agent unreachable");
        return;
    }

    call->refs--;

    ngx_http_faas_push_back(call, NULL, 0);
    ngx_http_faas_finish(call, NGX_HTTP_INTERNAL_SERVER_ERROR, NULL);
}


static void
ngx_http_faas_record(ngx_http_faas_call_t *call, Faas__InvokeResponse *resp,
    ngx_uint_t status, ngx_uint_t http_status, ngx_uint_t keep)
{
    uint8_t             *buf;
    size_t               len;
    uint64_t             now;
    faas_error_t         err;
    faas_record_args_t   ra;

    if (keep
        && (status == FAAS__INVOKE_STATUS__OK
            || status == FAAS__INVOKE_STATUS__FUNCTION_ERROR)
        && ngx_http_faas_wq_handoff(call))
    {
        keep = 0;   /* the sandbox went to a waiting call of this worker */
    }

    if (keep) {
        ngx_http_faas_push_back(call, NULL, 0);
    }

    now = ngx_http_faas_now_us();

    ngx_memzero(&ra, sizeof(faas_record_args_t));
    ra.request_id = (char *) call->request_id;
    ra.function = (char *) call->fn->name.data;
    ra.version = call->fn->version;
    ra.user = ngx_http_faas_strdup0(call->pool, &call->user);
    ra.start_type = (int) call->start_type;
    ra.status = (int) status;
    ra.http_status = http_status;
    ra.duration_us = resp ? resp->duration_us : 0;
    ra.total_us = now - call->t_start_us;
    ra.cold_start_us = call->cold_us;
    ra.memory_bytes = resp ? resp->memory_bytes : 0;
    ra.log_key = resp ? resp->log_key : "";
    ra.agent_host = call->entry.endpoint;
    ra.timestamp_ms = now / 1000;
    ra.sandbox_id = call->entry.sandbox_id;

    if (faas_record_pack(&ra, &buf, &len, &err) < 0) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0, "faas: %s: %s",
                      call->request_id, err.msg);
        return;
    }

    /* written with the other records of this event loop iteration */
    ngx_http_faas_records_add(buf, len, call->request_id);
}


/*
 * Execution records wait here until the end of the current event loop
 * iteration (a posted event), then go out as one RPUSH with every record of
 * the iteration: one command and one Redis wake-up for many calls.
 */
#define NGX_HTTP_FAAS_RECORDS_MAX  256

static struct {
    uint8_t      *buf[NGX_HTTP_FAAS_RECORDS_MAX];
    size_t        len[NGX_HTTP_FAAS_RECORDS_MAX];
    ngx_uint_t    n;
    ngx_event_t   ev;
} ngx_http_faas_recs;


void
ngx_http_faas_records_flush(void)
{
    ngx_uint_t   i, n;
    const char  *argv[NGX_HTTP_FAAS_RECORDS_MAX + 2];
    size_t       lens[NGX_HTTP_FAAS_RECORDS_MAX + 2];

    n = ngx_http_faas_recs.n;
    if (n == 0) {
        return;
    }

    argv[0] = "RPUSH";
    lens[0] = 5;
    argv[1] = FAAS_KEY_RECORDS;
    lens[1] = sizeof(FAAS_KEY_RECORDS) - 1;

    for (i = 0; i < n; i++) {
        argv[i + 2] = (const char *) ngx_http_faas_recs.buf[i];
        lens[i + 2] = ngx_http_faas_recs.len[i];
    }

    if (ngx_http_faas_redis_command(ngx_http_faas_ignore, NULL, (int) n + 2,
                                    argv, lens)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "faas: %ui execution record(s) lost: Redis is "
                      "unavailable", n);
    }

    for (i = 0; i < n; i++) {
        free(ngx_http_faas_recs.buf[i]);
    }

    ngx_http_faas_recs.n = 0;

    if (ngx_http_faas_recs.ev.posted) {
        ngx_delete_posted_event(&ngx_http_faas_recs.ev);
    }
}


static void
ngx_http_faas_records_run(ngx_event_t *ev)
{
    ngx_http_faas_records_flush();
}


/* Takes buf (malloc'd). */
static void
ngx_http_faas_records_add(uint8_t *buf, size_t len, u_char *request_id)
{
    if (ngx_http_faas_recs.n == NGX_HTTP_FAAS_RECORDS_MAX) {
        ngx_http_faas_records_flush();
    }

    ngx_http_faas_recs.buf[ngx_http_faas_recs.n] = buf;
    ngx_http_faas_recs.len[ngx_http_faas_recs.n] = len;
    ngx_http_faas_recs.n++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "faas: %s: record queued", request_id);

    if (!ngx_http_faas_recs.ev.posted) {
        ngx_http_faas_recs.ev.handler = ngx_http_faas_records_run;
        ngx_http_faas_recs.ev.log = ngx_cycle->log;
        ngx_post_event(&ngx_http_faas_recs.ev, &ngx_posted_events);
    }
}


static void
ngx_http_faas_agent_done(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp, ngx_uint_t dispatched,
    ngx_uint_t unreachable, const char *error)
{
    u_char                *msg;
    ngx_int_t              rc;
    ngx_uint_t             http, keep, status;
    ngx_connection_t      *c;
    ngx_http_request_t    *r;

    r = call->r;

    if (resp == NULL && !dispatched && unreachable) {
        /* the agent is down or restarting, its sandbox is fine: wait */
        ngx_http_faas_agent_unreachable(call, error);
        ngx_http_faas_call_unref(call);
        return;
    }

    if (resp && resp->status == FAAS__INVOKE_STATUS__AGENT_DRAINING) {
        /* nothing ran; a new agent is expected on the same endpoint */
        faas__invoke_response__free_unpacked(resp, NULL);
        ngx_http_faas_agent_unreachable(call, "agent is shutting down");
        ngx_http_faas_call_unref(call);
        return;
    }

    if (resp == NULL && !dispatched) {
        /* nothing ran: the sandbox is unreachable, drop its entry */
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "faas: %s: %s for sandbox %s at %s, entry dropped",
                      call->request_id, error, call->entry.sandbox_id,
                      call->entry.endpoint);
        call->have_entry = 0;

        if (r && ++call->attempts <= call->flcf->retries) {
            ngx_http_faas_acquire(call);

        } else if (r) {
            ngx_http_faas_finish(call, NGX_HTTP_BAD_GATEWAY, error);
        }

        ngx_http_faas_call_unref(call);
        return;
    }

    if (resp == NULL) {
        /* after dispatch: the sandbox's state is unknown, never retried */
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: %s during the call to sandbox %s, "
                      "entry dropped", call->request_id, error,
                      call->entry.sandbox_id);
        ngx_http_faas_record(call, NULL, FAAS__INVOKE_STATUS__SANDBOX_CRASHED,
                             NGX_HTTP_BAD_GATEWAY, 0);

        if (r) {
            call->ctx->status = FAAS__INVOKE_STATUS__SANDBOX_CRASHED + 1;
            ngx_http_faas_finish(call, NGX_HTTP_BAD_GATEWAY, error);
        }

        ngx_http_faas_call_unref(call);
        return;
    }

    status = resp->status;

    if (status == FAAS__INVOKE_STATUS__SANDBOX_GONE
        || status == FAAS__INVOKE_STATUS__SANDBOX_BUSY)
    {
        /*
         * Nothing ran, and this entry must not go back: the sandbox is
         * gone, or it is "busy with another call" (its entry was listed
         * twice, and the call that holds it gives it back). Drop the entry
         * and take another sandbox.
         */
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "faas: %s: sandbox %s %s, entry dropped",
                      call->request_id, call->entry.sandbox_id,
                      status == FAAS__INVOKE_STATUS__SANDBOX_GONE
                      ? "is gone"
                      : "is busy with another call (listed twice)");
        faas__invoke_response__free_unpacked(resp, NULL);
        call->have_entry = 0;

        if (r && ++call->attempts <= call->flcf->retries) {
            ngx_http_faas_acquire(call);

        } else if (r) {
            ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                                 "no sandbox available");
        }

        ngx_http_faas_call_unref(call);
        return;
    }

    keep = resp->sandbox_alive;

    switch (status) {

    case FAAS__INVOKE_STATUS__OK:
        http = resp->http_status ? resp->http_status : NGX_HTTP_OK;
        break;

    case FAAS__INVOKE_STATUS__TIMEOUT:
        http = NGX_HTTP_GATEWAY_TIME_OUT;
        keep = 0;
        break;

    case FAAS__INVOKE_STATUS__SANDBOX_CRASHED:
        http = NGX_HTTP_BAD_GATEWAY;
        keep = 0;
        break;

    case FAAS__INVOKE_STATUS__OVERLOADED:
        /*
         * Nothing ran (a saturated agent) and this call still holds the
         * sandbox: it goes back. (SANDBOX_BUSY is handled above: pushing
         * that entry back would keep the sandbox listed twice for good.)
         */
        http = NGX_HTTP_SERVICE_UNAVAILABLE;
        break;

    case FAAS__INVOKE_STATUS__BAD_REQUEST:
    case FAAS__INVOKE_STATUS__UNAUTHORIZED:
        /* refused before running: the sandbox stays usable */
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: agent %s refused the call: %s",
                      call->request_id, call->entry.endpoint,
                      resp->error ? resp->error : "");
        http = NGX_HTTP_BAD_GATEWAY;
        keep = 1;
        break;

    default: /* FUNCTION_ERROR */
        http = NGX_HTTP_BAD_GATEWAY;
        break;
    }

    if (http < 100 || http > 599) {
        http = NGX_HTTP_BAD_GATEWAY;
    }

    ngx_http_faas_record(call, resp, status, http, keep);

    if (r == NULL) {
        faas__invoke_response__free_unpacked(resp, NULL);
        ngx_http_faas_call_unref(call);
        return;
    }

    call->ctx->status = status + 1;
    c = r->connection;

    if (status == FAAS__INVOKE_STATUS__OK
        || status == FAAS__INVOKE_STATUS__FUNCTION_ERROR
        || resp->body.len)
    {
        rc = ngx_http_faas_send(r, call, http, resp, resp->body.data,
                                resp->body.len);

    } else {
        msg = (u_char *) (resp->error && resp->error[0] ? resp->error
                          : status == FAAS__INVOKE_STATUS__TIMEOUT
                          ? "function timed out" : "invocation failed");
        rc = ngx_http_faas_send_error(r, http, (char *) msg);
    }

    faas__invoke_response__free_unpacked(resp, NULL);
    ngx_http_faas_call_unref(call);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * The agent of call's entry could not be reached before anything was sent
 * (or answered that it is shutting down): the sandbox is most likely fine
 * and its agent restarting. The entry goes back to the idle list (RPUSH, as
 * after a call) and the call takes the next one (LPOP, as at its start):
 * a sandbox on another agent is used at once, one on the same agent after a
 * backoff (ngx_http_faas_invoke). When faas_cold_start_timeout has passed
 * since the request began: 503 "agent unavailable" (the entry listed). A
 * call whose client is gone just returns the entry. No retry is counted
 * against faas_retries.
 */
static void
ngx_http_faas_agent_unreachable(ngx_http_faas_call_t *call,
    const char *error)
{
    ngx_msec_t  elapsed, timeout;

    if (call->r == NULL) {
        ngx_http_faas_push_back(call, NULL, 0);
        return;
    }

    elapsed = (ngx_msec_t) ((ngx_http_faas_now_us() - call->t_start_us)
                            / 1000);
    timeout = call->flcf->cold_start_timeout;

    if (elapsed >= timeout) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: %s: agent %s of sandbox %s still "
                      "unavailable after %M ms, entry returned",
                      call->request_id, error, call->entry.endpoint,
                      call->entry.sandbox_id, elapsed);
        ngx_http_faas_push_back(call, NULL, 0);
        ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                             "agent unavailable");
        return;
    }

    if (call->agent_down[0] == '\0') {
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "faas: %s: %s for sandbox %s at %s, entry returned, "
                      "calling again for up to %M ms", call->request_id,
                      error, call->entry.sandbox_id, call->entry.endpoint,
                      timeout - elapsed);
    }

    ngx_cpystrn((u_char *) call->agent_down, (u_char *) call->entry.endpoint,
                sizeof(call->agent_down));

    ngx_http_faas_push_back(call, NULL, 0);
    ngx_http_faas_acquire(call);
}


static void
ngx_http_faas_agent_retry(ngx_event_t *ev)
{
    ngx_http_faas_call_t  *call = ev->data;

    if (call->r == NULL) {
        /* (the cleanup handler normally does this) */
        ngx_http_faas_push_back(call, NULL, 0);
        ngx_http_faas_call_unref(call);
        return;
    }

    call->refs--;
    ngx_http_faas_invoke_now(call);
}


/* An error answer from a callback (r may be gone). */
static void
ngx_http_faas_finish(ngx_http_faas_call_t *call, ngx_int_t status,
    const char *msg)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r = call->r;

    if (r == NULL) {
        return;
    }

    c = r->connection;

    if (msg == NULL) {
        rc = status;

    } else {
        rc = ngx_http_faas_send_error(r, status, msg);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


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


static ngx_int_t
ngx_http_faas_send(ngx_http_request_t *r, ngx_http_faas_call_t *call,
    ngx_uint_t status, Faas__InvokeResponse *resp, u_char *body, size_t len)
{
    size_t        i;
    u_char       *p;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_str_t     v;
    ngx_chain_t   out;
    Faas__Header *h;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    for (i = 0; i < resp->n_headers; i++) {
        h = resp->headers[i];

        if (h->name == NULL || h->name[0] == '\0' || h->value == NULL) {
            continue;
        }

        v.len = ngx_strlen(h->value);
        if (ngx_strlchr((u_char *) h->value, (u_char *) h->value + v.len,
                        '\n')
            || ngx_strlchr((u_char *) h->value, (u_char *) h->value + v.len,
                           '\r')
            || ngx_strchr(h->name, ':') || ngx_strchr(h->name, '\n')
            || ngx_strchr(h->name, '\r') || ngx_strchr(h->name, ' '))
        {
            continue;
        }

        v.data = ngx_pnalloc(r->pool, v.len);
        if (v.data == NULL) {
            return NGX_ERROR;
        }
        ngx_memcpy(v.data, h->value, v.len);

        if (ngx_strcasecmp((u_char *) h->name, (u_char *) "content-type")
            == 0)
        {
            r->headers_out.content_type = v;
            r->headers_out.content_type_len = v.len;
            continue;
        }

        if (ngx_strcasecmp((u_char *) h->name, (u_char *) "content-length")
               == 0
            || ngx_strcasecmp((u_char *) h->name, (u_char *) "connection")
               == 0
            || ngx_strcasecmp((u_char *) h->name,
                              (u_char *) "transfer-encoding") == 0
            || ngx_strcasecmp((u_char *) h->name, (u_char *) "keep-alive")
               == 0
            || ngx_strncasecmp((u_char *) h->name, (u_char *) "x-faas-", 7)
               == 0)
        {
            continue;
        }

        p = ngx_pnalloc(r->pool, ngx_strlen(h->name) + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }
        ngx_cpystrn(p, (u_char *) h->name, ngx_strlen(h->name) + 1);

        if (ngx_http_faas_add_header(r, (char *) p, v.data, v.len) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_faas_common_headers(r) != NGX_OK) {
        return NGX_ERROR;
    }

    if (len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
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


/* RPUSH the entry (str, or the call's entry made origin-less) back. */
static void
ngx_http_faas_push_back(ngx_http_faas_call_t *call, const char *str,
    size_t len)
{
    char         buf[FAAS_ENTRY_MAX];
    int          n;
    const char  *argv[3];
    size_t       lens[3];

    if (str == NULL) {
        if (!call->have_entry) {
            return;
        }

        n = faas_entry_format(buf, sizeof(buf), call->entry.sandbox_id,
                              call->entry.endpoint, NULL);
        if (n < 0) {
            return;
        }

        str = buf;
        len = n;
        call->have_entry = 0;
    }

    argv[0] = "RPUSH";
    lens[0] = 5;
    argv[1] = call->idle_key;
    lens[1] = ngx_strlen(call->idle_key);
    argv[2] = str;
    lens[2] = len;

    if (ngx_http_faas_redis_command(ngx_http_faas_ignore, NULL, 3, argv,
                                    lens)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: cannot return \"%*s\" to %s: Redis is "
                      "unavailable", call->request_id, len, str,
                      call->idle_key);
    }
}


static void
ngx_http_faas_ignore(redisReply *reply, void *data)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "faas: redis: %*s", (size_t) reply->len, reply->str);
    }
}


/* ---- the local wait queue at max concurrency -------------------------- */


static ngx_http_faas_wq_t *
ngx_http_faas_wq_get(const char *idle_key)
{
    size_t               len;
    ngx_queue_t         *q;
    ngx_http_faas_wq_t  *wq;

    if (!ngx_http_faas_wqs_ready) {
        ngx_queue_init(&ngx_http_faas_wqs);
        ngx_http_faas_wqs_ready = 1;
    }

    for (q = ngx_queue_head(&ngx_http_faas_wqs);
         q != ngx_queue_sentinel(&ngx_http_faas_wqs);
         q = ngx_queue_next(q))
    {
        wq = ngx_queue_data(q, ngx_http_faas_wq_t, link);

        if (ngx_strcmp(wq->idle_key, idle_key) == 0) {
            return wq;
        }
    }

    len = ngx_strlen(idle_key);
    if (len >= FAAS_KEY_MAX) {
        return NULL;
    }

    wq = ngx_calloc(sizeof(ngx_http_faas_wq_t), ngx_cycle->log);
    if (wq == NULL) {
        return NULL;
    }

    ngx_memcpy(wq->idle_key, idle_key, len + 1);
    ngx_queue_init(&wq->waiters);
    wq->retry.handler = ngx_http_faas_wq_retry;
    wq->retry.data = wq;
    wq->retry.log = ngx_cycle->log;
    wq->retry.cancelable = 1;
    ngx_queue_insert_tail(&ngx_http_faas_wqs, &wq->link);

    return wq;
}


/* Frees a queue nobody waits on and no BLPOP refers to. */
static void
ngx_http_faas_wq_gc(ngx_http_faas_wq_t *wq)
{
    if (wq->nwaiters == 0 && !wq->blpop) {
        if (wq->retry.timer_set) {
            ngx_del_timer(&wq->retry);
        }

        ngx_queue_remove(&wq->link);
        ngx_free(wq);
    }
}


/* Queues call (which holds a reference for the queue) for any sandbox. */
static void
ngx_http_faas_wq_join(ngx_http_faas_call_t *call)
{
    ngx_http_faas_wq_t  *wq;

    wq = ngx_http_faas_wq_get(call->idle_key);
    if (wq == NULL) {
        ngx_http_faas_wait(call);
        return;
    }

    call->refs++;
    call->wq = wq;
    call->waiting = 1;
    ngx_queue_insert_tail(&wq->waiters, &call->wq_link);
    wq->nwaiters++;

    if (!call->wq_busy) {
        wq->nlimited++;
    }

    call->wq_timer.handler = ngx_http_faas_wq_timeout;
    call->wq_timer.data = call;
    call->wq_timer.log = call->log;

    if (call->wait_deadline
        && (ngx_msec_int_t) (call->wait_deadline - ngx_current_msec) > 0)
    {
        /* a cold start's wait goes on here: what is left of it */
        ngx_add_timer(&call->wq_timer, call->wait_deadline - ngx_current_msec);

    } else {
        ngx_add_timer(&call->wq_timer, call->flcf->cold_start_timeout);
    }

    ngx_http_faas_wq_blpop(wq);
}


/* Takes call out of its queue; its reference stays with the caller. */
static void
ngx_http_faas_wq_leave(ngx_http_faas_call_t *call)
{
    ngx_http_faas_wq_t  *wq = call->wq;

    ngx_queue_remove(&call->wq_link);
    wq->nwaiters--;

    if (!call->wq_busy) {
        wq->nlimited--;
    }

    call->wq_busy = 0;
    call->wq = NULL;
    call->waiting = 0;

    if (call->wq_timer.timer_set) {
        ngx_del_timer(&call->wq_timer);
    }

    ngx_http_faas_wq_gc(wq);
}


/* Answers every call of the queue with 503 (Redis is not usable). */
static void
ngx_http_faas_wq_fail(ngx_http_faas_wq_t *wq, const char *why)
{
    ngx_queue_t           *q;
    ngx_http_faas_call_t  *call;

    wq->blpop++;    /* keeps wq while its calls leave */

    while (!ngx_queue_empty(&wq->waiters)) {
        q = ngx_queue_head(&wq->waiters);
        call = ngx_queue_data(q, ngx_http_faas_call_t, wq_link);
        ngx_http_faas_wq_leave(call);
        ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE, why);
        ngx_http_faas_call_unref(call);
    }

    wq->blpop--;
    ngx_http_faas_wq_gc(wq);
}


static void
ngx_http_faas_wq_blpop(void *data)
{
    ngx_http_faas_wq_t  *wq = data;

    u_char       tbuf[16], *p;
    ngx_int_t    rc;
    const char  *argv[3];
    size_t       lens[3];

    if (wq->blpop || wq->nwaiters == 0) {
        return;
    }

    p = ngx_sprintf(tbuf, "%d", NGX_HTTP_FAAS_WQ_BLPOP_S);

    argv[0] = "BLPOP";
    lens[0] = 5;
    argv[1] = wq->idle_key;
    lens[1] = ngx_strlen(wq->idle_key);
    argv[2] = (const char *) tbuf;
    lens[2] = p - tbuf;

    rc = ngx_http_faas_redis_blpop(ngx_http_faas_wq_blpop_done, wq, 3, argv,
                                   lens, NGX_HTTP_FAAS_WQ_BLPOP_S * 1000);

    if (rc == NGX_BUSY) {
        /* the waiters keep their timers and get local hand-offs meanwhile */
        if (!wq->retry.timer_set) {
            ngx_add_timer(&wq->retry, NGX_HTTP_FAAS_WQ_RETRY_MS);
        }
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_faas_wq_fail(wq, "Redis is unavailable");
        return;
    }

    wq->blpop = 1;
}


static void
ngx_http_faas_wq_retry(ngx_event_t *ev)
{
    ngx_http_faas_wq_t  *wq = ev->data;

    ngx_http_faas_wq_blpop(wq);
    ngx_http_faas_wq_gc(wq);
}


static void
ngx_http_faas_wq_blpop_done(redisReply *reply, void *data)
{
    ngx_http_faas_wq_t  *wq = data;

    const char            *argv[3];
    size_t                 lens[3];
    redisReply            *v;
    ngx_int_t              rc;
    ngx_queue_t           *q;
    ngx_http_faas_call_t  *call;

    wq->blpop = 0;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_faas_wq_fail(wq, "Redis is unavailable");
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        /*
         * Nothing came back within the BLPOP's timeout: sandboxes may have
         * gone (destroyed, crashed), so the first waiter checks the count
         * again (a cold start if it is below the limit now, else it
         * queues again); the others wait on.
         */
        call = NULL;

        if (wq->nwaiters) {
            q = ngx_queue_head(&wq->waiters);
            call = ngx_queue_data(q, ngx_http_faas_call_t, wq_link);
            wq->blpop++;
            ngx_http_faas_wq_leave(call);
            wq->blpop--;
        }

        ngx_http_faas_wq_blpop(wq);
        ngx_http_faas_wq_gc(wq);

        if (call) {
            call->refs--;
            ngx_http_faas_provision(call);
        }

        return;
    }

    v = reply->element[1];

    if (wq->nwaiters == 0) {
        /* every waiter left meanwhile: the sandbox goes back */
        argv[0] = "RPUSH";
        lens[0] = 5;
        argv[1] = wq->idle_key;
        lens[1] = ngx_strlen(wq->idle_key);
        argv[2] = v->str;
        lens[2] = v->len;

        if (ngx_http_faas_redis_command(ngx_http_faas_ignore, NULL, 3, argv,
                                        lens)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "faas: cannot return \"%*s\" to %s: Redis is "
                          "unavailable", (size_t) v->len, v->str,
                          wq->idle_key);
        }

        ngx_http_faas_wq_gc(wq);
        return;
    }

    q = ngx_queue_head(&wq->waiters);
    call = ngx_queue_data(q, ngx_http_faas_call_t, wq_link);

    wq->blpop++;    /* keeps wq while call leaves */
    ngx_http_faas_wq_leave(call);
    wq->blpop--;

    rc = ngx_http_faas_parse_entry(call, v->str, v->len);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_http_faas_wq_join(call);
        }

        ngx_http_faas_call_unref(call);
        ngx_http_faas_wq_blpop(wq);
        ngx_http_faas_wq_gc(wq);
        return;
    }

    /* the next waiter's BLPOP goes out before this call's agent request */
    ngx_http_faas_wq_blpop(wq);

    call->refs--;
    call->have_entry = 1;
    call->start_type = faas_entry_start_type(&call->entry, 1);
    call->cold_us = ngx_http_faas_now_us() - call->t_wait_us;

    ngx_http_faas_wq_gc(wq);

    ngx_http_faas_invoke(call);
}


static void
ngx_http_faas_wq_timeout(ngx_event_t *ev)
{
    ngx_http_faas_call_t  *call = ev->data;

    u_char  msg[64];

    ngx_http_faas_wq_leave(call);

    ngx_snprintf(msg, sizeof(msg), "no sandbox within %M ms%Z",
                 call->flcf->cold_start_timeout);
    ngx_log_error(NGX_LOG_WARN, call->log, 0,
                  "faas: %s: no sandbox of %V within %M ms at max concurrency",
                  call->request_id, &call->fn->rid,
                  call->flcf->cold_start_timeout);
    ngx_http_faas_finish(call, NGX_HTTP_SERVICE_UNAVAILABLE, (char *) msg);
    ngx_http_faas_call_unref(call);
}


/*
 * Gives the sandbox call is done with to the first call of this worker that
 * waits for one of the same revision (a local hand-off: no RPUSH and no
 * BLPOP). Returns 1 if it did; the waiter runs from a posted event, after
 * the current handler. 0: the sandbox goes back through Redis.
 */
static ngx_uint_t
ngx_http_faas_wq_handoff(ngx_http_faas_call_t *call)
{
    ngx_queue_t           *q;
    ngx_http_faas_wq_t    *wq;
    ngx_http_faas_call_t  *w;

    if (!call->have_entry || !ngx_http_faas_wqs_ready
        || call->handoffs >= NGX_HTTP_FAAS_HANDOFF_MAX)
    {
        return 0;
    }

    for (q = ngx_queue_head(&ngx_http_faas_wqs);
         q != ngx_queue_sentinel(&ngx_http_faas_wqs);
         q = ngx_queue_next(q))
    {
        wq = ngx_queue_data(q, ngx_http_faas_wq_t, link);

        if (wq->nwaiters && ngx_strcmp(wq->idle_key, call->idle_key) == 0) {
            goto found;
        }
    }

    return 0;

found:

    q = ngx_queue_head(&wq->waiters);
    w = ngx_queue_data(q, ngx_http_faas_call_t, wq_link);

    /* the queue's reference becomes the posted event's */
    ngx_http_faas_wq_leave(w);

    w->entry = call->entry;
    w->entry.origin[0] = '\0';
    w->have_entry = 1;
    w->handoffs = call->handoffs + 1;
    call->have_entry = 0;

    w->handoff.handler = ngx_http_faas_handoff_run;
    w->handoff.data = w;
    w->handoff.log = w->log;
    ngx_post_event(&w->handoff, &ngx_posted_events);

    return 1;
}


static void
ngx_http_faas_handoff_run(ngx_event_t *ev)
{
    ngx_http_faas_call_t  *call = ev->data;

    if (call->r == NULL) {
        /* the client went away meanwhile: the sandbox goes back */
        ngx_http_faas_push_back(call, NULL, 0);
        ngx_http_faas_call_unref(call);
        return;
    }

    call->refs--;
    call->start_type = faas_entry_start_type(&call->entry, 1);
    call->cold_us = ngx_http_faas_now_us() - call->t_wait_us;

    ngx_http_faas_invoke(call);
}
