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
 * cold start wait here too when every BLPOP connection is taken, and so do
 * calls that wait a little for a returned sandbox before asking for a new
 * one (their patience, ngx_http_faas_scale.c).
 */
#include "ngx_http_faas_module.h"


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

#define NGX_HTTP_FAAS_WQ_BLPOP_S  1

/*
 * A sandbox a call is done with goes straight to the first waiter of the
 * same worker at most this many times in a row; then it goes back through
 * Redis (RPUSH), where the other workers' and gateways' waiters get their
 * turn in the idle list's order.
 */
#define NGX_HTTP_FAAS_HANDOFF_MAX  8


static void ngx_http_faas_wq_leave(ngx_http_faas_call_t *call);
static void ngx_http_faas_wq_cancel(ngx_http_faas_call_t *call);
static void ngx_http_faas_wq_blpop(ngx_http_faas_wq_t *wq);
static void ngx_http_faas_wq_retry(ngx_event_t *ev);
static void ngx_http_faas_wq_blpop_done(redisReply *reply, void *data);
static void ngx_http_faas_wq_timeout(ngx_event_t *ev);
static void ngx_http_faas_handoff_run(ngx_event_t *ev);


static ngx_queue_t  ngx_http_faas_wqs;
static ngx_uint_t   ngx_http_faas_wqs_ready;


static ngx_http_faas_wq_t *
ngx_http_faas_wq_find(const char *idle_key)
{
    ngx_queue_t         *q;
    ngx_http_faas_wq_t  *wq;

    if (!ngx_http_faas_wqs_ready) {
        return NULL;
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

    return NULL;
}


static ngx_http_faas_wq_t *
ngx_http_faas_wq_get(const char *idle_key)
{
    size_t               len;
    ngx_http_faas_wq_t  *wq;

    if (!ngx_http_faas_wqs_ready) {
        ngx_queue_init(&ngx_http_faas_wqs);
        ngx_http_faas_wqs_ready = 1;
    }

    wq = ngx_http_faas_wq_find(idle_key);
    if (wq) {
        return wq;
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


/* Whether calls of this revision wait here at max concurrency. */
ngx_uint_t
ngx_http_faas_wq_limited(const char *idle_key)
{
    ngx_http_faas_wq_t  *wq;

    wq = ngx_http_faas_wq_find(idle_key);

    return wq && wq->nlimited;
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


/* The NGX_HTTP_FAAS_QUEUE step: queues call for any sandbox. */
void
ngx_http_faas_wq_join(ngx_http_faas_call_t *call)
{
    ngx_http_faas_wq_t  *wq;

    wq = ngx_http_faas_wq_get(call->idle_key);
    if (wq == NULL) {
        if (call->wq_patience) {
            /* no queue to wait in: ask for a sandbox at once */
            call->wq_patience = 0;
            ngx_http_faas_call_next(call, NGX_HTTP_FAAS_PROVISION);
            return;
        }

        if (call->wq_busy) {
            call->wq_busy = 0;
            ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "too many waiting requests");
            return;
        }

        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_WAIT);
        return;
    }

    ngx_http_faas_call_start(call);
    call->cancel = ngx_http_faas_wq_cancel;
    call->wq = wq;
    ngx_queue_insert_tail(&wq->waiters, &call->wq_link);
    wq->nwaiters++;

    if (!call->wq_busy && !call->wq_patience) {
        wq->nlimited++;
    }

    call->wq_timer.handler = ngx_http_faas_wq_timeout;
    call->wq_timer.data = call;
    call->wq_timer.log = call->log;

    if (call->wq_patience) {
        /* for a returned sandbox, before asking for a new one */
        ngx_http_faas_scale_waiting(call, 1);
        ngx_add_timer(&call->wq_timer, call->wq_patience);

    } else if (call->wait_deadline
        && (ngx_msec_int_t) (call->wait_deadline - ngx_current_msec) > 0)
    {
        /* a cold start's wait goes on here: what is left of it */
        ngx_add_timer(&call->wq_timer, call->wait_deadline - ngx_current_msec);

    } else {
        ngx_add_timer(&call->wq_timer, call->flcf->cold_start_timeout);
    }

    ngx_http_faas_wq_blpop(wq);
}


/* Takes call out of its queue; the queue's operation stays to be ended. */
static void
ngx_http_faas_wq_leave(ngx_http_faas_call_t *call)
{
    ngx_http_faas_wq_t  *wq = call->wq;

    ngx_queue_remove(&call->wq_link);
    wq->nwaiters--;

    if (!call->wq_busy && !call->wq_patience) {
        wq->nlimited--;
    }

    ngx_http_faas_scale_waiting(call, 0);
    call->cancel = NULL;
    call->wq_busy = 0;
    call->wq_patience = 0;
    call->wq = NULL;

    if (call->wq_timer.timer_set) {
        ngx_del_timer(&call->wq_timer);
    }

    ngx_http_faas_wq_gc(wq);
}


/* The client is gone: nobody to give a sandbox to any more. */
static void
ngx_http_faas_wq_cancel(ngx_http_faas_call_t *call)
{
    ngx_http_faas_wq_leave(call);
}


/* Takes the first waiter out of wq (which stays, even if now empty). */
static ngx_http_faas_call_t *
ngx_http_faas_wq_first(ngx_http_faas_wq_t *wq)
{
    ngx_queue_t           *q;
    ngx_http_faas_call_t  *call;

    q = ngx_queue_head(&wq->waiters);
    call = ngx_queue_data(q, ngx_http_faas_call_t, wq_link);

    wq->blpop++;    /* keeps wq while call leaves */
    ngx_http_faas_wq_leave(call);
    wq->blpop--;

    return call;
}


/* Answers every call of the queue with 503 (Redis is not usable). */
static void
ngx_http_faas_wq_fail(ngx_http_faas_wq_t *wq, const char *why)
{
    ngx_http_faas_call_t  *call;

    wq->blpop++;    /* keeps wq while its calls leave */

    while (!ngx_queue_empty(&wq->waiters)) {
        call = ngx_http_faas_wq_first(wq);
        ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE, why);
        ngx_http_faas_call_end(call);
    }

    wq->blpop--;
    ngx_http_faas_wq_gc(wq);
}


static void
ngx_http_faas_wq_blpop(ngx_http_faas_wq_t *wq)
{
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


/*
 * Nothing came back within the BLPOP's timeout: sandboxes may have gone
 * (destroyed, crashed), so the first waiter at max concurrency or for a
 * BLPOP connection checks the count again (a cold start if it is below the
 * limit now, else it queues again); the others wait on (a patient waiter
 * decides by itself when its patience ends: hand-offs may be what serves
 * the queue, and they do not go through the BLPOP).
 */
static void
ngx_http_faas_wq_empty(ngx_http_faas_wq_t *wq)
{
    ngx_queue_t           *q;
    ngx_http_faas_call_t  *call, *c;

    call = NULL;

    for (q = ngx_queue_head(&wq->waiters);
         q != ngx_queue_sentinel(&wq->waiters);
         q = ngx_queue_next(q))
    {
        c = ngx_queue_data(q, ngx_http_faas_call_t, wq_link);

        if (c->wq_patience == 0) {
            call = c;
            wq->blpop++;    /* keeps wq while call leaves */
            ngx_http_faas_wq_leave(call);
            wq->blpop--;
            break;
        }
    }

    ngx_http_faas_wq_blpop(wq);
    ngx_http_faas_wq_gc(wq);

    if (call) {
        ngx_http_faas_call_end(call);
        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_PROVISION);
    }
}


/* Every waiter left meanwhile: the sandbox goes back. */
static void
ngx_http_faas_wq_return(ngx_http_faas_wq_t *wq, redisReply *v)
{
    const char  *argv[3];
    size_t       lens[3];

    argv[0] = "RPUSH";
    lens[0] = 5;
    argv[1] = wq->idle_key;
    lens[1] = ngx_strlen(wq->idle_key);
    argv[2] = v->str;
    lens[2] = v->len;

    if (ngx_http_faas_redis_command(ngx_http_faas_redis_ignore, NULL, 3,
                                    argv, lens)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "faas: cannot return \"%*s\" to %s: Redis is "
                      "unavailable", (size_t) v->len, v->str, wq->idle_key);
    }

    ngx_http_faas_wq_gc(wq);
}


static void
ngx_http_faas_wq_blpop_done(redisReply *reply, void *data)
{
    ngx_http_faas_wq_t  *wq = data;

    redisReply            *v;
    ngx_int_t              rc;
    ngx_http_faas_call_t  *call;

    wq->blpop = 0;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_faas_wq_fail(wq, "Redis is unavailable");
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_http_faas_wq_empty(wq);
        return;
    }

    v = reply->element[1];

    if (wq->nwaiters == 0) {
        ngx_http_faas_wq_return(wq, v);
        return;
    }

    call = ngx_http_faas_wq_first(wq);

    rc = ngx_http_faas_call_take(call, v->str, v->len);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_http_faas_call_next(call, NGX_HTTP_FAAS_QUEUE);
        }

        ngx_http_faas_call_end(call);
        ngx_http_faas_wq_blpop(wq);
        ngx_http_faas_wq_gc(wq);
        return;
    }

    /* the next waiter's BLPOP goes out before this call's agent request */
    ngx_http_faas_wq_blpop(wq);

    ngx_http_faas_call_end(call);
    call->have_entry = 1;
    call->start_type = faas_entry_start_type(&call->entry, 1);
    call->cold_us = ngx_http_faas_now_us() - call->t_wait_us;

    ngx_http_faas_wq_gc(wq);

    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_INVOKE);
}


static void
ngx_http_faas_wq_timeout(ngx_event_t *ev)
{
    ngx_http_faas_call_t  *call = ev->data;

    u_char      *msg;
    ngx_uint_t   patient, busy;

    patient = (call->wq_patience != 0);
    busy = call->wq_busy;

    if (patient) {
        /* it keeps its place in the queue */
        call->wq_patience = ngx_http_faas_scale_patience(call);

        if (call->wq_patience) {
            ngx_add_timer(&call->wq_timer, call->wq_patience);
            return;
        }

        call->wq_patience = 1;      /* (leaves as a patient waiter) */
    }

    ngx_http_faas_wq_leave(call);

    if (patient) {
        /* no sandbox came back yet: a new one is asked for, unless the
         * evidence still says one will be back sooner */
        ngx_http_faas_call_next(call, NGX_HTTP_FAAS_PROVISION);
        ngx_http_faas_call_end(call);
        return;
    }

    msg = ngx_pnalloc(call->pool, 128);
    if (msg == NULL) {
        ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE, NULL);
        ngx_http_faas_call_end(call);
        return;
    }

    if (busy) {
        /* it had asked for a cold start: the host did not make it in time */
        ngx_snprintf(msg, 128, "%s: no sandbox within %M ms%Z",
                     call->host_full ? "host at capacity"
                                     : "provisioning slow",
                     call->flcf->cold_start_timeout);
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "faas: %s: no sandbox of %V within %M ms",
                      call->request_id, &call->fn->rid,
                      call->flcf->cold_start_timeout);
        call->retry_after = 1;
        ngx_http_faas_call_fail(call, NGX_HTTP_SERVICE_UNAVAILABLE,
                                (char *) msg);
        ngx_http_faas_call_end(call);
        return;
    }

    /* back-pressure: the function is at its own limit, not the platform */
    ngx_snprintf(msg, 128, "function at its concurrency limit (%ui): no "
                 "sandbox within %M ms%Z", call->fn->max_concurrency,
                 call->flcf->cold_start_timeout);
    ngx_log_error(NGX_LOG_WARN, call->log, 0,
                  "faas: %s: no sandbox of %V within %M ms at max concurrency",
                  call->request_id, &call->fn->rid,
                  call->flcf->cold_start_timeout);
    call->retry_after = 1;
    ngx_http_faas_call_fail(call, NGX_HTTP_TOO_MANY_REQUESTS, (char *) msg);
    ngx_http_faas_call_end(call);
}


/*
 * Gives the sandbox call is done with to the first call of this worker that
 * waits for one of the same revision (a local hand-off: no RPUSH and no
 * BLPOP). Returns 1 if it did; the waiter runs from a posted event, after
 * the current handler. 0: the sandbox goes back through Redis.
 */
ngx_uint_t
ngx_http_faas_wq_handoff(ngx_http_faas_call_t *call)
{
    ngx_http_faas_wq_t    *wq;
    ngx_http_faas_call_t  *w;

    if (!call->have_entry || call->handoffs >= NGX_HTTP_FAAS_HANDOFF_MAX) {
        return 0;
    }

    wq = ngx_http_faas_wq_find(call->idle_key);
    if (wq == NULL || wq->nwaiters == 0) {
        return 0;
    }

    /* the queue's operation becomes the posted event's */
    w = ngx_http_faas_wq_first(wq);
    ngx_http_faas_wq_gc(wq);

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


/* (a waiter whose client went away meanwhile gives the sandbox back) */
static void
ngx_http_faas_handoff_run(ngx_event_t *ev)
{
    ngx_http_faas_call_t  *call = ev->data;

    call->start_type = faas_entry_start_type(&call->entry, 1);
    call->cold_us = ngx_http_faas_now_us() - call->t_wait_us;

    ngx_http_faas_call_next(call, NGX_HTTP_FAAS_INVOKE);
    ngx_http_faas_call_end(call);
}
