/*
 * The Redis mirror: faas:fn:<name> is a hash the gateway reads (fields: rid,
 * name, version, owner, runtime, handler, code_key, code_sha256, memory_mb,
 * timeout_ms, max_concurrency, keep_alive_s, public, env, keys) and
 * faas:rev:{rid} the immutable hash of its current revision the provisioner
 * reads (docs/DESIGN.md section 4), always rebuilt from MySQL, which is the
 * truth. After each write the API calls
 * faas_mirror_sync(); when Redis is down that fails, the mirror is marked
 * dirty, and the repair thread rewrites every function (and deletes mirrors
 * of functions that no longer exist) as soon as Redis answers again. It also
 * repairs at start, after any reconnection (a restarted Redis may have lost
 * everything) and every mirror_repair_interval_ms.
 */
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "ids.h"
#include "keys.h"
#include "log.h"

struct faas_mirror_s {
    faas_registry_t *reg;
    pthread_mutex_t  lock;
    pthread_mutex_t  wake_lock;
    pthread_cond_t   wake;
    faas_redis_link_t link;
    redisContext    *rc;    /* link.rc while connected */
    int              dirty;
    int              stop;
    int              started;
    pthread_t        thread;
};


/* Connects m->rc if needed and an attempt is due (lock held;
 * redis_link.c backs off). A new connection makes the mirror dirty: the
 * Redis on the other side may have restarted empty. */
static int
ensure(faas_mirror_t *m, faas_error_t *err)
{
    int fresh;

    if (m->rc != NULL) {
        return 0;
    }
    m->rc = faas_redis_link_get(&m->link, &fresh, err);
    if (m->rc == NULL) {
        return -1;
    }
    if (fresh) {
        m->dirty = 1;
    }
    return 0;
}


/* The connection failed a command (lock held): closed, reopened later. */
static void
drop(faas_mirror_t *m)
{
    if (m->rc != NULL) {
        faas_redis_link_lost(&m->link, m->rc->err ? m->rc->errstr
                                                  : "error reply");
        m->rc = NULL;
    }
}


faas_mirror_t *
faas_mirror_open(faas_registry_t *reg, faas_error_t *err)
{
    faas_mirror_t *m;

    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        faas_error_set(err, ENOMEM, "mirror");
        return NULL;
    }
    if (faas_redis_link_init(&m->link, reg->cfg, "mirror", 1, err) < 0) {
        free(m);
        return NULL;
    }
    m->reg = reg;
    m->dirty = 1;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->wake_lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    return m;
}


static void mirror_stop(faas_mirror_t *m);


void
faas_mirror_close(faas_mirror_t *m)
{
    if (m == NULL) {
        return;
    }
    mirror_stop(m);
    faas_redis_link_close(&m->link);
    m->rc = NULL;
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->wake_lock);
    pthread_cond_destroy(&m->wake);
    free(m);
}


/* Space-separated HMAC digests of name's keys, malloc'd. */
static char *
key_digests(faas_registry_t *reg, MYSQL *c, const char *name,
            faas_error_t *err)
{
    MYSQL_RES     *res;
    MYSQL_ROW      row;
    unsigned long *lens;
    char          *out, *plain, dg[65];
    size_t         n = 0, cap;

    if (faas_db_query(c, &res, err, "SELECT sealed FROM access_keys"
                      " WHERE name = %s ORDER BY id", name) < 0) {
        return NULL;
    }
    cap = mysql_num_rows(res) * 65 + 1;
    out = calloc(1, cap);
    if (out == NULL) {
        mysql_free_result(res);
        faas_error_set(err, ENOMEM, "digests");
        return NULL;
    }
    while ((row = mysql_fetch_row(res)) != NULL) {
        lens = mysql_fetch_lengths(res);
        plain = faas_keys_decrypt(reg->master_key, (const uint8_t *) row[0],
                                  lens[0], err);
        if (plain == NULL) {
            /* A key we cannot open cannot be checked: leave it out. */
            faas_err(NULL, "access key of %s: %s", name, err->msg);
            continue;
        }
        faas_keys_digest(reg->digest_secret, plain, dg);
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
        if (n > 0) {
            out[n++] = ' ';
        }
        memcpy(out + n, dg, 64);
        n += 64;
        out[n] = '\0';
    }
    mysql_free_result(res);
    return out;
}


/* Runs one command (lock held); -1 drops the connection. */
static int
cmd(faas_mirror_t *m, int argc, const char **argv, faas_error_t *err)
{
    redisReply *r;

    r = redisCommandArgv(m->rc, argc, argv, NULL);
    if (r == NULL) {
        faas_error_set(err, 0, "redis: %s", m->rc->errstr);
        drop(m);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        faas_error_set(err, 0, "redis: %s", r->str);
        freeReplyObject(r);
        drop(m);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}


/* Is the hash in Redis exactly argv's field/value pairs? (lock held) */
static int
same_hash(faas_mirror_t *m, const char *key, int argc, const char **argv)
{
    redisReply *r;
    size_t      i;
    int         j, same;

    r = redisCommand(m->rc, "HGETALL %s", key);
    if (r == NULL) {
        drop(m);
        return 0;
    }
    same = r->type == REDIS_REPLY_ARRAY && r->elements == (size_t) argc;
    for (j = 0; same && j < argc; j += 2) {
        same = 0;
        for (i = 0; i + 1 < r->elements; i += 2) {
            if (strcmp(r->element[i]->str, argv[j]) == 0) {
                same = strcmp(r->element[i + 1]->str, argv[j + 1]) == 0;
                break;
            }
        }
    }
    freeReplyObject(r);
    return same;
}


/* The argv of HSET faas:rev:{rid}: what the provisioner builds from. */
typedef struct {
    char        key[FAAS_KEY_MAX];
    char        mem[24], tmo[24], ka[24];
    const char *argv[20];
    int         argc;
} rev_hash_t;


/* The argv of HSET faas:fn:<name>: what the gateway reads. */
typedef struct {
    char        key[FAAS_KEY_MAX];
    char        rid[FAAS_RID_MAX + 1];
    char        ver[24], mem[24], tmo[24], mc[24], ka[24];
    const char *argv[32];
    int         argc;
} fn_hash_t;


#define PAIR(h, k, v) do { (h)->argv[(h)->argc++] = k;                       \
                           (h)->argv[(h)->argc++] = v; } while (0)
#define JSTR(fn, k)   json_string_value(json_object_get(fn, k))
#define JNUM(buf, fn, k)                                                     \
    snprintf(buf, sizeof(buf), "%lld",                                       \
             (long long) json_integer_value(json_object_get(fn, k)))


static void
rev_hash(rev_hash_t *h, const char *rid, json_t *fn, const char *env)
{
    faas_key_rev(h->key, sizeof(h->key), rid, strlen(rid));
    JNUM(h->mem, fn, "memory_mb");
    JNUM(h->tmo, fn, "timeout_ms");
    JNUM(h->ka, fn, "keep_alive_s");
    h->argc = 0;
    PAIR(h, "HSET", h->key);
    PAIR(h, "runtime", JSTR(fn, "runtime"));
    PAIR(h, "handler", JSTR(fn, "handler"));
    PAIR(h, "code_key", JSTR(fn, "code_key"));
    PAIR(h, "code_sha256", JSTR(fn, "code_sha256"));
    PAIR(h, "memory_mb", h->mem);
    PAIR(h, "timeout_ms", h->tmo);
    PAIR(h, "keep_alive_s", h->ka);
    PAIR(h, "env", env);
    PAIR(h, "owner", JSTR(fn, "owner"));
}


static void
fn_hash(fn_hash_t *h, const char *name, json_t *fn, const char *env,
        const char *digests)
{
    unsigned version = (unsigned) json_integer_value(
                           json_object_get(fn, "version"));

    faas_key_fn(h->key, sizeof(h->key), name, strlen(name));
    faas_rid_format(h->rid, sizeof(h->rid), name, strlen(name), version);
    snprintf(h->ver, sizeof(h->ver), "%u", version);
    JNUM(h->mem, fn, "memory_mb");
    JNUM(h->tmo, fn, "timeout_ms");
    JNUM(h->mc, fn, "max_concurrency");
    JNUM(h->ka, fn, "keep_alive_s");
    h->argc = 0;
    PAIR(h, "HSET", h->key);
    PAIR(h, "rid", h->rid);
    PAIR(h, "name", name);
    PAIR(h, "version", h->ver);
    PAIR(h, "owner", JSTR(fn, "owner"));
    PAIR(h, "runtime", JSTR(fn, "runtime"));
    PAIR(h, "handler", JSTR(fn, "handler"));
    PAIR(h, "code_key", JSTR(fn, "code_key"));
    PAIR(h, "code_sha256", JSTR(fn, "code_sha256"));
    PAIR(h, "memory_mb", h->mem);
    PAIR(h, "timeout_ms", h->tmo);
    PAIR(h, "max_concurrency", h->mc);
    PAIR(h, "keep_alive_s", h->ka);
    PAIR(h, "public", json_is_true(json_object_get(fn, "public")) ? "1" : "0");
    PAIR(h, "env", env);
    PAIR(h, "keys", digests ? digests : "");
}

#undef PAIR
#undef JSTR
#undef JNUM


/*
 * The names of every faas:rev:{<name>@*} into keys (lock held): the
 * revisions of a deleted function. -1 drops the connection.
 */
static int
rev_keys(faas_mirror_t *m, const char *name, json_t *keys, faas_error_t *err)
{
    char        match[FAAS_KEY_MAX], cursor[32] = "0";
    redisReply *r;
    size_t      j;

    faas_key_rev_match(match, sizeof(match), name, strlen(name));
    do {
        r = redisCommand(m->rc, "SCAN %s MATCH %s COUNT 500", cursor, match);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r != NULL) {
                freeReplyObject(r);
            }
            faas_error_set(err, 0, "redis SCAN failed");
            drop(m);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (j = 0; j < r->element[1]->elements; j++) {
            json_array_append_new(keys,
                                  json_string(r->element[1]->element[j]->str));
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}


/* Opens a MULTI holding the DEL of fn_key and of every revision of name. */
static int
delete_all(faas_mirror_t *m, const char *name, const char *fn_key,
           faas_error_t *err)
{
    json_t     *keys = json_array();
    const char *del[2] = { "DEL", fn_key };
    size_t      i;
    int         rc;

    rc = rev_keys(m, name, keys, err);
    if (rc == 0) {
        rc = cmd(m, 1, (const char *[]) { "MULTI" }, err);
    }
    if (rc == 0) {
        rc = cmd(m, 2, del, err);
    }
    for (i = 0; rc == 0 && i < json_array_size(keys); i++) {
        del[1] = json_string_value(json_array_get(keys, i));
        rc = cmd(m, 2, del, err);
    }
    json_decref(keys);
    return rc;
}


/* EXEC (lock held): 0 done, 1 aborted by a write to a WATCHed key, -1
 * error (the connection is dropped). */
static int
exec_watched(faas_mirror_t *m, faas_error_t *err)
{
    redisReply *r = redisCommand(m->rc, "EXEC");
    int         rc;

    if (r == NULL) {
        faas_error_set(err, 0, "redis: %s", m->rc->errstr);
        drop(m);
        return -1;
    }
    rc = r->type == REDIS_REPLY_ARRAY ? 0 : r->type == REDIS_REPLY_NIL ? 1 : -1;
    if (rc < 0) {
        faas_error_set(err, 0, "redis EXEC: %s",
                       r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        drop(m);
    }
    freeReplyObject(r);
    return rc;
}


/* Leaves the mirror as it is and ends the WATCH (lock held). */
static int
unwatch(faas_mirror_t *m, faas_error_t *err)
{
    return cmd(m, 1, (const char *[]) { "UNWATCH" }, err);
}


/* 1 if key exists (lock held). */
static int
key_exists(faas_mirror_t *m, const char *key)
{
    redisReply *r = redisCommand(m->rc, "EXISTS %s", key);
    int         yes = r != NULL && r->type == REDIS_REPLY_INTEGER
                      && r->integer > 0;

    if (r != NULL) {
        freeReplyObject(r);
    }
    return yes;
}


/*
 * Writes (fn != NULL) or deletes the function's hashes and publishes the
 * name (lock held, faas:fn:<name> WATCHed since before fn was loaded). The
 * revision's hash is written in the same MULTI as, and before,
 * faas:fn:<name>, which names it; a deleted function loses every revision's
 * hash. With only_if_changed (the repair) identical hashes and absent
 * mirrors are left alone and nothing is published, so gateways keep their
 * caches. 1: another writer touched the key meanwhile (nothing written).
 */
static int
write_watched(faas_mirror_t *m, const char *name, json_t *fn,
              const char *digests, int only_if_changed, faas_error_t *err)
{
    fn_hash_t          fh;
    rev_hash_t         rh;
    char               fn_key[FAAS_KEY_MAX];
    cleanup_free char *env = NULL;
    const char        *del[2] = { "DEL", fn_key };
    const char        *pub[3] = { "PUBLISH", FAAS_CHAN_INVAL, name };
    int                rc;

    faas_key_fn(fn_key, sizeof(fn_key), name, strlen(name));
    if (fn != NULL) {
        env = json_dumps(json_object_get(fn, "env"),
                         JSON_COMPACT | JSON_SORT_KEYS);
        fn_hash(&fh, name, fn, env ? env : "{}", digests);
        rev_hash(&rh, fh.rid, fn, env ? env : "{}");
        if (only_if_changed
            && same_hash(m, fh.key, fh.argc - 2, fh.argv + 2)
            && same_hash(m, rh.key, rh.argc - 2, rh.argv + 2)) {
            return unwatch(m, err);
        }
        if (m->rc == NULL) {   /* same_hash lost the connection */
            return faas_error_set(err, 0, "redis connection lost");
        }
        /* MULTI/EXEC: readers never see a half-written hash. */
        rc = cmd(m, 1, (const char *[]) { "MULTI" }, err);
        if (rc == 0) {
            rc = cmd(m, rh.argc, rh.argv, err);
        }
        if (rc == 0) {
            rc = cmd(m, 2, del, err);
        }
        if (rc == 0) {
            rc = cmd(m, fh.argc, fh.argv, err);
        }
    } else {
        if (only_if_changed && !key_exists(m, fn_key)) {
            return unwatch(m, err);
        }
        if (only_if_changed) {
            faas_info(NULL, "mirror repair: removing stale faas:fn:%s", name);
        }
        rc = delete_all(m, name, fn_key, err);
    }
    if (rc == 0) {
        rc = exec_watched(m, err);
    }
    if (rc == 0) {
        rc = cmd(m, 3, pub, err);
    }
    return rc;
}


/*
 * Loads function name (NULL if it does not exist) and the digests of its
 * keys from MySQL. -1 on a database error.
 */
static int
load_fn(faas_registry_t *reg, MYSQL *c, const char *name, json_t **fn,
        char **digests, faas_error_t *err)
{
    *digests = NULL;
    *fn = faas_fn_load(c, name, err);
    if (*fn == NULL) {
        return err->code == FAAS_E_NOTFOUND ? 0 : -1;
    }
    *digests = key_digests(reg, c, name, err);
    if (*digests == NULL) {
        json_decref(*fn);
        *fn = NULL;
        return -1;
    }
    return 0;
}


/* One WATCH, load, write round (lock held); as write_watched. */
static int
sync_round(faas_registry_t *reg, MYSQL *c, const char *name,
           int only_if_changed, int *db_failed, faas_error_t *err)
{
    faas_mirror_t     *m = reg->mirror;
    char               fn_key[FAAS_KEY_MAX];
    const char        *watch[2] = { "WATCH", fn_key };
    json_t            *fn;
    cleanup_free char *digests = NULL;
    int                rc;

    faas_key_fn(fn_key, sizeof(fn_key), name, strlen(name));
    if (ensure(m, err) < 0 || cmd(m, 2, watch, err) < 0) {
        return -1;
    }
    if (load_fn(reg, c, name, &fn, &digests, err) < 0) {
        *db_failed = 1;
        unwatch(m, err);
        return -1;
    }
    rc = write_watched(m, name, fn, digests, only_if_changed, err);
    json_decref(fn);
    return rc;
}


/*
 * Makes the mirror of name what MySQL says now. The key is WATCHed before
 * MySQL is read and written in a MULTI/EXEC: an EXEC that another writer
 * (an API call or a repair, in this registry or another) overtook is
 * aborted and the round is run again with a fresh read, so the last write
 * of a key always carries data read after every committed change (a create
 * answered 201 is never removed by a repair that read MySQL before it).
 */
static int
sync_one(faas_registry_t *reg, MYSQL *c, const char *name,
         int only_if_changed, faas_error_t *err)
{
    faas_mirror_t *m = reg->mirror;
    MYSQL         *own = NULL;
    int            rc = 1, db_failed = 0, round;

    if (c == NULL) {
        own = c = faas_db_acquire(reg->db, err);
        if (c == NULL) {
            pthread_mutex_lock(&m->lock);
            m->dirty = 1;
            pthread_mutex_unlock(&m->lock);
            return -1;
        }
    }
    pthread_mutex_lock(&m->lock);
    for (round = 0; rc == 1 && round < 100; round++) {
        rc = sync_round(reg, c, name, only_if_changed, &db_failed, err);
    }
    if (rc != 0) {
        if (rc == 1) {
            faas_error_set(err, 0, "faas:fn:%s: too many concurrent writes",
                           name);
        }
        rc = -1;
        m->dirty = 1;
    }
    pthread_mutex_unlock(&m->lock);
    faas_db_release(reg->db, own, db_failed && faas_db_broken(err));
    return rc;
}


int
faas_mirror_sync(faas_registry_t *reg, MYSQL *c, const char *name,
                 faas_error_t *err)
{
    return sync_one(reg, c, name, 0, err);
}


/* Rewrites every mirror from MySQL and deletes the stale ones. */
static int
repair(faas_mirror_t *m, faas_error_t *err)
{
    faas_registry_t *reg = m->reg;
    MYSQL           *c;
    json_t          *names;
    redisReply      *r;
    size_t           i, j;
    char             cursor[32] = "0";
    int              rc = 0;

    c = faas_db_acquire(reg->db, err);
    if (c == NULL) {
        return -1;
    }
    names = faas_fn_names(c, err);
    if (names == NULL) {
        faas_db_release(reg->db, c, faas_db_broken(err));
        return -1;
    }
    for (i = 0; i < json_array_size(names) && rc == 0; i++) {
        rc = sync_one(reg, c, json_string_value(json_array_get(names, i)), 1,
                      err);
    }
    faas_db_release(reg->db, c, rc < 0 && faas_db_broken(err));
    /* Mirrors whose function is gone (deleted while Redis was down). */
    while (rc == 0) {
        json_t *stale = json_array();
        pthread_mutex_lock(&m->lock);
        if (ensure(m, err) < 0) {
            rc = -1;
        } else {
            r = redisCommand(m->rc, "SCAN %s MATCH " FAAS_KEY_FN_MATCH
                             " COUNT 500",
                             cursor);
            if (r == NULL || r->type != REDIS_REPLY_ARRAY
                || r->elements != 2) {
                faas_error_set(err, 0, "redis SCAN failed");
                drop(m);
                rc = -1;
            } else {
                snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
                for (j = 0; j < r->element[1]->elements; j++) {
                    const char *k = r->element[1]->element[j]->str
                                    + sizeof(FAAS_KEY_FN_PREFIX) - 1;
                    int found = 0;
                    for (i = 0; i < json_array_size(names); i++) {
                        if (strcmp(json_string_value(json_array_get(names, i)),
                                   k) == 0) {
                            found = 1;
                            break;
                        }
                    }
                    if (!found) {
                        json_array_append_new(stale, json_string(k));
                    }
                }
            }
            if (r != NULL) {
                freeReplyObject(r);
            }
        }
        pthread_mutex_unlock(&m->lock);
        /* Not in the snapshot of names: created since, or gone. MySQL is
         * asked again, under the key's WATCH (sync_one). */
        for (j = 0; rc == 0 && j < json_array_size(stale); j++) {
            rc = sync_one(reg, NULL,
                          json_string_value(json_array_get(stale, j)), 1,
                          err);
        }
        json_decref(stale);
        if (strcmp(cursor, "0") == 0) {
            break;
        }
    }
    json_decref(names);
    return rc;
}


/* The purges a delete could not finish (purge.c), every repair interval;
 * a failure is logged once until a run succeeds again. */
static void
purge_due(faas_mirror_t *m, uint64_t now, uint64_t *last, int *failing)
{
    faas_error_t err;

    if (*last != 0
        && (long long) (now - *last) < m->reg->mirror_repair_interval_ms) {
        return;
    }
    *last = now;
    faas_error_clear(&err);
    if (faas_purge_pending(m->reg, &err) < 0) {
        if (!*failing) {
            faas_warn(NULL, "purge of deleted functions left for later: %s",
                      err.msg);
        }
        *failing = 1;
    } else if (*failing) {
        faas_info(NULL, "purge of deleted functions resumed");
        *failing = 0;
    }
}


static void *
repair_main(void *arg)
{
    faas_mirror_t  *m = arg;
    faas_error_t    err;
    struct timespec ts;
    uint64_t        last = 0, last_purge = 0, now;
    long            interval = m->reg->mirror_repair_interval_ms;
    long            wait = 200;
    int             due, alive, purge_failing = 0;
    redisReply     *r;

    for (;;) {
        pthread_mutex_lock(&m->wake_lock);
        if (m->stop) {
            pthread_mutex_unlock(&m->wake_lock);
            break;
        }
        ts = faas_deadline_after_ms(wait);
        pthread_cond_timedwait(&m->wake, &m->wake_lock, &ts);
        if (m->stop) {
            pthread_mutex_unlock(&m->wake_lock);
            break;
        }
        pthread_mutex_unlock(&m->wake_lock);

        /* Ping, so a Redis restart is noticed even without writes. */
        faas_error_clear(&err);
        pthread_mutex_lock(&m->lock);
        alive = ensure(m, &err) == 0;
        if (alive) {
            r = redisCommand(m->rc, "PING");
            if (r == NULL) {
                drop(m);
                m->dirty = 1;
                alive = 0;
            } else {
                freeReplyObject(r);
            }
        }
        /* while Redis is away: wake when the next attempt is due */
        wait = faas_redis_link_wait_ms(&m->link, 200);
        if (wait < 1) {
            wait = 1;
        }
        now = faas_mono_ms();
        due = m->dirty || (long long) (now - last) >= interval;
        if (due && alive) {
            m->dirty = 0;
        }
        pthread_mutex_unlock(&m->lock);
        purge_due(m, now, &last_purge, &purge_failing);
        if (!due || !alive) {
            continue;
        }
        if (repair(m, &err) < 0) {
            faas_warn(NULL, "mirror repair incomplete: %s", err.msg);
            pthread_mutex_lock(&m->lock);
            m->dirty = 1;
            pthread_mutex_unlock(&m->lock);
        } else {
            faas_debug(NULL, "mirror repaired");
            last = now;
        }
    }
    return NULL;
}


int
faas_mirror_start(faas_mirror_t *m, faas_error_t *err)
{
    int rc = pthread_create(&m->thread, NULL, repair_main, m);

    if (rc != 0) {
        return faas_error_set(err, rc, "mirror thread");
    }
    m->started = 1;
    return 0;
}


/* Stops the repair thread. */
static void
mirror_stop(faas_mirror_t *m)
{
    if (m == NULL || !m->started) {
        return;
    }
    pthread_mutex_lock(&m->wake_lock);
    m->stop = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->wake_lock);
    pthread_join(m->thread, NULL);
    m->started = 0;
}
