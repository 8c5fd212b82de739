/*
 * Blob store: the code store and the log store (DESIGN.md section 7).
 *
 *   file://<dir>      keys are paths under <dir> (atomic writes via rename)
 *   s3://<bucket>     S3 API over libcurl with SigV4; endpoint, region and
 *                     keys come from the options object:
 *                     {"s3_endpoint": "http://127.0.0.1:4569",
 *                      "s3_region": "us-east-1",
 *                      "s3_access_key": "...", "s3_secret_key": "...",
 *                      "s3_path_style": true}
 *
 * Keys are relative ("code/<name>/<version>/<sha256>.zip"); a key with "..",
 * a leading "/" or a NUL is refused. Functions are blocking: run them off the
 * event loop (uv_queue_work) in daemons.
 */
#ifndef FAAS_BLOB_H
#define FAAS_BLOB_H

#include <stddef.h>
#include <jansson.h>
#include "error.h"

typedef struct faas_blob_store_s faas_blob_store_t;

/* Returns a store or NULL (err set). opts may be NULL for file://. */
faas_blob_store_t *faas_blob_open(const char *url, const json_t *opts,
                                  faas_error_t *err);
void faas_blob_close(faas_blob_store_t *store);

int faas_blob_put(faas_blob_store_t *store, const char *key, const void *data,
                  size_t len, faas_error_t *err);

/* Streams a local file into the store without loading it whole. */
int faas_blob_put_file(faas_blob_store_t *store, const char *key,
                       const char *path, faas_error_t *err);

/*
 * *data is malloc'd (caller frees), NUL-terminated, at most max bytes (larger
 * objects fail with -EFBIG). A missing key returns -ENOENT.
 */
int faas_blob_get(faas_blob_store_t *store, const char *key, void **data,
                  size_t *len, size_t max, faas_error_t *err);

/* Downloads into path (written to path.tmp then renamed). -ENOENT if missing. */
int faas_blob_get_file(faas_blob_store_t *store, const char *key,
                       const char *path, faas_error_t *err);

/* Deleting a missing key succeeds. */
int faas_blob_delete(faas_blob_store_t *store, const char *key,
                     faas_error_t *err);

/* 0 if present (size in *len if not NULL), -ENOENT if not. */
int faas_blob_stat(faas_blob_store_t *store, const char *key, size_t *len,
                   faas_error_t *err);

#endif
