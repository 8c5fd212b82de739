/*
 * Execution records in MongoDB (mongo-c-driver): collection "executions" of
 * the URI's database (default "faas"), one document per request with
 * _id = request_id, so a replayed batch inserts nothing new. Reads see
 * only the function's current incarnation (version >= its first_version);
 * a deleted function's records are deleted by purge.c.
 */
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mongoc/mongoc.h>

#include "cleanup.h"
#include "log.h"

#define DUPLICATE_KEY 11000

struct faas_mongo_s {
    mongoc_uri_t         *uri;
    mongoc_client_pool_t *pool;
    char                  db[128];
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The driver's own messages go to our log, one line each, by level. */
static void
log_handler(mongoc_log_level_t level, const char *domain, const char *msg,
            void *data)
{
    (void) data;
    faas_log(level <= MONGOC_LOG_LEVEL_CRITICAL ? FAAS_LOG_ERROR
             : level == MONGOC_LOG_LEVEL_WARNING ? FAAS_LOG_WARN
             : level <= MONGOC_LOG_LEVEL_INFO ? FAAS_LOG_INFO
                                               : FAAS_LOG_DEBUG,
             NULL, "mongoc %s: %s", domain, msg);
}


static void
init_driver(void)
{
    mongoc_log_set_handler(log_handler, NULL);
    mongoc_init();
}


faas_mongo_t *
faas_mongo_open(const char *uri, faas_error_t *err)
{
    faas_mongo_t *m;
    bson_error_t  berr;
    const char   *db;

    pthread_once(&init_once, init_driver);
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        faas_error_set(err, ENOMEM, "mongo");
        return NULL;
    }
    m->uri = mongoc_uri_new_with_error(uri, &berr);
    if (m->uri == NULL) {
        free(m);
        faas_error_set(err, 0, "records_mongodb_uri: %s", berr.message);
        return NULL;
    }
    /* Fail fast when MongoDB is away: the batch simply waits in Redis. */
    if (!mongoc_uri_has_option(m->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
        mongoc_uri_set_option_as_int32(m->uri,
                                       MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       5000);
    }
    db = mongoc_uri_get_database(m->uri);
    snprintf(m->db, sizeof(m->db), "%s", db ? db : "faas");
    m->pool = mongoc_client_pool_new(m->uri);
    if (m->pool == NULL) {
        mongoc_uri_destroy(m->uri);
        free(m);
        faas_error_set(err, 0, "mongo client pool");
        return NULL;
    }
    mongoc_client_pool_set_error_api(m->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(m->pool, "faas-registry");
    return m;
}


void
faas_mongo_close(faas_mongo_t *m)
{
    if (m == NULL) {
        return;
    }
    mongoc_client_pool_destroy(m->pool);
    mongoc_uri_destroy(m->uri);
    free(m);
}


/* Only duplicate-key write errors (a replayed batch) and nothing else? */
static int
only_duplicates(const bson_t *reply)
{
    bson_iter_t it, arr, doc;
    int         seen = 0;

    if (bson_iter_init_find(&it, reply, "writeConcernErrors")
        && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr)
        && bson_iter_next(&arr)) {
        return 0;
    }
    if (!bson_iter_init_find(&it, reply, "writeErrors")
        || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr)) {
        return 0;
    }
    while (bson_iter_next(&arr)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &doc)
            || !bson_iter_find(&doc, "code")
            || bson_iter_as_int64(&doc) != DUPLICATE_KEY) {
            return 0;
        }
        seen++;
    }
    return seen > 0;
}


int
faas_mongo_insert(faas_mongo_t *m, json_t *records, faas_error_t *err)
{
    mongoc_client_t     *client;
    mongoc_collection_t *coll;
    bson_t             **docs;
    bson_t               reply, opts = BSON_INITIALIZER;
    bson_error_t         berr;
    size_t               i, n = json_array_size(records);
    json_t              *r;
    int                  rc = 0;

    docs = calloc(n, sizeof(bson_t *));
    if (docs == NULL) {
        return faas_error_set(err, ENOMEM, "mongo insert");
    }
    json_array_foreach(records, i, r) {
        cleanup_json json_t *d = json_deep_copy(r);
        cleanup_free char   *s = NULL;

        json_object_set(d, "_id", json_object_get(r, "request_id"));
        s = json_dumps(d, JSON_COMPACT);
        docs[i] = s ? bson_new_from_json((const uint8_t *) s, -1, &berr)
                    : NULL;
        if (docs[i] == NULL) {
            rc = faas_error_set(err, 0, "record to BSON failed");
            break;
        }
    }
    if (rc == 0) {
        BSON_APPEND_BOOL(&opts, "ordered", false);
        client = mongoc_client_pool_pop(m->pool);
        coll = mongoc_client_get_collection(client, m->db, "executions");
        if (!mongoc_collection_insert_many(coll, (const bson_t **) docs, n,
                                           &opts, &reply, &berr)
            && !only_duplicates(&reply)) {
            faas_error_set(err, 0, "mongodb insert: %s", berr.message);
            err->code = FAAS_E_UNAVAILABLE;
            rc = -1;
        }
        bson_destroy(&reply);
        mongoc_collection_destroy(coll);
        mongoc_client_pool_push(m->pool, client);
    }
    for (i = 0; i < n; i++) {
        if (docs[i] != NULL) {
            bson_destroy(docs[i]);
        }
    }
    free(docs);
    bson_destroy(&opts);
    return rc;
}


/* Runs a find; returns a JSON array of the documents without _id. */
static json_t *
find(faas_mongo_t *m, const bson_t *filter, const bson_t *opts,
     faas_error_t *err)
{
    mongoc_client_t     *client;
    mongoc_collection_t *coll;
    mongoc_cursor_t     *cur;
    const bson_t        *doc;
    bson_error_t         berr;
    json_t              *out = json_array();
    char                *s;

    client = mongoc_client_pool_pop(m->pool);
    coll = mongoc_client_get_collection(client, m->db, "executions");
    cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        s = bson_as_relaxed_extended_json(doc, NULL);
        json_t *j = s ? json_loads(s, 0, NULL) : NULL;
        bson_free(s);
        if (j != NULL) {
            json_object_del(j, "_id");
            /* documents stored before trace ids read as MySQL's default */
            if (json_object_get(j, "trace_id") == NULL) {
                json_object_set_new(j, "trace_id", json_string(""));
            }
            json_array_append_new(out, j);
        }
    }
    if (mongoc_cursor_error(cur, &berr)) {
        json_decref(out);
        out = NULL;
        faas_error_set(err, 0, "mongodb find: %s", berr.message);
        err->code = FAAS_E_UNAVAILABLE;
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return out;
}


/* function == name and version >= min_version (the current incarnation) */
static void
of_incarnation(bson_t *filter, const char *name, long long min_version)
{
    bson_t gte;

    BSON_APPEND_UTF8(filter, "function", name);
    BSON_APPEND_DOCUMENT_BEGIN(filter, "version", &gte);
    BSON_APPEND_INT64(&gte, "$gte", min_version);
    bson_append_document_end(filter, &gte);
}


json_t *
faas_mongo_list(faas_mongo_t *m, const char *name, long long min_version,
                long long before, const char *before_id, long limit,
                faas_error_t *err)
{
    bson_t  filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
    bson_t  or, a, b, lt, id;
    json_t *out;

    of_incarnation(&filter, name, min_version);
    if (before > 0) {
        /* timestamp_ms < before, or equal with a smaller _id (ties). */
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &or);
        BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &a);
        BSON_APPEND_DOCUMENT_BEGIN(&a, "timestamp_ms", &lt);
        BSON_APPEND_INT64(&lt, "$lt", before);
        bson_append_document_end(&a, &lt);
        bson_append_document_end(&or, &a);
        BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &b);
        BSON_APPEND_INT64(&b, "timestamp_ms", before);
        BSON_APPEND_DOCUMENT_BEGIN(&b, "_id", &id);
        BSON_APPEND_UTF8(&id, "$lt", before_id ? before_id : "");
        bson_append_document_end(&b, &id);
        bson_append_document_end(&or, &b);
        bson_append_array_end(&filter, &or);
    }
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "timestamp_ms", -1);
    BSON_APPEND_INT32(&sort, "_id", -1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_INT64(&opts, "limit", limit);
    out = find(m, &filter, &opts, err);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return out;
}


json_t *
faas_mongo_get(faas_mongo_t *m, const char *name, long long min_version,
               const char *request_id, faas_error_t *err)
{
    bson_t  filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    json_t *out, *one;

    BSON_APPEND_UTF8(&filter, "_id", request_id);
    of_incarnation(&filter, name, min_version);
    BSON_APPEND_INT64(&opts, "limit", 1);
    out = find(m, &filter, &opts, err);
    bson_destroy(&filter);
    bson_destroy(&opts);
    if (out == NULL) {
        return NULL;
    }
    one = json_incref(json_array_get(out, 0));
    json_decref(out);
    if (one == NULL) {
        faas_error_set(err, 0, "no execution %s of %s", request_id, name);
        err->code = FAAS_E_NOTFOUND;
    }
    return one;
}


json_t *
faas_mongo_doomed(faas_mongo_t *m, const char *name, long long max_version,
                  long limit, faas_error_t *err)
{
    bson_t  filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, lte;
    json_t *found, *out, *r;
    size_t  i;

    BSON_APPEND_UTF8(&filter, "function", name);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "version", &lte);
    BSON_APPEND_INT64(&lte, "$lte", max_version);
    bson_append_document_end(&filter, &lte);
    BSON_APPEND_INT64(&opts, "limit", limit);
    found = find(m, &filter, &opts, err);
    bson_destroy(&filter);
    bson_destroy(&opts);
    if (found == NULL) {
        return NULL;
    }
    out = json_array();
    json_array_foreach(found, i, r) {
        const char *id = json_string_value(json_object_get(r, "request_id"));
        const char *key = json_string_value(json_object_get(r, "log_key"));

        if (id != NULL) {
            json_array_append_new(out, json_pack("{s:s,s:s}", "request_id",
                                                 id, "log_key",
                                                 key ? key : ""));
        }
    }
    json_decref(found);
    return out;
}


int
faas_mongo_delete(faas_mongo_t *m, json_t *ids, faas_error_t *err)
{
    mongoc_client_t     *client;
    mongoc_collection_t *coll;
    bson_t               filter = BSON_INITIALIZER, in, list;
    bson_error_t         berr;
    json_t              *id;
    size_t               i;
    char                 k[24];
    int                  rc = 0;

    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
    json_array_foreach(ids, i, id) {
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_UTF8(&list, k, json_string_value(id));
    }
    bson_append_array_end(&in, &list);
    bson_append_document_end(&filter, &in);
    client = mongoc_client_pool_pop(m->pool);
    coll = mongoc_client_get_collection(client, m->db, "executions");
    if (!mongoc_collection_delete_many(coll, &filter, NULL, NULL, &berr)) {
        faas_error_set(err, 0, "mongodb delete: %s", berr.message);
        err->code = FAAS_E_UNAVAILABLE;
        rc = -1;
    }
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    bson_destroy(&filter);
    return rc;
}
