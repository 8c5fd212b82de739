/*
 * Reading functions from MySQL: one function's current state, every
 * function's name, where its current incarnation starts. Below both the handlers (api_functions.c) and the
 * mirror (mirror.c), which call it.
 */
#include "registry.h"

#include <errno.h>
#include <stdlib.h>


json_t *
faas_fn_load(MYSQL *c, const char *name, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    json_t    *fn, *env;

    if (faas_db_query(c, &res, err,
                      "SELECT f.name, f.owner, f.current_version, f.public,"
                      " f.max_concurrency, v.runtime, v.handler, v.memory_mb,"
                      " v.timeout_ms, v.keep_alive_s, v.env, v.code_key,"
                      " v.code_sha256, v.code_size,"
                      " DATE_FORMAT(f.created_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ'),"
                      " DATE_FORMAT(f.updated_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ')"
                      " FROM functions f JOIN versions v ON v.name = f.name"
                      " AND v.version = f.current_version WHERE f.name = %s",
                      name) < 0) {
        return NULL;
    }
    row = mysql_fetch_row(res);
    if (row == NULL) {
        mysql_free_result(res);
        faas_error_set(err, 0, "no function named %s", name);
        err->code = FAAS_E_NOTFOUND;
        return NULL;
    }
    env = json_loads(row[10], 0, NULL);
    fn = json_pack("{s:s,s:s,s:I,s:b,s:I,s:s,s:s,s:I,s:I,s:I,s:o,s:s,s:s,"
                   "s:I,s:s,s:s}",
                   "name", row[0], "owner", row[1],
                   "version", (json_int_t) atoll(row[2]),
                   "public", atoi(row[3]),
                   "max_concurrency", (json_int_t) atoll(row[4]),
                   "runtime", row[5], "handler", row[6],
                   "memory_mb", (json_int_t) atoll(row[7]),
                   "timeout_ms", (json_int_t) atoll(row[8]),
                   "keep_alive_s", (json_int_t) atoll(row[9]),
                   "env", env ? env : json_object(),
                   "code_key", row[11], "code_sha256", row[12],
                   "code_size", (json_int_t) atoll(row[13]),
                   "created_at", row[14], "updated_at", row[15]);
    mysql_free_result(res);
    if (fn == NULL) {
        faas_error_set(err, ENOMEM, "function json");
    }
    return fn;
}


json_t *
faas_fn_names(MYSQL *c, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    json_t    *a;

    if (faas_db_query(c, &res, err, "SELECT name FROM functions") < 0) {
        return NULL;
    }
    a = json_array();
    while ((row = mysql_fetch_row(res)) != NULL) {
        json_array_append_new(a, json_string(row[0]));
    }
    mysql_free_result(res);
    return a;
}


long long
faas_fn_first_version(MYSQL *c, const char *name, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    long long  v = -1;

    if (faas_db_query(c, &res, err, "SELECT first_version FROM functions"
                      " WHERE name = %s", name) < 0) {
        return -1;
    }
    row = mysql_fetch_row(res);
    if (row != NULL) {
        v = atoll(row[0]);
    } else {
        faas_error_set(err, 0, "no function named %s", name);
        err->code = FAAS_E_NOTFOUND;
    }
    mysql_free_result(res);
    return v;
}
