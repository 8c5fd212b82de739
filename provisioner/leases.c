/*
 * Shard leadership (docs/DESIGN.md section 4, "Leases and work lists").
 *
 * Every heartbeat_ms: ZADD faas:prov:hosts <now> <host_id>; count the hosts
 * seen within one lease period (N); extend the leases held (Lua
 * compare-and-extend); then aim at ceil(S / N) shards: take free ones with
 * SET NX PX, or hand surplus ones over. A shard being handed over is first
 * no longer consumed and its lease is deleted (compare-and-delete) only once
 * no BLMOVE that names it is outstanding, so a request is never taken by a
 * host that no longer leads its shard.
 *
 * Dead hosts (heartbeat older than two lease periods): the requests left in
 * their processing lists (faas:prov:work:<host>, see queue.c) are moved back
 * to the head of a queue this host consumes, atomically (Lua, re-checking
 * the heartbeat), so nothing a dead host had taken is lost; its sandboxes
 * (faas:prov:sbx:<host>) leave the idle lists and give their count slots
 * back (SWEEP_LUA). A host leaves faas:prov:hosts only once its processing
 * list is empty.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "prov.h"

static const char *EXTEND_LUA =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/* KEYS hosts, dead work list, target queue, dead sandboxes; ARGV host,
 * dead-before ms, forget-before ms, max. -1: alive again; else how many
 * were moved. A forgotten host's sandbox hash goes with it: should it come
 * back, it registers anew and raises its counts (reconcile.c). */
static const char *TAKEOVER_LUA =
    "local s = redis.call('zscore', KEYS[1], ARGV[1]) "
    "if s and tonumber(s) >= tonumber(ARGV[2]) then return -1 end "
    "local n = 0 "
    "while n < tonumber(ARGV[4]) do "
    "if not redis.call('lmove', KEYS[2], KEYS[3], 'RIGHT', 'LEFT') then break end "
    "n = n + 1 end "
    "if redis.call('llen', KEYS[2]) == 0 and s and tonumber(s) < tonumber(ARGV[3]) "
    "then redis.call('zrem', KEYS[1], ARGV[1]) redis.call('del', KEYS[4]) end "
    "return n";
/* One sandbox of a dead host: its entries leave the idle list and its count
 * slot is given back, once (its value becomes "~<rid>"); its id goes into
 * faas:gone:{rid}, so a gateway that holds its entry drops it instead of
 * returning it. Run again at every heartbeat while the host is dead, it
 * removes an entry returned meanwhile. KEYS hosts, dead sandboxes, idle,
 * count, gone; ARGV host, dead-before ms, sandbox id, gone ttl ms.
 * {-1, 0}: alive again; else {entries removed, slots given back}. */
static const char *SWEEP_LUA =
    "local s = redis.call('zscore', KEYS[1], ARGV[1]) "
    "if s and tonumber(s) >= tonumber(ARGV[2]) then return {-1, 0} end "
    "local v = redis.call('hget', KEYS[2], ARGV[3]) "
    "if not v then return {0, 0} end "
    "redis.call('sadd', KEYS[5], ARGV[3]) "
    "redis.call('pexpire', KEYS[5], ARGV[4]) "
    "local n, p = 0, ARGV[3] .. '|' "
    "for _, e in ipairs(redis.call('lrange', KEYS[3], 0, -1)) do "
    "if string.sub(e, 1, string.len(p)) == p then "
    "n = n + redis.call('lrem', KEYS[3], 0, e) end end "
    "if string.sub(v, 1, 1) == '~' then return {n, 0} end "
    "redis.call('hset', KEYS[2], ARGV[3], '~' .. v) "
    "redis.call('decr', KEYS[4]) return {n, 1}";
static const char *RELEASE_LUA =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";

static faas_prov_t *g_prov;
static int     tick_pending;
/* When the extensions/acquisitions of this tick were sent: a lease is
 * counted from then, not from the reply, so it never outlives Redis' TTL. */
static uint64_t tick_sent_ms;
static void  (*release_done)(faas_prov_t *p);
static void  (*tick_started)(faas_prov_t *p);   /* the hooks of the layer */
static void  (*tick_settled)(faas_prov_t *p);   /* above (queue.c) */
static int     release_pending;


static void
lease_key(char *buf, size_t len, unsigned shard)
{
    faas_key_prov_lease(buf, len, shard);
}


static unsigned
held_count(faas_prov_t *p)
{
    unsigned i, n = 0;

    for (i = 0; i < p->shards; i++) {
        n += p->held[i] && !p->releasing[i];
    }
    return n;
}


static void
tick_done(faas_prov_t *p)
{
    p->lease_tick_busy = 0;
    faas_prov_leases_flush(p);
    tick_settled(p);
}


static void
acquire_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t     *p = g_prov;
    redisReply *r = reply;
    unsigned    shard = (unsigned) (uintptr_t) data;

    (void) ac;
    if (r != NULL && r->type == REDIS_REPLY_STATUS
        && strcmp(r->str, "OK") == 0) {
        p->held[shard] = 1;
        p->releasing[shard] = 0;
        p->lease_ok_ms[shard] = tick_sent_ms;
        faas_info(NULL, "lease: took shard %u", shard);
    }
    if (--tick_pending == 0) {
        tick_done(p);
    }
}


static void
mget_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t     *p = g_prov;
    redisReply *r = reply;
    unsigned    target, have, i, j, start, want, shard;
    char        key[64], px[32];

    (void) ac;
    (void) data;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != p->shards) {
        tick_done(p);
        return;
    }
    target = (p->shards + p->live_hosts - 1) / p->live_hosts;
    have = held_count(p);
    if (have > target) {
        /* Hand the surplus over, from the highest shard down. */
        for (i = p->shards; i-- > 0 && have > target;) {
            if (p->held[i] && !p->releasing[i]) {
                p->releasing[i] = 1;
                have--;
                faas_info(NULL, "lease: handing shard %u over", i);
            }
        }
        tick_done(p);
        return;
    }
    want = target - have;
    /* Leases still carrying our id (a restart with the same host id). */
    for (i = 0; i < p->shards && want > 0; i++) {
        if (!p->held[i] && r->element[i]->type == REDIS_REPLY_STRING
            && strcmp(r->element[i]->str, p->host_id) == 0) {
            p->held[i] = 1;
            p->releasing[i] = 0;
            p->lease_ok_ms[i] = faas_now_ms() - p->lease_ms / 2;
            want--;
            faas_info(NULL, "lease: kept shard %u", i);
        }
    }
    tick_pending = 1;
    start = 0;
    for (i = 0; p->host_id[i] != '\0'; i++) {
        start = start * 31 + (unsigned char) p->host_id[i];
    }
    start %= p->shards;
    snprintf(px, sizeof(px), "%u", p->lease_ms);
    tick_sent_ms = faas_now_ms();
    for (j = 0; j < p->shards && want > 0; j++) {
        shard = (start + j) % p->shards;
        if (p->held[shard] || r->element[shard]->type != REDIS_REPLY_NIL) {
            continue;
        }
        lease_key(key, sizeof(key), shard);
        if (faas_prov_redis_cmd(&p->cmd, acquire_cb, (void *) (uintptr_t) shard,
                           "SET %s %s NX PX %s", key, p->host_id, px)
            == 0) {
            tick_pending++;
            want--;
        }
    }
    if (--tick_pending == 0) {
        tick_done(p);
    }
}


static void
start_mget(faas_prov_t *p)
{
    const char **argv;
    char        *keys;
    unsigned     i;

    argv = calloc(p->shards + 1, sizeof(*argv));
    keys = calloc(p->shards, 32);
    if (argv == NULL || keys == NULL) {
        free(argv);
        free(keys);
        tick_done(p);
        return;
    }
    argv[0] = "MGET";
    for (i = 0; i < p->shards; i++) {
        lease_key(keys + i * 32, 32, i);
        argv[i + 1] = keys + i * 32;
    }
    if (faas_prov_redis_cmdargv(&p->cmd, mget_cb, NULL, (int) p->shards + 1,
                                argv,
                           NULL)
        != 0) {
        tick_done(p);
    }
    free(argv);
    free(keys);
}


static void
extend_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t     *p = g_prov;
    redisReply *r = reply;
    unsigned    shard = (unsigned) (uintptr_t) data;

    (void) ac;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        p->lease_ok_ms[shard] = tick_sent_ms;
    } else if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        faas_warn(NULL, "lease: lost shard %u", shard);
        p->held[shard] = 0;
        p->releasing[shard] = 0;
    }
    if (--tick_pending == 0) {
        start_mget(p);
    }
}


static void
takeover_cb(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply *r = reply;
    char       *host = data;

    (void) ac;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        faas_warn(NULL, "lease: host %s is dead: re-queued %lld requests it "
                  "had taken", host, (long long) r->integer);
    } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        faas_err(NULL, "lease: take-over of %s: %s", host, r->str);
    }
    free(host);
}


/* The sweep of one dead host's sandboxes, logged once it is complete. */
typedef struct sweep_s {
    char      host[401];
    char      dead[32];
    unsigned  pending;
    long long removed;
    long long given;
} sweep_t;


static void
sweep_done(sweep_t *sw)
{
    if (--sw->pending > 0) {
        return;
    }
    if (sw->removed > 0 || sw->given > 0) {
        faas_warn(NULL, "lease: host %s is dead: removed %lld of its idle "
                  "entries, gave back %lld count slots", sw->host,
                  sw->removed, sw->given);
    }
    free(sw);
}


static void
sweep_one_cb(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply *r = reply;
    sweep_t    *sw = data;

    (void) ac;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[0]->type == REDIS_REPLY_INTEGER
        && r->element[0]->integer >= 0) {
        sw->removed += r->element[0]->integer;
        sw->given += r->element[1]->integer;
    } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        faas_err(NULL, "lease: sweep of %s: %s", sw->host, r->str);
    }
    sweep_done(sw);
}


/* Sends SWEEP_LUA for one sandbox (id, value "<rid>" or "~<rid>"). */
static void
sweep_one(faas_prov_t *p, sweep_t *sw, const char *skey, const char *id,
          const char *value)
{
    const char *rid = value[0] == '~' ? value + 1 : value;
    char        idle[512], count[512], gone[512], ttl[32];

    if (faas_key_idle(idle, sizeof(idle), rid, strlen(rid)) < 0
        || faas_key_count(count, sizeof(count), rid, strlen(rid)) < 0
        || faas_key_gone(gone, sizeof(gone), rid, strlen(rid)) < 0) {
        return;
    }
    /* Beyond the host's forgetting (20 lease periods): longer than any
     * gateway holds an entry. */
    snprintf(ttl, sizeof(ttl), "%" PRIu64, 40 * (uint64_t) p->lease_ms);
    sw->pending++;
    if (faas_prov_redis_cmd(&p->cmd, sweep_one_cb, sw,
                            "EVAL %s 5 %s %s %s %s %s %s %s %s %s", SWEEP_LUA,
                            FAAS_KEY_PROV_HOSTS, skey, idle, count, gone,
                            sw->host, sw->dead, id, ttl)
        != 0) {
        sw->pending--;
    }
}


static void
sweep_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t *p = g_prov;
    redisReply  *r = reply;
    sweep_t     *sw = data;
    char         skey[512];
    size_t       i;

    (void) ac;
    sw->pending = 1;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY
        && faas_key_prov_sbx(skey, sizeof(skey), sw->host) >= 0) {
        for (i = 0; i + 1 < r->elements; i += 2) {
            if (r->element[i]->type == REDIS_REPLY_STRING
                && r->element[i + 1]->type == REDIS_REPLY_STRING) {
                sweep_one(p, sw, skey, r->element[i]->str,
                          r->element[i + 1]->str);
            }
        }
    }
    sweep_done(sw);
}


/* Dead host's sandboxes: see SWEEP_LUA. */
static void
sweep_host(faas_prov_t *p, const char *host, const char *dead)
{
    sweep_t *sw = calloc(1, sizeof(*sw));
    char     skey[512];

    if (sw == NULL || faas_key_prov_sbx(skey, sizeof(skey), host) < 0) {
        free(sw);
        return;
    }
    snprintf(sw->host, sizeof(sw->host), "%s", host);
    snprintf(sw->dead, sizeof(sw->dead), "%s", dead);
    if (faas_prov_redis_cmd(&p->cmd, sweep_cb, sw, "HGETALL %s", skey) != 0) {
        free(sw);
    }
}


static void
dead_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t *p = g_prov;
    redisReply  *r = reply;
    size_t       i;
    unsigned     shard;
    uint64_t     now = faas_now_ms();
    char         wkey[512], skey[512], qkey[64], dead[32], forget[32];
    char        *host;

    (void) ac;
    (void) data;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return;
    }
    /* Back to the head of a queue this host consumes (any leader can serve
     * any request; the gateway waits on the idle and error keys only). */
    for (shard = 0; shard < p->shards; shard++) {
        if (faas_prov_leases_consumable(p, shard)) {
            break;
        }
    }
    if (shard == p->shards) {
        return;   /* a host that leads shards will do it */
    }
    faas_key_prov_queue(qkey, sizeof(qkey), shard);
    snprintf(dead, sizeof(dead), "%" PRIu64, now - 2 * (uint64_t) p->lease_ms);
    snprintf(forget, sizeof(forget), "%" PRIu64,
             now - 20 * (uint64_t) p->lease_ms);
    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING
            || strcmp(r->element[i]->str, p->host_id) == 0
            || r->element[i]->len > 400) {
            continue;
        }
        faas_key_prov_work(wkey, sizeof(wkey), r->element[i]->str);
        faas_key_prov_sbx(skey, sizeof(skey), r->element[i]->str);
        sweep_host(p, r->element[i]->str, dead);
        host = strdup(r->element[i]->str);
        if (host == NULL
            || faas_prov_redis_cmd(&p->cmd, takeover_cb, host,
                                   "EVAL %s 4 %s %s %s %s %s %s %s 1000",
                                   TAKEOVER_LUA, FAAS_KEY_PROV_HOSTS, wkey,
                                   qkey, skey, host, dead, forget)
                   != 0) {
            free(host);
        }
    }
}


static void
hosts_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t     *p = g_prov;
    redisReply *r = reply;
    unsigned    i;
    uint64_t    now = faas_now_ms();
    char        key[64], px[32];

    (void) ac;
    (void) data;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        tick_done(p);
        return;
    }
    p->live_hosts = r->integer > 0 ? (unsigned) r->integer : 1;
    snprintf(px, sizeof(px), "%u", p->lease_ms);
    tick_sent_ms = now;
    tick_pending = 1;
    for (i = 0; i < p->shards; i++) {
        if (!p->held[i]) {
            continue;
        }
        if (p->lease_ok_ms[i] + p->lease_ms <= now) {
            /* Not extended in time: another host may hold it now. */
            faas_warn(NULL, "lease: shard %u expired locally", i);
            p->held[i] = 0;
            p->releasing[i] = 0;
            continue;
        }
        lease_key(key, sizeof(key), i);
        if (faas_prov_redis_cmd(&p->cmd, extend_cb, (void *) (uintptr_t) i,
                           "EVAL %s 1 %s %s %s", EXTEND_LUA, key, p->host_id,
                           px)
            == 0) {
            tick_pending++;
        }
    }
    if (--tick_pending == 0) {
        start_mget(p);
    }
}


/* One heartbeat: membership, extension, rebalancing (asynchronous). */
static void
leases_tick(faas_prov_t *p)
{
    uint64_t now = faas_now_ms();
    char     snow[32], sold[32], sdead[32];

    tick_started(p);
    if (p->lease_tick_busy && !p->stopping
        && now - p->hb_started_ms > 2 * (uint64_t) p->lease_ms) {
        /* Its replies never came: the link hangs (see prov_redis.c). The
         * NULL callbacks end the tick. */
        faas_prov_redis_reset(&p->cmd, "heartbeat unanswered for two lease "
                              "periods");
    }
    if (p->lease_tick_busy || p->stopping || !p->cmd.ready) {
        return;
    }
    p->hb_started_ms = now;
    snprintf(snow, sizeof(snow), "%" PRIu64, now);
    snprintf(sold, sizeof(sold), "%" PRIu64, now - p->lease_ms);
    snprintf(sdead, sizeof(sdead), "%" PRIu64,
             now - 2 * (uint64_t) p->lease_ms);
    if (faas_prov_redis_cmd(&p->cmd, NULL, NULL, "ZADD %s %s %s",
                       FAAS_KEY_PROV_HOSTS, snow, p->host_id)
        != 0) {
        return;
    }
    /* Hosts dead for two lease periods: take over what they had taken. */
    faas_prov_redis_cmd(&p->cmd, dead_cb, NULL,
                        "ZRANGEBYSCORE %s -inf (%s", FAAS_KEY_PROV_HOSTS,
                        sdead);
    if (faas_prov_redis_cmd(&p->cmd, hosts_cb, NULL,
                       "ZCOUNT %s %s +inf", FAAS_KEY_PROV_HOSTS, sold)
        == 0) {
        p->lease_tick_busy = 1;
    }
}


static void
hb_cb(uv_timer_t *t)
{
    leases_tick(t->data);
}


/* See prov.h. The first tick comes at once. */
void
faas_prov_leases_start(faas_prov_t *p, void (*on_tick)(faas_prov_t *p),
                       void (*on_settled)(faas_prov_t *p))
{
    g_prov = p;
    tick_started = on_tick;
    tick_settled = on_settled;
    uv_timer_init(p->loop, &p->hb_timer);
    p->hb_timer.data = p;
    uv_timer_start(&p->hb_timer, hb_cb, 50, p->heartbeat_ms);
}


/* See prov.h. */
int
faas_prov_leases_consumable(faas_prov_t *p, unsigned shard)
{
    return p->held[shard] && !p->releasing[shard]
           && p->lease_ok_ms[shard] + p->lease_ms > faas_now_ms();
}


static void
release_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t *p = g_prov;

    (void) ac;
    (void) reply;
    (void) data;
    if (release_pending > 0 && --release_pending == 0 && release_done) {
        void (*done)(faas_prov_t *) = release_done;

        release_done = NULL;
        done(p);
    }
}


/* Deletes the leases of shards being handed over that no BLMOVE names. */
void
faas_prov_leases_flush(faas_prov_t *p)
{
    unsigned i;
    char     key[64];

    for (i = 0; i < p->shards; i++) {
        if (!p->releasing[i] || faas_prov_shard_busy(p, i)) {
            continue;
        }
        lease_key(key, sizeof(key), i);
        faas_prov_redis_cmd(&p->cmd, NULL, NULL, "EVAL %s 1 %s %s", RELEASE_LUA,
                       key, p->host_id);
        p->held[i] = 0;
        p->releasing[i] = 0;
        faas_info(NULL, "lease: released shard %u", i);
    }
}


/* Shutdown: releases every lease and leaves faas:prov:hosts, then done(). */
void
faas_prov_leases_release_all(faas_prov_t *p, void (*done)(faas_prov_t *p))
{
    unsigned i;
    char     key[64];

    uv_timer_stop(&p->hb_timer);
    release_done = done;
    release_pending = 1;
    for (i = 0; i < p->shards; i++) {
        if (!p->held[i]) {
            continue;
        }
        lease_key(key, sizeof(key), i);
        if (faas_prov_redis_cmd(&p->cmd, release_cb, NULL, "EVAL %s 1 %s %s",
                           RELEASE_LUA, key, p->host_id)
            == 0) {
            release_pending++;
        }
        p->held[i] = 0;
        p->releasing[i] = 0;
    }
    if (p->jobs == 0 && p->fin_retry == NULL) {
        if (faas_prov_redis_cmd(&p->cmd, release_cb, NULL,
                                "ZREM %s %s", FAAS_KEY_PROV_HOSTS, p->host_id)
            == 0) {
            release_pending++;
        }
    } else if (faas_prov_redis_cmd(&p->cmd, release_cb, NULL,
                                   "ZADD %s 1 %s", FAAS_KEY_PROV_HOSTS,
                                   p->host_id)
               == 0) {
        /* Requests still in our processing list: look dead at once, so
         * another host re-queues them. */
        release_pending++;
    }
    if (--release_pending == 0) {
        release_done = NULL;
        done(p);
    }
}
