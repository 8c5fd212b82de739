/*
 * /v1/functions/<name>/executions: execution records and their logs.
 *
 *   GET .../executions?limit=N&before=C   newest first; C is the answer's
 *                                         next_before ("<timestamp_ms>.<
 *                                         request-id>", exclusive) or just a
 *                                         timestamp_ms
 *   GET .../executions/<request-id>       one record
 *   GET .../executions/<request-id>/logs  the logs (text/plain) from the
 *                                         store, at the record's log_key
 *
 * Records come from MongoDB when records_mongodb_uri is set, else MySQL.
 * Only the records of the name's current incarnation are seen (version >=
 * its first_version, DESIGN.md section 7), and a record's log_key is served
 * only if it is that request's key under logs/<name>/.
 */
#include "registry.h"
#include "ids.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"

#define LIST_MAX  1000
#define LOG_MAX   (8 * 1024 * 1024)

static const char *cols =
    "request_id, function, version, user, start_type, status, http_status,"
    " duration_us, total_us, cold_start_us, memory_bytes, log_key,"
    " agent_host, sandbox_id, timestamp_ms, trace_id";


static json_t *
row_json(MYSQL_ROW row)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:s,"
                     "s:s,s:I,s:s}",
                     "request_id", row[0], "function", row[1],
                     "version", (json_int_t) atoll(row[2]), "user", row[3],
                     "start_type", row[4], "status", row[5],
                     "http_status", (json_int_t) atoll(row[6]),
                     "duration_us", (json_int_t) atoll(row[7]),
                     "total_us", (json_int_t) atoll(row[8]),
                     "cold_start_us", (json_int_t) atoll(row[9]),
                     "memory_bytes", (json_int_t) atoll(row[10]),
                     "log_key", row[11], "agent_host", row[12],
                     "sandbox_id", row[13],
                     "timestamp_ms", (json_int_t) atoll(row[14]),
                     "trace_id", row[15]);
}


static json_t *
list_mysql(MYSQL *c, const char *name, long long first, long long before,
           const char *rid, long limit, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    json_t    *a;

    if (before <= 0) {
        before = (long long) 1 << 62;
    }
    /* Ties on timestamp_ms are ordered by request_id, so pages never skip. */
    if (faas_db_query(c, &res, err, "SELECT %r FROM executions WHERE"
                      " function = %s AND version >= %L AND (timestamp_ms < %L"
                      " OR (timestamp_ms = %L AND request_id < %s)) ORDER BY"
                      " timestamp_ms DESC, request_id DESC LIMIT %L", cols,
                      name, first, before, before, rid ? rid : "",
                      (long long) limit)
        < 0) {
        return NULL;
    }
    a = json_array();
    while ((row = mysql_fetch_row(res)) != NULL) {
        json_array_append_new(a, row_json(row));
    }
    mysql_free_result(res);
    return a;
}


static json_t *
get_mysql(MYSQL *c, const char *name, long long first, const char *rid,
          faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    json_t    *j = NULL;

    if (faas_db_query(c, &res, err, "SELECT %r FROM executions WHERE"
                      " request_id = %s AND function = %s AND version >= %L",
                      cols, rid, name, first) < 0) {
        return NULL;
    }
    row = mysql_fetch_row(res);
    if (row != NULL) {
        j = row_json(row);
    } else {
        faas_error_set(err, 0, "no execution %s of %s", rid, name);
        err->code = FAAS_E_NOTFOUND;
    }
    mysql_free_result(res);
    return j;
}


static int
parse_long(const char *s, long long lo, long long hi, long long *out)
{
    char     *end;
    long long v;

    if (s == NULL) {
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}


/* "<timestamp_ms>" or "<timestamp_ms>.<request-id>" (a next_before). */
static int
parse_cursor(const char *s, long long *ts, char rid[33])
{
    char      *end;
    long long  v;

    rid[0] = '\0';
    if (s == NULL) {
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || errno != 0 || v < 1 || v > (long long) 1 << 62) {
        return -1;
    }
    if (*end == '.') {
        if (!faas_request_id_valid(end + 1, strlen(end + 1))) {
            return -1;
        }
        memcpy(rid, end + 1, 33);
    } else if (*end != '\0') {
        return -1;
    }
    *ts = v;
    return 0;
}


int
faas_api_executions(faas_registry_t *reg, faas_http_req_t *req,
                    const char *name, const char *rest,
                    faas_http_resp_t *resp)
{
    faas_error_t err;
    MYSQL       *c;
    json_t      *j;
    long long    limit = 50, before = 0, first;
    char         rid[40], before_rid[33];
    const char  *slash;
    size_t       n;
    int          logs = 0;

    faas_error_clear(&err);
    if (strcmp(req->method, "GET") != 0) {
        return faas_http_error(resp, 405, "method_not_allowed", "use GET");
    }
    rid[0] = '\0';
    if (*rest != '\0') {
        slash = strchr(rest, '/');
        n = slash ? (size_t) (slash - rest) : strlen(rest);
        if (n >= sizeof(rid)) {
            return faas_http_error(resp, 404, "not_found",
                                   "no such execution");
        }
        memcpy(rid, rest, n);
        rid[n] = '\0';
        if (slash != NULL) {
            if (strcmp(slash, "/logs") != 0) {
                return faas_http_error(resp, 404, "not_found",
                                       "no such endpoint");
            }
            logs = 1;
        }
        if (!faas_request_id_valid(rid, strlen(rid))) {
            return faas_http_error(resp, 400, "invalid",
                                   "a request id is 32 hex digits");
        }
    } else if (parse_long(faas_http_arg(req, "limit"), 1, LIST_MAX, &limit) < 0
               || parse_cursor(faas_http_arg(req, "before"), &before,
                               before_rid) < 0) {
        return faas_http_error(resp, 400, "invalid", "limit must be 1..%d and"
                               " before a next_before value or a timestamp"
                               " in ms", LIST_MAX);
    }
    c = faas_fn_open(reg, req, name, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    first = faas_fn_first_version(c, name, &err);
    if (first < 0) {
        j = NULL;
    } else if (rid[0] == '\0') {
        j = reg->mongo ? faas_mongo_list(reg->mongo, name, first, before,
                                         before_rid[0] ? before_rid : NULL,
                                         (long) limit, &err)
                       : list_mysql(c, name, first, before,
                                    before_rid[0] ? before_rid : NULL,
                                    (long) limit, &err);
    } else {
        j = reg->mongo ? faas_mongo_get(reg->mongo, name, first, rid, &err)
                       : get_mysql(c, name, first, rid, &err);
    }
    faas_db_release(reg->db, c, j == NULL && faas_db_broken(&err));
    if (j == NULL) {
        return faas_http_fail(resp, &err);
    }
    if (rid[0] == '\0') {
        json_t *last = json_array_get(j, json_array_size(j) - 1);
        json_t *next = json_null();

        if (json_array_size(j) == (size_t) limit && last != NULL) {
            next = json_sprintf("%lld.%s", (long long) json_integer_value(
                                    json_object_get(last, "timestamp_ms")),
                                json_string_value(json_object_get(
                                    last, "request_id")));
        }
        resp->json = json_pack("{s:s,s:o,s:o}", "function", name,
                               "executions", j, "next_before", next);
        resp->status = 200;
        return 200;
    }
    if (!logs) {
        resp->json = j;
        resp->status = 200;
        return 200;
    }
    {
        const char *key = json_string_value(json_object_get(j, "log_key"));
        void       *data = NULL;
        size_t      len = 0;
        int         rc;

        if (key == NULL || key[0] == '\0') {
            json_decref(j);
            return faas_http_error(resp, 404, "not_found",
                                   "execution %s has no logs", rid);
        }
        if (!faas_log_key_of(name, rid, key)) {
            faas_warn(NULL, "execution %s of %s names log key %.200s outside"
                      " its own: not served", rid, name, key);
            json_decref(j);
            return faas_http_error(resp, 404, "not_found",
                                   "execution %s has no logs", rid);
        }
        rc = faas_blob_get(reg->store, key, &data, &len, LOG_MAX, &err);
        json_decref(j);
        if (rc == -ENOENT) {
            return faas_http_error(resp, 404, "not_found", "the logs of %s"
                                   " are not in the store (yet)", rid);
        }
        if (rc < 0) {
            err.code = FAAS_E_UNAVAILABLE;
            return faas_http_fail(resp, &err);
        }
        resp->raw = data;
        resp->raw_len = len;
        resp->ctype = "text/plain; charset=utf-8";
        resp->status = 200;
        return 200;
    }
}
