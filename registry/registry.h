/*
 * faas-registry: the management API (docs/DESIGN.md sections 7 and 8).
 *
 * Threads: libmicrohttpd runs one thread per API connection; one thread keeps
 * the Redis mirror repaired; one thread drains faas:records. Everything they
 * share hangs off one faas_registry_t, built by main.c.
 */
#ifndef FAAS_REGISTRY_H
#define FAAS_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <mysql.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>
#include "error.h"
#include "metrics_http.h"
#include "blob.h"

/* Error codes carried in faas_error_t.code, mapped to HTTP statuses. */
#define FAAS_E_UNAVAILABLE 1001 /* MySQL or the store unreachable: 503 */
#define FAAS_E_EXISTS      1002 /* duplicate: 409 */
#define FAAS_E_NOTFOUND    1003 /* 404 */
#define FAAS_E_INVALID     1004 /* 400 */
#define FAAS_E_QUOTA       1005 /* an owner limit: 403 quota_exceeded */

typedef struct faas_db_pool_s faas_db_pool_t;
typedef struct faas_mirror_s faas_mirror_t;
typedef struct faas_mongo_s faas_mongo_t;

typedef struct faas_registry_s {
    json_t            *cfg;
    json_t            *admin_subjects; /* strings (admin_subjects and
                                          admin_subject together) */
    faas_db_pool_t    *db;
    faas_blob_store_t *store;
    faas_mirror_t     *mirror;
    faas_mongo_t      *mongo;          /* NULL: records go to MySQL */
    uint8_t            master_key[32];
    const char        *digest_secret;
    size_t             max_upload_bytes;
    long               max_zip_entries;
    size_t             max_unzipped_bytes;
    long               max_zip_ratio;
    const char        *python;
    const char        *node;
    long               syntax_check_timeout_ms;
    const char        *tmp_dir;
    long               records_batch;
    long               records_interval_ms;
    long               mirror_repair_interval_ms;
    long long          owner_max_functions;   /* 0: no limit */
    long long          owner_max_memory_mb;   /* sum of memory_mb x
                                                 max_concurrency; 0: none */
    long long          owner_max_concurrency; /* 0: no limit */
} faas_registry_t;

/* ---- db.c: connection pool, migrations, query helpers ---- */

/* Opens a pool of up to size connections (connected lazily). */
faas_db_pool_t *faas_db_open(const json_t *cfg, int size, faas_error_t *err);
void faas_db_close(faas_db_pool_t *pool);

/*
 * Takes a live connection (pinged; reconnected when broken). Returns NULL with
 * err->code FAAS_E_UNAVAILABLE when MySQL cannot be reached. Give it back with
 * faas_db_release(); broken != 0 closes it instead of pooling it.
 */
MYSQL *faas_db_acquire(faas_db_pool_t *pool, faas_error_t *err);
void faas_db_release(faas_db_pool_t *pool, MYSQL *c, int broken);

/* Applies the schema migrations not yet recorded in schema_migrations. */
int faas_db_migrate(faas_db_pool_t *pool, faas_error_t *err);

/*
 * Formats a query: %s = quoted, escaped string (NULL -> NULL), %r = raw text,
 * %d = int, %u = unsigned, %L = long long, %U = unsigned long long,
 * %x = (const void *, size_t) as a hex literal. Returns malloc'd text.
 */
char *faas_db_fmt(MYSQL *c, const char *fmt, ...);

/*
 * Runs a formatted query. Returns affected rows (>= 0) or a negative value
 * with err->code FAAS_E_UNAVAILABLE (connection lost, lock timeout or
 * deadlock: release it broken), FAAS_E_EXISTS (duplicate key) or 0 (any
 * other error: a server-side bug).
 */
long long faas_db_exec(MYSQL *c, faas_error_t *err, const char *fmt, ...);

/* Runs a formatted SELECT; *res is the stored result (mysql_free_result). */
int faas_db_query(MYSQL *c, MYSQL_RES **res, faas_error_t *err,
                  const char *fmt, ...);

/* True when err says the connection is gone. */
int faas_db_broken(const faas_error_t *err);

/* ---- mirror.c: the Redis mirror faas:fn:<name> ---- */

faas_mirror_t *faas_mirror_open(faas_registry_t *reg, faas_error_t *err);
void faas_mirror_close(faas_mirror_t *m);

/*
 * Rewrites faas:fn:<name> from MySQL (or deletes it when the function is
 * gone) and publishes <name> on faas:inval. On failure the mirror is marked
 * dirty and the repair thread rewrites everything once Redis answers.
 * c may be NULL (a pool connection is taken). Returns 0 or < 0.
 */
int faas_mirror_sync(faas_registry_t *reg, MYSQL *c, const char *name,
                     faas_error_t *err);

/* Starts the repair thread (faas_mirror_close stops it). */
int faas_mirror_start(faas_mirror_t *m, faas_error_t *err);

/* ---- redis_link.c: a hiredis connection that reconnects by itself ---- */

typedef struct faas_redis_link_s {
    const char     *name;     /* "mirror", "records": for the log */
    const json_t   *cfg;      /* redis or redis_sentinels: see redis_addr.h */
    char            host[256];
    int             port;     /* -1: host is a Unix socket path */
    const char     *password;
    struct timeval  timeout;  /* connect and commands */
    redisContext   *rc;       /* NULL while disconnected */
    uint64_t        backoff_ms;
    uint64_t        next_try_ms; /* faas_mono_ms() of the next attempt */
    uint64_t        lost_at;
    int             lost;        /* an outage is under way (logged) */
} faas_redis_link_t;

/* Reads redis (or redis_sentinels) and redis_password from cfg; does not
 * connect. */
int faas_redis_link_init(faas_redis_link_t *l, const json_t *cfg,
                         const char *name, int timeout_s, faas_error_t *err);
/* The open connection, or a new one when an attempt is due (*fresh = 1:
 * Redis may have restarted empty). NULL with err while unreachable. */
redisContext *faas_redis_link_get(faas_redis_link_t *l, int *fresh,
                                  faas_error_t *err);
/* The connection broke: closes it (the next get reconnects). */
void faas_redis_link_lost(faas_redis_link_t *l, const char *why);
/* How long to sleep before the next attempt is due, at most most ms
 * (most while connected). */
long faas_redis_link_wait_ms(const faas_redis_link_t *l, long most);
void faas_redis_link_close(faas_redis_link_t *l);

/* ---- keys_crypto.c ---- */

/* fk_ + base64url(32 random bytes), no padding: 46 characters + NUL. */
#define FAAS_KEY_LEN 46
int faas_keys_generate(char out[FAAS_KEY_LEN + 1], faas_error_t *err);

/* AES-256-GCM: nonce (12) || ciphertext || tag (16), malloc'd into *out. */
int faas_keys_encrypt(const uint8_t key[32], const char *plain, uint8_t **out,
                      size_t *out_len, faas_error_t *err);
/* Returns a malloc'd NUL-terminated plaintext or NULL (err set). */
char *faas_keys_decrypt(const uint8_t key[32], const uint8_t *in, size_t len,
                        faas_error_t *err);
/* Lowercase hex HMAC-SHA256(secret, key) into out[65]. */
void faas_keys_digest(const char *secret, const char *key, char out[65]);
/* Lowercase hex SHA-256 of data into out[65]. */
void faas_sha256_hex(const void *data, size_t len, char out[65]);
/* Parses 64 hex chars into key. */
int faas_keys_parse_master(const char *hex, uint8_t key[32], faas_error_t *err);

/* ---- zipcheck.c ---- */

typedef struct faas_zip_limits_s {
    long        max_entries;
    size_t      max_unzipped;
    long        max_ratio;
    const char *tmp_dir;
    const char *python;
    const char *node;
    long        timeout_ms;
} faas_zip_limits_t;

/*
 * Validates an uploaded zip (see zipcheck.c for the rules), checks that the
 * handler's file exists and that it compiles. Returns 0 or < 0 with
 * err->code FAAS_E_INVALID and a message for the user, or
 * FAAS_E_UNAVAILABLE when no check slot freed in time.
 */
int faas_zip_check(const void *zip, size_t len, const char *runtime,
                   const char *handler, const faas_zip_limits_t *lim,
                   faas_error_t *err);

/*
 * Opens zip and unpacks it into dir under lim's checks, in this process
 * (faas_zip_check runs it in an unprivileged child). Returns 0 or < 0
 * with err->code FAAS_E_INVALID for a refused archive.
 */
int faas_zip_unpack(const void *zip, size_t len, const char *dir,
                    const faas_zip_limits_t *lim, faas_error_t *err);

/*
 * Once at start: the user uploads are unpacked and checked as (looked up
 * when the registry is root; nobody by default), the checker's address
 * space in MiB, and how many checks may run at once (0: no cap).
 */
int faas_zip_setup(const char *user, long memory_mb, int concurrency,
                   faas_error_t *err);

/* Wraps one file into a new zip (malloc'd *out). */
int faas_zip_wrap(const char *filename, const void *data, size_t len,
                  void **out, size_t *out_len, faas_error_t *err);

/* ---- records.c / mongo.c ---- */

int faas_records_start(faas_registry_t *reg, faas_error_t *err);
void faas_records_stop(void);

/* metrics.c: served on the `metrics_listen` key, if set */
struct faas_registry_metrics {
    faas_metric_t *drained;
    faas_metric_t *malformed;
    faas_metric_t *lag;
    faas_metric_t *redis_reconnects;
};
extern struct faas_registry_metrics faas_registry_m;
int faas_registry_metrics_start(faas_registry_t *reg, faas_error_t *err);

faas_mongo_t *faas_mongo_open(const char *uri, faas_error_t *err);
void faas_mongo_close(faas_mongo_t *m);
/* Inserts records (JSON objects with request_id as _id); duplicates ignored. */
int faas_mongo_insert(faas_mongo_t *m, json_t *records, faas_error_t *err);
/*
 * Newest first (timestamp_ms, then _id), function == name, strictly before
 * (before, before_id) when before > 0. Returns a new array or NULL.
 */
json_t *faas_mongo_list(faas_mongo_t *m, const char *name,
                        long long min_version, long long before,
                        const char *before_id, long limit, faas_error_t *err);
/* The record of request_id if it is of name at min_version or later. */
json_t *faas_mongo_get(faas_mongo_t *m, const char *name,
                       long long min_version, const char *request_id,
                       faas_error_t *err);
/*
 * Up to limit records of name with a version <= max_version, as
 * {"request_id", "log_key"} objects (new array), or NULL.
 */
json_t *faas_mongo_doomed(faas_mongo_t *m, const char *name,
                          long long max_version, long limit,
                          faas_error_t *err);
/* Deletes the records whose request ids are in ids (a JSON array). */
int faas_mongo_delete(faas_mongo_t *m, json_t *ids, faas_error_t *err);

/* ---- http.c ---- */

typedef struct faas_http_req_s {
    const char *method;
    const char *path;       /* without the query string */
    const char *user;       /* X-Faas-User, a valid subject */
    int         admin;      /* X-Faas-Admin: 1 (the token's admin claim) */
    void       *conn;       /* struct MHD_Connection * */
    char       *body;
    size_t      len;
} faas_http_req_t;

typedef struct faas_http_resp_s {
    int         status;
    json_t     *json;
    char       *raw;        /* malloc'd raw body (instead of json) */
    size_t      raw_len;
    const char *ctype;
} faas_http_resp_t;

int faas_http_start(faas_registry_t *reg, faas_error_t *err);
void faas_http_stop(void);

/* ---- http_reply.c: what the handlers answer with ---- */

/* Value of a query-string argument or NULL. */
const char *faas_http_arg(faas_http_req_t *req, const char *name);

/* Fills resp with {"error":{"code","message"}}; returns status. */
int faas_http_error(faas_http_resp_t *resp, int status, const char *code,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Maps err->code to a status and fills resp. */
int faas_http_fail(faas_http_resp_t *resp, const faas_error_t *err);

/* The gateway vouched for an admin claim, or the subject is configured in
 * admin_subjects / admin_subject. */
int faas_is_admin(faas_registry_t *reg, const faas_http_req_t *req);

/* ---- api_*.c: handlers; each fills resp and returns its status ---- */

int faas_api_functions(faas_registry_t *reg, faas_http_req_t *req,
                       const char *name, const char *sub,
                       faas_http_resp_t *resp);
int faas_api_keys(faas_registry_t *reg, faas_http_req_t *req,
                  const char *name, const char *rest, faas_http_resp_t *resp);
int faas_api_executions(faas_registry_t *reg, faas_http_req_t *req,
                        const char *name, const char *rest,
                        faas_http_resp_t *resp);

/* A pooled connection once name is authorized for the request's user (the
 * owner or an admin), or NULL (err set: no connection, or FAAS_E_NOTFOUND,
 * also for someone else's function). */
MYSQL *faas_fn_open(faas_registry_t *reg, const faas_http_req_t *req,
                    const char *name, faas_error_t *err);

/* ---- fn_store.c: functions read from MySQL ---- */

/*
 * The function's current state (functions joined with its current version)
 * as a new JSON object, or NULL with FAAS_E_NOTFOUND / another error.
 */
json_t *faas_fn_load(MYSQL *c, const char *name, faas_error_t *err);

/* Names of every function (new JSON array) or NULL. */
json_t *faas_fn_names(MYSQL *c, faas_error_t *err);

/*
 * The first version of the function's current incarnation (DESIGN.md
 * section 7: records of older versions belong to a deleted function of the
 * same name), or < 0 with FAAS_E_NOTFOUND / another error.
 */
long long faas_fn_first_version(MYSQL *c, const char *name,
                                faas_error_t *err);

/* ---- quota.c: per-owner limits ---- */

/*
 * Inside a transaction: locks the owner's row (created if missing), then
 * checks that the owner's functions, with the function name (if not NULL)
 * counted as memory_mb x max_concurrency instead of what MySQL has for it,
 * stay within the owner_max_* limits. Returns 0, or < 0 with FAAS_E_QUOTA
 * and a message saying which limit, or a database error.
 */
int faas_quota_check(faas_registry_t *reg, MYSQL *c, const char *owner,
                     const char *name, long long memory_mb,
                     long long max_concurrency, faas_error_t *err);

/* ---- purge.c: what a deleted function leaves (DESIGN.md section 7) ---- */

/*
 * Deletes the execution records of name with a version <= last_version,
 * with their logs, then the purges row that asked for it. Safe to repeat.
 */
int faas_purge_run(faas_registry_t *reg, const char *name,
                   long long last_version, faas_error_t *err);

/* Whether key is the log of request_id of function name: exactly
 * logs/<name>/<yyyy-mm-dd>/<request-id>.log. */
int faas_log_key_of(const char *name, const char *request_id,
                    const char *key);

/*
 * Removes from recs (records about to be stored) those of no current
 * incarnation (their function deleted, or re-created since), deleting their
 * logs. Returns 0, or < 0 when MySQL cannot say (the batch waits).
 */
int faas_purge_late(faas_registry_t *reg, json_t *recs, faas_error_t *err);

/* Runs every purge still recorded in MySQL (after an interrupted delete). */
int faas_purge_pending(faas_registry_t *reg, faas_error_t *err);

#endif
