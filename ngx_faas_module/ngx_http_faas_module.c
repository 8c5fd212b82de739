/*
 * ngx_http_faas_module: directives, configuration, variables, init.
 *
 * http {
 *     faas_redis 127.0.0.1:6379;             # or unix:/path [password=...]
 *     # or: faas_redis_sentinel master=faas h1:26379 h2:26379 [password=...]
 *     faas_shards 64;
 *     faas_key_secret "...";                  # HMAC key of access-key digests
 *     faas_agent_token "...";                 # sent to agents over TCP
 *     faas_agent_tls on;                      # TCP agents speak TLS
 *     faas_agent_tls_trusted_certificate /etc/faas/agents-ca.pem;
 *     server {
 *         location /fn/ {
 *             faas_function on;
 *             faas_function_host .fn.example.com;  # <name>.fn.example.com
 *             faas_jwt_alg RS256;
 *             faas_jwt_key /etc/faas/jwt.pub;
 *         }
 *         location /v1/ {
 *             faas_management on;               # JWT, then X-Faas-User
 *             proxy_pass http://unix:/run/faas/registry.sock;
 *         }
 *     }
 * }
 */
#include "ngx_http_faas_module.h"

#include <jwt.h>

#include "partition.h"


static ngx_int_t ngx_http_faas_add_variables(ngx_conf_t *cf);
static void *ngx_http_faas_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_faas_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_faas_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_faas_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_faas_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_faas_init_process(ngx_cycle_t *cycle);
static void ngx_http_faas_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_faas_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_faas_function_host(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_faas_function(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_faas_jwt_alg(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_faas_check_shards(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_faas_check_positive(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_faas_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_conf_post_handler_pt  ngx_http_faas_shards_post =
    ngx_http_faas_check_shards;
static ngx_conf_post_handler_pt  ngx_http_faas_positive_post =
    ngx_http_faas_check_positive;

/* percent of the expected cold start; 0: a cold start on every miss */
static ngx_conf_num_bounds_t  ngx_http_faas_patience_bounds = {
    ngx_conf_check_num_bounds, 0, 1000
};


static ngx_command_t  ngx_http_faas_commands[] = {

    { ngx_string("faas_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_faas_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("faas_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_faas_redis_sentinel,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("faas_shards"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, shards),
      &ngx_http_faas_shards_post },

    { ngx_string("faas_key_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, key_secret),
      NULL },

    { ngx_string("faas_agent_token"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, agent_token),
      NULL },

    { ngx_string("faas_agent_tls"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, agent_tls),
      NULL },

    { ngx_string("faas_agent_tls_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, agent_tls_verify),
      NULL },

    { ngx_string("faas_agent_tls_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, agent_tls_trusted_certificate),
      NULL },

    { ngx_string("faas_agent_tls_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, agent_tls_certificate),
      NULL },

    { ngx_string("faas_agent_tls_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, agent_tls_certificate_key),
      NULL },

    { ngx_string("faas_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_faas_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("faas_metrics_max_functions"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, metrics_max_functions),
      &ngx_http_faas_positive_post },

    { ngx_string("faas_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_faas_metrics_location,
      0,
      0,
      NULL },

    { ngx_string("faas_status_page"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_faas_metrics_location,
      0,
      0,
      (void *) 1 },

    { ngx_string("faas_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, redis_timeout),
      &ngx_http_faas_positive_post },

    { ngx_string("faas_redis_blpop_connections"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, blpop_connections),
      &ngx_http_faas_positive_post },

    { ngx_string("faas_records_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, records_buffer),
      &ngx_http_faas_positive_post },

    { ngx_string("faas_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_faas_main_conf_t, cache_ttl),
      NULL },

    { ngx_string("faas_function"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_faas_function,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, function),
      NULL },

    { ngx_string("faas_function_host"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_faas_function_host,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, function_host),
      NULL },

    { ngx_string("faas_management"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_faas_function,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, management),
      NULL },

    { ngx_string("faas_jwt_alg"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_faas_jwt_alg,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("faas_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, jwt_key_file),
      NULL },

    { ngx_string("faas_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, jwt_issuer),
      NULL },

    { ngx_string("faas_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, jwt_audience),
      NULL },

    { ngx_string("faas_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, jwt_leeway),
      NULL },

    { ngx_string("faas_admin_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, admin_claim),
      NULL },

    { ngx_string("faas_cold_start_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, cold_start_timeout),
      &ngx_http_faas_positive_post },

    { ngx_string("faas_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, max_body),
      NULL },

    { ngx_string("faas_max_response_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, max_response_body),
      NULL },

    { ngx_string("faas_retries"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, retries),
      NULL },

    { ngx_string("faas_scale_patience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_faas_loc_conf_t, scale_patience),
      &ngx_http_faas_patience_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_faas_module_ctx = {
    ngx_http_faas_add_variables,           /* preconfiguration */
    ngx_http_faas_init,                    /* postconfiguration */

    ngx_http_faas_create_main_conf,        /* create main configuration */
    ngx_http_faas_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_faas_create_loc_conf,         /* create location configuration */
    ngx_http_faas_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_faas_module = {
    NGX_MODULE_V1,
    &ngx_http_faas_module_ctx,             /* module context */
    ngx_http_faas_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_faas_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_faas_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


enum {
    NGX_HTTP_FAAS_VAR_REQUEST_ID = 0,
    NGX_HTTP_FAAS_VAR_FUNCTION,
    NGX_HTTP_FAAS_VAR_START,
    NGX_HTTP_FAAS_VAR_STATUS,
    NGX_HTTP_FAAS_VAR_USER,
    NGX_HTTP_FAAS_VAR_TRACE_ID,
    NGX_HTTP_FAAS_VAR_TRACEPARENT,
};


static ngx_http_variable_t  ngx_http_faas_vars[] = {

    { ngx_string("faas_request_id"), NULL, ngx_http_faas_variable,
      NGX_HTTP_FAAS_VAR_REQUEST_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("faas_function"), NULL, ngx_http_faas_variable,
      NGX_HTTP_FAAS_VAR_FUNCTION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("faas_start"), NULL, ngx_http_faas_variable,
      NGX_HTTP_FAAS_VAR_START, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("faas_status"), NULL, ngx_http_faas_variable,
      NGX_HTTP_FAAS_VAR_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("faas_user"), NULL, ngx_http_faas_variable,
      NGX_HTTP_FAAS_VAR_USER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("faas_trace_id"), NULL, ngx_http_faas_variable,
      NGX_HTTP_FAAS_VAR_TRACE_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("faas_traceparent"), NULL, ngx_http_faas_variable,
      NGX_HTTP_FAAS_VAR_TRACEPARENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_faas_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    const char           *s;
    ngx_http_faas_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_faas_module);
    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    switch (data) {

    case NGX_HTTP_FAAS_VAR_REQUEST_ID:
        v->data = ctx->request_id;
        v->len = ngx_strlen(ctx->request_id);
        break;

    case NGX_HTTP_FAAS_VAR_FUNCTION:
        v->data = ctx->function.data;
        v->len = ctx->function.len;
        break;

    case NGX_HTTP_FAAS_VAR_START:
        s = faas_start_type_name((int) ctx->start_type);
        v->data = (u_char *) s;
        v->len = ngx_strlen(s);
        break;

    case NGX_HTTP_FAAS_VAR_STATUS:
        if (ctx->status == 0) {
            v->data = (u_char *) "-";
            v->len = 1;
            break;
        }
        s = faas_status_name(ctx->status - 1);
        v->data = (u_char *) s;
        v->len = ngx_strlen(s);
        break;

    case NGX_HTTP_FAAS_VAR_TRACE_ID:
        v->data = ctx->traceparent + 3;
        v->len = ctx->traceparent[0] ? FAAS_TRACE_ID_LEN : 0;
        break;

    case NGX_HTTP_FAAS_VAR_TRACEPARENT:
        v->data = ctx->traceparent;
        v->len = ngx_strlen(ctx->traceparent);
        break;

        default: /* NGX_HTTP_FAAS_VAR_USER */
        v->data = ctx->user.data;
        v->len = ctx->user.len;
        break;
    }

    if (v->len == 0) {
        v->not_found = 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_faas_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_faas_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_faas_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_faas_main_conf_t  *fmcf;

    fmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_faas_main_conf_t));
    if (fmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     fmcf->redis = { 0, NULL };
     *     fmcf->redis_password = { 0, NULL };
     *     fmcf->key_secret = { 0, NULL };
     *     fmcf->agent_token = { 0, NULL };
     *     fmcf->agent_tls_trusted_certificate = { 0, NULL };
     *     fmcf->agent_tls_certificate = { 0, NULL };
     *     fmcf->agent_tls_certificate_key = { 0, NULL };
     *     fmcf->used = 0;
     */

    fmcf->shards = NGX_CONF_UNSET_UINT;
    fmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    fmcf->blpop_connections = NGX_CONF_UNSET_UINT;
    fmcf->records_buffer = NGX_CONF_UNSET_UINT;
    fmcf->cache_ttl = NGX_CONF_UNSET_MSEC;
    fmcf->metrics_max_functions = NGX_CONF_UNSET_UINT;
    fmcf->agent_tls = NGX_CONF_UNSET;
    fmcf->agent_tls_verify = NGX_CONF_UNSET;

    return fmcf;
}


static char *
ngx_http_faas_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_faas_main_conf_t  *fmcf = conf;

    ngx_conf_init_uint_value(fmcf->shards, 64);
    ngx_conf_init_msec_value(fmcf->redis_timeout, 2000);
    ngx_conf_init_uint_value(fmcf->blpop_connections, 256);
    ngx_conf_init_uint_value(fmcf->records_buffer, 10000);
    ngx_conf_init_msec_value(fmcf->cache_ttl, 10000);
    ngx_conf_init_uint_value(fmcf->metrics_max_functions, 100);
    ngx_conf_init_value(fmcf->agent_tls, 0);
    ngx_conf_init_value(fmcf->agent_tls_verify, 1);

    if (!fmcf->agent_tls) {
        return NGX_CONF_OK;
    }

#if (NGX_SSL)
    return ngx_http_faas_agent_tls_init(cf, fmcf);
#else
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"faas_agent_tls\" needs nginx built with TLS");
    return NGX_CONF_ERROR;
#endif
}


static void *
ngx_http_faas_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_faas_loc_conf_t  *flcf;

    flcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_faas_loc_conf_t));
    if (flcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     flcf->function_host = { 0, NULL };
     *     flcf->jwt_key = { 0, NULL };
     *     flcf->jwt_issuer = { 0, NULL };
     *     flcf->jwt_audience = { 0, NULL };
     */

    flcf->function = NGX_CONF_UNSET;
    flcf->function_host.data = NULL;
    flcf->management = NGX_CONF_UNSET;
    flcf->jwt_alg = NGX_CONF_UNSET;
    flcf->jwt_key_file.data = NULL;
    flcf->jwt_leeway = NGX_CONF_UNSET;
    flcf->cold_start_timeout = NGX_CONF_UNSET_MSEC;
    flcf->max_body = NGX_CONF_UNSET_SIZE;
    flcf->max_response_body = NGX_CONF_UNSET_SIZE;
    flcf->retries = NGX_CONF_UNSET_UINT;
    flcf->scale_patience = NGX_CONF_UNSET_UINT;

    return flcf;
}


static char *
ngx_http_faas_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_faas_loc_conf_t *prev = parent;
    ngx_http_faas_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->function, prev->function, 0);
    ngx_conf_merge_value(conf->management, prev->management, 0);
    ngx_conf_merge_str_value(conf->function_host, prev->function_host, "");
    ngx_conf_merge_value(conf->jwt_alg, prev->jwt_alg, JWT_ALG_NONE);
    ngx_conf_merge_str_value(conf->jwt_key_file, prev->jwt_key_file, "");
    ngx_conf_merge_str_value(conf->jwt_issuer, prev->jwt_issuer, "");
    ngx_conf_merge_str_value(conf->jwt_audience, prev->jwt_audience, "");
    ngx_conf_merge_sec_value(conf->jwt_leeway, prev->jwt_leeway, 30);
    ngx_conf_merge_str_value(conf->admin_claim, prev->admin_claim, "off");

    if (conf->admin_claim.len == 3
        && ngx_strncmp(conf->admin_claim.data, "off", 3) == 0)
    {
        ngx_str_null(&conf->admin_claim);
    }
    ngx_conf_merge_msec_value(conf->cold_start_timeout,
                              prev->cold_start_timeout, 10000);
    ngx_conf_merge_size_value(conf->max_body, prev->max_body,
                              6 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->max_response_body,
                              prev->max_response_body, 6 * 1024 * 1024);
    ngx_conf_merge_uint_value(conf->retries, prev->retries, 3);
    ngx_conf_merge_uint_value(conf->scale_patience, prev->scale_patience,
                              100);

    if (conf->jwt_key_file.len == 0 && conf->jwt_alg != JWT_ALG_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"faas_jwt_alg\" is set but \"faas_jwt_key\" "
                           "is not");
        return NGX_CONF_ERROR;
    }

    if (conf->jwt_key_file.len && conf->jwt_alg == JWT_ALG_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"faas_jwt_key\" is set but \"faas_jwt_alg\" "
                           "is not");
        return NGX_CONF_ERROR;
    }

    if (conf->jwt_key_file.len) {
        if (prev->jwt_key.data != NULL
            && prev->jwt_key_file.len == conf->jwt_key_file.len
            && ngx_strncmp(prev->jwt_key_file.data, conf->jwt_key_file.data,
                           conf->jwt_key_file.len) == 0
            && prev->jwt_alg == conf->jwt_alg)
        {
            conf->jwt_key = prev->jwt_key;

        } else if (ngx_http_faas_jwt_check_key(cf, conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->management && conf->jwt_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"faas_management\" requires \"faas_jwt_alg\" "
                           "and \"faas_jwt_key\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_faas_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_faas_main_conf_t  *fmcf = conf;

    u_char     *p, *colon;
    ngx_str_t  *value;
    ngx_int_t   port;

    if (fmcf->redis.data) {
        return "is duplicate or given with \"faas_redis_sentinel\"";
    }

    value = cf->args->elts;

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        if (value[1].data[5] != '/' || value[1].len - 5 >= 108) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid Redis socket \"%V\": an absolute "
                               "path shorter than 108 bytes is needed",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

    } else {
        p = value[1].data;
        colon = ngx_strlchr(p, p + value[1].len, ':');
        port = colon ? ngx_atoi(colon + 1, p + value[1].len - colon - 1)
                     : NGX_ERROR;

        if (colon == NULL || colon == p || port < 1 || port > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid Redis address \"%V\": "
                               "\"host:port\" or \"unix:/path\" expected",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    fmcf->redis = value[1];

    if (cf->args->nelts == 3) {
        if (value[2].len <= 9
            || ngx_strncmp(value[2].data, "password=", 9) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": "
                               "\"password=...\" expected", &value[2]);
            return NGX_CONF_ERROR;
        }

        fmcf->redis_password.data = value[2].data + 9;
        fmcf->redis_password.len = value[2].len - 9;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_faas_function(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_faas_loc_conf_t *flcf = conf;

    char                       *rv;
    ngx_flag_t                 *fp;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_faas_main_conf_t  *fmcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    fp = (ngx_flag_t *) ((char *) conf + cmd->offset);
    if (!*fp) {
        return NGX_CONF_OK;
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_faas_module);
    fmcf->used = 1;

    if (cmd->offset == offsetof(ngx_http_faas_loc_conf_t, function)) {
        if (flcf->management == 1) {
            return "cannot be combined with \"faas_management\"";
        }

        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        clcf->handler = ngx_http_faas_handler;

    } else if (flcf->function == 1) {
        return "cannot be combined with \"faas_function\"";
    }

    return NGX_CONF_OK;
}


/*
 * faas_function_host .fn.example.com: a request whose Host is
 * <name>.fn.example.com calls function <name> (docs/DESIGN.md section 8).
 */
static char *
ngx_http_faas_function_host(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char       *rv;
    ngx_str_t  *s;

    rv = ngx_conf_set_str_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    s = (ngx_str_t *) ((char *) conf + cmd->offset);

    if (s->len < 2 || s->data[0] != '.' || s->data[1] == '.'
        || s->data[s->len - 1] == '.')
    {
        return "must be a domain that starts with a dot, "
               "such as \".fn.example.com\"";
    }

    ngx_strlow(s->data, s->data, s->len);

    return NGX_CONF_OK;
}


static char *
ngx_http_faas_jwt_alg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_faas_loc_conf_t *flcf = conf;

    u_char      name[16];
    jwt_alg_t   alg;
    ngx_str_t  *value;

    if (flcf->jwt_alg != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len >= sizeof(name)) {
        goto invalid;
    }

    ngx_cpystrn(name, value[1].data, value[1].len + 1);
    alg = jwt_str_alg((char *) name);

    if (alg == JWT_ALG_INVAL || alg == JWT_ALG_NONE) {
        goto invalid;
    }

    flcf->jwt_alg = alg;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid JWT algorithm \"%V\": one of HS256, HS384, "
                       "HS512, RS256, RS384, RS512, ES256, ES384, ES512 "
                       "expected (\"none\" is never accepted)", &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_faas_check_shards(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *np = data;

    if (*np < 1 || *np > FAAS_PARTITIONS) {
        return "must be between 1 and 16384";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_faas_check_positive(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *np = data;

    if (*np == 0) {
        return "must be greater than zero";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_faas_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;
    ngx_http_faas_main_conf_t  *fmcf;

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_faas_module);

    if (fmcf->used && fmcf->redis.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"faas_function\" and \"faas_management\" need "
                      "\"faas_redis\" in the http block");
        return NGX_ERROR;
    }

    if (ngx_http_faas_metrics_check(cf, fmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * The management check runs in the preaccess phase: nginx skips the
     * access phase for subrequests (an SSI include or add_after_body of a
     * /v1/ URI would reach the registry unchecked), and `satisfy any` with
     * an allow rule would let a request through it without a token.
     */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_faas_access_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_faas_init_process(ngx_cycle_t *cycle)
{
    ngx_http_faas_main_conf_t  *fmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    fmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_faas_module);
    if (fmcf == NULL || !fmcf->used) {
        return NGX_OK;
    }

    return ngx_http_faas_redis_init_process(cycle, fmcf,
                                            ngx_http_faas_fn_invalidate);
}


static void
ngx_http_faas_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_faas_records_flush();
    ngx_http_faas_redis_exit_process();
    ngx_http_faas_agent_exit_process();
    ngx_http_faas_fn_flush();
}
