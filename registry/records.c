/*
 * Execution records drain: faas:records (ExecutionRecord protobufs pushed by
 * the gateway) -> MongoDB "executions" when records_mongodb_uri is set, else
 * the MySQL executions table.
 *
 * One batch: LRANGE 0..batch-1, insert them all (idempotent: MySQL INSERT
 * IGNORE on the request_id primary key, MongoDB _id = request_id with
 * duplicate-key errors ignored), then LTRIM the batch away. A crash before
 * the LTRIM makes the next run insert the same records again, which changes
 * nothing; a crash before the insert loses nothing because the records are
 * still in the list. Only one registry drains at a time (faas:records:lock,
 * SET NX PX; the LTRIM runs in a script that checks the lock is still
 * ours), because two drainers' LTRIMs would drop each other's batches;
 * after a reconnection the lock is taken back if it still has our token.
 * The Redis connection mends itself (redis_link.c).
 * Records that do not decode are logged and trimmed, so they cannot block
 * the queue; records of a deleted function are dropped (purge.c).
 */
#include "registry.h"
#include "keys.h"
#include "status.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>

#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "faas.pb-c.h"

#define RECORDS_KEY FAAS_KEY_RECORDS
#define LOCK_KEY    FAAS_KEY_RECORDS_LOCK

static pthread_t        thread_;
static int              started_;
static volatile int     stop_;
static int              waiting_;   /* drain thread only */
static pthread_mutex_t  wake_lock_ = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   wake_ = PTHREAD_COND_INITIALIZER;


static const char *
enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);

    return ev ? ev->name : "UNKNOWN";
}


/* Decodes one record into JSON, or NULL when it is malformed. */
static json_t *
record_json(const uint8_t *data, size_t len)
{
    Faas__ExecutionRecord *r;
    json_t                *j = NULL;

    r = faas__execution_record__unpack(NULL, len, data);
    if (r == NULL) {
        return NULL;
    }
    if (faas_request_id_valid(r->request_id, strlen(r->request_id))
        && strlen(r->function) > 0
        && strlen(r->function) <= 63 && strlen(r->user) <= 255
        && strlen(r->log_key) <= 255 && strlen(r->agent_host) <= 255
        && strlen(r->sandbox_id) <= 32) {
        j = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:s,"
                      "s:s,s:I,s:s}",
                      "request_id", r->request_id, "function", r->function,
                      "version", (json_int_t) r->version, "user", r->user,
                      "start_type", enum_name(&faas__start_type__descriptor,
                                              r->start_type),
                      "status", faas_status_name(r->status),
                      "http_status", (json_int_t) r->http_status,
                      "duration_us", (json_int_t) r->duration_us,
                      "total_us", (json_int_t) r->total_us,
                      "cold_start_us", (json_int_t) r->cold_start_us,
                      "memory_bytes", (json_int_t) r->memory_bytes,
                      "log_key", r->log_key, "agent_host", r->agent_host,
                      "sandbox_id", r->sandbox_id,
                      "timestamp_ms", (json_int_t) r->timestamp_ms,
                      /* a malformed trace id is not worth the record */
                      "trace_id",
                      faas_request_id_valid(r->trace_id, strlen(r->trace_id))
                      ? r->trace_id : "");
    }
    faas__execution_record__free_unpacked(r, NULL);
    return j;
}


static int
insert_mysql(faas_registry_t *reg, json_t *recs, faas_error_t *err)
{
    MYSQL      *c;
    size_t      i, len = 0, cap = 0;
    char       *sql = NULL, *row, *nb;
    json_t     *r;
    int         rc;

    c = faas_db_acquire(reg->db, err);
    if (c == NULL) {
        return -1;
    }
#define G(k) json_object_get(r, k)
#define S(k) json_string_value(G(k))
#define N(k) (long long) json_integer_value(G(k))
    json_array_foreach(recs, i, r) {
        row = faas_db_fmt(c, "%r(%s, %s, %L, %s, %s, %s, %L, %L, %L, %L, %L,"
                          " %s, %s, %s, %L, %s)",
                          i == 0 ? "INSERT IGNORE INTO executions (request_id,"
                                   " function, version, user, start_type,"
                                   " status, http_status, duration_us,"
                                   " total_us, cold_start_us, memory_bytes,"
                                   " log_key, agent_host, sandbox_id,"
                                   " timestamp_ms, trace_id) VALUES "
                                 : ", ",
                          S("request_id"), S("function"), N("version"),
                          S("user"), S("start_type"), S("status"),
                          N("http_status"), N("duration_us"), N("total_us"),
                          N("cold_start_us"), N("memory_bytes"), S("log_key"),
                          S("agent_host"), S("sandbox_id"),
                          N("timestamp_ms"), S("trace_id"));
        if (row == NULL) {
            free(sql);
            faas_db_release(reg->db, c, 0);
            return faas_error_set(err, ENOMEM, "records");
        }
        if (len + strlen(row) + 1 > cap) {
            cap = (len + strlen(row) + 1) * 2;
            nb = realloc(sql, cap);
            if (nb == NULL) {
                free(row);
                free(sql);
                faas_db_release(reg->db, c, 0);
                return faas_error_set(err, ENOMEM, "records");
            }
            sql = nb;
        }
        memcpy(sql + len, row, strlen(row) + 1);
        len += strlen(row);
        free(row);
    }
#undef G
#undef S
#undef N
    /* One statement: all or nothing, autocommitted. */
    rc = faas_db_exec(c, err, "%r", sql) < 0 ? -1 : 0;
    free(sql);
    faas_db_release(reg->db, c, rc < 0 && faas_db_broken(err));
    return rc;
}


/*
 * One batch. Returns the number of records taken off the list (0: empty or
 * someone else holds the lock), or < 0 (the redis context is then dropped
 * by the caller when *drop is set).
 */
static long
drain_once(faas_registry_t *reg, redisContext *rc, const char *token,
           long lock_ms, int *drop, faas_error_t *err)
{
    cleanup_json json_t *recs = json_array();
    redisReply *r, *lr = NULL;
    size_t      i, n;
    long        ret = -1;
    int         bad = 0;
    long long   waiting;

    /* Ours again if we held it when the connection broke. */
    r = redisCommand(rc, "EVAL %s 1 %s %s %ld",
                     "if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX',"
                     " ARGV[2]) then return 1 end"
                     " if redis.call('get', KEYS[1]) == ARGV[1] then"
                     " redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end"
                     " return 0", LOCK_KEY, token, lock_ms);
    if (r == NULL) {
        *drop = 1;
        faas_error_set(err, 0, "redis: %s", rc->errstr);
        return -1;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        freeReplyObject(r);
        if (!waiting_) {
            faas_info(NULL, "records: the drain lock is held by another"
                      " registry, waiting");
            waiting_ = 1;
        }
        return 0;
    }
    freeReplyObject(r);
    if (waiting_) {
        faas_info(NULL, "records: drain lock taken");
        waiting_ = 0;
    }

    lr = redisCommand(rc, "LRANGE %s 0 %ld", RECORDS_KEY,
                      reg->records_batch - 1);
    if (lr == NULL || lr->type != REDIS_REPLY_ARRAY) {
        *drop = lr == NULL;
        faas_error_set(err, 0, "redis LRANGE: %s",
                       lr ? (lr->str ? lr->str : "bad reply") : rc->errstr);
        goto unlock;
    }
    n = lr->elements;
    if (n == 0) {
        faas_metric_set(faas_registry_m.lag, 0);
        ret = 0;
        goto unlock;
    }
    for (i = 0; i < n; i++) {
        json_t *j = NULL;
        if (lr->element[i]->type == REDIS_REPLY_STRING) {
            j = record_json((const uint8_t *) lr->element[i]->str,
                            lr->element[i]->len);
        }
        if (j == NULL) {
            bad++;
            continue;
        }
        json_array_append_new(recs, j);
    }
    faas_metric_add(faas_registry_m.malformed, bad);
    if (bad > 0) {
        faas_warn(NULL, "records: %d malformed record(s) dropped", bad);
    }
    if (faas_purge_late(reg, recs, err) < 0) {
        goto unlock;
    }
    if (json_array_size(recs) > 0) {
        if ((reg->mongo ? faas_mongo_insert(reg->mongo, recs, err)
                        : insert_mysql(reg, recs, err)) < 0) {
            goto unlock;
        }
    }
    /* Trim only while the lock is still ours: had it expired, another
     * registry may have read (and will trim) the same batch. */
    r = redisCommand(rc, "EVAL %s 2 %s %s %s %ld",
                     "if redis.call('get', KEYS[1]) == ARGV[1] then"
                     " redis.call('ltrim', KEYS[2], ARGV[2], -1) return 1"
                     " end return 0", LOCK_KEY, RECORDS_KEY, token, (long) n);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        *drop = r == NULL;
        faas_error_set(err, 0, "redis LTRIM: %s",
                       r ? (r->str ? r->str : "bad reply") : rc->errstr);
        if (r != NULL) {
            freeReplyObject(r);
        }
        goto unlock;
    }
    if (r->integer != 1) {
        freeReplyObject(r);
        faas_warn(NULL, "records: lock expired during a batch (raise"
                  " records_lock_ms); the batch is left to its new holder");
        ret = 0;
        goto unlock;
    }
    freeReplyObject(r);
    faas_debug(NULL, "records: %zu drained", n);
    faas_metric_add(faas_registry_m.drained, (int64_t) n - bad);
    ret = (long) n;
    r = redisCommand(rc, "LLEN %s", RECORDS_KEY);
    if (r != NULL) {
        waiting = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        if (waiting >= 0) {
            faas_metric_set(faas_registry_m.lag, waiting);
        }
    }

unlock:
    if (lr != NULL) {
        freeReplyObject(lr);
    }
    if (!*drop) {
        r = redisCommand(rc, "EVAL %s 1 %s %s",
                         "if redis.call('get', KEYS[1]) == ARGV[1] then"
                         " return redis.call('del', KEYS[1]) end return 0",
                         LOCK_KEY, token);
        if (r == NULL) {
            *drop = 1;
        } else {
            freeReplyObject(r);
        }
    }
    return ret;
}


static void
nap(long ms)
{
    struct timespec ts = faas_deadline_after_ms(ms);

    pthread_mutex_lock(&wake_lock_);
    if (!stop_) {
        pthread_cond_timedwait(&wake_, &wake_lock_, &ts);
    }
    pthread_mutex_unlock(&wake_lock_);
}


static void *
records_main(void *arg)
{
    faas_registry_t  *reg = arg;
    faas_redis_link_t link;
    redisContext     *rc;
    faas_error_t      err;
    char              token[64];
    long              n, lock_ms;
    int               drop, fresh, connected_once = 0;

    snprintf(token, sizeof(token), "%ld-%ld", (long) getpid(),
             (long) time(NULL));
    lock_ms = (long) faas_config_int(reg->cfg, "records_lock_ms", 10000);
    if (faas_redis_link_init(&link, reg->cfg, "records", 2, &err) < 0) {
        faas_err(NULL, "records: %s", err.msg);
        return NULL;
    }
    while (!stop_) {
        faas_error_clear(&err);
        rc = faas_redis_link_get(&link, &fresh, &err);
        if (rc == NULL) {
            nap(faas_redis_link_wait_ms(&link, 2000));
            continue;
        }
        if (fresh && connected_once++) {
            faas_metric_add(faas_registry_m.redis_reconnects, 1);
        }
        drop = 0;
        n = drain_once(reg, rc, token, lock_ms, &drop, &err);
        if (drop) {
            /* a batch inserted but not trimmed is inserted again: the
             * inserts ignore records they already hold */
            faas_redis_link_lost(&link, err.msg);
            continue;
        }
        if (n < 0) {
            faas_warn(NULL, "records: batch kept for later: %s", err.msg);
            nap(reg->records_interval_ms > 500 ? reg->records_interval_ms
                                               : 500);
        } else if (n < reg->records_batch) {
            nap(reg->records_interval_ms);
        }
    }
    faas_redis_link_close(&link);
    return NULL;
}


int
faas_records_start(faas_registry_t *reg, faas_error_t *err)
{
    int rc = pthread_create(&thread_, NULL, records_main, reg);

    if (rc != 0) {
        return faas_error_set(err, rc, "records thread");
    }
    started_ = 1;
    return 0;
}


void
faas_records_stop(void)
{
    if (!started_) {
        return;
    }
    pthread_mutex_lock(&wake_lock_);
    stop_ = 1;
    pthread_cond_signal(&wake_);
    pthread_mutex_unlock(&wake_lock_);
    pthread_join(thread_, NULL);
    started_ = 0;
}
