/*
 * Blob store, s3:// backend, against a real S3 server (s3rver, started by
 * t/common/blob_s3.t). Settings come from the environment:
 *   FAAS_S3_ENDPOINT, FAAS_S3_BUCKET, FAAS_S3_REGION, FAAS_S3_ACCESS_KEY,
 *   FAAS_S3_SECRET_KEY   the server
 *   FAAS_S3_DOWN_PORT    a loopback port where nothing listens
 *   FAAS_S3_TMP          a scratch directory
 * Without them the whole file is skipped (run it through blob_s3.t).
 *
 * It leaves one object for the Perl side to find in s3rver's directory:
 * "t/proof dir/ünï+code%key.txt" holding "proof of the round trip".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "tap.h"
#include "testfile.h"


static const char *endpoint, *bucket, *region, *akey, *skey, *tmpdir;
static const char *down_port;


static json_t *
make_opts(const char *ep, const char *ak, const char *sk)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b}", "s3_endpoint", ep,
                     "s3_region", region, "s3_access_key", ak,
                     "s3_secret_key", sk, "s3_path_style", 1);
}


static faas_blob_store_t *
open_store(const char *url, const char *ep, const char *ak, const char *sk,
           faas_error_t *err)
{
    json_t            *opts = make_opts(ep, ak, sk);
    faas_blob_store_t *s;

    s = faas_blob_open(url, opts, err);
    json_decref(opts);
    return s;
}


static void
test_open_errors(void)
{
    faas_error_t       err;
    faas_blob_store_t *s;
    json_t            *o;

    s = open_store("s3://", endpoint, akey, skey, &err);
    ok(s == NULL && strstr(err.msg, "bucket name") != NULL,
       "s3:// without a bucket refused: %s", err.msg);
    s = open_store("s3://faas", "ftp://127.0.0.1:1", akey, skey, &err);
    ok(s == NULL && strstr(err.msg, "http:// or https://") != NULL,
       "endpoint scheme checked: %s", err.msg);
    s = open_store("s3://faas/../x", endpoint, akey, skey, &err);
    ok(s == NULL && strstr(err.msg, "prefix") != NULL,
       "bad prefix refused: %s", err.msg);

    o = json_pack("{s:s, s:s}", "s3_endpoint", endpoint, "s3_access_key",
                  akey);
    s = faas_blob_open("s3://faas", o, &err);
    ok(s == NULL && strstr(err.msg, "go together") != NULL,
       "access key without secret refused: %s", err.msg);
    json_decref(o);
    o = json_pack("{s:s, s:s}", "s3_endpoint", endpoint, "s3_path_style",
                  "yes");
    s = faas_blob_open("s3://faas", o, &err);
    ok(s == NULL && strstr(err.msg, "s3_path_style must be a boolean"),
       "s3_path_style type checked: %s", err.msg);
    json_decref(o);
    o = json_pack("{s:s, s:s}", "s3_endpoint", endpoint, "s3_timeout_ms",
                  "10");
    s = faas_blob_open("s3://faas", o, &err);
    ok(s == NULL && strstr(err.msg, "s3_timeout_ms") != NULL,
       "s3_timeout_ms type checked: %s", err.msg);
    json_decref(o);
    o = json_pack("{s:i}", "s3_endpoint", 5);
    s = faas_blob_open("s3://faas", o, &err);
    ok(s == NULL && strstr(err.msg, "s3_endpoint must be a string"),
       "s3_endpoint type checked: %s", err.msg);
    json_decref(o);
}


static void
test_round_trips(faas_blob_store_t *s)
{
    static const char  bin[] = "\0\x01\xff binary\0with NULs\r\n\0";
    static const char *odd = "t/odd keys/sp ace+plus&amp=eq?q#h%25 "
                             "\xc3\xbc\xe2\x82\xac~'!(),;@$*.bin";
    faas_error_t       err;
    void              *data = NULL;
    size_t             len = 0, sz = 0;
    int                ret;

    is_int(faas_blob_put(s, "t/bin/data.bin", bin, sizeof(bin), &err), 0,
           "put binary: %s", err.msg);
    ret = faas_blob_get(s, "t/bin/data.bin", &data, &len, 1024, &err);
    is_int(ret, 0, "get binary: %s", ret ? err.msg : "ok");
    ok(ret == 0 && len == sizeof(bin) && memcmp(data, bin, len) == 0,
       "binary content with NUL bytes intact (%zu bytes)", len);
    ok(ret == 0 && ((char *) data)[len] == '\0', "NUL-terminated");
    free(data);
    is_int(faas_blob_stat(s, "t/bin/data.bin", &sz, &err), 0, "stat");
    is_int(sz, sizeof(bin), "stat gives the size");

    ret = faas_blob_get(s, "t/bin/data.bin", &data, &len, sizeof(bin),
                        &err);
    is_int(ret, 0, "get with max == size");
    free(data);
    data = NULL;
    ret = faas_blob_get(s, "t/bin/data.bin", &data, &len, sizeof(bin) - 1,
                        &err);
    ok(ret == -EFBIG && strstr(err.msg, "limit") != NULL,
       "one byte over max is -EFBIG: %s", err.msg);
    ok(data == NULL, "no data on -EFBIG");

    ret = faas_blob_put(s, odd, "odd", 3, &err);
    is_int(ret, 0, "put a key with spaces, UTF-8 and reserved characters: "
           "%s", ret ? err.msg : "ok");
    ret = faas_blob_get(s, odd, &data, &len, 100, &err);
    ok(ret == 0 && len == 3 && memcmp(data, "odd", 3) == 0,
       "get it back under the same key: %s", ret ? err.msg : "ok");
    free(data);
    is_int(faas_blob_stat(s, odd, &sz, &err), 0, "stat the odd key");
    is_int(faas_blob_delete(s, odd, &err), 0, "delete the odd key");
    is_int(faas_blob_stat(s, odd, NULL, &err), -ENOENT, "and it is gone");

    ret = faas_blob_put(s, "t/proof dir/\xc3\xbc" "n\xc3\xaf" "+code%key.txt",
                        "proof of the round trip", 23, &err);
    is_int(ret, 0, "put the proof object for blob_s3.t");

    is_int(faas_blob_put(s, "t/empty", NULL, 0, &err), 0, "put empty");
    ret = faas_blob_get(s, "t/empty", &data, &len, 0, &err);
    ok(ret == 0 && len == 0 && data != NULL && ((char *) data)[0] == '\0',
       "empty object reads back as \"\": %s", ret ? err.msg : "ok");
    free(data);

    /* Overwrite. */
    is_int(faas_blob_put(s, "t/bin/data.bin", "v2", 2, &err), 0,
           "overwrite");
    ret = faas_blob_get(s, "t/bin/data.bin", &data, &len, 10, &err);
    ok(ret == 0 && len == 2 && memcmp(data, "v2", 2) == 0,
       "overwrite replaced the content");
    free(data);

    /* Missing objects, delete. */
    ret = faas_blob_get(s, "t/none/such.zip", &data, &len, 10, &err);
    ok(ret == -ENOENT && strstr(err.msg, "t/none/such.zip") != NULL,
       "get of a missing object is -ENOENT: %s", err.msg);
    ok(data == NULL, "no data for a missing object");
    is_int(faas_blob_stat(s, "t/none/such.zip", NULL, &err), -ENOENT,
           "stat of a missing object is -ENOENT");
    is_int(faas_blob_delete(s, "t/bin/data.bin", &err), 0, "delete");
    ret = faas_blob_get(s, "t/bin/data.bin", &data, &len, 10, &err);
    is_int(ret, -ENOENT, "get after delete is -ENOENT");
    is_int(faas_blob_delete(s, "t/bin/data.bin", &err), 0,
           "deleting a missing object succeeds");
    is_int(faas_blob_put(s, "../x", "x", 1, &err), -EINVAL,
           "keys are checked for S3 too");
}


static void
test_files(faas_blob_store_t *s)
{
    faas_error_t err;
    char         src[512], dst[512];
    char        *big, *back;
    void        *data = NULL;
    size_t       i, n = 5 * 1024 * 1024, blen, sz = 0, len;
    int          ret;
    struct stat  st;

    big = malloc(n);
    for (i = 0; i < n; i++) {
        big[i] = (char) ((i * 2654435761u) >> 11);
    }
    snprintf(src, sizeof(src), "%s/big.src", tmpdir);
    ok(test_write_file(src, big, n) == 0, "wrote a 5 MB file");
    ret = faas_blob_put_file(s, "t/big/5mb.bin", src, &err);
    is_int(ret, 0, "put_file 5 MB: %s", ret ? err.msg : "ok");
    is_int(faas_blob_stat(s, "t/big/5mb.bin", &sz, &err), 0, "stat it");
    is_int(sz, n, "stat size is 5 MB");

    snprintf(dst, sizeof(dst), "%s/down/sub/5mb.bin", tmpdir);
    ret = faas_blob_get_file(s, "t/big/5mb.bin", dst, &err);
    is_int(ret, 0, "get_file into a new directory: %s",
           ret ? err.msg : "ok");
    back = test_slurp(dst, &blen);
    ok(back != NULL && blen == n && memcmp(back, big, n) == 0,
       "get_file content equals the uploaded file");
    free(back);

    ret = faas_blob_get(s, "t/big/5mb.bin", &data, &len, 1024 * 1024, &err);
    ok(ret == -EFBIG && strstr(err.msg, "5242880") != NULL,
       "get of 5 MB with a 1 MB max is -EFBIG: %s", err.msg);
    ok(data == NULL, "no data on -EFBIG");
    ret = faas_blob_get(s, "t/big/5mb.bin", &data, &len, n, &err);
    ok(ret == 0 && len == n && memcmp(data, big, n) == 0,
       "get into memory with max == size");
    free(data);

    snprintf(dst, sizeof(dst), "%s/down/missing.bin", tmpdir);
    ret = faas_blob_get_file(s, "t/big/missing.bin", dst, &err);
    is_int(ret, -ENOENT, "get_file of a missing object is -ENOENT");
    ok(stat(dst, &st) < 0 && errno == ENOENT,
       "and no file was created");

    ret = faas_blob_put_file(s, "t/x", "/nonexistent/file", &err);
    ok(ret == -ENOENT && strstr(err.msg, "/nonexistent/file") != NULL,
       "put_file of a missing source: %s", err.msg);
    is_int(faas_blob_delete(s, "t/big/5mb.bin", &err), 0, "delete 5 MB");
    unlink(src);
    free(big);
}


static void
test_prefix(faas_blob_store_t *s)
{
    faas_error_t       err;
    faas_blob_store_t *p;
    char               url[256];
    void              *data = NULL;
    size_t             len;
    int                ret;

    snprintf(url, sizeof(url), "s3://%s/t/pre fix/", bucket);
    p = open_store(url, endpoint, akey, skey, &err);
    ok(p != NULL, "open %s", url);
    if (p == NULL) {
        return;
    }
    is_int(faas_blob_put(p, "inner.txt", "in", 2, &err), 0,
           "put through the prefixed store");
    ret = faas_blob_get(s, "t/pre fix/inner.txt", &data, &len, 10, &err);
    ok(ret == 0 && len == 2 && memcmp(data, "in", 2) == 0,
       "object lands under the prefix");
    free(data);
    is_int(faas_blob_delete(p, "inner.txt", &err), 0, "delete it");
    faas_blob_close(p);
}


static void
test_errors(void)
{
    faas_error_t       err;
    faas_blob_store_t *s;
    char               url[256], ep[128];
    void              *data = NULL;
    size_t             len;
    int                ret, lfd;
    json_t            *o;
    struct sockaddr_in sa;
    socklen_t          salen = sizeof(sa);

    snprintf(url, sizeof(url), "s3://%s", bucket);

    /*
     * s3rver 3.7.1 checks the access key id but not V4 signatures, so a
     * wrong secret cannot be provoked here. A 403 with an S3 code takes the
     * same path as SignatureDoesNotMatch.
     */
    s = open_store(url, endpoint, "NOSUCHKEYID", skey, &err);
    ret = s ? faas_blob_get(s, "t/empty", &data, &len, 10, &err) : -1;
    ok(ret == -EACCES && strstr(err.msg, "InvalidAccessKeyId") != NULL,
       "unknown access key: get is -EACCES with the S3 code: %s", err.msg);
    ret = s ? faas_blob_put(s, "t/denied", "x", 1, &err) : -1;
    ok(ret == -EACCES && strstr(err.msg, "InvalidAccessKeyId") != NULL,
       "unknown access key: put is -EACCES: %s", err.msg);
    ret = s ? faas_blob_stat(s, "t/empty", NULL, &err) : -1;
    ok(ret == -EACCES && strstr(err.msg, "s3_secret_key") != NULL,
       "unknown access key: stat (HEAD, no body) is -EACCES: %s", err.msg);
    ret = s ? faas_blob_delete(s, "t/empty", &err) : -1;
    is_int(ret, -EACCES, "unknown access key: delete is -EACCES");
    faas_blob_close(s);

    s = open_store("s3://no-such-bucket-here", endpoint, akey, skey, &err);
    ret = s ? faas_blob_get(s, "t/empty", &data, &len, 10, &err) : -1;
    ok(ret == -ENXIO && strstr(err.msg, "no-such-bucket-here") != NULL
       && strstr(err.msg, "does not exist") != NULL,
       "wrong bucket: get says so: %s", err.msg);
    ret = s ? faas_blob_stat(s, "t/empty", NULL, &err) : -1;
    ok(ret == -ENXIO && strstr(err.msg, "does not exist") != NULL,
       "wrong bucket: stat says so: %s", err.msg);
    ret = s ? faas_blob_put(s, "t/x", "x", 1, &err) : -1;
    ok(ret == -ENXIO, "wrong bucket: put fails: %s", err.msg);
    faas_blob_close(s);

    snprintf(ep, sizeof(ep), "http://127.0.0.1:%s", down_port);
    s = open_store(url, ep, akey, skey, &err);
    ret = s ? faas_blob_get(s, "t/empty", &data, &len, 10, &err) : -1;
    ok(ret == -ECONNREFUSED && strstr(err.msg, down_port) != NULL,
       "endpoint down: -ECONNREFUSED with curl's message: %s", err.msg);
    ret = s ? faas_blob_put(s, "t/x", "x", 1, &err) : -1;
    is_int(ret, -ECONNREFUSED, "endpoint down: put fails too");
    faas_blob_close(s);

    /* A server that accepts the connection and never answers. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok(lfd >= 0 && bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) == 0
       && listen(lfd, 4) == 0
       && getsockname(lfd, (struct sockaddr *) &sa, &salen) == 0,
       "a silent listener");
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    o = json_pack("{s:s, s:s, s:s, s:i}", "s3_endpoint", ep,
                  "s3_access_key", akey, "s3_secret_key", skey,
                  "s3_timeout_ms", 300);
    s = faas_blob_open(url, o, &err);
    json_decref(o);
    ret = s ? faas_blob_get(s, "t/empty", &data, &len, 10, &err) : -1;
    ok(ret == -ETIMEDOUT && strstr(err.msg, "timed out") != NULL,
       "silent server: -ETIMEDOUT after s3_timeout_ms: %s", err.msg);
    faas_blob_close(s);
    close(lfd);
}


int
main(void)
{
    faas_error_t       err;
    faas_blob_store_t *s;
    char               url[256];

    endpoint = getenv("FAAS_S3_ENDPOINT");
    bucket = getenv("FAAS_S3_BUCKET");
    region = getenv("FAAS_S3_REGION");
    akey = getenv("FAAS_S3_ACCESS_KEY");
    skey = getenv("FAAS_S3_SECRET_KEY");
    down_port = getenv("FAAS_S3_DOWN_PORT");
    tmpdir = getenv("FAAS_S3_TMP");
    if (!endpoint || !bucket || !region || !akey || !skey || !down_port
        || !tmpdir)
    {
        printf("1..0 # SKIP FAAS_S3_* not set (run t/common/blob_s3.t)\n");
        return 0;
    }

    test_open_errors();
    snprintf(url, sizeof(url), "s3://%s", bucket);
    s = open_store(url, endpoint, akey, skey, &err);
    ok(s != NULL, "open %s at %s: %s", url, endpoint, s ? "ok" : err.msg);
    if (s != NULL) {
        test_round_trips(s);
        test_files(s);
        test_prefix(s);
        faas_blob_close(s);
    }
    test_errors();
    return done_testing();
}
