/*
 * Blob store front: URL parsing, key validation and dispatch to the file://
 * (blob_file.c) and s3:// (blob_s3.c) backends.
 */
#include "blob.h"
#include "blob_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


#define FAAS_BLOB_KEY_MAX 1024


int
faas_blob_key_check(const char *key, faas_error_t *err)
{
    const char *seg, *p;
    size_t      len, n;

    if (key == NULL || key[0] == '\0') {
        return faas_error_set(err, EINVAL, "blob key is empty");
    }
    len = strlen(key);
    if (len > FAAS_BLOB_KEY_MAX) {
        return faas_error_set(err, EINVAL,
                              "blob key is %zu bytes long (limit %d)", len,
                              FAAS_BLOB_KEY_MAX);
    }
    if (key[0] == '/') {
        return faas_error_set(err, EINVAL,
                              "blob key '%s' starts with '/'", key);
    }
    for (p = key; *p != '\0'; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            return faas_error_set(err, EINVAL,
                                  "blob key contains control byte 0x%02x "
                                  "at offset %zu", (unsigned char) *p,
                                  (size_t) (p - key));
        }
    }
    for (seg = key;; seg = p + 1) {
        p = strchr(seg, '/');
        n = p != NULL ? (size_t) (p - seg) : strlen(seg);
        if (n == 0) {
            return faas_error_set(err, EINVAL,
                                  "blob key '%s' has an empty path segment",
                                  key);
        }
        if ((n == 1 && seg[0] == '.')
            || (n == 2 && seg[0] == '.' && seg[1] == '.'))
        {
            return faas_error_set(err, EINVAL,
                                  "blob key '%s' has a '%.*s' segment", key,
                                  (int) n, seg);
        }
        if (p == NULL) {
            break;
        }
    }
    return 0;
}


faas_blob_store_t *
faas_blob_open(const char *url, const json_t *opts, faas_error_t *err)
{
    faas_blob_store_t     *s;
    const faas_blob_ops_t *ops;
    const char            *rest;

    if (url == NULL || url[0] == '\0') {
        faas_error_set(err, EINVAL, "blob store URL is empty");
        return NULL;
    }
    if (opts != NULL && !json_is_object(opts)) {
        faas_error_set(err, EINVAL, "blob store options must be an object");
        return NULL;
    }
    if (strncmp(url, "file://", 7) == 0) {
        ops = &faas_blob_file_ops;
        rest = url + 7;
        s = faas_blob_file_open(rest, opts, err);
    } else if (strncmp(url, "s3://", 5) == 0) {
        ops = &faas_blob_s3_ops;
        rest = url + 5;
        s = faas_blob_s3_open(rest, opts, err);
    } else {
        faas_error_set(err, EINVAL,
                       "blob store URL '%s': scheme must be file:// or s3://",
                       url);
        return NULL;
    }
    if (s == NULL) {
        faas_error_wrap(err, "blob store %s", url);
        return NULL;
    }
    s->ops = ops;
    s->url = strdup(url);
    if (s->url == NULL) {
        ops->close(s);
        faas_error_set(err, ENOMEM, "blob store %s", url);
        return NULL;
    }
    return s;
}


void
faas_blob_close(faas_blob_store_t *store)
{
    char *url;

    if (store == NULL) {
        return;
    }
    url = store->url;
    store->ops->close(store);
    free(url);
}


int
faas_blob_put(faas_blob_store_t *store, const char *key, const void *data,
              size_t len, faas_error_t *err)
{
    int ret;

    ret = faas_blob_key_check(key, err);
    if (ret < 0) {
        return ret;
    }
    if (data == NULL && len > 0) {
        return faas_error_set(err, EINVAL, "blob put %s: no data", key);
    }
    return store->ops->put(store, key, data != NULL ? data : "", len, err);
}


/* The checks shared by the calls that move a whole file. */
static int
check_key_and_path(const char *key, const char *path, const char *what,
                   faas_error_t *err)
{
    int ret = faas_blob_key_check(key, err);

    if (ret < 0) {
        return ret;
    }
    if (path == NULL || path[0] == '\0') {
        return faas_error_set(err, EINVAL, "blob %s %s: no file name", what,
                              key);
    }
    return 0;
}


int
faas_blob_put_file(faas_blob_store_t *store, const char *key,
                   const char *path, faas_error_t *err)
{
    int ret = check_key_and_path(key, path, "put", err);

    return ret < 0 ? ret : store->ops->put_file(store, key, path, err);
}


int
faas_blob_get(faas_blob_store_t *store, const char *key, void **data,
              size_t *len, size_t max, faas_error_t *err)
{
    int ret;

    *data = NULL;
    if (len != NULL) {
        *len = 0;
    }
    ret = faas_blob_key_check(key, err);
    if (ret < 0) {
        return ret;
    }
    if (max == (size_t) -1) {
        max--;   /* room for the NUL terminator */
    }
    return store->ops->get(store, key, data, len, max, err);
}


int
faas_blob_get_file(faas_blob_store_t *store, const char *key,
                   const char *path, faas_error_t *err)
{
    int ret = check_key_and_path(key, path, "get", err);

    return ret < 0 ? ret : store->ops->get_file(store, key, path, err);
}


int
faas_blob_delete(faas_blob_store_t *store, const char *key,
                 faas_error_t *err)
{
    int ret;

    ret = faas_blob_key_check(key, err);
    if (ret < 0) {
        return ret;
    }
    return store->ops->del(store, key, err);
}


int
faas_blob_stat(faas_blob_store_t *store, const char *key, size_t *len,
               faas_error_t *err)
{
    int ret;

    ret = faas_blob_key_check(key, err);
    if (ret < 0) {
        return ret;
    }
    return store->ops->stat(store, key, len, err);
}
