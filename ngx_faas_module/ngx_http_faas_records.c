/*
 * Execution records wait here until the end of the current event loop
 * iteration (a posted event), then go out as one RPUSH faas:records with
 * every record of the iteration: one command and one Redis wake-up for
 * many calls.
 */
#include "ngx_http_faas_module.h"


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

    if (ngx_http_faas_redis_command(ngx_http_faas_redis_ignore, NULL, (int) n + 2,
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
void
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
