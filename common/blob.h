/*
 * Blob store: the code store and the log store (docs/DESIGN.md section 7).
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
 *
 * file:// creates <dir> (mkdir -p) when the store is opened, and the
 * directories of a key when it is written; objects are files <dir>/<key>
 * (0644). An interrupted write can leave a hidden ".<name>.tmp.<pid>.<n>"
 * file next to the object, never a partial object.
 *
 * More options: "s3_timeout_ms" (whole request, default 30000; connecting is
 * capped at 5 s). s3_path_style defaults to true when s3_endpoint is set
 * (URLs <endpoint>/<bucket>/<key>), else virtual-host style against
 * https://s3.<region>.amazonaws.com. "s3://<bucket>/<prefix>" puts every
 * key under <prefix>/.
 *
 * A store is NOT thread-safe (the S3 backend reuses one CURL handle and its
 * connection): use each store from one thread at a time, or open one store
 * per thread.
 *
 * Errors: -EINVAL bad key or URL, -ENOENT missing object, -EFBIG over max,
 * -EACCES refused credentials (S3 error code in the message), -ENXIO missing
 * bucket, -ECONNREFUSED / -ETIMEDOUT / -EIO transport failures (curl's
 * message in err), -EIO any other S3 error (code and message in err).
 */
#ifndef FAAS_BLOB_H
#define FAAS_BLOB_H

#include <stddef.h>
#include <jansson.h>
#include "error.h"

typedef struct faas_blob_store_s faas_blob_store_t;

/* The configuration keys faas_blob_open() reads, for a daemon's list of
 * known keys. */
#define FAAS_BLOB_CONFIG_KEYS                                                 \
    "s3_endpoint", "s3_region", "s3_access_key", "s3_secret_key",            \
        "s3_path_style", "s3_timeout_ms"

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

/*
 * Additions (not in the first interface):
 *
 * 0 if key is acceptable, else -EINVAL with the reason: empty, over 1024
 * bytes, a leading "/", an empty, "." or ".." segment, or a control byte.
 * Every function above runs this check first.
 */
int faas_blob_key_check(const char *key, faas_error_t *err);

#endif
