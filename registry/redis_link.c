/*
 * One synchronous hiredis connection that mends itself (the mirror and the
 * records drain each own one): faas_redis_link_get() connects when no
 * connection is open and an attempt is due; failed attempts back off from
 * 100 ms, doubling to 2 s, forever, also when Redis is down at start. An
 * outage is logged once when it begins ("lost") and once when it ends
 * ("reconnected"), however many attempts fail in between
 * (docs/DESIGN.md section 11).
 */
#include "registry.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "redis_addr.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000


int
faas_redis_link_init(faas_redis_link_t *l, const json_t *cfg,
                     const char *name, int timeout_s, faas_error_t *err)
{
    const char *sentinels;

    memset(l, 0, sizeof(*l));
    /* A bad address is a configuration error at start; with sentinels the
     * master is looked up before every attempt instead. */
    sentinels = faas_config_string(cfg, "redis_sentinels", NULL);
    if ((sentinels == NULL || sentinels[0] == '\0')
        && faas_redis_parse_addr(faas_config_string(cfg, "redis",
                                                    "127.0.0.1:6379"),
                                 l->host, sizeof(l->host), &l->port) < 0)
    {
        return faas_error_set(err, 0, "config: redis must be host:port or"
                              " unix:/path");
    }
    l->cfg = cfg;
    l->name = name;
    l->password = faas_config_string(cfg, "redis_password", NULL);
    l->timeout.tv_sec = timeout_s;
    return 0;
}


/* An attempt failed or the connection broke: log the outage once. */
static void
note_lost(faas_redis_link_t *l, const char *why)
{
    if (!l->lost) {
        l->lost = 1;
        l->lost_at = faas_mono_ms();
        faas_warn(NULL, "redis %s: lost (%s), reconnecting", l->name, why);
    }
}


static void
attempt_failed(faas_redis_link_t *l, const char *why)
{
    note_lost(l, why);
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (l->backoff_ms > BACKOFF_MAX_MS) {
        l->backoff_ms = BACKOFF_MAX_MS;
    }
    l->next_try_ms = faas_mono_ms() + l->backoff_ms;
}


/* One attempt: connect and AUTH. The context, or NULL with err set. */
static redisContext *
attempt(faas_redis_link_t *l, faas_error_t *err)
{
    redisContext *rc;
    redisReply   *r;

    /* Asked again before every attempt, so a Sentinel failover is followed. */
    if (faas_redis_locate(l->cfg, l->host, sizeof(l->host), &l->port,
                          err) < 0) {
        return NULL;
    }
    rc = l->port < 0 ? redisConnectUnixWithTimeout(l->host, l->timeout)
                     : redisConnectWithTimeout(l->host, l->port, l->timeout);
    if (rc == NULL || rc->err) {
        faas_error_set(err, 0, "redis connect: %s",
                       rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, l->timeout);
    if (l->password != NULL && l->password[0] != '\0') {
        r = redisCommand(rc, "AUTH %s", l->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            faas_error_set(err, 0, "redis AUTH failed");
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    return rc;
}


redisContext *
faas_redis_link_get(faas_redis_link_t *l, int *fresh, faas_error_t *err)
{
    uint64_t now;

    *fresh = 0;
    if (l->rc != NULL) {
        return l->rc;
    }
    now = faas_mono_ms();
    if (now < l->next_try_ms) {
        faas_error_set(err, 0, "redis unavailable (next attempt in %llu ms)",
                       (unsigned long long) (l->next_try_ms - now));
        return NULL;
    }
    l->rc = attempt(l, err);
    if (l->rc == NULL) {
        attempt_failed(l, err->msg);
        return NULL;
    }
    if (l->lost) {
        faas_info(NULL, "redis %s: reconnected after %llu ms", l->name,
                  (unsigned long long) (faas_mono_ms() - l->lost_at));
        l->lost = 0;
    }
    l->backoff_ms = 0;
    *fresh = 1;
    return l->rc;
}


void
faas_redis_link_lost(faas_redis_link_t *l, const char *why)
{
    if (l->rc == NULL) {
        return;
    }
    redisFree(l->rc);
    l->rc = NULL;
    note_lost(l, why);
    l->next_try_ms = 0; /* try again at once; back off if that fails */
}


long
faas_redis_link_wait_ms(const faas_redis_link_t *l, long most)
{
    uint64_t now = faas_mono_ms();
    uint64_t wait;

    if (l->rc != NULL || now >= l->next_try_ms) {
        return l->rc != NULL ? most : 0;
    }
    wait = l->next_try_ms - now;
    return wait < (uint64_t) most ? (long) wait : most;
}


void
faas_redis_link_close(faas_redis_link_t *l)
{
    redisFree(l->rc);
    l->rc = NULL;
}
