/*
 * s3:// blob backend over libcurl. Requests are signed by libcurl itself
 * (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3"); we add x-amz-content-sha256
 * (the body's SHA-256, computed here) so real S3 accepts the signature.
 *
 * One CURL handle per store, reset and reused for every request so the
 * connection stays open: a store is used by one thread at a time.
 */
#include "blob_internal.h"
#include "cleanup.h"
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#define S3_CONNECT_TIMEOUT_MS 5000
#define S3_DEFAULT_TIMEOUT_MS 30000
#define S3_ERRBODY_MAX        4096
#define S3_EMPTY_SHA256 \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


typedef struct {
    faas_blob_store_t base;
    CURL             *curl;
    char             *bucket;
    char             *prefix;     /* "" or "dir/" prepended to every key */
    char             *base_url;   /* up to and including the bucket */
    char             *sigv4;      /* "aws:amz:<region>:s3" */
    char             *access_key; /* NULL: unsigned (anonymous) requests */
    char             *secret_key;
    long              timeout_ms;
} s3_store_t;

enum { DL_NONE, DL_MEM, DL_FD };

typedef struct {
    s3_store_t *s3;
    const char *method;
    const char *key;          /* NULL: the bucket itself */

    /* upload: from memory (up_data) or from a file (up_fd >= 0) */
    const char *up_data;
    size_t      up_len;
    size_t      up_pos;
    int         up_fd;
    const char *up_name;
    char        sha256[65];

    /* download */
    int         dl;
    char       *buf;
    size_t      len, cap, max;
    int         too_big;
    int         out_fd;
    int         out_errno;

    char        errbody[S3_ERRBODY_MAX];
    size_t      errlen;
    long        status;
    curl_off_t  length;       /* Content-Length of a HEAD answer */
} s3_req_t;


static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode       curl_init_rc;


static void
curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}


/* S3 (SigV4) URI encoding: everything but A-Za-z0-9-_.~ and "/". */
static char *
uri_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t            n = strlen(s);
    char             *out, *o;
    unsigned char     c;

    out = malloc(n * 3 + 1);
    if (out == NULL) {
        return NULL;
    }
    for (o = out; *s != '\0'; s++) {
        c = (unsigned char) *s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
            || c == '~' || c == '/')
        {
            *o++ = (char) c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}


static void
hex_digest(const unsigned char *md, unsigned int n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned int      i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}


static int
sha256_mem(const void *data, size_t len, char *out, faas_error_t *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int  n;

    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL)) {
        return faas_error_set(err, EIO, "sha256");
    }
    hex_digest(md, n, out);
    return 0;
}


static int
sha256_fd(int fd, const char *name, char *out, faas_error_t *err)
{
    EVP_MD_CTX   *ctx;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int  n;
    char          buf[65536];
    ssize_t       r;
    int           ret = 0;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        return faas_error_set(err, ENOMEM, "sha256 %s", name);
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        ret = faas_error_set(err, errno, "seek %s", name);
    }
    while (ret == 0) {
        r = read(fd, buf, sizeof(buf));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            ret = faas_error_set(err, errno, "read %s", name);
            break;
        }
        if (r == 0) {
            break;
        }
        EVP_DigestUpdate(ctx, buf, (size_t) r);
    }
    if (ret == 0) {
        EVP_DigestFinal_ex(ctx, md, &n);
        hex_digest(md, n, out);
    }
    EVP_MD_CTX_free(ctx);
    if (ret == 0 && lseek(fd, 0, SEEK_SET) < 0) {
        ret = faas_error_set(err, errno, "seek %s", name);
    }
    return ret;
}


static size_t
read_cb(char *dst, size_t size, size_t nmemb, void *arg)
{
    s3_req_t *rq = arg;
    size_t    want = size * nmemb, n;
    ssize_t   r;

    if (rq->up_fd >= 0) {
        do {
            r = read(rq->up_fd, dst, want);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            rq->out_errno = errno;
            return CURL_READFUNC_ABORT;
        }
        return (size_t) r;
    }
    n = rq->up_len - rq->up_pos;
    if (n > want) {
        n = want;
    }
    memcpy(dst, rq->up_data + rq->up_pos, n);
    rq->up_pos += n;
    return n;
}


/* curl rewinds the body when it resends a request on a fresh connection. */
static int
seek_cb(void *arg, curl_off_t offset, int origin)
{
    s3_req_t *rq = arg;

    if (origin != SEEK_SET || offset < 0) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    if (rq->up_fd >= 0) {
        return lseek(rq->up_fd, (off_t) offset, SEEK_SET) < 0
               ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
    }
    if ((size_t) offset > rq->up_len) {
        return CURL_SEEKFUNC_FAIL;
    }
    rq->up_pos = (size_t) offset;
    return CURL_SEEKFUNC_OK;
}


static size_t
write_cb(char *src, size_t size, size_t nmemb, void *arg)
{
    s3_req_t  *rq = arg;
    size_t     n = size * nmemb, room, cap;
    long       status = 0;
    curl_off_t cl = -1;
    char      *p;
    ssize_t    w;

    curl_easy_getinfo(rq->s3->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        /* An S3 error document: keep its start for the message. */
        room = sizeof(rq->errbody) - 1 - rq->errlen;
        memcpy(rq->errbody + rq->errlen, src, n < room ? n : room);
        rq->errlen += n < room ? n : room;
        rq->errbody[rq->errlen] = '\0';
        return n;
    }
    if (rq->dl == DL_MEM) {
        if (rq->len == 0 && rq->cap == 0) {
            curl_easy_getinfo(rq->s3->curl,
                              CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
            if (cl > 0 && (unsigned long long) cl > rq->max) {
                rq->too_big = 1;
                rq->length = cl;
                return 0;
            }
        }
        if (n > rq->max - rq->len) {
            rq->too_big = 1;
            return 0;
        }
        if (rq->len + n + 1 > rq->cap) {
            cap = rq->cap ? rq->cap : 65536;
            while (cap < rq->len + n + 1) {
                cap *= 2;
            }
            if (cap > rq->max + 1) {
                cap = rq->max + 1;
            }
            p = realloc(rq->buf, cap);
            if (p == NULL) {
                rq->out_errno = ENOMEM;
                return 0;
            }
            rq->buf = p;
            rq->cap = cap;
        }
        memcpy(rq->buf + rq->len, src, n);
        rq->len += n;
        return n;
    }
    if (rq->dl == DL_FD) {
        for (p = src, room = n; room > 0;) {
            w = write(rq->out_fd, p, room);
            if (w < 0) {
                if (errno == EINTR) {
                    continue;
                }
                rq->out_errno = errno;
                return 0;
            }
            p += w;
            room -= (size_t) w;
        }
        return n;
    }
    return n;
}


/* The text of <tag>...</tag> in an S3 error document, or "" if absent. */
static void
xml_field(const char *doc, const char *tag, char *out, size_t outlen)
{
    char        open[64], close_[64];
    const char *a, *b;
    size_t      n;

    out[0] = '\0';
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close_, sizeof(close_), "</%s>", tag);
    a = strstr(doc, open);
    if (a == NULL) {
        return;
    }
    a += strlen(open);
    b = strstr(a, close_);
    if (b == NULL) {
        return;
    }
    n = (size_t) (b - a);
    if (n >= outlen) {
        n = outlen - 1;
    }
    memcpy(out, a, n);
    out[n] = '\0';
}


static int
is_auth_code(const char *code)
{
    static const char *const codes[] = {
        "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId",
        "AuthorizationHeaderMalformed", "ExpiredToken", "InvalidToken",
        "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
        "RequestTimeTooSkewed", NULL
    };
    const char *const *c;

    for (c = codes; *c != NULL; c++) {
        if (strcmp(code, *c) == 0) {
            return 1;
        }
    }
    return 0;
}


static int
curl_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return EHOSTUNREACH;
    case CURLE_OUT_OF_MEMORY:
        return ENOMEM;
    default:
        return EIO;
    }
}


/* The request's URL, in *url (the caller frees it): the bucket's, or the
 * key's (the store's prefix prepended, percent-encoded). */
static int
s3_url(const s3_req_t *rq, const char *what, char **url, faas_error_t *err)
{
    const s3_store_t  *s3 = rq->s3;
    cleanup_free char *full = NULL, *enc = NULL;

    if (rq->key == NULL) {
        *url = strdup(s3->base_url);
        if (*url == NULL) {
            return faas_error_set(err, ENOMEM, "S3 %s %s", rq->method, what);
        }
        return 0;
    }
    if (asprintf(&full, "%s%s", s3->prefix, rq->key) < 0) {
        full = NULL;
        return faas_error_set(err, ENOMEM, "S3 %s %s", rq->method, what);
    }
    enc = uri_encode(full);
    if (enc == NULL || asprintf(url, "%s/%s", s3->base_url, enc) < 0) {
        *url = NULL;
        return faas_error_set(err, ENOMEM, "S3 %s %s", rq->method, what);
    }
    return 0;
}


/* The options every request has: URL, timeouts, signing, the answer. */
static void
s3_setopt_common(CURL *h, s3_req_t *rq, const char *url, char *errbuf)
{
    const s3_store_t *s3 = rq->s3;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "faas-blob/1");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     s3->timeout_ms < S3_CONNECT_TIMEOUT_MS
                     ? s3->timeout_ms : (long) S3_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s3->timeout_ms);
    if (s3->access_key != NULL) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s3->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, s3->access_key);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s3->secret_key);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rq);
}


/* A PUT's body (from memory or a file) and its hash, in rq->sha256. */
static int
s3_setopt_upload(CURL *h, s3_req_t *rq, const char *what, faas_error_t *err)
{
    curl_off_t  size;
    struct stat st;

    if (rq->up_fd >= 0) {
        if (fstat(rq->up_fd, &st) < 0) {
            return faas_error_set(err, errno, "S3 PUT %s: stat %s", what,
                                  rq->up_name);
        }
        size = (curl_off_t) st.st_size;
        if (sha256_fd(rq->up_fd, rq->up_name, rq->sha256, err) < 0) {
            return faas_error_wrap(err, "S3 PUT %s", what);
        }
    } else {
        size = (curl_off_t) rq->up_len;
        if (sha256_mem(rq->up_data, rq->up_len, rq->sha256, err) < 0) {
            return faas_error_wrap(err, "S3 PUT %s", what);
        }
    }
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, rq);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, rq);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, size);
    return 0;
}


/* The method's options; the body's hash in rq->sha256. */
static int
s3_setopt_method(CURL *h, s3_req_t *rq, const char *what, faas_error_t *err)
{
    if (strcmp(rq->method, "PUT") == 0) {
        return s3_setopt_upload(h, rq, what, err);
    }
    strcpy(rq->sha256, S3_EMPTY_SHA256);
    if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    return 0;
}


/* The request's headers (the caller frees them), or NULL: out of memory. */
static struct curl_slist *
s3_headers(const s3_req_t *rq)
{
    struct curl_slist *hdrs, *t;
    char               line[128];

    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", rq->sha256);
    hdrs = curl_slist_append(NULL, line);
    if (hdrs == NULL || strcmp(rq->method, "PUT") != 0) {
        return hdrs;
    }
    t = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
    if (t == NULL) {
        curl_slist_free_all(hdrs);
    }
    return t;
}


/* A non-2xx answer as an errno and a message, from S3's error document. */
static int
s3_status_error(const s3_req_t *rq, const char *what, faas_error_t *err)
{
    const s3_store_t *s3 = rq->s3;
    char              code[128], msg[256];

    xml_field(rq->errbody, "Code", code, sizeof(code));
    xml_field(rq->errbody, "Message", msg, sizeof(msg));
    if (strcmp(code, "NoSuchBucket") == 0) {
        return faas_error_set(err, ENXIO,
                              "S3 %s %s: bucket '%s' does not exist at %s "
                              "(NoSuchBucket)", rq->method, what,
                              s3->bucket, s3->base_url);
    }
    if (rq->status == 404 && (code[0] == '\0'
                              || strcmp(code, "NoSuchKey") == 0))
    {
        return faas_error_set(err, ENOENT, "blob %s", what);
    }
    if (rq->status == 403 || is_auth_code(code)) {
        if (code[0] == '\0') {
            return faas_error_set(err, EACCES,
                                  "S3 %s %s: HTTP %ld (no S3 error code; "
                                  "check s3_access_key/s3_secret_key)",
                                  rq->method, what, rq->status);
        }
        return faas_error_set(err, EACCES, "S3 %s %s: HTTP %ld %s: %s",
                              rq->method, what, rq->status, code, msg);
    }
    return faas_error_set(err, EIO, "S3 %s %s: HTTP %ld %s%s%s",
                          rq->method, what, rq->status,
                          code[0] != '\0' ? code : "(no S3 error code)",
                          msg[0] != '\0' ? ": " : "", msg);
}


/* What a finished transfer amounts to: 0 on a 2xx answer, else an error
 * (a download too big, a failed write, curl's error, S3's answer). */
static int
s3_outcome(s3_req_t *rq, CURLcode rc, const char *errbuf, const char *what,
           faas_error_t *err)
{
    if (rq->too_big) {
        if (rq->length > 0) {
            return faas_error_set(err, EFBIG,
                                  "blob %s is %lld bytes (limit %zu)", what,
                                  (long long) rq->length, rq->max);
        }
        return faas_error_set(err, EFBIG, "blob %s is over %zu bytes", what,
                              rq->max);
    }
    if (rq->out_errno != 0) {
        return faas_error_set(err, rq->out_errno, "S3 %s %s", rq->method,
                              what);
    }
    if (rc != CURLE_OK) {
        return faas_error_set(err, curl_errno(rc), "S3 %s %s at %s: %s",
                              rq->method, what, rq->s3->base_url,
                              errbuf[0] != '\0' ? errbuf
                              : curl_easy_strerror(rc));
    }
    if (rq->status >= 200 && rq->status <= 299) {
        if (strcmp(rq->method, "HEAD") == 0) {
            curl_easy_getinfo(rq->s3->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                              &rq->length);
        }
        return 0;
    }
    return s3_status_error(rq, what, err);
}


/*
 * Runs one request. Returns 0 on a 2xx answer, else a negative errno with
 * err saying what S3 or curl said.
 */
static int
s3_perform(s3_req_t *rq, faas_error_t *err)
{
    CURL               *h = rq->s3->curl;
    cleanup_free char  *url = NULL;
    struct curl_slist  *hdrs;
    char                errbuf[CURL_ERROR_SIZE];
    const char         *what;
    CURLcode            rc;
    int                 ret;

    what = rq->key != NULL ? rq->key : "(bucket)";
    if ((ret = s3_url(rq, what, &url, err)) < 0) {
        return ret;
    }
    curl_easy_reset(h);
    errbuf[0] = '\0';
    s3_setopt_common(h, rq, url, errbuf);
    if ((ret = s3_setopt_method(h, rq, what, err)) < 0) {
        return ret;
    }
    hdrs = s3_headers(rq);
    if (hdrs == NULL) {
        return faas_error_set(err, ENOMEM, "S3 %s %s", rq->method, what);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rq->status);
    /* The store outlives this call: drop pointers into our stack. */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    return s3_outcome(rq, rc, errbuf, what, err);
}


static void
req_init(s3_req_t *rq, faas_blob_store_t *s, const char *method,
         const char *key)
{
    memset(rq, 0, sizeof(*rq));
    rq->s3 = (s3_store_t *) s;
    rq->method = method;
    rq->key = key;
    rq->up_fd = -1;
    rq->out_fd = -1;
}


static int
s3_put(faas_blob_store_t *s, const char *key, const void *data, size_t len,
       faas_error_t *err)
{
    s3_req_t rq;

    req_init(&rq, s, "PUT", key);
    rq.up_data = data;
    rq.up_len = len;
    return s3_perform(&rq, err);
}


static int
s3_put_file(faas_blob_store_t *s, const char *key, const char *path,
            faas_error_t *err)
{
    cleanup_close int fd = -1;
    struct stat       st;
    s3_req_t          rq;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return faas_error_set(err, errno, "blob put %s: open %s", key, path);
    }
    if (fstat(fd, &st) < 0) {
        return faas_error_set(err, errno, "blob put %s: stat %s", key, path);
    }
    if (!S_ISREG(st.st_mode)) {
        return faas_error_set(err, S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
                              "blob put %s: %s is not a regular file", key,
                              path);
    }
    req_init(&rq, s, "PUT", key);
    rq.up_fd = fd;
    rq.up_name = path;
    return s3_perform(&rq, err);
}


static int
s3_get(faas_blob_store_t *s, const char *key, void **data, size_t *len,
       size_t max, faas_error_t *err)
{
    s3_req_t rq;
    int      ret;

    req_init(&rq, s, "GET", key);
    rq.dl = DL_MEM;
    rq.max = max;
    ret = s3_perform(&rq, err);
    if (ret < 0) {
        free(rq.buf);
        return ret;
    }
    if (rq.buf == NULL) {
        rq.buf = malloc(1);
        if (rq.buf == NULL) {
            return faas_error_set(err, ENOMEM, "blob %s", key);
        }
    }
    rq.buf[rq.len] = '\0';
    *data = rq.buf;
    if (len != NULL) {
        *len = rq.len;
    }
    return 0;
}


static int
fill_from_s3(int fd, void *arg, faas_error_t *err)
{
    s3_req_t *rq = arg;

    rq->out_fd = fd;
    return s3_perform(rq, err);
}


static int
s3_get_file(faas_blob_store_t *s, const char *key, const char *path,
            faas_error_t *err)
{
    s3_req_t rq;

    req_init(&rq, s, "GET", key);
    rq.dl = DL_FD;
    return faas_blob_write_atomic(path, fill_from_s3, &rq, err);
}


static int
s3_del(faas_blob_store_t *s, const char *key, faas_error_t *err)
{
    s3_req_t rq;
    int      ret;

    req_init(&rq, s, "DELETE", key);
    ret = s3_perform(&rq, err);
    /* S3 answers 204 for a missing key; some servers say 404. */
    return ret == -ENOENT ? 0 : ret;
}


static int
s3_stat(faas_blob_store_t *s, const char *key, size_t *len,
        faas_error_t *err)
{
    s3_req_t rq, brq;
    int      ret;

    req_init(&rq, s, "HEAD", key);
    ret = s3_perform(&rq, err);
    if (ret == -ENOENT) {
        /* A HEAD answer has no body: tell a missing bucket apart. */
        req_init(&brq, s, "HEAD", NULL);
        if (s3_perform(&brq, NULL) == -ENOENT) {
            return faas_error_set(err, ENXIO,
                                  "S3 HEAD %s: bucket '%s' does not exist "
                                  "at %s", key, rq.s3->bucket,
                                  rq.s3->base_url);
        }
        return ret;
    }
    if (ret < 0) {
        return ret;
    }
    if (len != NULL) {
        *len = rq.length > 0 ? (size_t) rq.length : 0;
    }
    return 0;
}


static void
s3_close(faas_blob_store_t *s)
{
    s3_store_t *s3 = (s3_store_t *) s;

    if (s3->curl != NULL) {
        curl_easy_cleanup(s3->curl);
    }
    free(s3->bucket);
    free(s3->prefix);
    free(s3->base_url);
    free(s3->sigv4);
    free(s3->access_key);
    free(s3->secret_key);
    free(s3);
}


static int
bucket_name_ok(const char *b, size_t n)
{
    size_t i;

    if (n == 0 || n > 255) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= 'A' && b[i] <= 'Z')
              || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' || b[i] == '.'
              || b[i] == '_'))
        {
            return 0;
        }
    }
    return 1;
}


static int
s3_configure(s3_store_t *s3, const char *rest, const json_t *opts,
             faas_error_t *err)
{
    static const char *const str_keys[] = {
        "s3_endpoint", "s3_region", "s3_access_key", "s3_secret_key", NULL
    };
    static const char *const int_keys[] = { "s3_timeout_ms", NULL };
    const char              *slash, *endpoint, *region, *ak, *sk, *host;
    cleanup_free char       *ep = NULL;
    json_t                  *ps;
    size_t                   n;
    int                      path_style, ret;
    long long                timeout;

    slash = strchr(rest, '/');
    n = slash != NULL ? (size_t) (slash - rest) : strlen(rest);
    if (!bucket_name_ok(rest, n)) {
        return faas_error_set(err, EINVAL,
                              "s3:// URL needs a bucket name "
                              "(s3://<bucket>[/<prefix>])");
    }
    s3->bucket = strndup(rest, n);
    if (slash != NULL && slash[1] != '\0') {
        cleanup_free char *p = strdup(slash + 1);
        size_t             m;

        if (p == NULL) {
            return faas_error_set(err, ENOMEM, "open");
        }
        m = strlen(p);
        while (m > 0 && p[m - 1] == '/') {
            p[--m] = '\0';
        }
        ret = faas_blob_key_check(p, err);
        if (ret < 0) {
            return faas_error_wrap(err, "s3:// URL prefix");
        }
        if (asprintf(&s3->prefix, "%s/", p) < 0) {
            s3->prefix = NULL;
        }
    } else {
        s3->prefix = strdup("");
    }
    if (s3->bucket == NULL || s3->prefix == NULL) {
        return faas_error_set(err, ENOMEM, "open");
    }

    if (opts != NULL) {
        ret = faas_config_check_types(opts, str_keys, int_keys, err);
        if (ret < 0) {
            return ret;
        }
        ps = json_object_get(opts, "s3_path_style");
        if (ps != NULL && !json_is_boolean(ps)) {
            return faas_error_set(err, EINVAL,
                                  "config: s3_path_style must be a boolean");
        }
    }
    endpoint = faas_config_string(opts, "s3_endpoint", NULL);
    region = faas_config_string(opts, "s3_region", "us-east-1");
    ak = faas_config_string(opts, "s3_access_key", NULL);
    sk = faas_config_string(opts, "s3_secret_key", NULL);
    path_style = faas_config_bool(opts, "s3_path_style", endpoint != NULL);
    timeout = faas_config_int(opts, "s3_timeout_ms", S3_DEFAULT_TIMEOUT_MS);

    if (region[0] == '\0' || strpbrk(region, ":/ ") != NULL) {
        return faas_error_set(err, EINVAL, "config: bad s3_region '%s'",
                              region);
    }
    if ((ak == NULL) != (sk == NULL)) {
        return faas_error_set(err, EINVAL,
                              "config: s3_access_key and s3_secret_key go "
                              "together");
    }
    if (timeout <= 0 || timeout > 24LL * 3600 * 1000) {
        return faas_error_set(err, EINVAL,
                              "config: s3_timeout_ms must be in 1..86400000");
    }
    s3->timeout_ms = (long) timeout;

    if (endpoint == NULL) {
        if (asprintf(&ep, "https://s3.%s.amazonaws.com", region) < 0) {
            ep = NULL;
            return faas_error_set(err, ENOMEM, "open");
        }
    } else if ((ep = strdup(endpoint)) == NULL) {
        return faas_error_set(err, ENOMEM, "open");
    }
    n = strlen(ep);
    while (n > 0 && ep[n - 1] == '/') {
        ep[--n] = '\0';
    }
    if (strncmp(ep, "http://", 7) == 0) {
        host = ep + 7;
    } else if (strncmp(ep, "https://", 8) == 0) {
        host = ep + 8;
    } else {
        return faas_error_set(err, EINVAL,
                              "config: s3_endpoint '%s' must start with "
                              "http:// or https://", ep);
    }
    if (host[0] == '\0' || host[0] == '/') {
        return faas_error_set(err, EINVAL, "config: s3_endpoint '%s' has no "
                              "host", ep);
    }
    if (path_style) {
        ret = asprintf(&s3->base_url, "%s/%s", ep, s3->bucket);
    } else {
        ret = asprintf(&s3->base_url, "%.*s%s.%s", (int) (host - ep), ep,
                       s3->bucket, host);
    }
    if (ret < 0) {
        s3->base_url = NULL;
        return faas_error_set(err, ENOMEM, "open");
    }
    if (asprintf(&s3->sigv4, "aws:amz:%s:s3", region) < 0) {
        s3->sigv4 = NULL;
        return faas_error_set(err, ENOMEM, "open");
    }
    if (ak != NULL) {
        s3->access_key = strdup(ak);
        s3->secret_key = strdup(sk);
        if (s3->access_key == NULL || s3->secret_key == NULL) {
            return faas_error_set(err, ENOMEM, "open");
        }
    }
    return 0;
}


faas_blob_store_t *
faas_blob_s3_open(const char *rest, const json_t *opts, faas_error_t *err)
{
    s3_store_t *s3;

    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        faas_error_set(err, EIO, "curl_global_init: %s",
                       curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    s3 = calloc(1, sizeof(*s3));
    if (s3 == NULL) {
        faas_error_set(err, ENOMEM, "open");
        return NULL;
    }
    if (s3_configure(s3, rest, opts, err) < 0) {
        s3_close(&s3->base);
        return NULL;
    }
    s3->curl = curl_easy_init();
    if (s3->curl == NULL) {
        s3_close(&s3->base);
        faas_error_set(err, ENOMEM, "curl_easy_init");
        return NULL;
    }
    return &s3->base;
}


const faas_blob_ops_t faas_blob_s3_ops = {
    .scheme = "s3",
    .put = s3_put,
    .put_file = s3_put_file,
    .get = s3_get,
    .get_file = s3_get_file,
    .del = s3_del,
    .stat = s3_stat,
    .close = s3_close,
};
