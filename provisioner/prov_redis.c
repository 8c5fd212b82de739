/*
 * The provisioner's two Redis connections (hiredis async on the libuv loop).
 * A lost connection is retried every 300 ms; callbacks pending on it get a
 * NULL reply from hiredis, which every caller treats as a failure.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/adapters/libuv.h>

#include "config.h"
#include "log.h"
#include "prov.h"

static void redis_connect(faas_prov_redis_t *r);


static void
retry_cb(uv_timer_t *t)
{
    redis_connect(t->data);
}


static void
schedule_retry(faas_prov_redis_t *r)
{
    if (!r->prov->stopping) {
        uv_timer_start(&r->retry, retry_cb, 300, 0);
    }
}


static void
auth_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_redis_t *r = data;
    redisReply   *rep = reply;

    (void) ac;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        faas_err(NULL, "redis %s: AUTH failed: %s", r->name,
                 rep ? rep->str : "no reply");
        return;
    }
    r->ready = 1;
    faas_info(NULL, "redis %s: connected", r->name);
    r->on_ready(r->prov);
}


static void
connect_cb(const redisAsyncContext *ac, int status)
{
    faas_prov_redis_t *r = ac->data;
    const char   *pw;

    if (status != REDIS_OK) {
        faas_warn(NULL, "redis %s: connect: %s", r->name, ac->errstr);
        r->ac = NULL;
        schedule_retry(r);
        return;
    }
    pw = faas_config_string(r->prov->cfg, "redis_password", NULL);
    if (pw != NULL && *pw != '\0') {
        redisAsyncCommand(r->ac, auth_cb, r, "AUTH %s", pw);
        return;
    }
    r->ready = 1;
    faas_info(NULL, "redis %s: connected", r->name);
    r->on_ready(r->prov);
}


static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
    faas_prov_redis_t *r = ac->data;

    r->ready = 0;
    r->ac = NULL;
    if (status != REDIS_OK) {
        faas_warn(NULL, "redis %s: disconnected: %s", r->name, ac->errstr);
    }
    if (!r->prov->stopping) {
        schedule_retry(r);
    }
}


static void
redis_connect(faas_prov_redis_t *r)
{
    const char *addr = faas_config_string(r->prov->cfg, "redis",
                                          "127.0.0.1:6379");
    char        host[256];
    const char *colon;
    int         port;

    if (r->ac != NULL || r->prov->stopping) {
        return;
    }
    if (strncmp(addr, "unix:", 5) == 0) {
        r->ac = redisAsyncConnectUnix(addr + 5);
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || (size_t) (colon - addr) >= sizeof(host)) {
            faas_err(NULL, "config: redis must be host:port or unix:/path");
            return;
        }
        memcpy(host, addr, colon - addr);
        host[colon - addr] = '\0';
        port = atoi(colon + 1);
        r->ac = redisAsyncConnect(host, port);
    }
    if (r->ac == NULL) {
        schedule_retry(r);
        return;
    }
    if (r->ac->err) {
        faas_warn(NULL, "redis %s: %s", r->name, r->ac->errstr);
        redisAsyncFree(r->ac);
        r->ac = NULL;
        schedule_retry(r);
        return;
    }
    r->ac->data = r;
    redisLibuvAttach(r->ac, r->prov->loop);
    redisAsyncSetConnectCallback(r->ac, connect_cb);
    redisAsyncSetDisconnectCallback(r->ac, disconnect_cb);
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
    redis_connect(r);
    return 0;
}


/* Disconnects r (pending callbacks get NULL) and stops retrying. */
void
faas_prov_redis_stop(faas_prov_redis_t *r)
{
    uv_timer_stop(&r->retry);
    uv_close((uv_handle_t *) &r->retry, NULL);
    if (r->ac != NULL) {
        redisAsyncDisconnect(r->ac);
    }
}


/*
 * Drops r's connection (pending callbacks get NULL) and reconnects: for a
 * link that stopped answering. hiredis 0.14's libuv adapter ignores poll
 * errors, so a connection reset by the server can hang with its callbacks
 * never called; a watchdog (queue.c, leases.c) notices and calls this.
 */
void
faas_prov_redis_reset(faas_prov_redis_t *r, const char *why)
{
    if (r->ac == NULL) {
        return;
    }
    faas_warn(NULL, "redis %s: %s, reconnecting", r->name, why);
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
