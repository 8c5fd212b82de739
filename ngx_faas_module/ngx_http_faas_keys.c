/*
 * Function metadata (faas:fn:<name>) cached per worker, and access keys.
 *
 * An entry is dropped when the registry publishes the function's name on
 * faas:inval, when the Pub/Sub connection is lost (messages may have been
 * missed), and after faas_cache_ttl as a safety net. Entries are reference
 * counted: a request keeps the metadata it started with even if the cache
 * drops it meanwhile. A fetch that was in flight while an invalidation
 * arrived is used by its request but not cached.
 */
#include "ngx_http_faas_module.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>


#define NGX_HTTP_FAAS_BUCKETS  256

#define HEXV(c)  ((c) <= '9' ? (c) - '0' : (c) - 'a' + 10)


typedef struct {
    ngx_http_faas_fn_pt        handler;
    void                      *data;
    ngx_uint_t                 generation;
    size_t                     len;
    u_char                     name[FAAS_NAME_MAX + 1];
} ngx_http_faas_fetch_t;


static void ngx_http_faas_fn_reply(redisReply *reply, void *data);
static ngx_http_faas_fn_t *ngx_http_faas_fn_parse(redisReply *reply,
    u_char *name, size_t len, ngx_log_t *log);
static void ngx_http_faas_fn_drop(ngx_http_faas_fn_t *fn);


static ngx_queue_t  ngx_http_faas_buckets[NGX_HTTP_FAAS_BUCKETS];
static ngx_uint_t   ngx_http_faas_buckets_ready;
static ngx_uint_t   ngx_http_faas_generation;


static ngx_queue_t *
ngx_http_faas_bucket(u_char *name, size_t len)
{
    ngx_uint_t  i;

    if (!ngx_http_faas_buckets_ready) {
        for (i = 0; i < NGX_HTTP_FAAS_BUCKETS; i++) {
            ngx_queue_init(&ngx_http_faas_buckets[i]);
        }
        ngx_http_faas_buckets_ready = 1;
    }

    return &ngx_http_faas_buckets[ngx_hash_key(name, len)
                                  % NGX_HTTP_FAAS_BUCKETS];
}


static ngx_http_faas_fn_t *
ngx_http_faas_fn_find(u_char *name, size_t len)
{
    ngx_queue_t         *b, *q;
    ngx_http_faas_fn_t  *fn;

    b = ngx_http_faas_bucket(name, len);

    for (q = ngx_queue_head(b); q != ngx_queue_sentinel(b);
         q = ngx_queue_next(q))
    {
        fn = ngx_queue_data(q, ngx_http_faas_fn_t, queue);

        if (fn->name.len == len && ngx_memcmp(fn->name.data, name, len) == 0) {
            return fn;
        }
    }

    return NULL;
}


ngx_http_faas_fn_t *
ngx_http_faas_fn_cached(ngx_str_t *name)
{
    ngx_http_faas_fn_t         *fn;
    ngx_http_faas_main_conf_t  *fmcf;

    fn = ngx_http_faas_fn_find(name->data, name->len);
    if (fn == NULL) {
        return NULL;
    }

    fmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_faas_module);

    if (ngx_current_msec - fn->fetched >= fmcf->cache_ttl) {
        ngx_http_faas_fn_drop(fn);
        return NULL;
    }

    fn->refs++;

    return fn;
}


ngx_int_t
ngx_http_faas_fn_fetch(ngx_str_t *name, ngx_http_faas_fn_pt handler,
    void *data)
{
    char                    key[FAAS_KEY_MAX];
    const char             *argv[2];
    size_t                  lens[2];
    ngx_int_t               rc;
    ngx_http_faas_fetch_t  *f;

    if (name->len > FAAS_NAME_MAX) {
        return NGX_ERROR;
    }

    f = ngx_alloc(sizeof(ngx_http_faas_fetch_t), ngx_cycle->log);
    if (f == NULL) {
        return NGX_ERROR;
    }

    f->handler = handler;
    f->data = data;
    f->generation = ngx_http_faas_generation;
    f->len = name->len;
    ngx_memcpy(f->name, name->data, name->len);

    argv[0] = "HGETALL";
    lens[0] = 7;
    argv[1] = key;
    lens[1] = faas_key_fn(key, sizeof(key), (char *) name->data, name->len);

    rc = ngx_http_faas_redis_command(ngx_http_faas_fn_reply, f, 2, argv,
                                     lens);
    if (rc != NGX_OK) {
        ngx_free(f);
    }

    return rc;
}


static void
ngx_http_faas_fn_reply(redisReply *reply, void *data)
{
    ngx_http_faas_fetch_t   f = *(ngx_http_faas_fetch_t *) data;
    ngx_http_faas_fn_t     *fn, *old;

    ngx_free(data);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "faas: HGETALL faas:fn:%*s: %*s", f.len, f.name,
                          (size_t) reply->len, reply->str);
        }
        f.handler(NULL, NGX_ERROR, f.data);
        return;
    }

    if (reply->elements == 0) {
        f.handler(NULL, NGX_DECLINED, f.data);
        return;
    }

    fn = ngx_http_faas_fn_parse(reply, f.name, f.len, ngx_cycle->log);
    if (fn == NULL) {
        f.handler(NULL, NGX_ABORT, f.data);
        return;
    }

    if (f.generation == ngx_http_faas_generation) {
        old = ngx_http_faas_fn_find(f.name, f.len);
        if (old != NULL) {
            ngx_http_faas_fn_drop(old);
        }

        fn->cached = 1;
        fn->refs++;
        ngx_queue_insert_head(ngx_http_faas_bucket(f.name, f.len),
                              &fn->queue);
    }

    f.handler(fn, NGX_OK, f.data);
}


static ngx_int_t
ngx_http_faas_fn_str(ngx_pool_t *pool, ngx_str_t *dst, redisReply *v)
{
    dst->len = v->len;
    dst->data = ngx_pnalloc(pool, v->len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, v->str, v->len);
    dst->data[v->len] = '\0';

    return NGX_OK;
}


static ngx_uint_t
ngx_http_faas_fn_num(redisReply *v, ngx_uint_t dflt)
{
    ngx_int_t  n;

    n = ngx_atoi((u_char *) v->str, v->len);

    return n == NGX_ERROR ? dflt : (ngx_uint_t) n;
}


static ngx_int_t
ngx_http_faas_fn_keys(ngx_http_faas_fn_t *fn, redisReply *v)
{
    u_char  *p, *end, *d;
    size_t   i, n;

    fn->keys = ngx_array_create(fn->pool, 2, 32);
    if (fn->keys == NULL) {
        return NGX_ERROR;
    }

    p = (u_char *) v->str;
    end = p + v->len;

    while (p < end) {
        while (p < end && *p == ' ') {
            p++;
        }

        for (n = 0; p + n < end && p[n] != ' '; n++) { /* void */ }

        if (n == 0) {
            break;
        }

        for (i = 0; i < n; i++) {
            if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            {
                break;
            }
        }

        if (n == 64 && i == 64) {
            d = ngx_array_push(fn->keys);
            if (d == NULL) {
                return NGX_ERROR;
            }

            for (i = 0; i < 32; i++) {
                d[i] = (u_char) ((HEXV(p[2 * i]) << 4) | HEXV(p[2 * i + 1]));
            }
        }

        p += n;
    }

    return NGX_OK;
}


static ngx_http_faas_fn_t *
ngx_http_faas_fn_parse(redisReply *reply, u_char *name, size_t len,
    ngx_log_t *log)
{
    size_t               i;
    u_char              *at;
    ngx_int_t            rc;
    ngx_str_t            f;
    ngx_pool_t          *pool;
    redisReply          *k, *v;
    ngx_http_faas_fn_t  *fn;

    pool = ngx_create_pool(1024, log);
    if (pool == NULL) {
        return NULL;
    }

    fn = ngx_pcalloc(pool, sizeof(ngx_http_faas_fn_t));
    if (fn == NULL) {
        goto failed;
    }

    fn->pool = pool;
    fn->refs = 1;
    fn->fetched = ngx_current_msec;
    fn->max_concurrency = 10;
    fn->memory_mb = 128;
    fn->timeout_ms = 3000;

    fn->name.data = ngx_pnalloc(pool, len + 1);
    if (fn->name.data == NULL) {
        goto failed;
    }
    ngx_memcpy(fn->name.data, name, len);
    fn->name.data[len] = '\0';
    fn->name.len = len;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        k = reply->element[i];
        v = reply->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }

        f.data = (u_char *) k->str;
        f.len = k->len;
        rc = NGX_OK;

#define FIELD(s) (f.len == sizeof(s) - 1 && ngx_strncmp(f.data, s, f.len) == 0)

        if (FIELD("rid")) {
            rc = ngx_http_faas_fn_str(pool, &fn->rid, v);
        } else if (FIELD("owner")) {
            rc = ngx_http_faas_fn_str(pool, &fn->owner, v);
        } else if (FIELD("version")) {
            fn->version = ngx_http_faas_fn_num(v, 0);
        } else if (FIELD("memory_mb")) {
            fn->memory_mb = ngx_http_faas_fn_num(v, fn->memory_mb);
        } else if (FIELD("timeout_ms")) {
            fn->timeout_ms = ngx_http_faas_fn_num(v, fn->timeout_ms);
        } else if (FIELD("max_concurrency")) {
            fn->max_concurrency = ngx_http_faas_fn_num(v,
                                                       fn->max_concurrency);
        } else if (FIELD("public")) {
            fn->public = (v->len == 1 && v->str[0] == '1');
        } else if (FIELD("keys")) {
            rc = ngx_http_faas_fn_keys(fn, v);
        }

#undef FIELD

        if (rc != NGX_OK) {
            goto failed;
        }
    }

    if (fn->keys == NULL) {
        fn->keys = ngx_array_create(pool, 1, 32);
        if (fn->keys == NULL) {
            goto failed;
        }
    }

    if (!faas_rid_valid((char *) fn->rid.data, fn->rid.len)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "faas: faas:fn:%*s has no valid \"rid\"", len, name);
        goto failed;
    }

    if (fn->version == 0) {
        at = ngx_strlchr(fn->rid.data, fn->rid.data + fn->rid.len, '@');
        if (at) {
            rc = ngx_atoi(at + 1, fn->rid.data + fn->rid.len - at - 1);
            fn->version = rc == NGX_ERROR ? 0 : (ngx_uint_t) rc;
        }
    }

    return fn;

failed:

    ngx_destroy_pool(pool);
    return NULL;
}


void
ngx_http_faas_fn_unref(ngx_http_faas_fn_t *fn)
{
    if (--fn->refs == 0) {
        ngx_destroy_pool(fn->pool);
    }
}


static void
ngx_http_faas_fn_drop(ngx_http_faas_fn_t *fn)
{
    if (fn->cached) {
        ngx_queue_remove(&fn->queue);
        fn->cached = 0;
        ngx_http_faas_fn_unref(fn);
    }
}


/* Drops name's cached metadata; name NULL: all of it (messages missed). */
void
ngx_http_faas_fn_invalidate(u_char *name, size_t len)
{
    ngx_http_faas_fn_t  *fn;

    if (name == NULL) {
        ngx_http_faas_fn_flush();
        return;
    }

    ngx_http_faas_generation++;

    fn = ngx_http_faas_fn_find(name, len);
    if (fn != NULL) {
        ngx_http_faas_fn_drop(fn);
    }
}


void
ngx_http_faas_fn_flush(void)
{
    ngx_uint_t           i;
    ngx_queue_t         *q;
    ngx_http_faas_fn_t  *fn;

    ngx_http_faas_generation++;

    if (!ngx_http_faas_buckets_ready) {
        return;
    }

    for (i = 0; i < NGX_HTTP_FAAS_BUCKETS; i++) {
        while (!ngx_queue_empty(&ngx_http_faas_buckets[i])) {
            q = ngx_queue_head(&ngx_http_faas_buckets[i]);
            fn = ngx_queue_data(q, ngx_http_faas_fn_t, queue);
            ngx_http_faas_fn_drop(fn);
        }
    }
}


/*
 * NGX_OK when HMAC-SHA256(faas_key_secret, key) is one of the function's
 * key digests (compared in constant time), NGX_DECLINED otherwise.
 */
ngx_int_t
ngx_http_faas_key_check(ngx_http_faas_main_conf_t *fmcf,
    ngx_http_faas_fn_t *fn, ngx_str_t *key)
{
    u_char        md[EVP_MAX_MD_SIZE], *d;
    ngx_uint_t    i, found;
    unsigned int  mdlen;

    if (key->len == 0 || fmcf->key_secret.len == 0) {
        return NGX_DECLINED;
    }

    if (HMAC(EVP_sha256(), fmcf->key_secret.data, (int) fmcf->key_secret.len,
             key->data, key->len, md, &mdlen)
        == NULL || mdlen != 32)
    {
        return NGX_DECLINED;
    }

    found = 0;
    d = fn->keys->elts;

    for (i = 0; i < fn->keys->nelts; i++) {
        found |= (CRYPTO_memcmp(md, d + 32 * i, 32) == 0);
    }

    return found ? NGX_OK : NGX_DECLINED;
}
