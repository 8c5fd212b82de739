/*
 * Blob store, file:// backend and the checks every backend shares: URL
 * parsing, key validation, round trips, size limits, missing objects,
 * atomic replacement, streamed files, no temporary files left behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "blob_internal.h"
#include "tap.h"
#include "testfile.h"


static char dir[64];


/* Counts files whose name contains ".tmp." anywhere under path. */
static int
count_tmp(const char *path)
{
    DIR           *d;
    struct dirent *e;
    char           sub[4096];
    int            n = 0;

    d = opendir(path);
    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (strstr(e->d_name, ".tmp.") != NULL) {
            n++;
        }
        if (e->d_type == DT_DIR) {
            n += count_tmp(sub);
        }
    }
    closedir(d);
    return n;
}


static void
test_open(void)
{
    faas_error_t       err;
    faas_blob_store_t *s;
    json_t            *arr;
    char               url[128], path[128];
    struct stat        st;

    s = faas_blob_open("ftp://x/y", NULL, &err);
    ok(s == NULL && strstr(err.msg, "file:// or s3://") != NULL,
       "unknown scheme refused: %s", err.msg);
    s = faas_blob_open("", NULL, &err);
    ok(s == NULL && strstr(err.msg, "empty") != NULL,
       "empty URL refused: %s", err.msg);
    s = faas_blob_open("file://relative/dir", NULL, &err);
    ok(s == NULL && strstr(err.msg, "absolute path") != NULL,
       "relative file:// path refused: %s", err.msg);
    arr = json_array();
    snprintf(url, sizeof(url), "file://%s/store", dir);
    s = faas_blob_open(url, arr, &err);
    ok(s == NULL && strstr(err.msg, "must be an object") != NULL,
       "options that are not an object refused: %s", err.msg);
    json_decref(arr);

    /* A path under a regular file cannot become the store directory. */
    snprintf(path, sizeof(path), "%s/plainfile", dir);
    ok(test_write_file(path, "x", 1) == 0, "made a plain file");
    snprintf(url, sizeof(url), "file://%s/plainfile/store", dir);
    s = faas_blob_open(url, NULL, &err);
    ok(s == NULL && err.code == ENOTDIR && strstr(err.msg, "plainfile"),
       "store under a file refused: %s", err.msg);

    snprintf(url, sizeof(url), "file://%s/new/deep/store/", dir);
    s = faas_blob_open(url, NULL, &err);
    ok(s != NULL, "open creates the store directory: %s",
       s ? "ok" : err.msg);
    snprintf(path, sizeof(path), "%s/new/deep/store", dir);
    ok(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "directory exists");
    is_str(s ? s->url : NULL, url, "the store keeps its URL");
    faas_blob_close(s);
    faas_blob_close(NULL);
}


static void
test_keys(faas_blob_store_t *s)
{
    static const struct {
        const char *key;
        const char *why;
    } bad[] = {
        { "", "empty" },
        { "/abs/key", "starts with '/'" },
        { "a//b", "empty path segment" },
        { "a/b/", "empty path segment" },
        { "../escape", "'..' segment" },
        { "a/../../b", "'..' segment" },
        { "a/..", "'..' segment" },
        { "./a", "'.' segment" },
        { "a\nb", "control byte 0x0a" },
        { "tab\there", "control byte 0x09" },
    };
    faas_error_t err;
    char         longkey[1100];
    size_t       i, len;
    void        *data;
    int          ret;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ret = faas_blob_put(s, bad[i].key, "x", 1, &err);
        ok(ret == -EINVAL && strstr(err.msg, bad[i].why) != NULL,
           "put refuses key #%zu (%s): %s", i, bad[i].why, err.msg);
    }
    ret = faas_blob_put(s, NULL, "x", 1, &err);
    is_int(ret, -EINVAL, "NULL key refused");
    is_int(faas_blob_get(s, "../x", &data, &len, 10, &err), -EINVAL,
           "get checks the key");
    ok(data == NULL, "get leaves *data NULL on error");
    is_int(faas_blob_stat(s, "a//b", NULL, &err), -EINVAL,
           "stat checks the key");
    is_int(faas_blob_delete(s, "/etc/passwd", &err), -EINVAL,
           "delete checks the key");
    is_int(faas_blob_get_file(s, "..", "/tmp/x", &err), -EINVAL,
           "get_file checks the key");
    is_int(faas_blob_put_file(s, "a/./b", "/etc/hostname", &err), -EINVAL,
           "put_file checks the key");

    memset(longkey, 'k', 1024);
    longkey[1024] = '\0';
    for (i = 200; i < 1024; i += 200) {
        longkey[i] = '/';   /* keep each file name under NAME_MAX */
    }
    is_int(faas_blob_key_check(longkey, &err), 0, "1024-byte key accepted");
    longkey[1024] = 'k';
    longkey[1025] = '\0';
    ret = faas_blob_key_check(longkey, &err);
    ok(ret == -EINVAL && strstr(err.msg, "1025 bytes") != NULL,
       "1025-byte key refused: %s", err.msg);
    is_int(faas_blob_key_check("code/fn/1/ab..cd.zip", &err), 0,
           "'..' inside a name is fine");
    is_int(faas_blob_key_check("logs/f n/2026-11-26/\xc3\xa9.log", &err), 0,
           "spaces and UTF-8 are fine");
    is_int(count_tmp(dir), 0, "refused keys wrote nothing");
}


static void
test_round_trip(faas_blob_store_t *s)
{
    faas_error_t err;
    const char   bin[] = { 'a', '\0', 'b', '\0', '\xff', '\n' };
    void        *data = NULL;
    size_t       len = 0, sz = 0;
    char         path[256];
    struct stat  st;
    int          ret;

    is_int(faas_blob_put(s, "code/fn/1/abc.zip", bin, sizeof(bin), &err), 0,
           "put binary");
    snprintf(path, sizeof(path), "%s/store/code/fn/1/abc.zip", dir);
    ok(stat(path, &st) == 0 && st.st_size == (off_t) sizeof(bin),
       "object is a file at <dir>/<key>");
    ret = faas_blob_get(s, "code/fn/1/abc.zip", &data, &len, 1024, &err);
    is_int(ret, 0, "get");
    ok(len == sizeof(bin) && memcmp(data, bin, len) == 0,
       "binary content intact, NUL bytes included");
    ok(data != NULL && ((char *) data)[len] == '\0', "NUL-terminated");
    free(data);

    is_int(faas_blob_stat(s, "code/fn/1/abc.zip", &sz, &err), 0, "stat");
    is_int(sz, sizeof(bin), "stat size");
    is_int(faas_blob_stat(s, "code/fn/1/abc.zip", NULL, &err), 0,
           "stat with NULL len");

    /* Exactly max is fine; one byte over is -EFBIG. */
    ret = faas_blob_get(s, "code/fn/1/abc.zip", &data, &len, sizeof(bin),
                        &err);
    is_int(ret, 0, "get with max == size");
    free(data);
    ret = faas_blob_get(s, "code/fn/1/abc.zip", &data, &len,
                        sizeof(bin) - 1, &err);
    ok(ret == -EFBIG && strstr(err.msg, "limit 5") != NULL,
       "get over max is -EFBIG: %s", err.msg);
    ok(data == NULL, "no data on -EFBIG");

    is_int(faas_blob_put(s, "code/fn/1/abc.zip", "new", 3, &err), 0,
           "overwrite");
    ret = faas_blob_get(s, "code/fn/1/abc.zip", &data, &len, 1024, &err);
    ok(ret == 0 && len == 3 && memcmp(data, "new", 3) == 0,
       "overwrite replaced the content");
    free(data);

    {
        /* A 250-byte file name: the temporary name must still fit. */
        char name[300];

        memcpy(name, "long/", 5);
        memset(name + 5, 'n', 250);
        name[255] = '\0';
        is_int(faas_blob_put(s, name, "L", 1, &err), 0,
               "put with a 250-byte file name: %s", err.msg);
        is_int(faas_blob_stat(s, name, &sz, &err), 0, "and it is there");
        is_int(faas_blob_delete(s, name, &err), 0, "delete it");
    }

    is_int(faas_blob_put(s, "empty", NULL, 0, &err), 0, "put empty object");
    ret = faas_blob_get(s, "empty", &data, &len, 0, &err);
    ok(ret == 0 && len == 0 && data != NULL && ((char *) data)[0] == '\0',
       "empty object reads back as \"\"");
    free(data);
    is_int(faas_blob_put(s, "nodata", NULL, 5, &err), -EINVAL,
           "NULL data with a length refused");

    ret = faas_blob_get(s, "code/fn/2/missing.zip", &data, &len, 10, &err);
    ok(ret == -ENOENT && strstr(err.msg, "code/fn/2/missing.zip") != NULL,
       "missing object is -ENOENT: %s", err.msg);
    ret = faas_blob_get(s, "code/fn", &data, &len, 10, &err);
    is_int(ret, -ENOENT, "a key prefix (a directory) is not an object");
    is_int(faas_blob_stat(s, "code/fn", NULL, &err), -ENOENT,
           "stat of a prefix is -ENOENT");
    is_int(faas_blob_stat(s, "nope", NULL, &err), -ENOENT,
           "stat of a missing object is -ENOENT");
    ret = faas_blob_get(s, "empty/below", &data, &len, 10, &err);
    is_int(ret, -ENOENT, "a key below an object is missing, not an error");

    /* A key whose parent is an object cannot be written. */
    ret = faas_blob_put(s, "empty/child", "x", 1, &err);
    ok(ret == -ENOTDIR && strstr(err.msg, "empty/child") != NULL,
       "put under an object fails with ENOTDIR: %s", err.msg);

    is_int(faas_blob_delete(s, "code/fn/1/abc.zip", &err), 0, "delete");
    ret = faas_blob_get(s, "code/fn/1/abc.zip", &data, &len, 10, &err);
    is_int(ret, -ENOENT, "deleted object is gone");
    is_int(faas_blob_delete(s, "code/fn/1/abc.zip", &err), 0,
           "deleting a missing object succeeds");
    is_int(faas_blob_delete(s, "code/fn", &err), 0,
           "deleting a prefix is a no-op");
    is_int(count_tmp(dir), 0, "no temporary files left");
}


static void
test_files(faas_blob_store_t *s)
{
    faas_error_t       err;
    char               src[256], dst[256], old[256];
    char              *big, *back;
    size_t             i, n = 3 * 1024 * 1024 + 17, blen;
    int                ret;

    big = malloc(n);
    for (i = 0; i < n; i++) {
        big[i] = (char) (i * 2654435761u >> 13);
    }
    snprintf(src, sizeof(src), "%s/src.bin", dir);
    ok(test_write_file(src, big, n) == 0, "wrote a 3 MB source file");
    is_int(faas_blob_put_file(s, "big/file.bin", src, &err), 0, "put_file");

    snprintf(dst, sizeof(dst), "%s/out/sub/file.bin", dir);
    is_int(faas_blob_get_file(s, "big/file.bin", dst, &err), 0,
           "get_file into a directory that does not exist yet");
    back = test_slurp(dst, &blen);
    ok(back != NULL && blen == n && memcmp(back, big, n) == 0,
       "get_file content matches put_file");
    free(back);

    /* A failed download leaves an existing destination alone. */
    snprintf(old, sizeof(old), "%s/out/old.txt", dir);
    ok(test_write_file(old, "keep me", 7) == 0, "wrote an existing destination");
    ret = faas_blob_get_file(s, "big/missing.bin", old, &err);
    is_int(ret, -ENOENT, "get_file of a missing object is -ENOENT");
    back = test_slurp(old, &blen);
    ok(back != NULL && blen == 7 && memcmp(back, "keep me", 7) == 0,
       "destination untouched after a failed get_file");
    free(back);

    ret = faas_blob_put_file(s, "x", "/nonexistent/file", &err);
    ok(ret == -ENOENT && strstr(err.msg, "/nonexistent/file") != NULL,
       "put_file of a missing source: %s", err.msg);
    ret = faas_blob_put_file(s, "x", dir, &err);
    ok(ret == -EISDIR && strstr(err.msg, "not a regular file") != NULL,
       "put_file of a directory: %s", err.msg);
    is_int(faas_blob_stat(s, "x", NULL, &err), -ENOENT,
           "failed put_file created nothing");

    snprintf(dst, sizeof(dst), "%s/src.bin/below", dir);
    ret = faas_blob_get_file(s, "big/file.bin", dst, &err);
    ok(ret == -ENOTDIR, "get_file to a path under a file fails: %s",
       err.msg);
    is_int(count_tmp(dir), 0, "no temporary files left");
    free(big);
}


int
main(void)
{
    faas_error_t       err;
    faas_blob_store_t *s;
    char               url[128];

    snprintf(dir, sizeof(dir), "/tmp/blobtest.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_open();

    snprintf(url, sizeof(url), "file://%s/store", dir);
    s = faas_blob_open(url, NULL, &err);
    ok(s != NULL, "open %s", url);
    if (s != NULL) {
        test_keys(s);
        test_round_trip(s);
        test_files(s);
        faas_blob_close(s);
    }
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ok(system(cmd) == 0, "removed %s", dir);
    }
    return done_testing();
}
