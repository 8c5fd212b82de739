/*
 * faas_redis_sentinel: the Redis master found through Redis Sentinel
 * (docs/DESIGN.md section 4, "Redis Sentinel").
 *
 *     faas_redis_sentinel master=faas 10.0.0.1:26379 10.0.0.2:26379
 *                         10.0.0.3:26379 [password=...];
 *
 * The lookup is common/redis_sentinel.c's, synchronous with 300 ms
 * timeouts, run by a worker only when it (re)connects its command and
 * Pub/Sub links: while those are down the worker has no Redis to wait for
 * anyway (calls are answered 503 at once), and a blocking lookup keeps the
 * adapter's single reconnect path instead of a second state machine. A
 * local sentinel answers in well under a millisecond; the worst case (every
 * sentinel silent) blocks the worker 300 ms per sentinel and per backoff
 * step.
 */
#include "ngx_http_faas_module.h"

#include "redis_sentinel.h"


char *
ngx_http_faas_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_faas_main_conf_t  *fmcf = conf;

    u_char      *p, *colon;
    size_t       len;
    ngx_int_t    port;
    ngx_str_t   *value, master;
    ngx_uint_t   i;

    if (fmcf->redis.data) {
        return "is duplicate or given with \"faas_redis\"";
    }

    value = cf->args->elts;

    if (value[1].len <= 7 || ngx_strncmp(value[1].data, "master=", 7) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": \"master=NAME\" "
                           "expected first", &value[1]);
        return NGX_CONF_ERROR;
    }

    master.data = value[1].data + 7;
    master.len = value[1].len - 7;

    len = 0;
    for (i = 2; i < cf->args->nelts; i++) {
        if (value[i].len > 9
            && ngx_strncmp(value[i].data, "password=", 9) == 0)
        {
            fmcf->redis_password.data = value[i].data + 9;
            fmcf->redis_password.len = value[i].len - 9;
            continue;
        }

        colon = ngx_strlchr(value[i].data, value[i].data + value[i].len, ':');
        port = colon ? ngx_atoi(colon + 1,
                                value[i].data + value[i].len - colon - 1)
                     : NGX_ERROR;

        if (colon == NULL || colon == value[i].data || port < 1
            || port > 65535)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid sentinel \"%V\": \"host:port\" "
                               "expected", &value[i]);
            return NGX_CONF_ERROR;
        }

        len += value[i].len + 1;
    }

    if (len == 0) {
        return "needs at least one sentinel";
    }

    /* NUL-terminated, for the C lookup: "h:p h:p ..." and the name */
    p = ngx_pnalloc(cf->pool, len + master.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    fmcf->redis_sentinels.data = p;
    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "password=", 9) != 0) {
            p = ngx_cpymem(p, value[i].data, value[i].len);
            *p++ = ' ';
        }
    }
    *(p - 1) = '\0';
    fmcf->redis_sentinels.len = len - 1;

    fmcf->redis_master.data = p;
    p = ngx_cpymem(p, master.data, master.len);
    *p = '\0';
    fmcf->redis_master.len = master.len;

    /* what the Redis log lines name */
    fmcf->redis = fmcf->redis_master;

    return NGX_CONF_OK;
}


/*
 * With sentinels configured, points *host and *port at the current master
 * (NGX_OK) or fails (NGX_ERROR: the caller retries with its backoff);
 * without, changes nothing (NGX_DECLINED).
 */
ngx_int_t
ngx_http_faas_sentinel_locate(ngx_http_faas_main_conf_t *fmcf, char **host,
    int *port, ngx_log_t *log)
{
    int           found;
    char          addr[256];
    size_t        len;
    faas_error_t  err;

    if (fmcf->redis_sentinels.len == 0) {
        return NGX_DECLINED;
    }

    if (faas_sentinel_master((char *) fmcf->redis_sentinels.data,
                             (char *) fmcf->redis_master.data,
                             (char *) fmcf->redis_password.data,
                             addr, sizeof(addr), &found, &err)
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "faas: redis master \"%V\" not found: %s",
                      &fmcf->redis_master, err.msg);
        return NGX_ERROR;
    }

    if (*host != NULL && ngx_strcmp(*host, addr) == 0 && *port == found) {
        return NGX_OK;
    }

    *port = found;

    len = ngx_strlen(addr) + 1;
    ngx_free(*host);
    *host = ngx_alloc(len, log);
    if (*host == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(*host, addr, len);

    ngx_log_error(NGX_LOG_NOTICE, log, 0, "faas: redis master \"%V\" is %s:%d",
                  &fmcf->redis_master, addr, found);

    return NGX_OK;
}
