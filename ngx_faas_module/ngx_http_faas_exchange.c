/*
 * The agent exchange: the call of the entry's agent (ngx_http_faas_agent.c)
 * and what its answer means for the call: answer the client, take another
 * sandbox, or wait for an agent that restarts. Afterwards the entry goes
 * back (RPUSH, unless the sandbox died), or, when a call of this worker
 * waits for the revision, straight to it (ngx_http_faas_wq_handoff); the
 * execution record goes out with the other records of the event loop
 * iteration (ngx_http_faas_records.c).
 *
 * An agent that cannot be reached before anything was sent (e.g. one that
 * restarts): the entry goes back and the call takes the next one, waiting
 * a backoff before it calls that agent again, until faas_cold_start_timeout
 * since the request began; then 503 (the entries stay listed, their
 * sandboxes are fine).
 */
#include "ngx_http_faas_module.h"

#include "record.h"


#define NGX_HTTP_FAAS_AGENT_GRACE  5000

/* the backoff between calls to an agent that cannot be reached */
#define NGX_HTTP_FAAS_AGENT_BACKOFF_MIN  20
#define NGX_HTTP_FAAS_AGENT_BACKOFF_MAX  200


static void ngx_http_faas_invoke_now(ngx_http_faas_call_t *call);
static void ngx_http_faas_agent_cancel(ngx_http_faas_call_t *call);
static void ngx_http_faas_agent_retry(ngx_event_t *ev);
static void ngx_http_faas_agent_done(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp, ngx_uint_t dispatched,
    ngx_http_faas_agent_failure_e failure, const char *error);
static void ngx_http_faas_record_add(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp, ngx_uint_t status, ngx_uint_t http_status);


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


/* The trace id of a traceparent (00-<trace id>-<parent id>-<flags>). */
static char *
ngx_http_faas_trace_id(ngx_pool_t *pool, u_char *traceparent)
{
    ngx_str_t  id;

    id.data = traceparent + 3;
    id.len = FAAS_TRACE_ID_LEN;

    return ngx_http_faas_strdup0(pool, &id);
}


static ngx_msec_t
ngx_http_faas_elapsed(ngx_http_faas_call_t *call)
{
    return (ngx_msec_t) ((ngx_http_faas_now_us() - call->t_start_us) / 1000);
}


/*
 * The NGX_HTTP_FAAS_INVOKE step: calls the agent of call's entry, unless
 * this call already found that agent unreachable: then it first waits a
 * backoff (20 ms doubling up to 200 ms, within faas_cold_start_timeout
 * since the request began), holding the entry. If the client goes away
 * meanwhile, the entry goes back (ngx_http_faas_agent_cancel). Like the
 * request's other waits, the timer is not cancelable (README,
 * `nginx -s reload`).
 */
void
ngx_http_faas_invoke(ngx_http_faas_call_t *call)
{
    ngx_msec_t  elapsed, timeout, delay;

    if (call->agent_down[0] == '\0'
        || ngx_strcmp(call->agent_down, call->entry.endpoint) != 0)
    {
        ngx_http_faas_invoke_now(call);
        return;
    }

    elapsed = ngx_http_faas_elapsed(call);
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

    ngx_http_faas_call_start(call);
    call->cancel = ngx_http_faas_agent_cancel;
    call->agent_retry.handler = ngx_http_faas_agent_retry;
    call->agent_retry.data = call;
    call->agent_retry.log = call->log;
    ngx_add_timer(&call->agent_retry, delay);
}


/* The client is gone during a backoff: the sandbox goes back. */
static void
ngx_http_faas_agent_cancel(ngx_http_faas_call_t *call)
{
    ngx_del_timer(&call->agent_retry);
    ngx_http_faas_call_release(call);
}


static void
ngx_http_faas_agent_retry(ngx_event_t *ev)
{
    ngx_http_faas_call_t  *call = ev->data;

    call->cancel = NULL;

    if (call->r == NULL) {
        /* (the cleanup handler normally does this) */
        ngx_http_faas_call_release(call);
        ngx_http_faas_call_end(call);
        return;
    }

    ngx_http_faas_call_end(call);
    ngx_http_faas_invoke_now(call);
}


static void
ngx_http_faas_invoke_now(ngx_http_faas_call_t *call)
{
    ngx_int_t             rc;
    ngx_http_faas_fn_t   *fn = call->fn;
    Faas__InvokeRequest   m = FAAS__INVOKE_REQUEST__INIT;

    if (call->ctx) {
        call->ctx->start_type = call->start_type;
    }

    /* packed by the agent client, the event sent from where it is */
    m.request_id = (char *) call->request_id;
    m.sandbox_id = call->entry.sandbox_id;
    m.function = (char *) fn->name.data;
    m.version = fn->version;
    m.event.data = call->event;
    m.event.len = call->event_len;
    m.deadline_ms = ngx_http_faas_now_us() / 1000 + fn->timeout_ms;
    m.timeout_ms = fn->timeout_ms;
    m.memory_mb = fn->memory_mb;
    m.user = ngx_http_faas_strdup0(call->pool, &call->user);
    m.traceparent = (char *) call->traceparent;

    ngx_http_faas_call_start(call);

    rc = ngx_http_faas_agent_invoke(call, &m,
                                    fn->timeout_ms
                                    + NGX_HTTP_FAAS_AGENT_GRACE,
                                    ngx_http_faas_agent_done);

    switch (rc) {

    case NGX_OK:
        return;

    case NGX_DECLINED:
        /* the agent is not there (stopped, restarting): nothing ran */
        ngx_http_faas_agent_done(call, NULL, 0,
                                 NGX_HTTP_FAAS_AGENT_UNREACHABLE,
                                 "agent unreachable");
        return;

    case NGX_ABORT:
        /* an entry no connection can be made for: try another sandbox */
        ngx_http_faas_agent_done(call, NULL, 0, NGX_HTTP_FAAS_AGENT_FAILED,
                                 "agent unreachable");
        return;
    }

    ngx_http_faas_call_end(call);
    ngx_http_faas_call_release(call);
    ngx_http_faas_call_fail(call, NGX_HTTP_INTERNAL_SERVER_ERROR, NULL);
}


/*
 * The sandbox goes back (to a waiting call of this worker, or Redis)
 * unless keep is 0, and the execution record is queued. A sandbox that goes
 * back to Redis takes the records along: the RPUSH of its entry and the
 * RPUSH of the records go out in one write (docs/DESIGN.md section 10),
 * before the call's answer reaches its client.
 */
static void
ngx_http_faas_record(ngx_http_faas_call_t *call, Faas__InvokeResponse *resp,
    ngx_uint_t status, ngx_uint_t http_status, ngx_uint_t keep)
{
    if (keep
        && (status == FAAS__INVOKE_STATUS__OK
            || status == FAAS__INVOKE_STATUS__FUNCTION_ERROR)
        && ngx_http_faas_wq_handoff(call))
    {
        keep = 0;   /* the sandbox went to a waiting call of this worker */
    }

    if (!keep) {
        call->have_entry = 0;
        ngx_http_faas_record_add(call, resp, status, http_status);
        return;
    }

    ngx_http_faas_redis_cork();

    ngx_http_faas_call_release(call);
    call->have_entry = 0;
    ngx_http_faas_record_add(call, resp, status, http_status);
    ngx_http_faas_records_flush();

    ngx_http_faas_redis_uncork();
}


/* The call's execution record, queued for Redis. */
static void
ngx_http_faas_record_add(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp, ngx_uint_t status, ngx_uint_t http_status)
{
    uint8_t             *buf;
    size_t               len;
    uint64_t             now;
    faas_error_t         err;
    faas_record_args_t   ra;

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
    ra.trace_id = ngx_http_faas_trace_id(call->pool, call->traceparent);

    if (faas_record_pack(&ra, &buf, &len, &err) < 0) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0, "faas: %s: %s",
                      call->request_id, err.msg);
        return;
    }

    /* written with the other records of this event loop iteration */
    ngx_http_faas_records_add(buf, len, call->request_id);
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
 * against faas_retries. An entry whose host was declared dead is dropped
 * instead of returned (ngx_http_faas_call_release_unreachable).
 */
static void
ngx_http_faas_agent_unreachable(ngx_http_faas_call_t *call,
    const char *error)
{
    ngx_msec_t  elapsed, timeout;

    if (call->r == NULL) {
        ngx_http_faas_call_release_unreachable(call);
        return;
    }

    elapsed = ngx_http_faas_elapsed(call);
    timeout = call->flcf->cold_start_timeout;

    if (elapsed >= timeout) {
        ngx_log_error(NGX_LOG_ERR, call->log, 0,
                      "faas: %s: %s: agent %s of sandbox %s still "
                      "unavailable after %M ms, entry returned",
                      call->request_id, error, call->entry.endpoint,
                      call->entry.sandbox_id, elapsed);
        ngx_http_faas_call_release_unreachable(call);
        ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
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

    ngx_http_faas_call_release_unreachable(call);
    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_ACQUIRE);
}


/* The entry is dropped: take another sandbox while retries are left. */
static void
ngx_http_faas_retry(ngx_http_faas_call_t *call, ngx_uint_t status,
    const char *error)
{
    call->have_entry = 0;

    if (call->r && ++call->attempts <= call->flcf->retries) {
        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_ACQUIRE);
        return;
    }

    ngx_http_faas_call_fail(call, status, error);
}


/* No answer: nothing ran before dispatch, unknown after it. */
static void
ngx_http_faas_agent_failed(ngx_http_faas_call_t *call,
    ngx_uint_t dispatched, const char *error)
{
    if (!dispatched) {
        /* the sandbox is unreachable, drop its entry */
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "faas: %s: %s for sandbox %s at %s, entry dropped",
                      call->request_id, error, call->entry.sandbox_id,
                      call->entry.endpoint);
        ngx_http_faas_retry(call, NGX_HTTP_BAD_GATEWAY, error);
        return;
    }

    /* after dispatch: the sandbox's state is unknown, never retried */
    ngx_log_error(NGX_LOG_ERR, call->log, 0,
                  "faas: %s: %s during the call to sandbox %s, "
                  "entry dropped", call->request_id, error,
                  call->entry.sandbox_id);
    ngx_http_faas_record(call, NULL, FAAS__INVOKE_STATUS__SANDBOX_CRASHED,
                         NGX_HTTP_BAD_GATEWAY, 0);

    if (call->ctx) {
        call->ctx->status = FAAS__INVOKE_STATUS__SANDBOX_CRASHED + 1;
    }

    ngx_http_faas_call_fail(call, NGX_HTTP_BAD_GATEWAY, error);
}


/*
 * Nothing ran, and this entry must not go back: the sandbox is gone, or it
 * is "busy with another call" (its entry was listed twice, and the call
 * that holds it gives it back). Drop the entry and take another sandbox.
 */
static void
ngx_http_faas_sandbox_dropped(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp)
{
    ngx_log_error(NGX_LOG_WARN, call->log, 0,
                  "faas: %s: sandbox %s %s, entry dropped",
                  call->request_id, call->entry.sandbox_id,
                  resp->status == FAAS__INVOKE_STATUS__SANDBOX_GONE
                  ? "is gone"
                  : "is busy with another call (listed twice)");
    ngx_http_faas_answer_free(call, resp);

    ngx_http_faas_retry(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                        "no sandbox available");
}


/*
 * The function answered more than faas_max_response_body (the agent client
 * read and dropped it): its sandbox is fine and goes back; the client gets
 * 502. Recorded as OK, with the 502.
 */
static void
ngx_http_faas_too_large(ngx_http_faas_call_t *call, const char *error)
{
    ngx_http_faas_record(call, NULL, FAAS__INVOKE_STATUS__OK,
                         NGX_HTTP_BAD_GATEWAY, 1);

    if (call->ctx) {
        call->ctx->status = FAAS__INVOKE_STATUS__OK + 1;
    }

    ngx_http_faas_call_fail(call, NGX_HTTP_BAD_GATEWAY, error);
}


/* The agent's status as the client's HTTP status; *keep: sandbox usable. */
static ngx_uint_t
ngx_http_faas_http_status(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp, ngx_uint_t *keep)
{
    ngx_uint_t  http;

    *keep = resp->sandbox_alive;

    switch (resp->status) {

    case FAAS__INVOKE_STATUS__OK:
        /* the agent says 200 when the function named none */
        http = resp->http_status;
        break;

    case FAAS__INVOKE_STATUS__TIMEOUT:
        http = NGX_HTTP_GATEWAY_TIME_OUT;
        *keep = 0;
        break;

    case FAAS__INVOKE_STATUS__SANDBOX_CRASHED:
        http = NGX_HTTP_BAD_GATEWAY;
        *keep = 0;
        break;

    case FAAS__INVOKE_STATUS__OVERLOADED:
        /*
         * Nothing ran (a saturated agent) and this call still holds the
         * sandbox: it goes back. (SANDBOX_BUSY is handled apart: pushing
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
        *keep = 1;
        break;

    default: /* FUNCTION_ERROR */
        http = NGX_HTTP_BAD_GATEWAY;
        break;
    }

    if (http < 100 || http > 599) {
        http = NGX_HTTP_BAD_GATEWAY;
    }

    return http;
}


/* The end of the agent call: the answer mapped to the call's next step. */
static void
ngx_http_faas_agent_done(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp, ngx_uint_t dispatched,
    ngx_http_faas_agent_failure_e failure, const char *error)
{
    ngx_uint_t   http, keep;
    const char  *refused;

    if (resp == NULL) {
        ngx_http_faas_metrics_error(call->fmcf, 0);
    }

    if (resp == NULL && failure == NGX_HTTP_FAAS_AGENT_UNREACHABLE) {
        /* the agent is down or restarting, its sandbox is fine: wait */
        ngx_http_faas_agent_unreachable(call, error);

    } else if (resp == NULL && failure == NGX_HTTP_FAAS_AGENT_TOO_LARGE) {
        ngx_http_faas_too_large(call, error);

    } else if (resp && resp->status == FAAS__INVOKE_STATUS__AGENT_DRAINING) {
        /* nothing ran; a new agent is expected on the same endpoint */
        ngx_http_faas_answer_free(call, resp);
        ngx_http_faas_agent_unreachable(call, "agent is shutting down");

    } else if (resp == NULL) {
        ngx_http_faas_agent_failed(call, dispatched, error);

    } else if (resp->status == FAAS__INVOKE_STATUS__SANDBOX_GONE
               || resp->status == FAAS__INVOKE_STATUS__SANDBOX_BUSY)
    {
        ngx_http_faas_sandbox_dropped(call, resp);

    } else {
        http = ngx_http_faas_http_status(call, resp, &keep);
        refused = ngx_http_faas_answer_refused(call, resp);
        if (refused) {
            http = NGX_HTTP_BAD_GATEWAY;
        }

        ngx_http_faas_record(call, resp, resp->status, http, keep);

        if (call->ctx) {
            call->ctx->status = resp->status + 1;
        }

        if (refused) {
            /* the function ran, its sandbox is fine: only its answer goes */
            ngx_http_faas_answer_free(call, resp);
            ngx_http_faas_call_fail(call, http, refused);

        } else {
            call->resp = resp;
            call->http_status = http;
            ngx_http_faas_call_next(call, NGX_HTTP_FAAS_RESPOND);
        }
    }

    ngx_http_faas_call_end(call);
}
