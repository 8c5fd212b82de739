/*
 * /v1/functions/<name>/keys: access keys.
 *
 *   POST   .../keys              new key; the key is in this answer only
 *   GET    .../keys              ids and prefixes, never the keys
 *   POST   .../keys/<id>/rotate  new key replacing <id> (one transaction)
 *   DELETE .../keys/<id>         revoke
 *
 * A key is "fk_" + base64url(32 random bytes). MySQL holds it sealed with
 * AES-256-GCM under the master key; the Redis mirror holds only HMAC-SHA256
 * digests (see mirror.c). Every change rewrites the mirror and publishes the
 * function's name on faas:inval, so gateways drop their cached copy.
 */
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "cleanup.h"
#include "log.h"

#define KEYS_MAX 16


/* Inserts a new sealed key for name; *id and key[] are filled. */
static int
add_key(faas_registry_t *reg, MYSQL *c, const char *name,
        char key[FAAS_KEY_LEN + 1], unsigned long long *id, faas_error_t *err)
{
    cleanup_free uint8_t *sealed = NULL;
    size_t                slen;
    char                  prefix[12];

    if (faas_keys_generate(key, err) < 0
        || faas_keys_encrypt(reg->master_key, key, &sealed, &slen, err) < 0) {
        return -1;
    }
    memcpy(prefix, key, 11);
    prefix[11] = '\0';
    if (faas_db_exec(c, err, "INSERT INTO access_keys (name, sealed, prefix)"
                     " VALUES (%s, %x, %s)", name, sealed, slen, prefix) < 0) {
        return -1;
    }
    *id = (unsigned long long) mysql_insert_id(c);
    return 0;
}


static int
answer_key(faas_registry_t *reg, MYSQL *c, const char *name,
           const char *key, unsigned long long id, faas_http_resp_t *resp)
{
    faas_error_t err;

    faas_error_clear(&err);
    if (faas_mirror_sync(reg, c, name, &err) < 0) {
        faas_warn(NULL, "mirror of %s left for repair: %s", name, err.msg);
    }
    resp->json = json_pack("{s:s,s:I,s:s,s:s}", "function", name,
                           "id", (json_int_t) id, "key", key, "note",
                           "this key is shown once: store it now");
    json_object_set_new(resp->json, "prefix", json_stringn(key, 11));
    resp->status = 201;
    return 201;
}


static int
count_keys(MYSQL *c, const char *name, faas_error_t *err)
{
    MYSQL_RES *res;
    MYSQL_ROW  row;
    int        n;

    if (faas_db_query(c, &res, err, "SELECT COUNT(*) FROM access_keys"
                      " WHERE name = %s", name) < 0) {
        return -1;
    }
    row = mysql_fetch_row(res);
    n = row ? atoi(row[0]) : 0;
    mysql_free_result(res);
    return n;
}


int
faas_api_keys(faas_registry_t *reg, faas_http_req_t *req, const char *name,
              const char *rest, faas_http_resp_t *resp)
{
    faas_error_t       err;
    MYSQL             *c;
    MYSQL_RES         *res;
    MYSQL_ROW          row;
    char               key[FAAS_KEY_LEN + 1], *end;
    unsigned long long id = 0, old = 0;
    long long          n;
    int                rotate = 0, rc;
    json_t            *list;

    faas_error_clear(&err);
    if (*rest != '\0') {
        old = strtoull(rest, &end, 10);
        if (end == rest || old == 0
            || (*end != '\0' && strcmp(end, "/rotate") != 0)) {
            return faas_http_error(resp, 404, "not_found", "no such key");
        }
        rotate = *end != '\0';
    }
    if (rotate ? strcmp(req->method, "POST") != 0
               : (*rest != '\0' ? strcmp(req->method, "DELETE") != 0
                                : strcmp(req->method, "POST") != 0
                                      && strcmp(req->method, "GET") != 0)) {
        return faas_http_error(resp, 405, "method_not_allowed",
                               "method not allowed here");
    }
    c = faas_fn_open(reg, req, name, &err);
    if (c == NULL) {
        return faas_http_fail(resp, &err);
    }
    if (*rest == '\0' && strcmp(req->method, "GET") == 0) {
        if (faas_db_query(c, &res, &err, "SELECT id, prefix,"
                          " DATE_FORMAT(created_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ')"
                          " FROM access_keys WHERE name = %s ORDER BY id",
                          name) < 0) {
            goto fail;
        }
        faas_db_release(reg->db, c, 0);
        list = json_array();
        while ((row = mysql_fetch_row(res)) != NULL) {
            json_array_append_new(list, json_pack(
                "{s:I,s:s,s:s}", "id", (json_int_t) atoll(row[0]),
                "prefix", row[1], "created_at", row[2]));
        }
        mysql_free_result(res);
        resp->json = json_pack("{s:s,s:o}", "function", name, "keys", list);
        resp->status = 200;
        return 200;
    }
    if (*rest == '\0') {
        n = count_keys(c, name, &err);
        if (n < 0) {
            goto fail;
        }
        if (n >= KEYS_MAX) {
            faas_db_release(reg->db, c, 0);
            return faas_http_error(resp, 409, "too_many_keys", "a function"
                                   " has at most %d keys: revoke one first",
                                   KEYS_MAX);
        }
        if (add_key(reg, c, name, key, &id, &err) < 0) {
            goto fail;
        }
        faas_info(NULL, "new access key %llu for %s", id, name);
        rc = answer_key(reg, c, name, key, id, resp);
        OPENSSL_cleanse(key, sizeof(key));
        faas_db_release(reg->db, c, 0);
        return rc;
    }
    if (rotate) {
        rc = faas_db_exec(c, &err, "START TRANSACTION") < 0;
        if (!rc) {
            n = faas_db_exec(c, &err, "DELETE FROM access_keys WHERE id = %U"
                             " AND name = %s", old, name);
            if (n == 0) {
                mysql_query(c, "ROLLBACK");
                faas_db_release(reg->db, c, 0);
                return faas_http_error(resp, 404, "not_found",
                                       "no key %llu for %s", old, name);
            }
            rc = n < 0 || add_key(reg, c, name, key, &id, &err) < 0
                 || faas_db_exec(c, &err, "COMMIT") < 0;
        }
        if (rc) {
            if (!faas_db_broken(&err)) {
                mysql_query(c, "ROLLBACK");
            }
            goto fail;
        }
        faas_info(NULL, "access key %llu of %s rotated to %llu", old, name,
                  id);
        rc = answer_key(reg, c, name, key, id, resp);
        json_object_set_new(resp->json, "replaces", json_integer(
                                (json_int_t) old));
        OPENSSL_cleanse(key, sizeof(key));
        faas_db_release(reg->db, c, 0);
        return rc;
    }
    n = faas_db_exec(c, &err, "DELETE FROM access_keys WHERE id = %U AND"
                     " name = %s", old, name);
    if (n < 0) {
        goto fail;
    }
    if (n == 0) {
        faas_db_release(reg->db, c, 0);
        return faas_http_error(resp, 404, "not_found", "no key %llu for %s",
                               old, name);
    }
    faas_info(NULL, "access key %llu of %s revoked", old, name);
    if (faas_mirror_sync(reg, c, name, &err) < 0) {
        faas_warn(NULL, "mirror of %s left for repair: %s", name, err.msg);
    }
    faas_db_release(reg->db, c, 0);
    resp->json = json_pack("{s:s,s:I}", "function", name, "revoked",
                           (json_int_t) old);
    resp->status = 200;
    return 200;

fail:
    faas_db_release(reg->db, c, faas_db_broken(&err));
    return faas_http_fail(resp, &err);
}
