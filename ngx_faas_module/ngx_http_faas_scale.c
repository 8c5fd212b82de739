/*
 * Scale-out by evidence (docs/DESIGN.md section 10, "the acquire policy").
 *
 * Each worker keeps, per revision, what it has seen of it: how many of its
 * calls hold a sandbox of the revision right now (busy), how many wait for
 * a cold start they asked for (asked), how long a call holds its sandbox
 * (the hold time: an EWMA) and how long a cold start takes (an EWMA). On an
 * idle miss the call waits for a returned sandbox instead of asking for a
 * new one when the expected wait,
 *
 *     hold * (calls already waiting + 1) / (busy + asked),
 *
 * where hold is the hold time, or the mean age of the calls busy now when
 * that is over four times longer (calls running far beyond the usual are
 * not about to return their sandboxes),
 * is below faas_scale_patience percent of the expected cold start; it waits
 * about twice that, then decides again on what is known by then (keeping its
 * place in the queue), and asks once the expected wait has grown beyond the
 * limit, or after half of faas_cold_start_timeout. With nothing busy and
 * nothing asked the wait is zero. The sandboxes of a revision therefore converge to about
 * arrival rate x hold time, plus the headroom that keeps the queueing delay
 * below a cold start.
 */
#include "ngx_http_faas_module.h"


/* what a worker has seen of one revision */
struct ngx_http_faas_scale_s {
    ngx_queue_t                link;           /* in a bucket */
    ngx_uint_t                 busy;           /* calls holding a sandbox */
    ngx_uint_t                 asked;          /* calls awaiting their own
                                                  cold start */
    ngx_uint_t                 waiting;        /* calls waiting for a
                                                  returned sandbox */
    uint64_t                   base_us;        /* when first seen */
    uint64_t                   busy_since;     /* sum of the busy calls'
                                                  start times (us after
                                                  base_us) */
    uint64_t                   hold_us;        /* EWMA, 0: none seen yet */
    uint64_t                   cold_us;        /* EWMA, 0: none seen yet */
    u_char                     rid[FAAS_KEY_MAX];
};


#define NGX_HTTP_FAAS_SCALE_BUCKETS  256

/*
 * At most this many revisions are remembered per worker (about 200 bytes
 * each); calls of a revision beyond that are served as if nothing of it
 * were busy (a cold start on every miss).
 */
#define NGX_HTTP_FAAS_SCALE_MAX      4096

/* the expected cold start before one was measured */
#define NGX_HTTP_FAAS_COLD_GUESS_US  100000

/* EWMA weight of a new sample: 1 / 2^shift */
#define NGX_HTTP_FAAS_EWMA_SHIFT     3


static ngx_queue_t  *ngx_http_faas_scale_buckets;
static ngx_uint_t    ngx_http_faas_scale_n;


static ngx_http_faas_scale_t *
ngx_http_faas_scale_find(ngx_str_t *rid)
{
    ngx_uint_t              i;
    ngx_queue_t            *b, *q;
    ngx_http_faas_scale_t  *s;

    if (rid->len >= FAAS_KEY_MAX) {
        return NULL;
    }

    if (ngx_http_faas_scale_buckets == NULL) {
        ngx_http_faas_scale_buckets = ngx_alloc(NGX_HTTP_FAAS_SCALE_BUCKETS
                                                * sizeof(ngx_queue_t),
                                                ngx_cycle->log);
        if (ngx_http_faas_scale_buckets == NULL) {
            return NULL;
        }

        for (i = 0; i < NGX_HTTP_FAAS_SCALE_BUCKETS; i++) {
            ngx_queue_init(&ngx_http_faas_scale_buckets[i]);
        }
    }

    b = &ngx_http_faas_scale_buckets[ngx_crc32_short(rid->data, rid->len)
                                     % NGX_HTTP_FAAS_SCALE_BUCKETS];

    for (q = ngx_queue_head(b); q != ngx_queue_sentinel(b);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_faas_scale_t, link);

        if (ngx_strncmp(s->rid, rid->data, rid->len) == 0
            && s->rid[rid->len] == '\0')
        {
            return s;
        }
    }

    if (ngx_http_faas_scale_n >= NGX_HTTP_FAAS_SCALE_MAX) {
        return NULL;
    }

    s = ngx_calloc(sizeof(ngx_http_faas_scale_t), ngx_cycle->log);
    if (s == NULL) {
        return NULL;
    }

    ngx_memcpy(s->rid, rid->data, rid->len);
    s->base_us = ngx_http_faas_now_us();
    ngx_queue_insert_tail(b, &s->link);
    ngx_http_faas_scale_n++;

    return s;
}


static void
ngx_http_faas_ewma(uint64_t *avg, uint64_t sample)
{
    if (*avg == 0) {
        *avg = sample ? sample : 1;
        return;
    }

    *avg = *avg - (*avg >> NGX_HTTP_FAAS_EWMA_SHIFT)
           + (sample >> NGX_HTTP_FAAS_EWMA_SHIFT);
}


/*
 * How long call should wait for a returned sandbox of its revision before
 * it asks for a new one (0: ask at once).
 */
ngx_msec_t
ngx_http_faas_scale_patience(ngx_http_faas_call_t *call)
{
    uint64_t                cold, hold, expect, limit, now, age;
    ngx_uint_t              supply;
    ngx_http_faas_scale_t  *s;

    if (call->scale == NULL) {
        call->scale = ngx_http_faas_scale_find(&call->fn->rid);
    }

    s = call->scale;

    if (s == NULL || call->flcf->scale_patience == 0) {
        return 0;
    }

    supply = s->busy + s->asked;
    if (supply == 0) {
        return 0;
    }

    now = ngx_http_faas_now_us();

    if (call->scale_waiting
        && (now - call->t_wait_us) / 1000 >= call->flcf->cold_start_timeout / 2)
    {
        /* a safety net: what it waits for is not coming */
        return 0;
    }

    cold = s->cold_us ? s->cold_us : NGX_HTTP_FAAS_COLD_GUESS_US;
    limit = cold * call->flcf->scale_patience / 100;

    /* a revision not measured yet is taken for a short one */
    hold = s->hold_us ? s->hold_us : cold / 8;

    if (s->busy) {
        /* calls running far beyond the usual: they will not be back soon */
        age = now - s->base_us - s->busy_since / s->busy;

        if (age > 4 * hold) {
            hold = age;
        }
    }

    expect = hold * (s->waiting + 1) / supply;

    if (expect >= limit) {
        return 0;
    }

    /* room for the spread around the mean, within the limit */
    expect = ngx_min(2 * expect + 1000, limit);

    return (ngx_msec_t) (expect / 1000) + 1;
}


/* call waits for a returned sandbox (or stops: waiting 0) */
void
ngx_http_faas_scale_waiting(ngx_http_faas_call_t *call, ngx_uint_t waiting)
{
    ngx_http_faas_scale_t  *s = call->scale;

    if (s == NULL || call->scale_waiting == waiting) {
        return;
    }

    call->scale_waiting = waiting;

    if (waiting) {
        s->waiting++;

    } else {
        s->waiting--;
    }
}


/* call has asked for a cold start and waits for it */
void
ngx_http_faas_scale_asked(ngx_http_faas_call_t *call)
{
    if (call->scale == NULL) {
        call->scale = ngx_http_faas_scale_find(&call->fn->rid);
    }

    if (call->scale == NULL || call->scale_asked) {
        return;
    }

    call->scale_asked = 1;
    call->t_asked_us = ngx_http_faas_now_us();
    call->scale->asked++;
}


/* call's cold start will not come to it (it failed, or the slot went back) */
void
ngx_http_faas_scale_unasked(ngx_http_faas_call_t *call)
{
    if (call->scale_asked) {
        call->scale_asked = 0;
        call->scale->asked--;
    }
}


/*
 * The call moves to step (NGX_HTTP_FAAS_NSTEPS: it is being freed): the
 * counts follow, and the samples are taken.
 */
void
ngx_http_faas_scale_step(ngx_http_faas_call_t *call,
    ngx_http_faas_step_e step)
{
    uint64_t                now;
    ngx_http_faas_scale_t  *s;

    if (call->scale == NULL && step == NGX_HTTP_FAAS_INVOKE) {
        call->scale = ngx_http_faas_scale_find(&call->fn->rid);
    }

    s = call->scale;
    if (s == NULL) {
        return;
    }

    if (step == NGX_HTTP_FAAS_INVOKE && call->scale_busy) {
        return;     /* another sandbox for the same call */
    }

    now = ngx_http_faas_now_us();

    if (call->scale_busy) {
        call->scale_busy = 0;
        s->busy--;
        s->busy_since -= call->t_busy_us - s->base_us;

        if (step == NGX_HTTP_FAAS_RESPOND && call->resp) {
            ngx_http_faas_ewma(&s->hold_us, now - call->t_busy_us);
        }
    }

    if (step != NGX_HTTP_FAAS_INVOKE && step != NGX_HTTP_FAAS_RESPOND
        && step != NGX_HTTP_FAAS_NSTEPS)
    {
        return;
    }

    ngx_http_faas_scale_waiting(call, 0);

    if (call->scale_asked && step == NGX_HTTP_FAAS_INVOKE
        && call->start_type == FAAS_START_COLD)
    {
        ngx_http_faas_ewma(&s->cold_us, now - call->t_asked_us);
    }

    ngx_http_faas_scale_unasked(call);

    if (step == NGX_HTTP_FAAS_INVOKE && call->have_entry) {
        call->scale_busy = 1;
        call->t_busy_us = now;
        s->busy++;
        s->busy_since += now - s->base_us;
    }
}
