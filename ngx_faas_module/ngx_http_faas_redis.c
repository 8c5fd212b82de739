/*
 * A hiredis 0.14 adapter for nginx's event loop.
 *
 * Per worker: one multiplexed connection for ordinary commands (replies come
 * back in order, so commands of many requests are pipelined on it), one
 * Pub/Sub connection subscribed to faas:inval, and a capped pool of
 * dedicated connections for BLPOP, reused once their reply has arrived.
 *
 * hiredis owns the sockets; each is wrapped in an ngx_connection_t from
 * ngx_get_connection() and given back with ngx_free_connection() in the
 * cleanup hook (hiredis closes the fd itself). Events are level-triggered,
 * because hiredis reads at most 16 KiB per call. 0.14 has no timeouts: every
 * wait is an nginx timer on the connection's read event, and an expired one
 * frees the context, which calls every pending callback with a NULL reply,
 * so every waiting request gets its error answer. While the command
 * connection is down, commands are refused at once (the caller answers 503)
 * and a cancelable timer reconnects with a backoff from 100 ms to 2 s,
 * forever. An outage is logged once when it starts (whatever fails: the
 * connection, a connect, AUTH) and once when the command connection is
 * back; the failed attempts in between are not.
 */
#include "ngx_http_faas_module.h"


#define NGX_HTTP_FAAS_RCONN_CMD    0
#define NGX_HTTP_FAAS_RCONN_SUB    1
#define NGX_HTTP_FAAS_RCONN_BLPOP  2

#define NGX_HTTP_FAAS_BACKOFF_MIN  100
#define NGX_HTTP_FAAS_BACKOFF_MAX  2000


typedef struct {
    redisAsyncContext         *ac;
    ngx_connection_t          *c;
    ngx_uint_t                 kind;
    ngx_queue_t                queue;          /* free BLPOP connections */
    unsigned                   connected:1;
    unsigned                   busy:1;
    unsigned                   in_handler:1;
    unsigned                   dead:1;
    unsigned                   queued:1;
} ngx_http_faas_rconn_t;


typedef struct {
    ngx_http_faas_redis_pt     handler;
    void                      *data;
    ngx_http_faas_rconn_t     *rc;
} ngx_http_faas_rop_t;


typedef struct {
    ngx_http_faas_main_conf_t *fmcf;
    ngx_http_faas_inval_pt     invalidate;
    ngx_cycle_t               *cycle;
    ngx_http_faas_rconn_t     *cmd;
    ngx_http_faas_rconn_t     *sub;
    ngx_queue_t                blpop_free;
    ngx_uint_t                 blpop_count;
    ngx_event_t                reconnect;
    ngx_msec_t                 backoff;
    char                      *host;          /* NULL for a Unix socket */
    char                      *path;
    int                        port;
    ngx_uint_t                 started;
    ngx_uint_t                 exiting;
    ngx_uint_t                 lost;           /* outage logged, not over */
    ngx_uint_t                 writing;        /* direct write in progress */
    ngx_uint_t                 corked;         /* commands held: cork() */
    ngx_http_faas_rconn_t     *held;           /* whose commands are held */
} ngx_http_faas_redis_t;


static ngx_http_faas_rconn_t *ngx_http_faas_rconn_open(ngx_uint_t kind);
static void ngx_http_faas_rconn_read(ngx_event_t *ev);
static void ngx_http_faas_rconn_write(ngx_event_t *ev);
static void ngx_http_faas_rconn_add_read(void *privdata);
static void ngx_http_faas_rconn_del_read(void *privdata);
static void ngx_http_faas_rconn_add_write(void *privdata);
static void ngx_http_faas_rconn_del_write(void *privdata);
static void ngx_http_faas_rconn_cleanup(void *privdata);
static void ngx_http_faas_rconn_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_faas_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_faas_redis_blpop_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_faas_redis_auth_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_faas_redis_message(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_faas_redis_schedule(void);
static ngx_uint_t ngx_http_faas_redis_log_lost(void);
static void ngx_http_faas_redis_up(ngx_http_faas_rconn_t *rc);
static void ngx_http_faas_redis_reconnect(ngx_event_t *ev);
static void ngx_http_faas_redis_write_now(ngx_http_faas_rconn_t *rc);


static ngx_http_faas_redis_t  ngx_http_faas_redis;


ngx_int_t
ngx_http_faas_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_faas_main_conf_t *fmcf, ngx_http_faas_inval_pt invalidate)
{
    u_char                 *p, *colon;
    ngx_str_t              *a;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    ngx_memzero(rd, sizeof(ngx_http_faas_redis_t));

    rd->fmcf = fmcf;
    rd->invalidate = invalidate;
    rd->cycle = cycle;
    rd->backoff = NGX_HTTP_FAAS_BACKOFF_MIN;
    ngx_queue_init(&rd->blpop_free);

    a = &fmcf->redis;

    if (fmcf->redis_sentinels.len) {
        /* ngx_http_faas_sentinel_locate() asks the sentinels */

    } else if (a->len > 5 && ngx_strncmp(a->data, "unix:", 5) == 0) {
        rd->path = ngx_alloc(a->len - 4, cycle->log);
        if (rd->path == NULL) {
            return NGX_ERROR;
        }
        ngx_cpystrn((u_char *) rd->path, a->data + 5, a->len - 4);

    } else {
        colon = ngx_strlchr(a->data, a->data + a->len, ':');
        rd->host = ngx_alloc(colon - a->data + 1, cycle->log);
        if (rd->host == NULL) {
            return NGX_ERROR;
        }
        p = ngx_cpymem(rd->host, a->data, colon - a->data);
        *p = '\0';
        rd->port = ngx_atoi(colon + 1, a->data + a->len - colon - 1);
    }

    rd->reconnect.handler = ngx_http_faas_redis_reconnect;
    rd->reconnect.log = cycle->log;
    rd->reconnect.data = rd;
    rd->reconnect.cancelable = 1;

    rd->started = 1;

    if (ngx_http_faas_sentinel_locate(fmcf, &rd->host, &rd->port, cycle->log)
        == NGX_ERROR)
    {
        ngx_http_faas_redis_schedule();
        return NGX_OK;
    }

    rd->cmd = ngx_http_faas_rconn_open(NGX_HTTP_FAAS_RCONN_CMD);
    rd->sub = ngx_http_faas_rconn_open(NGX_HTTP_FAAS_RCONN_SUB);

    if (rd->cmd == NULL || rd->sub == NULL) {
        ngx_http_faas_redis_schedule();
    }

    return NGX_OK;
}


void
ngx_http_faas_redis_exit_process(void)
{
    ngx_queue_t            *q;
    ngx_http_faas_rconn_t  *rc;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (!rd->started) {
        return;
    }

    rd->exiting = 1;

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    if (rd->cmd) {
        redisAsyncFree(rd->cmd->ac);
    }

    if (rd->sub) {
        redisAsyncFree(rd->sub->ac);
    }

    while (!ngx_queue_empty(&rd->blpop_free)) {
        q = ngx_queue_head(&rd->blpop_free);
        rc = ngx_queue_data(q, ngx_http_faas_rconn_t, queue);
        redisAsyncFree(rc->ac);
    }

    ngx_free(rd->host);
    ngx_free(rd->path);
    rd->started = 0;
}


ngx_int_t
ngx_http_faas_redis_ready(void)
{
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    return (rd->started && !rd->exiting && rd->cmd != NULL) ? NGX_OK
                                                            : NGX_DECLINED;
}


static ngx_http_faas_rconn_t *
ngx_http_faas_rconn_open(ngx_uint_t kind)
{
    ngx_log_t              *log;
    ngx_connection_t       *c;
    redisAsyncContext      *ac;
    ngx_http_faas_rconn_t  *rc;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    log = ngx_cycle->log;

    if (rd->path) {
        ac = redisAsyncConnectUnix(rd->path);

    } else {
        ac = redisAsyncConnect(rd->host, rd->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "faas: redis: out of memory");
        return NULL;
    }

    if (ac->err) {
        if (ngx_http_faas_redis_log_lost()) {
            ngx_log_error(NGX_LOG_ERR, log, 0, "faas: redis \"%V\": %s",
                          &rd->fmcf->redis, ac->errstr);
        }
        redisAsyncFree(ac);
        return NULL;
    }

    rc = ngx_calloc(sizeof(ngx_http_faas_rconn_t), log);
    if (rc == NULL) {
        redisAsyncFree(ac);
        return NULL;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        ngx_free(rc);
        redisAsyncFree(ac);
        return NULL;
    }

    c->data = rc;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = ngx_http_faas_rconn_read;
    c->write->handler = ngx_http_faas_rconn_write;

    rc->ac = ac;
    rc->c = c;
    rc->kind = kind;

    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_faas_rconn_add_read;
    ac->ev.delRead = ngx_http_faas_rconn_del_read;
    ac->ev.addWrite = ngx_http_faas_rconn_add_write;
    ac->ev.delWrite = ngx_http_faas_rconn_del_write;
    ac->ev.cleanup = ngx_http_faas_rconn_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_faas_rconn_connected);

    /* the write event reports the end of the non-blocking connect */
    ngx_http_faas_rconn_add_write(rc);
    ngx_add_timer(c->read, rd->fmcf->redis_timeout);

    if (rd->fmcf->redis_password.len) {
        const char  *argv[2];
        size_t       lens[2];

        argv[0] = "AUTH";
        lens[0] = 4;
        argv[1] = (const char *) rd->fmcf->redis_password.data;
        lens[1] = rd->fmcf->redis_password.len;

        redisAsyncCommandArgv(ac, ngx_http_faas_redis_auth_reply, rc, 2,
                              argv, lens);
    }

    if (kind == NGX_HTTP_FAAS_RCONN_SUB) {
        redisAsyncCommand(ac, ngx_http_faas_redis_message, rc,
                          "SUBSCRIBE %s", FAAS_CHAN_INVAL);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "faas: redis connection %p kind %ui opened", rc, kind);

    return rc;
}


static void
ngx_http_faas_rconn_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_faas_rconn_t  *rc = ac->ev.data;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (status != REDIS_OK) {
        if (ngx_http_faas_redis_log_lost()) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "faas: redis \"%V\": connect failed: %s, "
                          "reconnecting", &rd->fmcf->redis, ac->errstr);
        }
        ngx_http_faas_metrics_error(rd->fmcf, 1);
        return;
    }

    rc->connected = 1;

    if (rd->fmcf->redis_password.len == 0) {
        ngx_http_faas_redis_up(rc);
    }

    if (rc->kind == NGX_HTTP_FAAS_RCONN_SUB) {
        /* messages may have been missed while it was down */
        ngx_http_faas_redis.invalidate(NULL, 0);
    }

    if (ac->replies.head == NULL && rc->c->read->timer_set) {
        ngx_del_timer(rc->c->read);
    }
}


static void
ngx_http_faas_redis_auth_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply             *r = reply;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        if (ngx_http_faas_redis_log_lost()) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "faas: redis \"%V\": AUTH failed: %*s",
                          &rd->fmcf->redis, (size_t) r->len, r->str);
        }
        redisAsyncDisconnect(ac);
        return;
    }

    if (r != NULL) {
        ngx_http_faas_redis_up(privdata);
    }
}


/* 1 when a failure starts an outage (log it), 0 while one is logged. */
static ngx_uint_t
ngx_http_faas_redis_log_lost(void)
{
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (rd->lost) {
        return 0;
    }

    rd->lost = 1;

    return 1;
}


/* rc answers (connected, authenticated if need be): a command connection
 * ends the outage and the backoff starts again from its minimum. */
static void
ngx_http_faas_redis_up(ngx_http_faas_rconn_t *rc)
{
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (rc->kind != NGX_HTTP_FAAS_RCONN_CMD || rc->dead) {
        return;
    }

    rd->backoff = NGX_HTTP_FAAS_BACKOFF_MIN;

    if (rd->lost) {
        rd->lost = 0;
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "faas: redis \"%V\": reconnected", &rd->fmcf->redis);
    }
}


static void
ngx_http_faas_redis_message(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply  *r = reply;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        return;
    }

    if (r->element[0]->type == REDIS_REPLY_STRING
        && r->element[0]->len == 7
        && ngx_strncmp(r->element[0]->str, "message", 7) == 0
        && r->element[2]->type == REDIS_REPLY_STRING)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "faas: invalidation of \"%*s\"",
                       (size_t) r->element[2]->len, r->element[2]->str);

        ngx_http_faas_redis.invalidate((u_char *) r->element[2]->str,
                                       r->element[2]->len);
    }
}


static void
ngx_http_faas_rconn_read(ngx_event_t *ev)
{
    ngx_connection_t       *c = ev->data;
    ngx_http_faas_rconn_t  *rc = c->data;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (ev->timedout) {
        ev->timedout = 0;
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "faas: redis \"%V\" timed out", &rd->fmcf->redis);
        redisAsyncFree(rc->ac);
        return;
    }

    rc->in_handler = 1;
    redisAsyncHandleRead(rc->ac);
    rc->in_handler = 0;

    if (rc->dead) {
        ngx_free(rc);
        return;
    }

    if (rc->kind != NGX_HTTP_FAAS_RCONN_BLPOP && rc->connected) {
        /* no-progress timer: reset by every reply, off when idle */
        if (rc->ac->replies.head != NULL) {
            if (rc->kind == NGX_HTTP_FAAS_RCONN_CMD || !c->read->timer_set) {
                ngx_add_timer(c->read, rd->fmcf->redis_timeout);
            }

        } else if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }
    }
}


static void
ngx_http_faas_rconn_write(ngx_event_t *ev)
{
    ngx_connection_t       *c = ev->data;
    ngx_http_faas_rconn_t  *rc = c->data;

    rc->in_handler = 1;
    redisAsyncHandleWrite(rc->ac);
    rc->in_handler = 0;

    if (rc->dead) {
        ngx_free(rc);
    }
}


static void
ngx_http_faas_rconn_add_read(void *privdata)
{
    ngx_http_faas_rconn_t  *rc = privdata;

    if (!rc->c->read->active) {
        if (ngx_add_event(rc->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, rc->c->log, 0,
                          "faas: redis: cannot add a read event");
        }
    }
}


static void
ngx_http_faas_rconn_del_read(void *privdata)
{
    ngx_http_faas_rconn_t  *rc = privdata;

    if (rc->c->read->active) {
        ngx_del_event(rc->c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_faas_rconn_add_write(void *privdata)
{
    ngx_http_faas_rconn_t  *rc = privdata;

    if (ngx_http_faas_redis.writing) {
        /* the command is written at once, see redis_command() */
        return;
    }

    if (!rc->c->write->active) {
        if (ngx_add_event(rc->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, rc->c->log, 0,
                          "faas: redis: cannot add a write event");
        }
    }
}


static void
ngx_http_faas_rconn_del_write(void *privdata)
{
    ngx_http_faas_rconn_t  *rc = privdata;

    if (rc->c->write->active) {
        ngx_del_event(rc->c->write, NGX_WRITE_EVENT, 0);
    }
}


/* Called once, when hiredis frees the context (it closes the fd after). */
static void
ngx_http_faas_rconn_cleanup(void *privdata)
{
    ngx_connection_t       *c;
    ngx_http_faas_rconn_t  *rc = privdata;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    c = rc->c;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    if (rd->held == rc) {
        rd->held = NULL;
    }

    switch (rc->kind) {

    case NGX_HTTP_FAAS_RCONN_CMD:
        if (rd->cmd == rc) {
            rd->cmd = NULL;
            if (ngx_http_faas_redis_log_lost()) {
                ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                              "faas: redis \"%V\": command connection "
                              "lost, reconnecting", &rd->fmcf->redis);
            }
            ngx_http_faas_metrics_error(rd->fmcf, 1);
            ngx_http_faas_redis_schedule();
        }
        break;

    case NGX_HTTP_FAAS_RCONN_SUB:
        if (rd->sub == rc) {
            rd->sub = NULL;
            rd->invalidate(NULL, 0);
            ngx_http_faas_redis_schedule();
        }
        break;

    default:
        if (rc->queued) {
            ngx_queue_remove(&rc->queue);
            rc->queued = 0;
        }
        rd->blpop_count--;
        break;
    }

    rc->dead = 1;

    if (!rc->in_handler) {
        ngx_free(rc);
    }
}


static void
ngx_http_faas_redis_schedule(void)
{
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (rd->exiting || ngx_exiting || ngx_quit || ngx_terminate
        || rd->reconnect.timer_set)
    {
        return;
    }

    ngx_add_timer(&rd->reconnect, rd->backoff);

    rd->backoff *= 2;
    if (rd->backoff > NGX_HTTP_FAAS_BACKOFF_MAX) {
        rd->backoff = NGX_HTTP_FAAS_BACKOFF_MAX;
    }
}


static void
ngx_http_faas_redis_reconnect(ngx_event_t *ev)
{
    ngx_http_faas_redis_t  *rd = ev->data;

    if (rd->exiting || ngx_exiting) {
        return;
    }

    /* a failover moves the master: ask again before every reconnect */
    if (ngx_http_faas_sentinel_locate(rd->fmcf, &rd->host, &rd->port,
                                      ev->log)
        == NGX_ERROR)
    {
        ngx_http_faas_redis_schedule();
        return;
    }

    if (rd->cmd == NULL) {
        rd->cmd = ngx_http_faas_rconn_open(NGX_HTTP_FAAS_RCONN_CMD);
    }

    if (rd->sub == NULL) {
        rd->sub = ngx_http_faas_rconn_open(NGX_HTTP_FAAS_RCONN_SUB);
    }

    if (rd->cmd == NULL || rd->sub == NULL) {
        ngx_http_faas_redis_schedule();
    }
}


static void
ngx_http_faas_redis_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_http_faas_rop_t  op = *(ngx_http_faas_rop_t *) privdata;

    ngx_free(privdata);

    op.handler(reply, op.data);
}


/* What hiredis holds for rc, written now; the rest on the write event. */
static void
ngx_http_faas_redis_write_now(ngx_http_faas_rconn_t *rc)
{
    int  done = 0;

    if (redisBufferWrite(&rc->ac->c, &done) != REDIS_OK || !done) {
        ngx_http_faas_rconn_add_write(rc);
    }
}


/*
 * Commands given between cork() and uncork() go out in one write: a
 * pipeline, one Redis wake-up (the return of a sandbox and the records,
 * docs/DESIGN.md section 10). Nothing may wait for a reply in between.
 */
void
ngx_http_faas_redis_cork(void)
{
    ngx_http_faas_redis.corked++;
}


void
ngx_http_faas_redis_uncork(void)
{
    ngx_http_faas_rconn_t  *rc;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (rd->corked == 0 || --rd->corked > 0 || rd->held == NULL) {
        return;
    }

    rc = rd->held;
    rd->held = NULL;

    /* (a connection lost meanwhile has dropped what it held) */
    if (rc == rd->cmd) {
        ngx_http_faas_redis_write_now(rc);
    }
}


ngx_int_t
ngx_http_faas_redis_command(ngx_http_faas_redis_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen)
{
    ngx_http_faas_rop_t    *op;
    ngx_http_faas_rconn_t  *rc;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (ngx_http_faas_redis_ready() != NGX_OK) {
        return NGX_DECLINED;
    }

    rc = rd->cmd;

    op = ngx_alloc(sizeof(ngx_http_faas_rop_t), ngx_cycle->log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->handler = handler;
    op->data = data;
    op->rc = rc;

    /*
     * A connected context is written at once rather than on the next write
     * event, so that a sandbox returned by a call is back in Redis before
     * its answer reaches the client, and without a write event per command.
     * What cannot be written now, or an error, is left to the write event
     * (no callback may run from here).
     */
    rd->writing = (rc->ac->c.flags & REDIS_CONNECTED) ? 1 : 0;

    if (redisAsyncCommandArgv(rc->ac, ngx_http_faas_redis_reply, op, argc,
                              argv, argvlen)
        != REDIS_OK)
    {
        rd->writing = 0;
        ngx_free(op);
        return NGX_DECLINED;
    }

    if (rd->writing) {
        rd->writing = 0;

        if (rd->corked) {
            /* written with the others at uncork() */
            rd->held = rc;

        } else {
            ngx_http_faas_redis_write_now(rc);
        }
    }

    if (!rc->c->read->timer_set) {
        ngx_add_timer(rc->c->read, rd->fmcf->redis_timeout);
    }

    return NGX_OK;
}


static void
ngx_http_faas_redis_blpop_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_faas_rop_t     op = *(ngx_http_faas_rop_t *) privdata;
    ngx_http_faas_rconn_t  *rc = op.rc;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    ngx_free(privdata);

    if (reply != NULL && !rc->dead) {
        /* the connection is free again */
        rc->busy = 0;

        if (rc->c->read->timer_set) {
            ngx_del_timer(rc->c->read);
        }

        if (rd->exiting) {
            redisAsyncDisconnect(ac);

        } else {
            ngx_queue_insert_head(&rd->blpop_free, &rc->queue);
            rc->queued = 1;
        }
    }

    op.handler(reply, op.data);
}


ngx_int_t
ngx_http_faas_redis_blpop(ngx_http_faas_redis_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen, ngx_msec_t timeout)
{
    ngx_queue_t            *q;
    ngx_http_faas_rop_t    *op;
    ngx_http_faas_rconn_t  *rc;
    ngx_http_faas_redis_t  *rd = &ngx_http_faas_redis;

    if (ngx_http_faas_redis_ready() != NGX_OK) {
        return NGX_DECLINED;
    }

    if (!ngx_queue_empty(&rd->blpop_free)) {
        q = ngx_queue_head(&rd->blpop_free);
        ngx_queue_remove(q);
        rc = ngx_queue_data(q, ngx_http_faas_rconn_t, queue);
        rc->queued = 0;

    } else if (rd->blpop_count < rd->fmcf->blpop_connections) {
        rc = ngx_http_faas_rconn_open(NGX_HTTP_FAAS_RCONN_BLPOP);
        if (rc == NULL) {
            return NGX_DECLINED;
        }

        rd->blpop_count++;

    } else {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "faas: all %ui BLPOP connections are busy",
                      rd->fmcf->blpop_connections);
        return NGX_BUSY;
    }

    op = ngx_alloc(sizeof(ngx_http_faas_rop_t), ngx_cycle->log);
    if (op == NULL) {
        ngx_queue_insert_head(&rd->blpop_free, &rc->queue);
        rc->queued = 1;
        return NGX_ERROR;
    }

    op->handler = handler;
    op->data = data;
    op->rc = rc;

    if (redisAsyncCommandArgv(rc->ac, ngx_http_faas_redis_blpop_reply, op,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        redisAsyncFree(rc->ac);
        return NGX_DECLINED;
    }

    rc->busy = 1;

    /* the BLPOP's own timeout plus the command timeout, connect included */
    ngx_add_timer(rc->c->read, timeout + rd->fmcf->redis_timeout);

    return NGX_OK;
}


/* The reply handler of a command whose answer nobody waits for. */
void
ngx_http_faas_redis_ignore(redisReply *reply, void *data)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "faas: redis: %*s", (size_t) reply->len, reply->str);
    }
}
