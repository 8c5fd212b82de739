/*
 * Reconciliation between what exists on this host and what Redis lists.
 *
 * At start the sandbox table is rebuilt from <run_dir>/sbx/<id>/meta.json and
 * this daemon's state files (<run_dir>/prov/<id>.json): nothing is lost by a
 * restart. Then every reconcile_ms one scan:
 *   - reads every faas:idle:* list (SCAN + LRANGE) and notes which of our
 *     sandboxes are listed (a sandbox that reappears was returned: its
 *     keep-alive restarts; one that disappeared is in use);
 *   - reads each sandbox's CPU time (cgroup v2 cpu.stat usage_usec): one
 *     that ran since the last scan was used, even if a gateway popped and
 *     returned it between two scans, where the list looks unchanged;
 *   - removes entries of this endpoint whose sandbox we do not know, and
 *     duplicate entries;
 *   - destroys sandboxes whose processes are gone (their entries first);
 *   - re-lists sandboxes that stayed frozen and unlisted beyond grace_ms
 *     (lost between create and RPUSH, or by a gateway that died holding one);
 *   - destroys a sandbox stuck in one call beyond its timeout plus grace_ms
 *     (thawed, no voluntary context switch since: its agent died mid-call);
 *   - applies keep-alive (reaper.c) and the code cache GC.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "keys.h"
#include "log.h"
#include "prov.h"

typedef struct list_s {
    int     ok;
    size_t  n;
    char  **e;
} list_t;

typedef struct scan_s {
    faas_prov_t  *prov;
    char   **keys;
    size_t   nkeys, cap;
    list_t  *lists;       /* LRANGE results (copied), by key index */
    size_t   pending;
    int      failed;      /* a reply was missing: decide nothing */
} scan_t;

/* RPUSH ARGV[2] unless an entry of sandbox ARGV[1] is already listed;
 * KEYS idle, sbx, count, gone; ARGV id, entry, rid. The sandbox is noted in
 * faas:prov:sbx:<host> again (Redis may have lost it) and, when a survivor
 * had given its count slot back (this host was taken for dead), the slot
 * is taken again and gateways return its entry again. */
static const char *RELIST_LUA =
    "local v = redis.call('hget', KEYS[2], ARGV[1]) "
    "if v and string.sub(v, 1, 1) == '~' then redis.call('incr', KEYS[3]) "
    "redis.call('srem', KEYS[4], ARGV[1]) end "
    "redis.call('hset', KEYS[2], ARGV[1], ARGV[3]) "
    "local l = redis.call('lrange', KEYS[1], 0, -1) "
    "for _, e in ipairs(l) do "
    "if string.sub(e, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then "
    "return 0 end end "
    "redis.call('rpush', KEYS[1], ARGV[2]) return 1";

/*
 * KEYS faas:prov:hosts, then faas:count:{rid} of each revision with
 * sandboxes here; ARGV host id, now (ms), then those sandboxes' numbers.
 * This host is registered at every heartbeat: missing after a reconnect, it
 * means Redis lost everything (restarted empty), counts included, so the
 * counts are raised by what exists here, once, and the host re-registered.
 */
static const char *REBUILD_LUA =
    "if redis.call('zscore', KEYS[1], ARGV[1]) then return 0 end "
    "redis.call('zadd', KEYS[1], ARGV[2], ARGV[1]) "
    "for i = 2, #KEYS do redis.call('incrby', KEYS[i], ARGV[i + 1]) end "
    "return 1";

/* After Redis lost our state: scans every FAST_SCAN_MS, FAST_SCANS times,
 * and a sandbox found frozen, unlisted and unused by two in a row is
 * re-listed at once (well within the 5 s the design promises). */
#define FAST_SCAN_MS  500
#define FAST_SCANS    10

typedef struct lrange_s {
    scan_t *scan;
    size_t  idx;
} lrange_t;

static void scan_step(faas_prov_t *p, scan_t *sc, const char *cursor);


static void
scan_free(scan_t *sc)
{
    size_t i, j;

    for (i = 0; i < sc->nkeys; i++) {
        free(sc->keys[i]);
        if (sc->lists != NULL) {
            for (j = 0; j < sc->lists[i].n; j++) {
                free(sc->lists[i].e[j]);
            }
            free(sc->lists[i].e);
        }
    }
    free(sc->keys);
    free(sc->lists);
    free(sc);
}


static void
scan_add_key(scan_t *sc, const char *key)
{
    size_t i;
    char **nk;

    for (i = 0; i < sc->nkeys; i++) {
        if (strcmp(sc->keys[i], key) == 0) {
            return;
        }
    }
    if (sc->nkeys == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 16;
        nk = realloc(sc->keys, sc->cap * sizeof(*nk));
        if (nk == NULL) {
            return;
        }
        sc->keys = nk;
    }
    sc->keys[sc->nkeys] = strdup(key);
    if (sc->keys[sc->nkeys] != NULL) {
        sc->nkeys++;
    }
}


static void
dead_lrem_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_sbx_t *s = data;
    faas_prov_redis_t *r = ac->data;
    faas_prov_t       *p = r != NULL ? r->prov : NULL;

    (void) reply;
    s->lrem_pending = 0;
    if (p != NULL) {
        faas_prov_sbx_destroy(p, s, "its processes are gone");
    }
}


/* Copies the replica id between the braces of idle key 'key' into rid;
 * -1 if the key has none or it does not fit. */
static int
idle_key_rid(const char *key, char *rid, size_t size)
{
    const char *open = strchr(key, '{');
    const char *close = strrchr(key, '}');

    if (open == NULL || close == NULL || close <= open
        || (size_t) (close - open - 1) >= size) {
        return -1;
    }
    memcpy(rid, open + 1, close - open - 1);
    rid[close - open - 1] = '\0';
    return 0;
}


/* Copies the sandbox id of entry 'e' ("<sid>|<endpoint>|...") into sid;
 * -1 if the entry is malformed or names another host's endpoint. */
static int
entry_sid_if_ours(faas_prov_t *p, const char *e, char *sid)
{
    size_t      eplen = strlen(p->endpoint);
    const char *bar1 = strchr(e, '|');
    const char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;

    if (bar1 == NULL || bar2 == NULL
        || (size_t) (bar1 - e) != FAAS_SANDBOX_ID_LEN
        || (size_t) (bar2 - bar1 - 1) != eplen
        || memcmp(bar1 + 1, p->endpoint, eplen) != 0) {
        return -1;
    }
    memcpy(sid, e, FAAS_SANDBOX_ID_LEN);
    sid[FAAS_SANDBOX_ID_LEN] = '\0';
    return 0;
}


/* Entry 'e' of list 'key' (replica 'rid') names one of our sandboxes:
 * removes it if stale or duplicate, else marks the sandbox listed. */
static void
note_entry(faas_prov_t *p, const char *key, const char *rid, const char *e,
           uint64_t now)
{
    faas_prov_sbx_t *s;
    char             sid[FAAS_SANDBOX_ID_LEN + 1];

    if (entry_sid_if_ours(p, e, sid) != 0) {
        return;   /* another host's */
    }
    s = faas_prov_sbx_find(p, sid);
    if (s == NULL || strcmp(s->rid, rid) != 0) {
        faas_info(NULL, "reconcile: removing stale entry %s from %s", e, key);
        faas_prov_redis_cmd(&p->cmd, NULL, NULL, "LREM %s 0 %s", key, e);
        return;
    }
    if (s->state == SBX_DESTROYING || s->state == SBX_CREATING
        || s->lrem_pending) {
        return;
    }
    if (s->seen) {
        faas_info(NULL, "reconcile: removing duplicate entry %s", e);
        faas_prov_redis_cmd(&p->cmd, NULL, NULL, "LREM %s -1 %s", key, e);
        return;
    }
    s->seen = 1;
    if (s->state == SBX_BUSY) {
        s->state = SBX_IDLE;
        s->last_used_ms = now;   /* returned by a gateway */
        faas_debug(NULL, "reconcile: %s returned", s->id);
    }
    s->unlisted_ms = 0;
    if (s->entry == NULL || strcmp(s->entry, e) != 0) {
        if (s->entry != NULL) {
            /* Put back by a gateway with another origin: used. */
            s->last_used_ms = now;
        }
        free(s->entry);
        s->entry = strdup(e);
    }
}


/* Marks which of our sandboxes the scanned idle lists hold. */
static void
note_listed(faas_prov_t *p, scan_t *sc, uint64_t now)
{
    faas_prov_sbx_t *s;
    list_t          *l;
    size_t           i, j;
    char             rid[256];

    for (s = p->sbx; s != NULL; s = s->next) {
        s->seen = 0;
    }
    for (i = 0; i < sc->nkeys; i++) {
        l = &sc->lists[i];
        if (!l->ok || idle_key_rid(sc->keys[i], rid, sizeof(rid)) != 0) {
            continue;
        }
        for (j = 0; j < l->n; j++) {
            note_entry(p, sc->keys[i], rid, l->e[j], now);
        }
    }
}


static void
log_stuck_create(faas_prov_sbx_t *s, uint64_t now)
{
    if (s->state == SBX_CREATING && !s->stuck_logged
        && now - s->last_used_ms > 60000) {
        /* faas_sandbox_create has not returned in a minute: its thread
         * (and create slot) is lost; say so once. */
        faas_err(NULL, "sandbox %s (%s): create has not returned for "
                 "%llu s", s->id, s->rid,
                 (unsigned long long) ((now - s->last_used_ms) / 1000));
        s->stuck_logged = 1;
    }
}


/* A listed sandbox that vanished from the lists is in use. */
static void
note_unlisted(faas_prov_sbx_t *s, uint64_t now)
{
    if (s->seen) {
        return;
    }
    if (s->state == SBX_IDLE) {
        s->state = SBX_BUSY;
        faas_debug(NULL, "reconcile: %s in use", s->id);
    }
    if (s->unlisted_ms == 0) {
        s->unlisted_ms = now;
    }
}


/* Its processes are gone: remove its entry first, then destroy it. */
static void
destroy_dead(faas_prov_t *p, faas_prov_sbx_t *s)
{
    char key[512];

    faas_warn(NULL, "reconcile: sandbox %s (%s) is gone", s->id, s->rid);
    faas_key_idle(key, sizeof(key), s->rid, strlen(s->rid));
    if (s->seen && s->entry != NULL
        && faas_prov_redis_cmd(&p->cmd, dead_lrem_cb, s, "LREM %s 0 %s",
                               key, s->entry)
               == 0) {
        s->lrem_pending = 1;
    } else {
        faas_prov_sbx_destroy(p, s, "its processes are gone");
    }
}


/* 1 if s ran since the last scan (or that cannot be told). */
static int
note_cpu_time(faas_prov_t *p, faas_prov_sbx_t *s, uint64_t now)
{
    uint64_t usec;
    int      used;

    if (faas_prov_sbx_cpu_usec(p, s, &usec) != 0) {
        return 1;
    }
    used = !s->cpu_known || usec != s->cpu_usec;
    if (s->cpu_known && usec != s->cpu_usec) {
        /* Thawed and ran: an invocation since the last scan. */
        s->last_used_ms = now;
        faas_debug(NULL, "reconcile: %s used", s->id);
    }
    s->cpu_usec = usec;
    s->cpu_known = 1;
    return used;
}


/*
 * Whether s is still in the call it was in at the last scan. A hot sandbox
 * serves many short calls in a row and is rarely seen frozen or listed, so
 * "thawed and unlisted since" cannot tell one long call from many short
 * ones; the agent's freeze after each call (and any blocking in the handler)
 * moves the voluntary switch count, which a wedged call does not.
 */
static void
note_same_call(faas_prov_t *p, faas_prov_sbx_t *s, int frozen, uint64_t now)
{
    uint64_t n;

    if (s->state != SBX_BUSY || frozen
        || faas_prov_sbx_switches(p, s, &n) != 0) {
        s->switches = 0;   /* unknown: a live process has switched */
        s->same_call_ms = 0;
        return;
    }
    if (s->switches == 0 || n != s->switches) {
        s->same_call_ms = 0;
    } else if (s->same_call_ms == 0) {
        s->same_call_ms = now;
    }
    s->switches = n;
}


static void
relist(faas_prov_t *p, faas_prov_sbx_t *s, uint64_t now)
{
    char key[512], sbx_key[512], count_key[512], gone_key[512];

    free(s->entry);
    s->entry = faas_prov_sbx_entry(p, s->id, NULL);
    faas_key_idle(key, sizeof(key), s->rid, strlen(s->rid));
    faas_key_prov_sbx(sbx_key, sizeof(sbx_key), p->host_id);
    faas_key_count(count_key, sizeof(count_key), s->rid, strlen(s->rid));
    faas_key_gone(gone_key, sizeof(gone_key), s->rid, strlen(s->rid));
    if (s->entry != NULL
        && faas_prov_redis_cmd(&p->cmd, NULL, NULL,
                               "EVAL %s 4 %s %s %s %s %s %s %s", RELIST_LUA,
                               key, sbx_key, count_key, gone_key, s->id,
                               s->entry, s->rid)
               == 0) {
        faas_info(NULL, "reconcile: re-listed %s (%s)", s->id, s->rid);
        s->state = SBX_IDLE;
        s->unlisted_ms = 0;
        s->last_used_ms = now;
    }
}


/* Decides one sandbox's fate from this scan; it may be destroyed. */
static void
check_sandbox(faas_prov_t *p, faas_prov_sbx_t *s, uint64_t now)
{
    int frozen, used;

    log_stuck_create(s, now);
    if (s->state == SBX_CREATING || s->state == SBX_DESTROYING
        || s->lrem_pending) {
        return;
    }
    note_unlisted(s, now);
    if (!faas_prov_sbx_alive(p, s, &frozen)) {
        destroy_dead(p, s);
        return;
    }
    used = note_cpu_time(p, s, now);
    faas_prov_sbx_note_memory(p, s);   /* for the budget (capacity.c) */
    s->quiet_scans = s->state == SBX_BUSY && frozen && !used
                     ? s->quiet_scans + 1 : 0;
    note_same_call(p, s, frozen, now);
    if (s->same_call_ms != 0
        && now - s->same_call_ms
               > (uint64_t) p->grace_ms
                     + (s->timeout_ms ? s->timeout_ms : 900000)) {
        /* One call running far beyond its timeout: its agent, which ends
         * a call at the timeout, is gone; nobody will return it. */
        faas_prov_sbx_destroy(p, s, "in use beyond its timeout");
        return;
    }
    /* Unlisted and frozen for a grace period, and it has not run
     * either: nobody holds it. A sandbox in constant use is rarely seen
     * listed (returned entries are popped at once, or handed over
     * inside a gateway), so its CPU time is what says it is held. */
    if (s->state == SBX_BUSY && frozen
        && ((p->fast_scans > 0 && s->quiet_scans >= 2)
            || (now - s->unlisted_ms > p->grace_ms
                && now - s->last_used_ms > p->grace_ms))) {
        relist(p, s, now);
        return;
    }
    if (s->seen) {
        faas_prov_reaper_check(p, s, NULL, now);
    }
}


static void
process(faas_prov_t *p, scan_t *sc)
{
    faas_prov_sbx_t *s, *next;
    uint64_t         now = faas_now_ms();

    note_listed(p, sc, now);
    for (s = p->sbx; s != NULL; s = next) {
        next = s->next;
        check_sandbox(p, s, now);
    }
    faas_prov_code_gc(p);
}


static void
scan_finish(faas_prov_t *p, scan_t *sc)
{
    if (!sc->failed) {
        process(p, sc);
    }
    scan_free(sc);
    p->recon_busy = 0;
    p->recon_done_once = 1;
}


static void
lrange_cb(redisAsyncContext *ac, void *reply, void *data)
{
    lrange_t   *lr = data;
    scan_t     *sc = lr->scan;
    faas_prov_t     *p = sc->prov;
    redisReply *r = reply;
    list_t     *l = &sc->lists[lr->idx];
    size_t      j;

    (void) ac;
    free(lr);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        sc->failed = 1;
    }
    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        l->e = calloc(r->elements + 1, sizeof(*l->e));
        if (l->e != NULL) {
            l->ok = 1;
            for (j = 0; j < r->elements; j++) {
                if (r->element[j]->type == REDIS_REPLY_STRING
                    && (l->e[l->n] = strdup(r->element[j]->str)) != NULL) {
                    l->n++;
                }
            }
        }
    }
    if (reply == NULL) {
        /* The connection went away: give up this scan. */
        if (--sc->pending == 0) {
            scan_free(sc);
            p->recon_busy = 0;
        }
        return;
    }
    if (--sc->pending == 0) {
        scan_finish(p, sc);
    }
}


static void
lrange_all(faas_prov_t *p, scan_t *sc)
{
    faas_prov_sbx_t *s;
    lrange_t   *lr;
    size_t      i;
    char        key[512];

    for (s = p->sbx; s != NULL; s = s->next) {
        faas_key_idle(key, sizeof(key), s->rid, strlen(s->rid));
        scan_add_key(sc, key);
    }
    sc->lists = calloc(sc->nkeys + 1, sizeof(*sc->lists));
    if (sc->lists == NULL) {
        scan_free(sc);
        p->recon_busy = 0;
        return;
    }
    sc->pending = 1;
    for (i = 0; i < sc->nkeys; i++) {
        lr = calloc(1, sizeof(*lr));
        if (lr == NULL) {
            continue;
        }
        lr->scan = sc;
        lr->idx = i;
        if (faas_prov_redis_cmd(&p->cmd, lrange_cb, lr, "LRANGE %s 0 -1",
                           sc->keys[i])
            == 0) {
            sc->pending++;
        } else {
            free(lr);
        }
    }
    if (--sc->pending == 0) {
        scan_finish(p, sc);
    }
}


static void
scan_cb(redisAsyncContext *ac, void *reply, void *data)
{
    scan_t     *sc = data;
    faas_prov_t     *p = sc->prov;
    redisReply *r = reply;
    size_t      i;

    (void) ac;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        scan_free(sc);
        p->recon_busy = 0;
        return;
    }
    for (i = 0; i < r->element[1]->elements; i++) {
        scan_add_key(sc, r->element[1]->element[i]->str);
    }
    if (strcmp(r->element[0]->str, "0") == 0) {
        lrange_all(p, sc);
        return;
    }
    scan_step(p, sc, r->element[0]->str);
}


static void
scan_step(faas_prov_t *p, scan_t *sc, const char *cursor)
{
    if (faas_prov_redis_cmd(&p->cmd, scan_cb, sc,
                            "SCAN %s MATCH " FAAS_KEY_IDLE_MATCH " COUNT 1000",
                            cursor)
        != 0) {
        scan_free(sc);
        p->recon_busy = 0;
    }
}


/* Starts one scan (asynchronous) unless one is running. */
static void
reconcile_tick(faas_prov_t *p)
{
    scan_t *sc;

    faas_prov_sbx_reap(p);
    if (p->recon_busy || p->stopping || !p->cmd.ready
        || !p->recovered_once) {
        /* Nothing is decided on adopted sandboxes before the requests the
         * previous run left were matched with them (queue.c). */
        return;
    }
    faas_prov_queue_retry(p);
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        return;
    }
    sc->prov = p;
    p->recon_busy = 1;
    scan_step(p, sc, "0");
}


static void
recon_timer_cb(uv_timer_t *t)
{
    faas_prov_t *p = t->data;

    if (p->fast_scans > 0 && --p->fast_scans == 0) {
        uv_timer_start(&p->recon_timer, recon_timer_cb, p->reconcile_ms,
                       p->reconcile_ms);
    }
    reconcile_tick(p);
}


static void
adopt(faas_prov_t *p, const char *id)
{
    cleanup_json json_t *meta = NULL, *state = NULL;
    cleanup_free char *path = NULL;
    faas_error_t err;
    const char  *rid, *code_dir;
    faas_prov_sbx_t  *s;
    unsigned     mem, ka;

    if (asprintf(&path, "%s/%s.json", p->state_dir, id) < 0) {
        return;
    }
    state = json_load_file(path, 0, NULL);
    if (faas_sandbox_meta(&p->host, id, &meta, &err) < 0) {
        meta = NULL;
    }
    rid = json_string_value(json_object_get(meta, "rid"));
    if (rid == NULL) {
        rid = json_string_value(json_object_get(state, "rid"));
    }
    if (rid == NULL && json_is_true(json_object_get(meta, "stem"))) {
        faas_info(NULL, "reconcile: destroying stem cell %s of the previous "
                  "run", id);
    } else if (rid == NULL) {
        faas_warn(NULL, "reconcile: %s has no meta.json, destroying it", id);
    }
    if (rid == NULL) {
        if (faas_sandbox_destroy(&p->host, id, &err) < 0) {
            faas_err(NULL, "reconcile: destroy %s: %s", id, err.msg);
        }
        unlink(path);
        return;
    }
    mem = (unsigned) json_integer_value(json_object_get(meta, "memory_mb"));
    if (mem == 0) {
        mem = (unsigned) json_integer_value(json_object_get(state,
                                                            "memory_mb"));
    }
    ka = (unsigned) json_integer_value(json_object_get(state, "keep_alive_s"));
    s = faas_prov_sbx_add(p, id, rid, mem ? mem : 128,
                          ka ? ka : p->keep_alive_s);
    if (s == NULL) {
        return;
    }
    s->timeout_ms =
        (unsigned) json_integer_value(json_object_get(meta, "timeout_ms"));
    s->state = SBX_BUSY;   /* the first scan says whether it is listed */
    s->cpu_known = faas_prov_sbx_cpu_usec(p, s, &s->cpu_usec) == 0;
    code_dir = json_string_value(json_object_get(meta, "code_dir"));
    if (code_dir == NULL) {
        code_dir = json_string_value(json_object_get(state, "code_dir"));
    }
    if (code_dir != NULL) {
        s->code = faas_prov_code_by_dir(p, code_dir);
    }
    /* Without a state file its create never finished: whether to list it
     * is decided once the previous run's requests are known (queue.c). */
    s->had_state = state != NULL;
    rid = json_string_value(json_object_get(meta, "origin_request_id"));
    if (rid != NULL && *rid != '\0') {
        s->origin = strdup(rid);
    }
    faas_info(NULL, "reconcile: found sandbox %s (%s)", id, s->rid);
}


static int
valid_id_name(const char *name, size_t suffix)
{
    return strlen(name) == FAAS_SBXID_LEN + suffix
           && faas_sbxid_valid(name, FAAS_SBXID_LEN);
}


/*
 * Rebuilds the table from this host's run directories and state files, then
 * starts the periodic scan (the first one at once).
 */
void
faas_prov_reconcile_start(faas_prov_t *p)
{
    cleanup_free char *sbxdir = NULL;
    DIR           *d;
    struct dirent *e;
    char           id[FAAS_SANDBOX_ID_LEN + 1];

    if (asprintf(&sbxdir, "%s/sbx", p->run_dir) >= 0
        && (d = opendir(sbxdir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (valid_id_name(e->d_name, 0)
                && faas_prov_sbx_find(p, e->d_name) == NULL) {
                adopt(p, e->d_name);
            }
        }
        closedir(d);
    }
    /* State files whose sandbox vanished while we were down. */
    d = opendir(p->state_dir);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (valid_id_name(e->d_name, 5)
                && strcmp(e->d_name + FAAS_SANDBOX_ID_LEN, ".json") == 0) {
                memcpy(id, e->d_name, FAAS_SANDBOX_ID_LEN);
                id[FAAS_SANDBOX_ID_LEN] = '\0';
                if (faas_prov_sbx_find(p, id) == NULL) {
                    adopt(p, id);
                }
            }
        }
        closedir(d);
    }
    uv_timer_init(p->loop, &p->recon_timer);
    p->recon_timer.data = p;
    uv_timer_start(&p->recon_timer, recon_timer_cb, 100, p->reconcile_ms);
}


static void
rebuild_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t     *p = data;
    redisReply      *r = reply;
    faas_prov_sbx_t *s;

    (void) ac;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer != 1
        || p->stopping) {
        return;
    }
    faas_warn(NULL, "redis came back empty: counts rebuilt from this "
              "host's sandboxes, re-listing the idle ones now");
    for (s = p->sbx; s != NULL; s = s->next) {
        s->quiet_scans = 0;
    }
    p->fast_scans = FAST_SCANS;
    uv_timer_start(&p->recon_timer, recon_timer_cb, 0, FAST_SCAN_MS);
}


/* Adds the count key and the number of counted sandboxes of s's revision
 * unless an earlier sandbox of the same revision did. */
static void
add_count(faas_prov_sbx_t *s, json_t *keys, json_t *counts)
{
    char    key[512];
    size_t  i;
    json_t *n;

    faas_key_count(key, sizeof(key), s->rid, strlen(s->rid));
    for (i = 0; i < json_array_size(keys); i++) {
        if (strcmp(json_string_value(json_array_get(keys, i)), key) == 0) {
            n = json_array_get(counts, i);
            json_integer_set(n, json_integer_value(n) + 1);
            return;
        }
    }
    json_array_append_new(keys, json_string(key));
    json_array_append_new(counts, json_integer(1));
}


/* Sends REBUILD_LUA with this host's counted sandboxes, by revision. */
static void
rebuild_if_empty(faas_prov_t *p)
{
    cleanup_json json_t *keys = json_array(), *counts = json_array();
    faas_prov_sbx_t *s;
    const char     **argv;
    char           **nums;
    char             now[24], nkeys[24];
    size_t           n, i;

    for (s = p->sbx; s != NULL; s = s->next) {
        if (!s->nocount) {
            add_count(s, keys, counts);
        }
    }
    n = json_array_size(keys);
    argv = calloc(2 * n + 6, sizeof(*argv));
    nums = calloc(n + 1, sizeof(*nums));
    if (argv != NULL && nums != NULL) {
        snprintf(now, sizeof(now), "%llu",
                 (unsigned long long) faas_now_ms());
        argv[0] = "EVAL";
        argv[1] = REBUILD_LUA;
        argv[2] = "";
        argv[3] = FAAS_KEY_PROV_HOSTS;
        for (i = 0; i < n; i++) {
            argv[4 + i] = json_string_value(json_array_get(keys, i));
        }
        argv[4 + n] = p->host_id;
        argv[5 + n] = now;
        for (i = 0; i < n; i++) {
            if (asprintf(&nums[i], "%lld", (long long) json_integer_value(
                                               json_array_get(counts, i)))
                < 0) {
                nums[i] = NULL;
                break;
            }
            argv[6 + n + i] = nums[i];
        }
        if (i == n) {
            snprintf(nkeys, sizeof(nkeys), "%zu", n + 1);
            argv[2] = nkeys;
            faas_prov_redis_cmdargv(&p->cmd, rebuild_cb, p, (int) (6 + 2 * n),
                                    argv, NULL);
        }
    }
    for (i = 0; nums != NULL && i < n; i++) {
        free(nums[i]);
    }
    free(nums);
    free(argv);
}


/* See prov.h. At a reconnect, a Redis that came back empty (it lost this
 * host's registration) gets its counts back and the idle lists are rebuilt
 * by quick scans; in any case a scan runs at once. */
void
faas_prov_reconcile_soon(faas_prov_t *p)
{
    if (p->stopping) {
        return;
    }
    if (p->redis_seen) {
        rebuild_if_empty(p);
    }
    p->redis_seen = 1;
    uv_timer_start(&p->recon_timer, recon_timer_cb, 0,
                   p->fast_scans > 0 ? FAST_SCAN_MS : p->reconcile_ms);
}
