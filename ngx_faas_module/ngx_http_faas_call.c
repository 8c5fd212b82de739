/*
 * The call: one invocation's handle, its lifetime and its next step.
 *
 * Everything asynchronous hangs off an ngx_http_faas_call_t with its own
 * pool; callbacks get the call, never r. The call counts its pending
 * operations (the request is one of them) through ngx_http_faas_call_start
 * and ngx_http_faas_call_end, and is freed when the last one ends. The
 * request's cleanup only detaches it (and cancels a wait the call is
 * parked in): a callback that finds the call detached undoes what it holds
 * (a popped entry is pushed back, a reserved slot is given back, a finished
 * agent call still returns its sandbox and writes its record).
 *
 * The phases (acquire, wait queue, agent exchange, output) report the next
 * step to ngx_http_faas_call_next(), which runs it through the step table
 * the content handler gave the call; they never call each other's steps.
 */
#include <sys/time.h>

#include "ngx_http_faas_module.h"


static void ngx_http_faas_call_cleanup(void *data);
static void ngx_http_faas_call_push(ngx_http_faas_call_t *call,
    const char *s, size_t len);


uint64_t
ngx_http_faas_now_us(void)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);
    return (uint64_t) tv.tv_sec * 1000000 + (uint64_t) tv.tv_usec;
}


ngx_http_faas_call_t *
ngx_http_faas_call_create(ngx_http_request_t *r, ngx_http_faas_ctx_t *ctx,
    ngx_http_faas_step_pt *steps)
{
    ngx_pool_t            *pool;
    ngx_http_cleanup_t    *cln;
    ngx_http_faas_call_t  *call;

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
    call->pending = 1;                  /* the request */
    call->steps = steps;
    call->flcf = ngx_http_get_module_loc_conf(r, ngx_http_faas_module);
    call->fmcf = ngx_http_get_module_main_conf(r, ngx_http_faas_module);
    call->t_start_us = ngx_http_faas_now_us();
    ngx_memcpy(call->request_id, ctx->request_id, FAAS_REQID_LEN + 1);
    ngx_memcpy(call->traceparent, ctx->traceparent,
               FAAS_TRACEPARENT_LEN + 1);

    ctx->call = call;

    cln->handler = ngx_http_faas_call_cleanup;
    cln->data = ctx;

    return call;
}


/* An asynchronous operation of call begins: the call stays until its end. */
void
ngx_http_faas_call_start(ngx_http_faas_call_t *call)
{
    call->pending++;
}


void
ngx_http_faas_call_end(ngx_http_faas_call_t *call)
{
    if (--call->pending) {
        return;
    }

    ngx_http_faas_scale_step(call, NGX_HTTP_FAAS_NSTEPS);
    ngx_http_faas_metrics_end(call);

    if (call->fn) {
        ngx_http_faas_fn_unref(call->fn);
    }

    /* (an answer, call->resp included, lives in call->pool) */
    ngx_destroy_pool(call->pool);
}


static void
ngx_http_faas_call_cleanup(void *data)
{
    ngx_http_faas_ctx_t   *ctx = data;

    ngx_http_faas_step_pt  cancel;
    ngx_http_faas_call_t  *call;

    call = ctx->call;
    if (call == NULL) {
        return;
    }

    ctx->call = NULL;
    call->r = NULL;
    call->ctx = NULL;

    if (call->cancel) {
        /* parked (a wait queue, an agent backoff): its operation ends */
        cancel = call->cancel;
        call->cancel = NULL;
        cancel(call);
        ngx_http_faas_call_end(call);
    }

    ngx_http_faas_call_end(call);
}


/*
 * Moves call to its next step. A call whose client is gone has none: the
 * sandbox it holds goes back, and an agent's answer is dropped.
 */
void
ngx_http_faas_call_next(ngx_http_faas_call_t *call, ngx_http_faas_step_e step)
{
    ngx_http_faas_scale_step(call, call->r ? step : NGX_HTTP_FAAS_NSTEPS);

    if (call->r == NULL) {
        ngx_http_faas_call_release(call);

        if (call->resp) {
            ngx_http_faas_answer_free(call, call->resp);
            call->resp = NULL;
        }

        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, call->log, 0,
                   "faas: %s: step %d -> %d", call->request_id,
                   (int) call->state, (int) step);

    ngx_http_faas_metrics_step(call, step);

    call->state = step;
    call->steps[step](call);
}


/* Ends call with an error answer (error NULL: nginx's page for status). */
void
ngx_http_faas_call_fail(ngx_http_faas_call_t *call, ngx_uint_t status,
    const char *error)
{
    call->http_status = status;
    call->error = error;
    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_RESPOND);
}


/*
 * Parses an idle entry into call->entry. A bad entry is logged and dropped:
 * NGX_DECLINED when the call may take another one, NGX_ERROR when it has
 * used up its retries (the call is then answered with 502).
 */
ngx_int_t
ngx_http_faas_call_take(ngx_http_faas_call_t *call, const char *s,
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
        ngx_http_faas_call_fail(call, NGX_HTTP_BAD_GATEWAY,
                                "no usable sandbox");
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


/* RPUSHes the entry call holds back (origin-less), if it holds one. */
void
ngx_http_faas_call_release(ngx_http_faas_call_t *call)
{
    char  buf[FAAS_ENTRY_MAX];
    int   n;

    if (!call->have_entry) {
        return;
    }

    n = faas_entry_format(buf, sizeof(buf), call->entry.sandbox_id,
                          call->entry.endpoint, NULL);
    if (n < 0) {
        return;
    }

    call->have_entry = 0;
    ngx_http_faas_call_push(call, buf, n);
}


/*
 * Like ngx_http_faas_call_release, for an entry whose agent could not be
 * reached: it is not returned when a survivor declared its host dead and
 * gave its count slot back (its id in faas:gone:{rid}, docs/DESIGN.md
 * section 4), so a call waiting on it takes another or asks for a cold
 * start. One script, queued before the call's next LPOP.
 */
void
ngx_http_faas_call_release_unreachable(ngx_http_faas_call_t *call)
{
    int          n;
    char         buf[FAAS_ENTRY_MAX], gone[FAAS_KEY_MAX];
    size_t       lens[7];
    const char  *argv[7];

    static const char  script[] =
        "if redis.call('sismember', KEYS[2], ARGV[1]) == 1 then return 0 end "
        "return redis.call('rpush', KEYS[1], ARGV[2])";

    if (!call->have_entry) {
        return;
    }

    n = faas_entry_format(buf, sizeof(buf), call->entry.sandbox_id,
                          call->entry.endpoint, NULL);
    if (n < 0
        || faas_key_gone(gone, sizeof(gone), (char *) call->fn->rid.data,
                         call->fn->rid.len) < 0)
    {
        return;
    }

    call->have_entry = 0;

    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = "2";
    argv[3] = call->idle_key;
    argv[4] = gone;
    argv[5] = call->entry.sandbox_id;
    argv[6] = buf;
    lens[0] = 4;
    lens[1] = sizeof(script) - 1;
    lens[2] = 1;
    lens[3] = ngx_strlen(call->idle_key);
    lens[4] = ngx_strlen(gone);
    lens[5] = ngx_strlen(call->entry.sandbox_id);
    lens[6] = n;

    if (ngx_http_faas_redis_command(ngx_http_faas_redis_ignore, NULL, 7,
                                    argv, lens)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: cannot return \"%s\" to %s: Redis is "
                      "unavailable", call->request_id, buf, call->idle_key);
    }
}


/* RPUSHes an entry a detached call popped back as it was. */
void
ngx_http_faas_call_return(ngx_http_faas_call_t *call, const char *s,
    size_t len)
{
    ngx_http_faas_call_push(call, s, len);
}


static void
ngx_http_faas_call_push(ngx_http_faas_call_t *call, const char *s,
    size_t len)
{
    const char  *argv[3];
    size_t       lens[3];

    argv[0] = "RPUSH";
    lens[0] = 5;
    argv[1] = call->idle_key;
    lens[1] = ngx_strlen(call->idle_key);
    argv[2] = s;
    lens[2] = len;

    if (ngx_http_faas_redis_command(ngx_http_faas_redis_ignore, NULL, 3,
                                    argv, lens)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: cannot return \"%*s\" to %s: Redis is "
                      "unavailable", call->request_id, len, s,
                      call->idle_key);
    }
}
