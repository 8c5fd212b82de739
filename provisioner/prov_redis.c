/*
 * The provisioner's Redis connections (hiredis async on the libuv loop): cmd
 * and one blocking link per held shard. A lost connection, or one that never
 * came up, is retried forever with capped exponential backoff; the loss and
 * the recovery are logged once each, not every attempt. Callbacks pending on
 * a lost connection get a NULL reply from hiredis, which every caller treats
 * as a failure; on_ready runs again at each reconnect.
 *
 * Each attempt is also watched by a timer that checks the socket's pending
 * error and gives up on an attempt not ready within CONNECT_TIMEOUT_MS (a
 * server that accepts and never answers, an AUTH left unanswered).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"
#include "prov.h"
#include "redis_addr.h"

#define BACKOFF_MIN_MS      100
#define BACKOFF_MAX_MS      2000
#define CONNECT_WATCH_MS    50
#define CONNECT_TIMEOUT_MS  2000

static void redis_connect(faas_prov_redis_t *r);


static void
retry_cb(uv_timer_t *t)
{
    redis_connect(t->data);
}


/* Next attempt after the current backoff, which doubles up to its cap. */
static void
schedule_retry(faas_prov_redis_t *r)
{
    if (r->prov->stopping) {
        return;
    }
    if (r->backoff_ms == 0) {
        r->backoff_ms = BACKOFF_MIN_MS;
    }
    uv_timer_start(&r->retry, retry_cb, r->backoff_ms, 0);
    r->backoff_ms *= 2;
    if (r->backoff_ms > BACKOFF_MAX_MS) {
        r->backoff_ms = BACKOFF_MAX_MS;
    }
}


/* Logs the loss of r once per outage, however many attempts fail. */
static void
note_lost(faas_prov_redis_t *r, const char *why)
{
    if (!r->lost) {
        r->lost = 1;
        faas_warn(NULL, "redis %s: lost (%s), reconnecting", r->name, why);
    }
}


static void
note_ready(faas_prov_redis_t *r)
{
    uv_timer_stop(&r->connect_watch);
    r->ready = 1;
    r->backoff_ms = 0;
    if (r->lost) {
        r->lost = 0;
        faas_metric_add(faas_prov_m.redis_reconnects, 1);
        faas_info(NULL, "redis %s: reconnected", r->name);
    } else {
        faas_info(NULL, "redis %s: connected", r->name);
    }
    r->on_ready(r->prov);
}


/*
 * Abandons an attempt that did not become ready (refused, timed out, AUTH
 * refused) and schedules the next. Its context no longer points at r, so
 * the callbacks hiredis calls while freeing it change nothing.
 */
static void
attempt_failed(faas_prov_redis_t *r, const char *why)
{
    redisAsyncContext *ac = r->ac;

    uv_timer_stop(&r->connect_watch);
    note_lost(r, why);
    r->ac = NULL;
    if (ac != NULL) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    schedule_retry(r);
}


static void
connect_watch_cb(uv_timer_t *t)
{
    faas_prov_redis_t *r = t->data;
    int                err = 0;
    socklen_t          len = sizeof(err);

    if (r->ac == NULL || r->ready) {
        uv_timer_stop(t);
        return;
    }
    r->connect_waited_ms += CONNECT_WATCH_MS;
    if (getsockopt(r->ac->c.fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
        && err != 0) {
        attempt_failed(r, strerror(err));
    } else if (r->connect_waited_ms >= CONNECT_TIMEOUT_MS) {
        attempt_failed(r, "connect timed out");
    }
}


static void
auth_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_redis_t *r = data;
    redisReply   *rep = reply;
    char          why[256];

    if (r->ac != ac) {
        return;   /* an abandoned attempt being freed */
    }
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        /* logged once per outage, like any failed attempt */
        snprintf(why, sizeof(why), "AUTH failed: %s",
                 rep ? rep->str : "no reply");
        attempt_failed(r, why);
        return;
    }
    note_ready(r);
}


static void
connect_cb(const redisAsyncContext *ac, int status)
{
    faas_prov_redis_t *r = ac->data;
    const char   *pw;

    if (r == NULL) {
        return;   /* an abandoned attempt being freed */
    }
    if (status != REDIS_OK) {
        /* hiredis frees the context itself after this callback */
        uv_timer_stop(&r->connect_watch);
        note_lost(r, ac->errstr);
        r->ac = NULL;
        schedule_retry(r);
        return;
    }
    pw = faas_config_string(r->prov->cfg, "redis_password", NULL);
    if (pw != NULL && *pw != '\0') {
        redisAsyncCommand(r->ac, auth_cb, r, "AUTH %s", pw);
        return;
    }
    note_ready(r);
}


static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
    faas_prov_redis_t *r = ac->data;

    if (r == NULL) {
        return;   /* an abandoned attempt being freed */
    }
    uv_timer_stop(&r->connect_watch);
    r->ready = 0;
    r->ac = NULL;
    if (r->prov->stopping) {
        return;
    }
    note_lost(r, status != REDIS_OK ? ac->errstr : "connection dropped");
    schedule_retry(r);
}


static void
redis_connect(faas_prov_redis_t *r)
{
    char         host[256];
    int          port;
    faas_error_t err;

    if (r->ac != NULL || r->prov->stopping) {
        return;
    }
    /* each attempt asks again: a failover moves the master */
    if (faas_redis_locate(r->prov->cfg, host, sizeof(host), &port, &err) < 0) {
        note_lost(r, err.msg);
        schedule_retry(r);
        return;
    }
    r->ac = port < 0 ? redisAsyncConnectUnix(host)
                     : redisAsyncConnect(host, port);
    if (r->ac == NULL) {
        note_lost(r, "out of memory");
        schedule_retry(r);
        return;
    }
    if (r->ac->err) {
        note_lost(r, r->ac->errstr);
        redisAsyncFree(r->ac);
        r->ac = NULL;
        schedule_retry(r);
        return;
    }
    r->ac->data = r;
    if (faas_prov_redis_attach(r->ac, r->prov->loop) < 0) {
        note_lost(r, "cannot watch its socket");
        redisAsyncFree(r->ac);
        r->ac = NULL;
        schedule_retry(r);
        return;
    }
    redisAsyncSetConnectCallback(r->ac, connect_cb);
    redisAsyncSetDisconnectCallback(r->ac, disconnect_cb);
    r->connect_waited_ms = 0;
    uv_timer_start(&r->connect_watch, connect_watch_cb, CONNECT_WATCH_MS,
                   CONNECT_WATCH_MS);
}


/*
 * Starts connecting r (asynchronously). Returns 0; connection problems are
 * logged and retried.
 */
int
faas_prov_redis_start(faas_prov_t *p, faas_prov_redis_t *r, const char *name,
                      void (*on_ready)(faas_prov_t *p))
{
    memset(r, 0, sizeof(*r));
    r->prov = p;
    r->name = name;
    r->on_ready = on_ready;
    uv_timer_init(p->loop, &r->retry);
    r->retry.data = r;
    uv_timer_init(p->loop, &r->connect_watch);
    r->connect_watch.data = r;
    redis_connect(r);
    return 0;
}


/* Disconnects r (pending callbacks get NULL) and stops retrying. */
void
faas_prov_redis_stop(faas_prov_redis_t *r)
{
    uv_timer_stop(&r->retry);
    uv_close((uv_handle_t *) &r->retry, NULL);
    uv_timer_stop(&r->connect_watch);
    uv_close((uv_handle_t *) &r->connect_watch, NULL);
    if (r->ac != NULL) {
        redisAsyncDisconnect(r->ac);
    }
}


/*
 * Drops r's connection (pending callbacks get NULL) and reconnects: for a
 * link that stopped answering (a server paused, a peer gone without a
 * reset); a watchdog (queue.c, leases.c) notices and calls this.
 */
void
faas_prov_redis_reset(faas_prov_redis_t *r, const char *why)
{
    if (r->ac == NULL) {
        return;
    }
    if (!r->ready) {
        return;   /* still connecting: the connect watch decides */
    }
    note_lost(r, why);
    redisAsyncFree(r->ac);   /* disconnect_cb clears r->ac, retries */
}


/* Sends a command; -1 (callback never called) when the link is down. */
int
faas_prov_redis_cmd(faas_prov_redis_t *r, redisCallbackFn *fn, void *data,
               const char *fmt, ...)
{
    va_list ap;
    int     rc;

    if (r->ac == NULL || !r->ready) {
        return -1;
    }
    va_start(ap, fmt);
    rc = redisvAsyncCommand(r->ac, fn, data, fmt, ap);
    va_end(ap);
    return rc == REDIS_OK ? 0 : -1;
}


/* The argv form of faas_prov_redis_cmd(). */
int
faas_prov_redis_cmdargv(faas_prov_redis_t *r, redisCallbackFn *fn, void *data,
                   int argc, const char **argv, const size_t *argvlen)
{
    if (r->ac == NULL || !r->ready) {
        return -1;
    }
    return redisAsyncCommandArgv(r->ac, fn, data, argc, argv, argvlen)
                   == REDIS_OK
               ? 0
               : -1;
}
