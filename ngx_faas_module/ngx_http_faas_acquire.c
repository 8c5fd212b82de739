/*
 * Acquiring a sandbox (competitive consumption, docs/DESIGN.md section 1):
 *
 *   LPOP idle
 *     hit:  WARM
 *     miss: while the evidence says a busy sandbox will be back sooner
 *           than a new one would be ready (ngx_http_faas_scale.c), wait
 *           for it in this worker's queue of the revision (STOLEN); else
 *           reserve a count slot (INCR below max concurrency, one Lua
 *           script, so the count never exceeds the limit even for a
 *           moment) + LLEN both shard queues (pipelined), RPUSH a
 *           ProvisionRequest to the shorter queue, then BLPOP idle +
 *           faas:err:{rid}:<request-id> (in slices; after an empty one the
 *           call asks again if the revision has no sandbox at all):
 *           COLD (a fresh sandbox, ours or one provisioned for another
 *           waiting request) or STOLEN (one returned by another request),
 *           a reason (502; "host full" is back-pressure instead: the call
 *           waits on for a returned sandbox) or nothing in time (503 with
 *           Retry-After)
 *     At max concurrency (no slot reserved), or when every BLPOP
 *     connection is taken, the call waits in this worker's queue of the
 *     revision instead (NGX_HTTP_FAAS_QUEUE, ngx_http_faas_waitq.c).
 */
#include "ngx_http_faas_module.h"

#include "partition.h"
#include "record.h"


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


/*
 * A call waiting for a cold start BLPOPs in slices of this length; after
 * an empty slice it asks for a sandbox again if the revision has none at
 * all (its own was taken by another call and every sandbox has died
 * since: nothing would ever come back).
 */
#define NGX_HTTP_FAAS_COLD_SLICE_MS  1000


/* one count reservation + two LLEN replies, pipelined */
typedef struct {
    ngx_http_faas_call_t      *call;
    ngx_uint_t                 pending;
    ngx_uint_t                 failed;
    long long                  count;
    long long                  len[2];
} ngx_http_faas_pipe_t;


typedef struct {
    ngx_http_faas_pipe_t      *pipe;
    ngx_uint_t                 which;       /* 0 reserve, 1 and 2 LLEN */
} ngx_http_faas_pipe_op_t;


static void ngx_http_faas_lpop_done(redisReply *reply, void *data);
static void ngx_http_faas_miss(ngx_http_faas_call_t *call);
static ngx_uint_t ngx_http_faas_redis_failed(ngx_http_faas_call_t *call,
    redisReply *reply);
static void ngx_http_faas_invoke_entry(ngx_http_faas_call_t *call,
    redisReply *v, ngx_uint_t from_blpop, ngx_http_faas_step_e retry);
static void ngx_http_faas_pipe_done(redisReply *reply, void *data);
static void ngx_http_faas_cold_start(ngx_http_faas_call_t *call,
    ngx_http_faas_pipe_t *pipe);
static void ngx_http_faas_blpop_done(redisReply *reply, void *data);


void
ngx_http_faas_acquire(ngx_http_faas_call_t *call)
{
    const char  *argv[2];
    size_t       lens[2];

    if (!call->incremented && ngx_http_faas_wq_limited(call->idle_key)) {
        /* the function is at its limit: wait behind the others */
        call->t_wait_us = ngx_http_faas_now_us();
        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_QUEUE);
        return;
    }

    argv[0] = "LPOP";
    lens[0] = 4;
    argv[1] = call->idle_key;
    lens[1] = ngx_strlen(call->idle_key);

    ngx_http_faas_call_start(call);

    if (ngx_http_faas_redis_command(ngx_http_faas_lpop_done, call, 2, argv,
                                    lens)
        != NGX_OK)
    {
        ngx_http_faas_call_end(call);
        ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "Redis is unavailable");
    }
}


static void
ngx_http_faas_lpop_done(redisReply *reply, void *data)
{
    ngx_http_faas_call_t  *call = data;

    if (call->r == NULL) {
        if (reply && reply->type == REDIS_REPLY_STRING) {
            ngx_http_faas_call_return(call, reply->str, reply->len);
        }
        ngx_http_faas_call_end(call);
        return;
    }

    if (ngx_http_faas_redis_failed(call, reply)) {
        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        ngx_http_faas_miss(call);
        return;
    }

    ngx_http_faas_invoke_entry(call, reply, 0, NGX_HTTP_FAAS_ACQUIRE);
}


/*
 * No idle sandbox: wait for a returned one while the evidence says one will
 * be back sooner than a new one would be ready (ngx_http_faas_scale.c), in
 * this worker's queue of the revision; else ask for a new one at once.
 */
static void
ngx_http_faas_miss(ngx_http_faas_call_t *call)
{
    ngx_msec_t  patience;

    if (!call->incremented) {
        patience = ngx_http_faas_scale_patience(call);

        if (patience) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->log, 0,
                           "faas: %s: waiting up to %M ms for a returned "
                           "sandbox", call->request_id, patience);
            call->wq_patience = patience;
            call->t_wait_us = ngx_http_faas_now_us();
            ngx_http_faas_call_next(call, NGX_HTTP_FAAS_QUEUE);
            return;
        }
    }

    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_PROVISION);
}


void
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
            ngx_http_faas_call_next(call, NGX_HTTP_FAAS_WAIT);
            return;
        }

        p = ngx_sprintf(max, "%ui", call->fn->max_concurrency);
    }

    pipe = ngx_pcalloc(call->pool, sizeof(ngx_http_faas_pipe_t));
    ops = ngx_pcalloc(call->pool, 3 * sizeof(ngx_http_faas_pipe_op_t));
    if (pipe == NULL || ops == NULL) {
        ngx_http_faas_call_fail(call, NGX_HTTP_INTERNAL_SERVER_ERROR, NULL);
        return;
    }

    pipe->call = call;
    ngx_http_faas_call_start(call);

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
        ngx_http_faas_call_end(call);
        ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
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

    (void) ngx_http_faas_redis_command(ngx_http_faas_redis_ignore, NULL, 2,
                                       argv, lens);
}


static void
ngx_http_faas_pipe_done(redisReply *reply, void *data)
{
    ngx_http_faas_pipe_op_t  *op = data;

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

    if (call->r == NULL || pipe->failed) {
        if (call->incremented) {
            ngx_http_faas_decr(call);
            call->incremented = 0;
        }

        if (call->r) {
            ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "Redis is unavailable");
        }

        ngx_http_faas_call_end(call);
        return;
    }

    ngx_http_faas_call_end(call);

    if (!call->incremented && call->reask) {
        /* sandboxes exist or are on their way: wait on */
        call->reask = 0;
        call->incremented = 1;
        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_WAIT);
        return;
    }

    call->reask = 0;

    if (!call->incremented) {
        /* at the limit: wait for a returned one */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->log, 0,
                       "faas: %s: at max concurrency %ui, waiting",
                       call->request_id, call->fn->max_concurrency);
        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_QUEUE);
        return;
    }

    ngx_http_faas_cold_start(call, pipe);
}


/*
 * The ProvisionRequest for call's revision (buf is malloc'd): the provisioner
 * reads everything else from faas:rev:{rid}.
 */
static ngx_int_t
ngx_http_faas_prov_request(ngx_http_faas_call_t *call, u_char **buf,
    size_t *len, faas_error_t *err)
{
    faas_prov_args_t  pa;

    ngx_memzero(&pa, sizeof(faas_prov_args_t));
    pa.rid = (char *) call->fn->rid.data;
    pa.origin_request_id = (char *) call->request_id;
    pa.enqueued_ms = ngx_http_faas_now_us() / 1000;

    return faas_prov_request_pack(&pa, buf, len, err) < 0 ? NGX_ERROR
                                                           : NGX_OK;
}


/* A slot is reserved: RPUSH the request to the shorter queue, then wait. */
static void
ngx_http_faas_cold_start(ngx_http_faas_call_t *call,
    ngx_http_faas_pipe_t *pipe)
{
    int           which;
    u_char       *buf;
    size_t        len;
    const char   *argv[3];
    size_t        lens[3];
    faas_error_t  err;

    /* power of two choices */
    which = faas_shard_choose(pipe->len[0], pipe->len[1]);

    if (ngx_http_faas_prov_request(call, &buf, &len, &err) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0, "faas: %s: %s",
                      call->request_id, err.msg);
        ngx_http_faas_decr(call);
        call->incremented = 0;
        ngx_http_faas_call_fail(call, NGX_HTTP_BAD_GATEWAY,
                                "bad function metadata");
        return;
    }

    argv[0] = "RPUSH";
    lens[0] = 5;
    argv[1] = call->queue_key[which];
    lens[1] = ngx_strlen(argv[1]);
    argv[2] = (const char *) buf;
    lens[2] = len;

    (void) ngx_http_faas_redis_command(ngx_http_faas_redis_ignore, NULL, 3,
                                       argv, lens);
    free(buf);

    ngx_http_faas_scale_asked(call);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, call->log, 0,
                   "faas: %s: provision request to %s (count %L)",
                   call->request_id, call->queue_key[which], pipe->count);

    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_WAIT);
}


void
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

    ngx_http_faas_call_start(call);

    rc = ngx_http_faas_redis_blpop(ngx_http_faas_blpop_done, call, 4, argv,
                                   lens, timeout);
    if (rc == NGX_OK) {
        return;
    }

    ngx_http_faas_call_end(call);

    if (rc == NGX_BUSY) {
        /*
         * Every BLPOP connection is taken: wait in this worker's queue of
         * the revision instead, served by one BLPOP for all and by the
         * sandboxes calls of this worker are done with. (A failed cold
         * start's reason is then seen only if the queue's count check
         * brings the call back here.)
         */
        call->wq_busy = 1;
        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_QUEUE);
        return;
    }

    ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                            "Redis is unavailable");
}


/*
 * Nothing within faas_cold_start_timeout: the host (or the provisioners)
 * could not make a sandbox in time. 503 with Retry-After: back-pressure,
 * the client may come again.
 */
static void
ngx_http_faas_cold_timeout(ngx_http_faas_call_t *call)
{
    u_char  *msg;

    msg = ngx_pnalloc(call->pool, 96);
    if (msg == NULL) {
        ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE, NULL);
        return;
    }

    ngx_snprintf(msg, 96, "%s: no sandbox within %M ms%Z",
                 call->host_full ? "host at capacity" : "provisioning slow",
                 call->flcf->cold_start_timeout);
    ngx_log_error(NGX_LOG_WARN, call->log, 0,
                  "faas: %s: cold start of %V timed out%s",
                  call->request_id, &call->fn->rid,
                  call->host_full ? " (host at capacity)" : "");
    call->retry_after = 1;
    ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                            (char *) msg);
}


/*
 * The host refused the cold start for want of capacity: the slot was given
 * back (by the provisioner). The call waits on for a returned sandbox, and
 * asks again after an empty slice if the revision has none at all.
 */
static void
ngx_http_faas_host_full(ngx_http_faas_call_t *call)
{
    if (!call->host_full) {
        ngx_log_error(NGX_LOG_INFO, call->log, 0,
                      "faas: %s: host at capacity for %V, waiting for a "
                      "returned sandbox", call->request_id, &call->fn->rid);
    }

    call->host_full = 1;
    call->incremented = 0;
    ngx_http_faas_scale_unasked(call);
    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_WAIT);
}


static void
ngx_http_faas_cold_failed(ngx_http_faas_call_t *call, redisReply *v)
{
    u_char  msg[FAAS_REASON_MAX + 64];
    char    reason[FAAS_REASON_MAX];

    faas_reason_clean(v->str, v->len, reason);
    ngx_log_error(NGX_LOG_ERR, call->log, 0,
                  "faas: %s: cold start of %V failed: %s",
                  call->request_id, &call->fn->rid, reason);

    /* the reason may carry the function's startup output: owner only */
    if (!call->owner) {
        ngx_http_faas_call_fail(call, NGX_HTTP_BAD_GATEWAY,
                                "cold start failed");
        return;
    }

    ngx_snprintf(msg, sizeof(msg), "cold start failed: %s%Z", reason);
    ngx_http_faas_call_fail(call, NGX_HTTP_BAD_GATEWAY, (char *) msg);
}


static ngx_uint_t
ngx_http_faas_reply_is(redisReply *k, const char *key)
{
    return k->len == ngx_strlen(key) && ngx_strncmp(k->str, key, k->len) == 0;
}


static void
ngx_http_faas_blpop_done(redisReply *reply, void *data)
{
    ngx_http_faas_call_t  *call = data;

    redisReply  *k, *v;

    k = NULL;
    v = NULL;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        k = reply->element[0];
        v = reply->element[1];
    }

    if (call->r == NULL) {
        if (k && v && v->type == REDIS_REPLY_STRING
            && ngx_http_faas_reply_is(k, call->idle_key))
        {
            ngx_http_faas_call_return(call, v->str, v->len);
        }
        ngx_http_faas_call_end(call);
        return;
    }

    if (ngx_http_faas_redis_failed(call, reply)) {
        return;
    }

    if ((k == NULL || v == NULL) && reply->type == REDIS_REPLY_NIL
        && (ngx_msec_int_t) (call->wait_deadline - ngx_current_msec) > 0)
    {
        /* an empty slice: ask again if nothing is left, else wait on */
        call->reask = 1;
        call->incremented = 0;
        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_PROVISION);
        return;
    }

    if (k == NULL || v == NULL || v->type != REDIS_REPLY_STRING) {
        ngx_http_faas_cold_timeout(call);
        return;
    }

    if (ngx_http_faas_reply_is(k, call->err_key)) {
        if (v->len == sizeof(FAAS_REASON_HOST_FULL) - 1
            && ngx_strncmp(v->str, FAAS_REASON_HOST_FULL, v->len) == 0)
        {
            ngx_http_faas_host_full(call);
            return;
        }

        ngx_http_faas_cold_failed(call, v);
        return;
    }

    ngx_http_faas_invoke_entry(call, v, 1, NGX_HTTP_FAAS_WAIT);
}


/*
 * Takes the idle entry v (LPOPped, or BLPOPped after a cold start request)
 * and invokes it; a bad entry is dropped and the call goes on at step retry
 * (or is answered if it has used up its retries).
 */
static void
ngx_http_faas_invoke_entry(ngx_http_faas_call_t *call, redisReply *v,
    ngx_uint_t from_blpop, ngx_http_faas_step_e retry)
{
    ngx_int_t  rc;

    rc = ngx_http_faas_call_take(call, v->str, v->len);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_http_faas_call_next(call, retry);
        }
        return;
    }

    call->have_entry = 1;
    call->start_type = faas_entry_start_type(&call->entry, from_blpop);
    call->cold_us = from_blpop ? ngx_http_faas_now_us() - call->t_wait_us
                               : 0;

    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_INVOKE);
}


/*
 * Ends the Redis command an attached call waited for; when it failed,
 * answers 503 and returns 1.
 */
static ngx_uint_t
ngx_http_faas_redis_failed(ngx_http_faas_call_t *call, redisReply *reply)
{
    ngx_http_faas_call_end(call);

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "Redis is unavailable");
        return 1;
    }

    return 0;
}
