/*
 * /v1/functions: create, list, get, update (PATCH), delete, new code
 * (PUT .../code) and the version list.
 *
 * Order of writes for new code: the zip goes to the blob store first
 * (code/<name>/<version>/<sha256>.zip), then one MySQL transaction makes it
 * visible, then the Redis mirror is rewritten and faas:inval published. The
 * version number is reserved beforehand in version_seq (never reused, even
 * after a delete, so a rid never names two different codes).
 */
#include "registry.h"
#include "ids.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "cleanup.h"
#include "log.h"

#define HANDLER_MAX   128
#define ENV_MAX_VARS  64
#define ENV_KEY_MAX   128
#define ENV_VALUE_MAX 4096
#define ENV_JSON_MAX  16384

typedef struct fn_conf_s {
    const char *runtime;
    const char *handler;
    long long   memory_mb, timeout_ms, max_concurrency, keep_alive_s;
    int         public_;
    json_t     *env;        /* borrowed */
} fn_conf_t;

static void
release(faas_registry_t *reg, MYSQL **c, const faas_error_t *err)
{
    if (*c != NULL) {
        faas_db_release(reg->db, *c, err != NULL && faas_db_broken(err));
        *c = NULL;
    }
}


/* "path/to/module.function": module chars [A-Za-z0-9_./-], no "..". */
static int
valid_handler(const char *s)
{
    const char *dot = strrchr(s, '.');
    size_t      i, n = strlen(s);

    if (n == 0 || n > HANDLER_MAX || dot == NULL || dot == s || dot[1] == '\0'
        || s[0] == '/' || s[0] == '.' || strstr(s, "..") != NULL
        || strstr(s, "//") != NULL || dot[-1] == '/') {
        return 0;
    }
    for (i = 0; s + i < dot; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'
              || ch == '/' || ch == '.')) {
            return 0;
        }
    }
    for (i = 1; dot[i]; i++) {
        char ch = dot[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '_' || ch == '$')) {
            return 0;
        }
    }
    return 1;
}


static int
check_env(json_t *env, faas_error_t *err)
{
    const char *k;
    json_t     *v;
    size_t      i;
    cleanup_free char *dump = NULL;

    if (!json_is_object(env)) {
        return faas_error_set(err, 0, "env must be an object of strings");
    }
    if (json_object_size(env) > ENV_MAX_VARS) {
        return faas_error_set(err, 0, "env has more than %d variables",
                              ENV_MAX_VARS);
    }
    json_object_foreach(env, k, v) {
        size_t n = strlen(k);
        if (n == 0 || n > ENV_KEY_MAX || (k[0] >= '0' && k[0] <= '9')) {
            return faas_error_set(err, 0, "env: invalid variable name");
        }
        for (i = 0; i < n; i++) {
            char ch = k[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
                  || (ch >= '0' && ch <= '9') || ch == '_')) {
                return faas_error_set(err, 0,
                                      "env: invalid variable name %.64s", k);
            }
        }
        if (strncmp(k, "FAAS_", 5) == 0) {
            return faas_error_set(err, 0, "env: %.64s: FAAS_* is reserved",
                                  k);
        }
        if (!json_is_string(v)) {
            return faas_error_set(err, 0, "env: %.64s must be a string", k);
        }
        if (json_string_length(v) > ENV_VALUE_MAX
            || memchr(json_string_value(v), '\0', json_string_length(v))) {
            return faas_error_set(err, 0, "env: %.64s: value too long or"
                                  " has a NUL", k);
        }
    }
    dump = json_dumps(env, JSON_COMPACT);
    if (dump == NULL || strlen(dump) > ENV_JSON_MAX) {
        return faas_error_set(err, 0, "env is larger than %d bytes",
                              ENV_JSON_MAX);
    }
    return 0;
}


static int
get_int(json_t *body, const char *key, long long lo, long long hi,
        long long *out, faas_error_t *err)
{
    json_t *v = json_object_get(body, key);

    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo
        || json_integer_value(v) > hi) {
        return faas_error_set(err, 0, "%s must be an integer in [%lld, %lld]",
                              key, lo, hi);
    }
    *out = json_integer_value(v);
    return 0;
}


/* Reads body's optional config fields into conf (absent: kept as is). */
static int
parse_conf(json_t *body, fn_conf_t *conf, faas_error_t *err)
{
    json_t *v;

    if ((v = json_object_get(body, "runtime")) != NULL) {
        if (!json_is_string(v)
            || (strcmp(json_string_value(v), "python3") != 0
                && strcmp(json_string_value(v), "nodejs") != 0)) {
            return faas_error_set(err, 0,
                                  "runtime must be \"python3\" or \"nodejs\"");
        }
        conf->runtime = json_string_value(v);
    }
    if ((v = json_object_get(body, "handler")) != NULL) {
        if (!json_is_string(v) || !valid_handler(json_string_value(v))) {
            return faas_error_set(err, 0, "handler must look like"
                                  " \"file.function\" (at most %d characters,"
                                  " no \"..\")", HANDLER_MAX);
        }
        conf->handler = json_string_value(v);
    }
    if (get_int(body, "memory_mb", 32, 8192, &conf->memory_mb, err) < 0
        || get_int(body, "timeout_ms", 100, 900000, &conf->timeout_ms, err) < 0
        || get_int(body, "max_concurrency", 1, 10000, &conf->max_concurrency,
                   err) < 0
        || get_int(body, "keep_alive_s", 0, 86400, &conf->keep_alive_s, err)
               < 0) {
        return -1;
    }
    if ((v = json_object_get(body, "public")) != NULL) {
        if (!json_is_boolean(v)) {
            return faas_error_set(err, 0, "public must be true or false");
        }
        conf->public_ = json_is_true(v);
    }
    if ((v = json_object_get(body, "env")) != NULL) {
        if (check_env(v, err) < 0) {
            return -1;
        }
        conf->env = v;
    }
    return 0;
}


static int
check_fields(json_t *body, const char *const *allowed, faas_error_t *err)
{
    const char *k;
    json_t     *v;
    size_t      i;

    json_object_foreach(body, k, v) {
        for (i = 0; allowed[i] != NULL; i++) {
            if (strcmp(allowed[i], k) == 0) {
                break;
            }
        }
        if (allowed[i] == NULL) {
            return faas_error_set(err, 0, "unknown field \"%.64s\"", k);
        }
    }
    return 0;
}


static faas_zip_limits_t
limits(faas_registry_t *reg)
{
    faas_zip_limits_t l = {
        .max_entries = reg->max_zip_entries,
        .max_unzipped = reg->max_unzipped_bytes,
        .max_ratio = reg->max_zip_ratio,
        .tmp_dir = reg->tmp_dir,
        .python = reg->python,
        .node = reg->node,
        .timeout_ms = reg->syntax_check_timeout_ms,
    };
    return l;
}


/*
 * Checks that name exists and that user may see it (owner or admin).
 * Returns 0, or < 0 with FAAS_E_NOTFOUND (also for someone else's function).
 */
static int
fn_authorize(MYSQL *c, faas_registry_t *reg, const faas_http_req_t *req,
             const char *name, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    int        ok;

    if (!faas_name_valid(name, strlen(name))) {
        faas_error_set(err, 0, "no function named %.64s", name);
        err->code = FAAS_E_NOTFOUND;
        return -1;
    }
    if (faas_db_query(c, &res, err,
                      "SELECT owner FROM functions WHERE name = %s",
                      name) < 0) {
        return -1;
    }
    row = mysql_fetch_row(res);
    ok = row != NULL && (strcmp(row[0], req->user) == 0
                         || faas_is_admin(reg, req));
    mysql_free_result(res);
    if (!ok) {
        /* Someone else's function looks exactly like a missing one. */
        faas_error_set(err, 0, "no function named %s", name);
        err->code = FAAS_E_NOTFOUND;
        return -1;
    }
    return 0;
}


MYSQL *
faas_fn_open(faas_registry_t *reg, const faas_http_req_t *req,
             const char *name, faas_error_t *err)
{
    MYSQL *c = faas_db_acquire(reg->db, err);

    if (c != NULL && fn_authorize(c, reg, req, name, err) < 0) {
        release(reg, &c, err);
    }
    return c;
}


/* Reserves the next version number of name (committed on its own). */
static long long
reserve_version(MYSQL *c, const char *name, faas_error_t *err)
{
    long long n;

    n = faas_db_exec(c, err, "INSERT INTO version_seq (name, last_version)"
                     " VALUES (%s, 1) ON DUPLICATE KEY UPDATE last_version"
                     " = LAST_INSERT_ID(last_version + 1)", name);
    if (n < 0) {
        return n;
    }
    return n == 1 ? 1 : (long long) mysql_insert_id(c);
}


/* Puts the zip in the store; fills key (code/<name>/<v>/<sha>.zip), sha. */
static int
store_code(faas_registry_t *reg, const char *name, long long version,
           const void *zip, size_t len, char *key, size_t keysz,
           char sha[65], faas_error_t *err)
{
    faas_sha256_hex(zip, len, sha);
    snprintf(key, keysz, "code/%s/%lld/%s.zip", name, version, sha);
    if (faas_blob_put(reg->store, key, zip, len, err) < 0) {
        faas_error_wrap(err, "code store");
        err->code = FAAS_E_UNAVAILABLE;
        return -1;
    }
    return 0;
}


static void
rollback(MYSQL *c)
{
    if (c != NULL) {
        mysql_query(c, "ROLLBACK");
    }
}


static int
insert_version(MYSQL *c, const char *name, long long version,
               const fn_conf_t *conf, const char *key, const char *sha,
               size_t size, faas_error_t *err)
{
    cleanup_free char *env = conf->env == NULL ? strdup("{}")
                             : json_dumps(conf->env,
                                          JSON_COMPACT | JSON_SORT_KEYS);

    if (env == NULL) {
        return faas_error_set(err, ENOMEM, "env");
    }
    return faas_db_exec(c, err, "INSERT INTO versions (name, version, runtime,"
                        " handler, memory_mb, timeout_ms, keep_alive_s, env,"
                        " code_key, code_sha256, code_size) VALUES (%s, %L,"
                        " %s, %s, %L, %L, %L, %s, %s, %s, %U)", name, version,
                        conf->runtime, conf->handler, conf->memory_mb,
                        conf->timeout_ms, conf->keep_alive_s, env, key, sha,
                        (unsigned long long) size) < 0 ? -1 : 0;
}


/* Answers with the function as MySQL now has it (after a write). */
static int
answer_fn(faas_registry_t *reg, MYSQL *c, const char *name, int status,
          faas_http_resp_t *resp)
{
    faas_error_t err;
    json_t      *fn;

    faas_error_clear(&err);
    if (faas_mirror_sync(reg, c, name, &err) < 0) {
        faas_warn(NULL, "mirror of %s left for repair: %s", name, err.msg);
    }
    fn = faas_fn_load(c, name, &err);
    if (fn == NULL) {
        return faas_http_fail(resp, &err);
    }
    resp->json = fn;
    resp->status = status;
    return status;
}


/* Checks a create body and fills name and conf; returns 0, or the status of
 * the error it filled resp with. */
static int
create_body(json_t *body, const char **name, fn_conf_t *conf,
            faas_http_resp_t *resp)
{
    static const char *const allowed[] = {
        "name", "runtime", "handler", "memory_mb", "timeout_ms",
        "max_concurrency", "keep_alive_s", "env", "public", "code", NULL };
    faas_error_t  err;
    json_t       *v;

    faas_error_clear(&err);
    if (!json_is_object(body)) {
        return faas_http_error(resp, 400, "invalid",
                               "body must be a JSON object");
    }
    if (check_fields(body, allowed, &err) < 0) {
        return faas_http_error(resp, 400, "invalid", "%s", err.msg);
    }
    v = json_object_get(body, "name");
    if (!json_is_string(v)
        || !faas_name_valid(json_string_value(v), json_string_length(v))) {
        return faas_http_error(resp, 400, "invalid",
                               "name must match [a-z][a-z0-9-]{0,62}");
    }
    *name = json_string_value(v);
    if (parse_conf(body, conf, &err) < 0) {
        return faas_http_error(resp, 400, "invalid", "%s", err.msg);
    }
    if (conf->runtime == NULL || conf->handler == NULL) {
        return faas_http_error(resp, 400, "invalid",
                               "runtime and handler are required");
    }
    return 0;
}


/* A plain .py, .js, .mjs or .cjs file name, at most 64 bytes. */
static int
valid_code_file(const char *fn)
{
    size_t n = strlen(fn);

    return !(n > 64 || strchr(fn, '/') || fn[0] == '.' || n < 4
             || (strcmp(fn + n - 3, ".py") != 0
                 && strcmp(fn + n - 3, ".js") != 0
                 && (n < 5 || (strcmp(fn + n - 4, ".mjs") != 0
                               && strcmp(fn + n - 4, ".cjs") != 0))));
}


/* {"file": name, "content": text} -> a zip holding that one file; returns 0,
 * or the status of the error it filled resp with. */
static int
file_code_zip(faas_registry_t *reg, json_t *code, uint8_t **zip,
              size_t *ziplen, faas_http_resp_t *resp)
{
    json_t       *f = json_object_get(code, "file");
    json_t       *t = json_object_get(code, "content");
    void         *out;
    faas_error_t  err;

    faas_error_clear(&err);
    if (!json_is_string(f) || !json_is_string(t)) {
        return faas_http_error(resp, 400, "invalid", "code needs \"zip\""
                               " or \"file\" and \"content\"");
    }
    if (!valid_code_file(json_string_value(f))) {
        return faas_http_error(resp, 400, "invalid", "code.file must be a"
                               " plain .py, .js, .mjs or .cjs file name");
    }
    if (json_string_length(t) > reg->max_upload_bytes) {
        return faas_http_error(resp, 413, "too_large",
                               "code is larger than %zu bytes",
                               reg->max_upload_bytes);
    }
    if (faas_zip_wrap(json_string_value(f), json_string_value(t),
                      json_string_length(t), &out, ziplen, &err) < 0) {
        return faas_http_fail(resp, &err);
    }
    *zip = out;
    return 0;
}


/* The body's "code" as zip bytes, checked against the limits and the
 * runtime's handler; returns 0, or the status of the error it filled resp
 * with. */
static int
create_code(faas_registry_t *reg, json_t *body, const fn_conf_t *conf,
            uint8_t **zip, size_t *ziplen, faas_http_resp_t *resp)
{
    json_t            *code = json_object_get(body, "code");
    json_t            *v;
    faas_error_t       err;
    faas_zip_limits_t  lim = limits(reg);
    int                rc;

    faas_error_clear(&err);
    if (!json_is_object(code)) {
        return faas_http_error(resp, 400, "invalid", "code is required:"
                               " {\"zip\": base64} or {\"file\": name,"
                               " \"content\": text}");
    }
    if ((v = json_object_get(code, "zip")) != NULL) {
        if (!json_is_string(v)
            || faas_base64_decode(json_string_value(v), json_string_length(v),
                                  zip, ziplen) < 0) {
            return faas_http_error(resp, 400, "invalid",
                                   "code.zip must be base64");
        }
    } else if ((rc = file_code_zip(reg, code, zip, ziplen, resp)) != 0) {
        return rc;
    }
    if (*ziplen > reg->max_upload_bytes) {
        return faas_http_error(resp, 413, "too_large",
                               "code is larger than %zu bytes",
                               reg->max_upload_bytes);
    }
    if (faas_zip_check(*zip, *ziplen, conf->runtime, conf->handler, &lim,
                       &err) < 0) {
        if (err.code == FAAS_E_INVALID) {
            return faas_http_error(resp, 400, "bad_code", "%s", err.msg);
        }
        return faas_http_fail(resp, &err);
    }
    return 0;
}


/* 1 if a function of that name exists, 0 if not, -1 on error. */
static int
function_exists(MYSQL *c, const char *name, faas_error_t *err)
{
    MYSQL_RES *res;
    int        exists;

    if (faas_db_query(c, &res, err, "SELECT 1 FROM functions WHERE name = %s",
                      name) < 0) {
        return -1;
    }
    exists = mysql_num_rows(res) > 0;
    mysql_free_result(res);
    return exists;
}


/* One transaction: the owner, the function and its first version, which
 * starts the name's new incarnation (first_version). */
static int
insert_function(faas_registry_t *reg, MYSQL *c, const char *user,
                const char *name, long long version, const fn_conf_t *conf,
                const char *key, const char *sha, size_t ziplen,
                faas_error_t *err)
{
    if (faas_db_exec(c, err, "START TRANSACTION") < 0
        || faas_db_exec(c, err, "INSERT IGNORE INTO owners (subject)"
                        " VALUES (%s)", user) < 0
        || faas_quota_check(reg, c, user, name, conf->memory_mb,
                            conf->max_concurrency, err) < 0
        || faas_db_exec(c, err, "INSERT INTO functions (name, owner,"
                        " current_version, first_version, public,"
                        " max_concurrency) VALUES (%s, %s, %L, %L, %d, %L)",
                        name, user, version, version, conf->public_,
                        conf->max_concurrency) < 0
        || insert_version(c, name, version, conf, key, sha, ziplen, err) < 0
        || faas_db_exec(c, err, "COMMIT") < 0) {
        return -1;
    }
    return 0;
}


/* The transaction failed: roll back, take the stored zip back (nothing
 * refers to it) and answer. */
static int
create_failed(faas_registry_t *reg, MYSQL **c, const char *name,
              const char *key, faas_error_t *err, faas_http_resp_t *resp)
{
    faas_error_t e2;

    rollback(faas_db_broken(err) ? NULL : *c);
    release(reg, c, err);
    if (faas_blob_delete(reg->store, key, &e2) < 0) {
        faas_warn(NULL, "orphan code blob %s: %s", key, e2.msg);
    }
    if (err->code == FAAS_E_EXISTS) {
        return faas_http_error(resp, 409, "conflict",
                               "a function named %s exists", name);
    }
    return faas_http_fail(resp, err);
}


/* Stores the code, then records the function in one transaction. */
static int
create_function(faas_registry_t *reg, faas_http_req_t *req, const char *name,
                const fn_conf_t *conf, const uint8_t *zip, size_t ziplen,
                faas_http_resp_t *resp)
{
    faas_error_t  err;
    MYSQL        *c;
    long long     version;
    char          key[256], sha[65];
    int           exists, rc;

    faas_error_clear(&err);
    c = faas_db_acquire(reg->db, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    exists = function_exists(c, name, &err);
    if (exists < 0) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    if (exists) {
        release(reg, &c, NULL);
        return faas_http_error(resp, 409, "conflict",
                               "a function named %s exists", name);
    }
    version = reserve_version(c, name, &err);
    if (version < 0) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    if (store_code(reg, name, version, zip, ziplen, key, sizeof(key), sha,
                   &err) < 0) {
        release(reg, &c, NULL);
        return faas_http_fail(resp, &err);
    }
    if (insert_function(reg, c, req->user, name, version, conf, key, sha,
                        ziplen, &err) < 0) {
        return create_failed(reg, &c, name, key, &err, resp);
    }
    faas_info(NULL, "created %s@%lld for %s", name, version, req->user);
    rc = answer_fn(reg, c, name, 201, resp);
    release(reg, &c, NULL);
    return rc;
}


static int
fn_create(faas_registry_t *reg, faas_http_req_t *req, faas_http_resp_t *resp)
{
    cleanup_json json_t *body = NULL;
    cleanup_free uint8_t *zip = NULL;
    fn_conf_t          conf = { NULL, NULL, 128, 3000, 10, 600, 0, NULL };
    const char        *name = NULL;
    size_t             ziplen = 0;
    int                rc;

    body = json_loadb(req->body ? req->body : "", req->len, 0, NULL);
    rc = create_body(body, &name, &conf, resp);
    if (rc == 0) {
        rc = create_code(reg, body, &conf, &zip, &ziplen, resp);
    }
    if (rc != 0) {
        return rc;
    }
    return create_function(reg, req, name, &conf, zip, ziplen, resp);
}


/* Inside a transaction: the owner limits, with name's new conf. */
static int
fn_quota(faas_registry_t *reg, MYSQL *c, const char *name,
         const fn_conf_t *conf, faas_error_t *err)
{
    MYSQL_RES         *res;
    MYSQL_ROW          row;
    cleanup_free char *owner = NULL;

    if (faas_db_query(c, &res, err, "SELECT owner FROM functions WHERE"
                      " name = %s", name) < 0) {
        return -1;
    }
    row = mysql_fetch_row(res);
    owner = row != NULL ? strdup(row[0]) : NULL;
    mysql_free_result(res);
    if (owner == NULL) {
        /* Gone meanwhile: the write that follows answers 404. */
        return 0;
    }
    return faas_quota_check(reg, c, owner, name, conf->memory_mb,
                            conf->max_concurrency, err);
}


/*
 * Writes a new version of name with conf and code (key/sha/size) in one
 * transaction. It becomes current only if base is still the current version
 * (optimistic concurrency): otherwise 409, or 404 if the function is gone.
 */
static int
new_version(faas_registry_t *reg, MYSQL *c, const char *name,
            const fn_conf_t *conf, long long base, long long version,
            const char *key, const char *sha, size_t size, faas_error_t *err)
{
    MYSQL_RES *res;
    long long  n;
    int        rc, exists = 0;

    rc = faas_db_exec(c, err, "START TRANSACTION") < 0
         || fn_quota(reg, c, name, conf, err) < 0
         || insert_version(c, name, version, conf, key, sha, size, err) < 0;
    if (!rc) {
        n = faas_db_exec(c, err, "UPDATE functions SET current_version = %L,"
                         " public = %d, max_concurrency = %L,"
                         " updated_at = CURRENT_TIMESTAMP WHERE name = %s"
                         " AND current_version = %L", version, conf->public_,
                         conf->max_concurrency, name, base);
        if (n == 0) {
            if (faas_db_query(c, &res, err, "SELECT 1 FROM functions WHERE"
                              " name = %s", name) == 0) {
                exists = mysql_num_rows(res) > 0;
                mysql_free_result(res);
                faas_error_set(err, 0, exists
                               ? "%s changed while this request ran: retry"
                               : "no function named %s", name);
                err->code = exists ? FAAS_E_EXISTS : FAAS_E_NOTFOUND;
            }
        }
        rc = n <= 0 || faas_db_exec(c, err, "COMMIT") < 0;
    }
    if (rc) {
        rollback(faas_db_broken(err) ? NULL : c);
        return -1;
    }
    return 0;
}


static void
conf_from(json_t *fn, fn_conf_t *conf)
{
    conf->runtime = json_string_value(json_object_get(fn, "runtime"));
    conf->handler = json_string_value(json_object_get(fn, "handler"));
    conf->memory_mb = json_integer_value(json_object_get(fn, "memory_mb"));
    conf->timeout_ms = json_integer_value(json_object_get(fn, "timeout_ms"));
    conf->max_concurrency =
        json_integer_value(json_object_get(fn, "max_concurrency"));
    conf->keep_alive_s =
        json_integer_value(json_object_get(fn, "keep_alive_s"));
    conf->public_ = json_is_true(json_object_get(fn, "public"));
    conf->env = json_object_get(fn, "env");
}


static int
fn_put_code(faas_registry_t *reg, faas_http_req_t *req, const char *name,
            faas_http_resp_t *resp)
{
    cleanup_json json_t *fn = NULL;
    faas_error_t       err;
    fn_conf_t          conf;
    MYSQL             *c;
    long long          version, base;
    char               key[256], sha[65];
    const char        *h;
    int                rc;
    faas_zip_limits_t  lim = limits(reg);

    faas_error_clear(&err);
    if (req->len == 0) {
        return faas_http_error(resp, 400, "invalid",
                               "the body must be the zip file");
    }
    if (req->len > reg->max_upload_bytes) {
        return faas_http_error(resp, 413, "too_large",
                               "code is larger than %zu bytes",
                               reg->max_upload_bytes);
    }
    c = faas_fn_open(reg, req, name, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    if ((fn = faas_fn_load(c, name, &err)) == NULL) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    conf_from(fn, &conf);
    base = (long long) json_integer_value(json_object_get(fn, "version"));
    h = faas_http_arg(req, "handler");
    if (h != NULL) {
        if (!valid_handler(h)) {
            release(reg, &c, NULL);
            return faas_http_error(resp, 400, "invalid", "handler must look"
                                   " like \"file.function\"");
        }
        conf.handler = h;
    }
    /* The syntax check may take seconds: give the connection back. */
    release(reg, &c, NULL);
    if (faas_zip_check(req->body, req->len, conf.runtime, conf.handler, &lim,
                       &err) < 0) {
        if (err.code == FAAS_E_INVALID) {
            return faas_http_error(resp, 400, "bad_code", "%s", err.msg);
        }
        return faas_http_fail(resp, &err);
    }
    c = faas_db_acquire(reg->db, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    version = reserve_version(c, name, &err);
    if (version < 0) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    if (store_code(reg, name, version, req->body, req->len, key, sizeof(key),
                   sha, &err) < 0) {
        release(reg, &c, NULL);
        return faas_http_fail(resp, &err);
    }
    if (new_version(reg, c, name, &conf, base, version, key, sha, req->len,
                    &err) < 0) {
        faas_error_t e2;
        release(reg, &c, &err);
        if (faas_blob_delete(reg->store, key, &e2) < 0) {
            faas_warn(NULL, "orphan code blob %s: %s", key, e2.msg);
        }
        return faas_http_fail(resp, &err);
    }
    faas_info(NULL, "new code %s@%lld", name, version);
    rc = answer_fn(reg, c, name, 200, resp);
    release(reg, &c, NULL);
    return rc;
}


static int
fn_patch(faas_registry_t *reg, faas_http_req_t *req, const char *name,
         faas_http_resp_t *resp)
{
    static const char *const allowed[] = {
        "handler", "memory_mb", "timeout_ms", "max_concurrency",
        "keep_alive_s", "env", "public", NULL };
    static const char *const sandbox_fields[] = {
        "handler", "memory_mb", "timeout_ms", "keep_alive_s", "env", NULL };
    cleanup_json json_t *body = NULL, *fn = NULL;
    cleanup_free void *zip = NULL;
    faas_error_t       err;
    fn_conf_t          conf;
    MYSQL             *c;
    size_t             ziplen, i;
    long long          version, base;
    int                rc, new_rev = 0;
    faas_zip_limits_t  lim = limits(reg);

    faas_error_clear(&err);
    body = json_loadb(req->body ? req->body : "", req->len, 0, NULL);
    if (!json_is_object(body)) {
        return faas_http_error(resp, 400, "invalid",
                               "body must be a JSON object");
    }
    if (json_object_get(body, "runtime") || json_object_get(body, "name")) {
        return faas_http_error(resp, 400, "invalid", "name and runtime cannot"
                               " change: create a new function");
    }
    if (check_fields(body, allowed, &err) < 0) {
        return faas_http_error(resp, 400, "invalid", "%s", err.msg);
    }
    c = faas_fn_open(reg, req, name, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    if ((fn = faas_fn_load(c, name, &err)) == NULL) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    conf_from(fn, &conf);
    base = (long long) json_integer_value(json_object_get(fn, "version"));
    if (parse_conf(body, &conf, &err) < 0) {
        release(reg, &c, NULL);
        return faas_http_error(resp, 400, "invalid", "%s", err.msg);
    }
    for (i = 0; sandbox_fields[i] != NULL; i++) {
        new_rev |= json_object_get(body, sandbox_fields[i]) != NULL;
    }
    if (!new_rev) {
        if (faas_db_exec(c, &err, "START TRANSACTION") < 0
            || fn_quota(reg, c, name, &conf, &err) < 0
            || faas_db_exec(c, &err, "UPDATE functions SET public = %d,"
                            " max_concurrency = %L, updated_at ="
                            " CURRENT_TIMESTAMP WHERE name = %s",
                            conf.public_, conf.max_concurrency, name) < 0
            || faas_db_exec(c, &err, "COMMIT") < 0) {
            rollback(faas_db_broken(&err) ? NULL : c);
            release(reg, &c, &err);
            return faas_http_fail(resp, &err);
        }
    } else {
        /* What a sandbox sees changed: a new revision on the same code. */
        const char *key = json_string_value(json_object_get(fn, "code_key"));
        const char *sha = json_string_value(json_object_get(fn, "code_sha256"));
        size_t size = (size_t) json_integer_value(json_object_get(fn,
                                                                  "code_size"));

        if (json_object_get(body, "handler") != NULL) {
            if (faas_blob_get(reg->store, key, &zip, &ziplen,
                              reg->max_upload_bytes, &err) < 0) {
                release(reg, &c, NULL);
                err.code = FAAS_E_UNAVAILABLE;
                return faas_http_fail(resp, &err);
            }
            if (faas_zip_check(zip, ziplen, conf.runtime, conf.handler, &lim,
                               &err) < 0) {
                release(reg, &c, NULL);
                if (err.code == FAAS_E_INVALID) {
                    return faas_http_error(resp, 400, "bad_code", "%s",
                                           err.msg);
                }
                return faas_http_fail(resp, &err);
            }
        }
        version = reserve_version(c, name, &err);
        if (version < 0
            || new_version(reg, c, name, &conf, base, version, key, sha, size,
                           &err) < 0) {
            release(reg, &c, &err);
            return faas_http_fail(resp, &err);
        }
    }
    rc = answer_fn(reg, c, name, 200, resp);
    release(reg, &c, NULL);
    return rc;
}


/*
 * Inside the delete's transaction: the last version the name ever had, and
 * a purges row asking for every record up to it (with its log) to go. The
 * row is removed only once they are gone, so an interrupted purge is finished
 * by the repair thread (DESIGN.md section 7).
 */
static long long
plan_purge(MYSQL *c, const char *name, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    long long  last;

    if (faas_db_query(c, &res, err, "SELECT last_version FROM version_seq"
                      " WHERE name = %s FOR UPDATE", name) < 0) {
        return -1;
    }
    row = mysql_fetch_row(res);
    last = row != NULL ? atoll(row[0]) : 0;
    mysql_free_result(res);
    if (faas_db_exec(c, err, "INSERT IGNORE INTO purges (name, last_version)"
                     " VALUES (%s, %L)", name, last) < 0) {
        return -1;
    }
    return last;
}


static int
fn_delete(faas_registry_t *reg, faas_http_req_t *req, const char *name,
          faas_http_resp_t *resp)
{
    faas_error_t err;
    MYSQL       *c;
    MYSQL_RES   *res;
    MYSQL_ROW    row;
    json_t      *keys;
    size_t       i;
    int          rc;
    long long    last = -1;

    faas_error_clear(&err);
    c = faas_fn_open(reg, req, name, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    if (faas_db_query(c, &res, &err, "SELECT DISTINCT code_key FROM"
                      " versions WHERE name = %s", name) < 0) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    keys = json_array();
    while ((row = mysql_fetch_row(res)) != NULL) {
        json_array_append_new(keys, json_string(row[0]));
    }
    mysql_free_result(res);
    rc = faas_db_exec(c, &err, "START TRANSACTION") < 0
         || faas_db_exec(c, &err, "DELETE FROM access_keys WHERE name = %s",
                         name) < 0
         || faas_db_exec(c, &err, "DELETE FROM versions WHERE name = %s",
                         name) < 0
         || faas_db_exec(c, &err, "DELETE FROM functions WHERE name = %s",
                         name) < 0
         || (last = plan_purge(c, name, &err)) < 0
         || faas_db_exec(c, &err, "COMMIT") < 0;
    if (rc) {
        rollback(faas_db_broken(&err) ? NULL : c);
        release(reg, &c, &err);
        json_decref(keys);
        return faas_http_fail(resp, &err);
    }
    if (faas_mirror_sync(reg, c, name, &err) < 0) {
        faas_warn(NULL, "mirror of %s left for repair: %s", name, err.msg);
    }
    release(reg, &c, NULL);
    /* The code goes last: a failure here leaves garbage, never a hole. */
    for (i = 0; i < json_array_size(keys); i++) {
        const char *k = json_string_value(json_array_get(keys, i));
        if (faas_blob_delete(reg->store, k, &err) < 0) {
            faas_warn(NULL, "delete %s: %s", k, err.msg);
        }
    }
    json_decref(keys);
    if (faas_purge_run(reg, name, last, &err) < 0) {
        faas_warn(NULL, "records and logs of %s left for the repair: %s",
                  name, err.msg);
    }
    faas_info(NULL, "deleted %s", name);
    resp->json = json_pack("{s:s}", "deleted", name);
    resp->status = 200;
    return 200;
}


static int
fn_get(faas_registry_t *reg, faas_http_req_t *req, const char *name,
       faas_http_resp_t *resp)
{
    faas_error_t err;
    MYSQL       *c;
    json_t      *fn;

    faas_error_clear(&err);
    c = faas_fn_open(reg, req, name, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    if ((fn = faas_fn_load(c, name, &err)) == NULL) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    release(reg, &c, NULL);
    resp->json = fn;
    resp->status = 200;
    return 200;
}


static int
fn_list(faas_registry_t *reg, faas_http_req_t *req, faas_http_resp_t *resp)
{
    faas_error_t err;
    MYSQL       *c;
    MYSQL_RES   *res;
    MYSQL_ROW    row;
    json_t      *list, *fn;
    int          admin = faas_is_admin(reg, req);

    faas_error_clear(&err);
    c = faas_db_acquire(reg->db, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    if (faas_db_query(c, &res, &err, admin
                          ? "SELECT name FROM functions ORDER BY name"
                          : "SELECT name FROM functions WHERE owner = %s"
                            " ORDER BY name", req->user) < 0) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    list = json_array();
    while ((row = mysql_fetch_row(res)) != NULL) {
        fn = faas_fn_load(c, row[0], &err);
        if (fn != NULL) {
            json_array_append_new(list, fn);
        } else if (err.code != FAAS_E_NOTFOUND) {
            break;
        }
    }
    mysql_free_result(res);
    if (err.code != 0 && err.code != FAAS_E_NOTFOUND) {
        json_decref(list);
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    release(reg, &c, NULL);
    resp->json = json_pack("{s:o}", "functions", list);
    resp->status = 200;
    return 200;
}


static int
fn_versions(faas_registry_t *reg, faas_http_req_t *req, const char *name,
            faas_http_resp_t *resp)
{
    faas_error_t err;
    MYSQL       *c;
    MYSQL_RES   *res;
    MYSQL_ROW    row;
    json_t      *list;

    faas_error_clear(&err);
    c = faas_fn_open(reg, req, name, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    if (faas_db_query(c, &res, &err, "SELECT version, runtime, handler,"
                      " memory_mb, timeout_ms, keep_alive_s, code_key,"
                      " code_sha256, code_size, DATE_FORMAT(created_at,"
                      " '%%Y-%%m-%%dT%%H:%%i:%%sZ') FROM versions WHERE"
                      " name = %s ORDER BY version DESC", name) < 0) {
        release(reg, &c, &err);
        return faas_http_fail(resp, &err);
    }
    release(reg, &c, NULL);
    list = json_array();
    while ((row = mysql_fetch_row(res)) != NULL) {
        json_array_append_new(list, json_pack(
            "{s:I,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:I,s:s}",
            "version", (json_int_t) atoll(row[0]), "runtime", row[1],
            "handler", row[2], "memory_mb", (json_int_t) atoll(row[3]),
            "timeout_ms", (json_int_t) atoll(row[4]),
            "keep_alive_s", (json_int_t) atoll(row[5]), "code_key", row[6],
            "code_sha256", row[7], "code_size", (json_int_t) atoll(row[8]),
            "created_at", row[9]));
    }
    mysql_free_result(res);
    resp->json = json_pack("{s:s,s:o}", "name", name, "versions", list);
    resp->status = 200;
    return 200;
}


int
faas_api_functions(faas_registry_t *reg, faas_http_req_t *req,
                   const char *name, const char *sub, faas_http_resp_t *resp)
{
    const char *m = req->method;

    if (name == NULL) {
        if (strcmp(m, "GET") == 0) {
            return fn_list(reg, req, resp);
        }
        if (strcmp(m, "POST") == 0) {
            return fn_create(reg, req, resp);
        }
        return faas_http_error(resp, 405, "method_not_allowed",
                               "use GET or POST");
    }
    if (!faas_name_valid(name, strlen(name))) {
        return faas_http_error(resp, 404, "not_found", "no function named"
                               " %.64s", name);
    }
    if (sub[0] == '\0') {
        if (strcmp(m, "GET") == 0) {
            return fn_get(reg, req, name, resp);
        }
        if (strcmp(m, "PATCH") == 0) {
            return fn_patch(reg, req, name, resp);
        }
        if (strcmp(m, "DELETE") == 0) {
            return fn_delete(reg, req, name, resp);
        }
        return faas_http_error(resp, 405, "method_not_allowed",
                               "use GET, PATCH or DELETE");
    }
    if (strcmp(sub, "code") == 0) {
        if (strcmp(m, "PUT") == 0) {
            return fn_put_code(reg, req, name, resp);
        }
        return faas_http_error(resp, 405, "method_not_allowed", "use PUT");
    }
    if (strcmp(sub, "versions") == 0) {
        if (strcmp(m, "GET") == 0) {
            return fn_versions(reg, req, name, resp);
        }
        return faas_http_error(resp, 405, "method_not_allowed", "use GET");
    }
    return faas_http_error(resp, 404, "not_found", "no such endpoint");
}
