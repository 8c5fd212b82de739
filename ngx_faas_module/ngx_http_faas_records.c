/*
 * Execution records wait here until the end of the current event loop
 * iteration (a posted event), then go out as one RPUSH faas:records with
 * every record of the iteration: one command and one Redis wake-up for
 * many calls.
 *
 * A record leaves this worker only once Redis has answered its RPUSH. While
 * Redis is down, or a push fails, the records stay in a FIFO bounded by
 * faas_records_buffer (per worker) and are pushed again every
 * NGX_HTTP_FAAS_RECORDS_RETRY ms and as soon as Redis is back. A push whose
 * answer was lost may have landed: pushing it again is harmless, the
 * registry stores a record once per request id. When the FIFO is full the
 * oldest records are kept and new ones dropped, counted in one log line
 * per outage and a total when it ends.
 */
#include "ngx_http_faas_module.h"


#define NGX_HTTP_FAAS_RECORDS_BATCH  256
#define NGX_HTTP_FAAS_RECORDS_RETRY  500


typedef struct {
    uint8_t      *buf;
    size_t        len;
} ngx_http_faas_rec_t;


/* One RPUSH in flight, with its records until Redis answers. */
typedef struct {
    ngx_uint_t             n;
    ngx_http_faas_rec_t    rec[NGX_HTTP_FAAS_RECORDS_BATCH];
} ngx_http_faas_rbatch_t;


static struct {
    ngx_http_faas_rec_t   *fifo;       /* ring of records_buffer records */
    ngx_uint_t             cap;
    ngx_uint_t             head;
    ngx_uint_t             n;
    ngx_uint_t             dropped;    /* in the current outage */
    ngx_event_t            ev;         /* posted: flush this iteration */
    ngx_event_t            retry;      /* timer: Redis was not there */
} ngx_http_faas_recs;


static ngx_int_t ngx_http_faas_records_init(void);
static void ngx_http_faas_records_push(ngx_http_faas_rec_t *rec);
static void ngx_http_faas_records_run(ngx_event_t *ev);
static void ngx_http_faas_records_pushed(redisReply *reply, void *data);
static void ngx_http_faas_records_later(void);


void
ngx_http_faas_records_flush(void)
{
    ngx_int_t                rc;
    ngx_uint_t               i;
    const char              *argv[NGX_HTTP_FAAS_RECORDS_BATCH + 2];
    size_t                   lens[NGX_HTTP_FAAS_RECORDS_BATCH + 2];
    ngx_http_faas_rbatch_t  *b;

    if (ngx_http_faas_recs.ev.posted) {
        ngx_delete_posted_event(&ngx_http_faas_recs.ev);
    }

    while (ngx_http_faas_recs.n > 0) {

        if (ngx_http_faas_redis_ready() != NGX_OK) {
            ngx_http_faas_records_later();
            return;
        }

        b = ngx_alloc(sizeof(ngx_http_faas_rbatch_t), ngx_cycle->log);
        if (b == NULL) {
            ngx_http_faas_records_later();
            return;
        }

        argv[0] = "RPUSH";
        lens[0] = 5;
        argv[1] = FAAS_KEY_RECORDS;
        lens[1] = sizeof(FAAS_KEY_RECORDS) - 1;

        for (b->n = 0;
             b->n < NGX_HTTP_FAAS_RECORDS_BATCH && ngx_http_faas_recs.n > 0;
             b->n++)
        {
            i = ngx_http_faas_recs.head;
            b->rec[b->n] = ngx_http_faas_recs.fifo[i];
            ngx_http_faas_recs.head = (i + 1) % ngx_http_faas_recs.cap;
            ngx_http_faas_recs.n--;

            argv[b->n + 2] = (const char *) b->rec[b->n].buf;
            lens[b->n + 2] = b->rec[b->n].len;
        }

        rc = ngx_http_faas_redis_command(ngx_http_faas_records_pushed, b,
                                         (int) b->n + 2, argv, lens);
        if (rc != NGX_OK) {
            /* not sent: the reply handler will not run */
            ngx_http_faas_records_pushed(NULL, b);
            return;
        }
    }
}


/* Redis answered an RPUSH (reply NULL: it may not have). */
static void
ngx_http_faas_records_pushed(redisReply *reply, void *data)
{
    ngx_http_faas_rbatch_t  *b = data;
    ngx_uint_t               i;

    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        for (i = 0; i < b->n; i++) {
            free(b->rec[i].buf);
        }

        ngx_free(b);

        if (ngx_http_faas_recs.dropped) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "faas: Redis takes execution records again; "
                          "%ui were dropped while the record buffer "
                          "was full", ngx_http_faas_recs.dropped);
            ngx_http_faas_recs.dropped = 0;
        }

        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "faas: execution records refused: %*s, kept",
                      (size_t) reply->len, reply->str);
    }

    for (i = 0; i < b->n; i++) {
        ngx_http_faas_records_push(&b->rec[i]);
    }

    ngx_free(b);

    ngx_http_faas_records_later();
}


/* Appends rec to the FIFO (it takes rec->buf), or drops it if full. */
static void
ngx_http_faas_records_push(ngx_http_faas_rec_t *rec)
{
    ngx_uint_t  tail;

    if (ngx_http_faas_recs.fifo == NULL
        && ngx_http_faas_records_init() != NGX_OK)
    {
        free(rec->buf);
        return;
    }

    if (ngx_http_faas_recs.n == ngx_http_faas_recs.cap) {
        if (ngx_http_faas_recs.dropped++ == 0) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "faas: the execution record buffer is full "
                          "(faas_records_buffer %ui): newer records are "
                          "dropped until Redis takes them again",
                          ngx_http_faas_recs.cap);
        }

        free(rec->buf);
        return;
    }

    tail = (ngx_http_faas_recs.head + ngx_http_faas_recs.n)
           % ngx_http_faas_recs.cap;
    ngx_http_faas_recs.fifo[tail] = *rec;
    ngx_http_faas_recs.n++;
}


static ngx_int_t
ngx_http_faas_records_init(void)
{
    ngx_http_faas_main_conf_t  *fmcf;

    fmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_faas_module);

    ngx_http_faas_recs.cap = fmcf->records_buffer;
    ngx_http_faas_recs.fifo = ngx_calloc(ngx_http_faas_recs.cap
                                         * sizeof(ngx_http_faas_rec_t),
                                         ngx_cycle->log);
    if (ngx_http_faas_recs.fifo == NULL) {
        return NGX_ERROR;
    }

    ngx_http_faas_recs.ev.handler = ngx_http_faas_records_run;
    ngx_http_faas_recs.ev.log = ngx_cycle->log;
    ngx_http_faas_recs.retry.handler = ngx_http_faas_records_run;
    ngx_http_faas_recs.retry.log = ngx_cycle->log;
    ngx_http_faas_recs.retry.cancelable = 1;

    return NGX_OK;
}


/* Pushes the kept records again a little later. */
static void
ngx_http_faas_records_later(void)
{
    if (ngx_http_faas_recs.n > 0 && !ngx_http_faas_recs.retry.timer_set
        && !ngx_exiting && !ngx_quit && !ngx_terminate)
    {
        ngx_add_timer(&ngx_http_faas_recs.retry, NGX_HTTP_FAAS_RECORDS_RETRY);
    }
}


static void
ngx_http_faas_records_run(ngx_event_t *ev)
{
    ngx_http_faas_records_flush();
}


/* Takes buf (malloc'd). */
void
ngx_http_faas_records_add(uint8_t *buf, size_t len, u_char *request_id)
{
    ngx_http_faas_rec_t  rec;

    rec.buf = buf;
    rec.len = len;

    ngx_http_faas_records_push(&rec);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "faas: %s: record queued", request_id);

    if (ngx_http_faas_recs.n >= NGX_HTTP_FAAS_RECORDS_BATCH
        && !ngx_http_faas_recs.retry.timer_set)
    {
        ngx_http_faas_records_flush();
        return;
    }

    if (!ngx_http_faas_recs.ev.posted && ngx_http_faas_recs.fifo != NULL) {
        ngx_post_event(&ngx_http_faas_recs.ev, &ngx_posted_events);
    }
}
