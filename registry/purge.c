/*
 * What a deleted function leaves behind (DESIGN.md section 7): its
 * execution records (MySQL or MongoDB) and their logs in the store.
 *
 * The delete's transaction adds a `purges` row (name, last_version): every
 * record of the name with a version up to last_version belongs to the
 * deleted incarnation (versions are never reused, so a re-created name only
 * has later ones). A purge takes the records a batch at a time, deletes
 * their logs, then the records, and deletes the row last: interrupted
 * anywhere, running it again finishes it. The delete runs it at once; the
 * mirror's repair thread runs what is still recorded. A record that reaches
 * the drain after its function was deleted (a call that ended meanwhile) is
 * dropped there, with its log if already written (faas_purge_late).
 */
#include "registry.h"
#include "ids.h"

#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"

#define PURGE_BATCH 500


int
faas_log_key_of(const char *name, const char *request_id, const char *key)
{
    size_t n = strlen(name), i;
    const char *d;

    /* logs/<name>/<yyyy-mm-dd>/<request-id>.log, as the agent writes it */
    if (strncmp(key, "logs/", 5) != 0 || strncmp(key + 5, name, n) != 0
        || key[5 + n] != '/') {
        return 0;
    }
    d = key + 5 + n + 1;
    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7 ? d[i] != '-' : (d[i] < '0' || d[i] > '9')) {
            return 0;
        }
    }
    return d[10] == '/' && strncmp(d + 11, request_id, 32) == 0
           && strlen(request_id) == 32 && strcmp(d + 43, ".log") == 0;
}


static json_t *
doomed_mysql(MYSQL *c, const char *name, long long last, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    json_t    *a;

    if (faas_db_query(c, &res, err, "SELECT request_id, log_key FROM"
                      " executions WHERE function = %s AND version <= %L"
                      " LIMIT %d", name, last, PURGE_BATCH) < 0) {
        return NULL;
    }
    a = json_array();
    while ((row = mysql_fetch_row(res)) != NULL) {
        json_array_append_new(a, json_pack("{s:s,s:s}", "request_id", row[0],
                                           "log_key", row[1]));
    }
    mysql_free_result(res);
    return a;
}


static int
delete_mysql(MYSQL *c, json_t *batch, faas_error_t *err)
{
    cleanup_free char *ids = strdup("");
    json_t *r;
    size_t  i;

    json_array_foreach(batch, i, r) {
        char *q = faas_db_fmt(c, "%r%r%s", ids, i ? "," : "",
                              json_string_value(json_object_get(r,
                                                                "request_id")));
        if (q == NULL) {
            return faas_error_set(err, 0, "out of memory");
        }
        free(ids);
        ids = q;
    }
    return faas_db_exec(c, err, "DELETE FROM executions WHERE request_id IN"
                        " (%r)", ids) < 0 ? -1 : 0;
}


/* Deletes the logs of a batch; a key outside the function's own prefix is
 * not ours to delete and is left alone. */
static int
delete_logs(faas_registry_t *reg, const char *name, json_t *batch,
            faas_error_t *err)
{
    json_t     *r;
    size_t      i;
    const char *key, *rid;

    json_array_foreach(batch, i, r) {
        key = json_string_value(json_object_get(r, "log_key"));
        rid = json_string_value(json_object_get(r, "request_id"));
        if (key == NULL || rid == NULL || !faas_log_key_of(name, rid, key)) {
            continue;
        }
        if (faas_blob_delete(reg->store, key, err) < 0) {
            err->code = FAAS_E_UNAVAILABLE;
            return faas_error_wrap(err, "log store");
        }
    }
    return 0;
}


/* One batch: its logs, then its records. Returns its size or < 0. */
static long
purge_batch(faas_registry_t *reg, MYSQL *c, const char *name,
            long long last, faas_error_t *err)
{
    cleanup_json json_t *batch = NULL, *ids = NULL;
    json_t *r;
    size_t  i;

    batch = reg->mongo ? faas_mongo_doomed(reg->mongo, name, last,
                                           PURGE_BATCH, err)
                       : doomed_mysql(c, name, last, err);
    if (batch == NULL || delete_logs(reg, name, batch, err) < 0) {
        return -1;
    }
    if (json_array_size(batch) == 0) {
        return 0;
    }
    if (!reg->mongo) {
        return delete_mysql(c, batch, err) < 0
               ? -1 : (long) json_array_size(batch);
    }
    ids = json_array();
    json_array_foreach(batch, i, r) {
        json_array_append(ids, json_object_get(r, "request_id"));
    }
    return faas_mongo_delete(reg->mongo, ids, err) < 0
           ? -1 : (long) json_array_size(batch);
}


int
faas_purge_run(faas_registry_t *reg, const char *name, long long last_version,
               faas_error_t *err)
{
    MYSQL *c;
    long   n;
    int    rc = 0;

    c = faas_db_acquire(reg->db, err);
    if (c == NULL) {
        return -1;
    }
    while ((n = purge_batch(reg, c, name, last_version, err)) > 0) {
        faas_debug(NULL, "purge %s: %ld records and logs deleted", name, n);
    }
    if (n < 0
        || faas_db_exec(c, err, "DELETE FROM purges WHERE name = %s AND"
                        " last_version = %L", name, last_version) < 0) {
        rc = -1;
    }
    faas_db_release(reg->db, c, rc < 0 && faas_db_broken(err));
    return rc;
}


int
faas_purge_pending(faas_registry_t *reg, faas_error_t *err)
{
    cleanup_json json_t *unfinished = json_array();
    MYSQL_RES *res;
    MYSQL_ROW  row;
    MYSQL     *c;
    json_t    *p;
    size_t     i;

    c = faas_db_acquire(reg->db, err);
    if (c == NULL) {
        return -1;
    }
    if (faas_db_query(c, &res, err, "SELECT name, last_version FROM purges"
                      " ORDER BY created_at LIMIT 100") < 0) {
        faas_db_release(reg->db, c, faas_db_broken(err));
        return -1;
    }
    while ((row = mysql_fetch_row(res)) != NULL) {
        json_array_append_new(unfinished, json_pack("{s:s,s:I}", "name", row[0],
                                              "last", (json_int_t)
                                              atoll(row[1])));
    }
    mysql_free_result(res);
    faas_db_release(reg->db, c, 0);
    json_array_foreach(unfinished, i, p) {
        const char *name = json_string_value(json_object_get(p, "name"));

        if (faas_purge_run(reg, name, json_integer_value(json_object_get(
                               p, "last")), err) < 0) {
            return faas_error_wrap(err, "purge of %s", name);
        }
        faas_info(NULL, "purge of deleted function %s finished", name);
    }
    return 0;
}


/* {name: first_version} of the functions the records name (new object). */
static json_t *
incarnations(MYSQL *c, json_t *recs, faas_error_t *err)
{
    cleanup_free char *names = strdup("");
    MYSQL_RES *res;
    MYSQL_ROW  row;
    json_t    *r, *out;
    size_t     i;

    json_array_foreach(recs, i, r) {
        char *q = faas_db_fmt(c, "%r%r%s", names, i ? "," : "",
                              json_string_value(json_object_get(r,
                                                                "function")));
        if (q == NULL) {
            faas_error_set(err, 0, "out of memory");
            return NULL;
        }
        free(names);
        names = q;
    }
    if (faas_db_query(c, &res, err, "SELECT name, first_version FROM"
                      " functions WHERE name IN (%r)", names) < 0) {
        return NULL;
    }
    out = json_object();
    while ((row = mysql_fetch_row(res)) != NULL) {
        json_object_set_new(out, row[0], json_integer(atoll(row[1])));
    }
    mysql_free_result(res);
    return out;
}


int
faas_purge_late(faas_registry_t *reg, json_t *recs, faas_error_t *err)
{
    cleanup_json json_t *live = NULL, *dead = json_array();
    faas_error_t e2;
    MYSQL  *c;
    json_t *r, *first;
    size_t  i;

    if (json_array_size(recs) == 0) {
        return 0;
    }
    c = faas_db_acquire(reg->db, err);
    if (c == NULL) {
        return -1;
    }
    live = incarnations(c, recs, err);
    faas_db_release(reg->db, c, live == NULL && faas_db_broken(err));
    if (live == NULL) {
        return -1;
    }
    for (i = json_array_size(recs); i-- > 0;) {
        r = json_array_get(recs, i);
        first = json_object_get(live, json_string_value(json_object_get(
                                    r, "function")));
        if (first == NULL || json_integer_value(json_object_get(r, "version"))
                                 < json_integer_value(first)) {
            json_array_append(dead, r);
            json_array_remove(recs, i);
        }
    }
    json_array_foreach(dead, i, r) {
        const char *name = json_string_value(json_object_get(r, "function"));
        cleanup_json json_t *one = json_pack("[O]", r);

        faas_error_clear(&e2);
        if (one != NULL && delete_logs(reg, name, one, &e2) < 0) {
            faas_warn(NULL, "log of a deleted function's call kept: %s",
                      e2.msg);
        }
    }
    if (json_array_size(dead) > 0) {
        faas_info(NULL, "records: %zu of deleted functions dropped",
                  json_array_size(dead));
    }
    return 0;
}
