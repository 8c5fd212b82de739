/*
 * Private to common/blob*.c: the backend table behind faas_blob_store_t.
 * blob.c parses the URL, validates keys and dispatches; each backend
 * (blob_file.c, blob_s3.c) fills one faas_blob_ops_t and embeds
 * faas_blob_store_t as the first member of its own store struct.
 */
#ifndef FAAS_BLOB_INTERNAL_H
#define FAAS_BLOB_INTERNAL_H

#include "blob.h"

typedef struct faas_blob_ops_s {
    const char *scheme;   /* "file", "s3" */
    int  (*put)(faas_blob_store_t *s, const char *key, const void *data,
                size_t len, faas_error_t *err);
    int  (*put_file)(faas_blob_store_t *s, const char *key, const char *path,
                     faas_error_t *err);
    int  (*get)(faas_blob_store_t *s, const char *key, void **data,
                size_t *len, size_t max, faas_error_t *err);
    int  (*get_file)(faas_blob_store_t *s, const char *key, const char *path,
                     faas_error_t *err);
    int  (*del)(faas_blob_store_t *s, const char *key, faas_error_t *err);
    int  (*stat)(faas_blob_store_t *s, const char *key, size_t *len,
                 faas_error_t *err);
    void (*close)(faas_blob_store_t *s);
} faas_blob_ops_t;

struct faas_blob_store_s {
    const faas_blob_ops_t *ops;
    char                  *url;   /* as given to faas_blob_open, for errors */
};

/*
 * Backend constructors. rest is what follows "<scheme>://" in the URL.
 * They return a store whose ops and url blob.c fills in, or NULL (err set).
 */
faas_blob_store_t *faas_blob_file_open(const char *rest, const json_t *opts,
                                       faas_error_t *err);
faas_blob_store_t *faas_blob_s3_open(const char *rest, const json_t *opts,
                                     faas_error_t *err);

extern const faas_blob_ops_t faas_blob_file_ops;
extern const faas_blob_ops_t faas_blob_s3_ops;

/*
 * Writes a temporary file next to path (".<name>.tmp.<pid>.<n>" in the same
 * directory, which is created if needed), fsyncs it, renames it over path
 * and fsyncs the directory. fill(fd, arg, err) writes the content. Shared by the file
 * backend and by get_file of every backend.
 */
int faas_blob_write_atomic(const char *path,
                           int (*fill)(int fd, void *arg, faas_error_t *err),
                           void *arg, faas_error_t *err);

#endif
