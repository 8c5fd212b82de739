/*
 * ngx_http_faas_module: types shared by the module's files.
 *
 *   ngx_http_faas_module.c   directives, configuration, variables, init
 *   ngx_http_faas_handler.c  the /fn/<name> content handler: credentials,
 *                            metadata, access, body and event
 *   ngx_http_faas_call.c     the call: lifetime, pending operations, next
 *                            step, the sandbox entry it holds
 *   ngx_http_faas_acquire.c  LPOP, the cold start request, BLPOP
 *   ngx_http_faas_waitq.c    per-worker wait queues, local hand-offs
 *   ngx_http_faas_exchange.c the agent call, its answer mapped to a step
 *   ngx_http_faas_answer.c   what a function may send back
 *   ngx_http_faas_output.c   headers, body and error answers
 *   ngx_http_faas_records.c  execution records, batched per iteration
 *   ngx_http_faas_redis.c    hiredis 0.14 adapter for nginx's event loop
 *   ngx_http_faas_sentinel.c faas_redis_sentinel, the master's address
 *   ngx_http_faas_agent.c    agent client (frames, kept-alive pool)
 *   ngx_http_faas_jwt.c      JWT verification, management access handler
 *   ngx_http_faas_keys.c     function metadata cache, access keys
 *   ngx_http_faas_metrics.c  metrics zone, Prometheus text, status page
 */
#ifndef NGX_HTTP_FAAS_MODULE_H
#define NGX_HTTP_FAAS_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "entry.h"
#include "keys.h"
#include "status.h"
#include "trace.h"
#include "faas.pb-c.h"


typedef struct {
    ngx_str_t                  redis;          /* host:port | unix:path */
    ngx_str_t                  redis_password;
    ngx_str_t                  redis_sentinels; /* "h:p h:p", NUL-ended */
    ngx_str_t                  redis_master;
    ngx_uint_t                 shards;
    ngx_str_t                  key_secret;
    ngx_str_t                  agent_token;
    ngx_flag_t                 agent_tls;      /* TLS to TCP agents */
    ngx_flag_t                 agent_tls_verify;
    ngx_str_t                  agent_tls_trusted_certificate;
    ngx_str_t                  agent_tls_certificate;     /* mutual TLS */
    ngx_str_t                  agent_tls_certificate_key;
#if (NGX_SSL)
    ngx_ssl_t                 *agent_ssl;
#endif
    ngx_msec_t                 redis_timeout;
    ngx_uint_t                 blpop_connections;
    ngx_uint_t                 records_buffer; /* records kept per worker
                                                  while Redis refuses them */
    ngx_msec_t                 cache_ttl;
    ngx_uint_t                 used;           /* a faas location exists */
    ngx_shm_zone_t            *metrics_zone;   /* faas_metrics_zone */
    ngx_uint_t                 metrics_max_functions;
    ngx_uint_t                 metrics_used;   /* a metrics location */
} ngx_http_faas_main_conf_t;


typedef struct {
    ngx_flag_t                 function;
    ngx_flag_t                 management;
    ngx_str_t                  function_host;  /* ".fn.example.com" */
    ngx_int_t                  jwt_alg;        /* jwt_alg_t */
    ngx_str_t                  jwt_key;        /* key material */
    ngx_str_t                  jwt_key_file;
    ngx_str_t                  jwt_issuer;
    ngx_str_t                  jwt_audience;
    time_t                     jwt_leeway;
    ngx_str_t                  admin_claim;    /* empty: off */
    ngx_msec_t                 cold_start_timeout;
    size_t                     max_body;
    size_t                     max_response_body;
    ngx_uint_t                 retries;
    ngx_uint_t                 scale_patience; /* percent of a cold start */
} ngx_http_faas_loc_conf_t;


/*
 * What the gateway needs of faas:fn:<name>, shared by reference count. The
 * provisioner reads the rest of a revision from faas:rev:{rid}.
 */
typedef struct {
    ngx_pool_t                *pool;
    ngx_uint_t                 refs;
    ngx_uint_t                 cached;
    ngx_msec_t                 fetched;
    ngx_queue_t                queue;          /* in a cache bucket */
    ngx_str_t                  name;
    ngx_str_t                  rid;
    ngx_uint_t                 version;
    ngx_str_t                  owner;
    ngx_uint_t                 memory_mb;
    ngx_uint_t                 timeout_ms;
    ngx_uint_t                 max_concurrency;
    ngx_flag_t                 public;
    ngx_array_t               *keys;           /* of u_char[32] digests */
} ngx_http_faas_fn_t;


typedef struct ngx_http_faas_call_s  ngx_http_faas_call_t;
typedef struct ngx_http_faas_agent_s ngx_http_faas_agent_t;
typedef struct ngx_http_faas_scale_s ngx_http_faas_scale_t;


/* Per request, in r->pool: what the variables and the cleanup need. */
typedef struct {
    ngx_http_faas_call_t      *call;
    ngx_str_t                  function;
    ngx_str_t                  path;           /* the event's rawPath */
    ngx_str_t                  scope;          /* shared host: cookies'
                                                  Path prefix, /fn/<name> */
    ngx_str_t                  user;
    ngx_str_t                  key;            /* X-Faas-Key */
    u_char                     request_id[FAAS_REQID_LEN + 1];
    u_char                     traceparent[FAAS_TRACEPARENT_LEN + 1];
    ngx_int_t                  start_type;
    ngx_uint_t                 status;
    ngx_uint_t                 body_read;
    ngx_uint_t                 jwt_ok;
} ngx_http_faas_ctx_t;


/*
 * The steps of an invocation, in the spirit of ngx_http_upstream_t's
 * create_request / process_header / finalize_request: each phase file does
 * one step and reports the next one to ngx_http_faas_call_next(), which
 * runs it through the call's step table (set up by the content handler).
 */
typedef enum {
    NGX_HTTP_FAAS_ACQUIRE = 0,     /* LPOP an idle sandbox, or queue */
    NGX_HTTP_FAAS_PROVISION,       /* reserve a slot, ask for a cold start */
    NGX_HTTP_FAAS_WAIT,            /* BLPOP the idle list and the error */
    NGX_HTTP_FAAS_QUEUE,           /* wait in the worker's queue */
    NGX_HTTP_FAAS_INVOKE,          /* call the agent of the entry held */
    NGX_HTTP_FAAS_RESPOND,         /* answer: call->resp or call->error */
    NGX_HTTP_FAAS_NSTEPS
} ngx_http_faas_step_e;

typedef void (*ngx_http_faas_step_pt)(ngx_http_faas_call_t *call);


/*
 * One invocation: the small ngx_alloc'd handle that every callback gets
 * (never r). It lives in its own pool until the request is gone and no
 * operation is pending (ngx_http_faas_call_start / _end).
 */
struct ngx_http_faas_call_s {
    ngx_pool_t                *pool;
    ngx_log_t                 *log;
    ngx_http_request_t        *r;              /* NULL once detached */
    ngx_http_faas_ctx_t       *ctx;            /* NULL once detached */
    ngx_uint_t                 pending;        /* asynchronous operations */
    ngx_http_faas_step_e       state;          /* the step last entered */
    ngx_http_faas_step_pt     *steps;          /* [NGX_HTTP_FAAS_NSTEPS] */
    ngx_http_faas_step_pt      cancel;         /* undoes a parked wait */
    ngx_http_faas_fn_t        *fn;
    ngx_http_faas_loc_conf_t  *flcf;
    ngx_http_faas_main_conf_t *fmcf;
    u_char                     request_id[FAAS_REQID_LEN + 1];
    u_char                     traceparent[FAAS_TRACEPARENT_LEN + 1];
    ngx_str_t                  user;
    ngx_uint_t                 owner;          /* the caller owns fn */
    char                       idle_key[FAAS_KEY_MAX];
    char                       count_key[FAAS_KEY_MAX];
    char                       err_key[FAAS_KEY_MAX];
    char                       queue_key[2][FAAS_KEY_MAX];
    u_char                    *event;
    size_t                     event_len;
    faas_entry_t               entry;
    ngx_uint_t                 have_entry;
    ngx_int_t                  start_type;
    ngx_uint_t                 attempts;
    ngx_uint_t                 incremented;
    ngx_uint_t                 reask;          /* re-asking after a slice */
    ngx_msec_t                 wait_deadline;  /* end of the cold wait */
    void                      *wq;             /* in a local wait queue */
    ngx_uint_t                 wq_busy;        /* there for a BLPOP
                                                  connection, not the limit */
    ngx_msec_t                 wq_patience;    /* there for a returned
                                                  sandbox, this long at most,
                                                  before asking for one */
    ngx_queue_t                wq_link;
    ngx_event_t                wq_timer;
    ngx_event_t                handoff;        /* posted: run with entry */
    ngx_uint_t                 handoffs;       /* local hand-offs in a row */
    ngx_event_t                agent_retry;    /* agent unreachable: backoff */
    ngx_msec_t                 agent_backoff;
    char                       agent_down[FAAS_ENDPOINT_MAX + 1];
    ngx_http_faas_scale_t     *scale;          /* what the worker has seen
                                                  of the revision */
    unsigned                   scale_busy:1;
    unsigned                   scale_asked:1;
    unsigned                   scale_waiting:1;
    unsigned                   host_full:1;    /* its cold start was refused
                                                  for want of host capacity */
    uint64_t                   t_busy_us;
    uint64_t                   t_asked_us;
    uint64_t                   t_start_us;
    uint64_t                   t_wait_us;
    uint64_t                   cold_us;
    ngx_uint_t                 http_status;    /* for NGX_HTTP_FAAS_RESPOND */
    time_t                     retry_after;    /* an error's Retry-After */
    const char                *error;          /* an error answer's message */
    Faas__InvokeResponse      *resp;           /* the agent's answer */
    ProtobufCAllocator         pb_alloc;       /* answers in call->pool */
    void                      *metrics;        /* its function's figures */
};


/* ngx_http_faas_module.c */
extern ngx_module_t  ngx_http_faas_module;

/* ngx_http_faas_handler.c: the request, its event, the step table */
ngx_int_t ngx_http_faas_handler(ngx_http_request_t *r);

/* ngx_http_faas_call.c: the call's lifetime and next step */
uint64_t ngx_http_faas_now_us(void);
ngx_http_faas_call_t *ngx_http_faas_call_create(ngx_http_request_t *r,
    ngx_http_faas_ctx_t *ctx, ngx_http_faas_step_pt *steps);
void ngx_http_faas_call_start(ngx_http_faas_call_t *call);
void ngx_http_faas_call_end(ngx_http_faas_call_t *call);
void ngx_http_faas_call_next(ngx_http_faas_call_t *call,
    ngx_http_faas_step_e step);
void ngx_http_faas_call_fail(ngx_http_faas_call_t *call, ngx_uint_t status,
    const char *error);
ngx_int_t ngx_http_faas_call_take(ngx_http_faas_call_t *call, const char *s,
    size_t len);
void ngx_http_faas_call_release(ngx_http_faas_call_t *call);
void ngx_http_faas_call_release_unreachable(ngx_http_faas_call_t *call);
void ngx_http_faas_call_return(ngx_http_faas_call_t *call, const char *s,
    size_t len);

/* ngx_http_faas_acquire.c: LPOP, cold start request, BLPOP */
void ngx_http_faas_acquire(ngx_http_faas_call_t *call);
void ngx_http_faas_provision(ngx_http_faas_call_t *call);
void ngx_http_faas_wait(ngx_http_faas_call_t *call);

/* ngx_http_faas_scale.c: scale-out by evidence */
ngx_msec_t ngx_http_faas_scale_patience(ngx_http_faas_call_t *call);
void ngx_http_faas_scale_waiting(ngx_http_faas_call_t *call,
    ngx_uint_t waiting);
void ngx_http_faas_scale_asked(ngx_http_faas_call_t *call);
void ngx_http_faas_scale_unasked(ngx_http_faas_call_t *call);
void ngx_http_faas_scale_step(ngx_http_faas_call_t *call,
    ngx_http_faas_step_e step);

/* ngx_http_faas_waitq.c: the per-worker wait queues, local hand-offs */
void ngx_http_faas_wq_join(ngx_http_faas_call_t *call);
ngx_uint_t ngx_http_faas_wq_limited(const char *idle_key);
ngx_uint_t ngx_http_faas_wq_handoff(ngx_http_faas_call_t *call);

/* ngx_http_faas_exchange.c: the agent call and what its answer means */
void ngx_http_faas_invoke(ngx_http_faas_call_t *call);

/* ngx_http_faas_answer.c: what a function may send back */
Faas__InvokeResponse *ngx_http_faas_answer_unpack(ngx_http_faas_call_t *call,
    u_char *buf, size_t len);
void ngx_http_faas_answer_free(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp);
const char *ngx_http_faas_answer_refused(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp);
ngx_int_t ngx_http_faas_answer_headers(ngx_http_request_t *r,
    ngx_http_faas_call_t *call, Faas__InvokeResponse *resp);

/* ngx_http_faas_output.c: the answer to the client */
void ngx_http_faas_respond(ngx_http_faas_call_t *call);
ngx_int_t ngx_http_faas_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *msg);

/* ngx_http_faas_records.c: execution records, one RPUSH per iteration */
void ngx_http_faas_records_add(uint8_t *buf, size_t len, u_char *request_id);
void ngx_http_faas_records_flush(void);

/* ngx_http_faas_redis.c */
typedef void (*ngx_http_faas_redis_pt)(redisReply *reply, void *data);

/* a function's cached metadata is stale (name NULL: maybe every entry) */
typedef void (*ngx_http_faas_inval_pt)(u_char *name, size_t len);

ngx_int_t ngx_http_faas_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_faas_main_conf_t *fmcf, ngx_http_faas_inval_pt invalidate);
void ngx_http_faas_redis_exit_process(void);
ngx_int_t ngx_http_faas_redis_ready(void);
void ngx_http_faas_redis_cork(void);
void ngx_http_faas_redis_uncork(void);
ngx_int_t ngx_http_faas_redis_command(ngx_http_faas_redis_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen);
ngx_int_t ngx_http_faas_redis_blpop(ngx_http_faas_redis_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen,
    ngx_msec_t timeout);
void ngx_http_faas_redis_ignore(redisReply *reply, void *data);

/* ngx_http_faas_sentinel.c */
char *ngx_http_faas_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_faas_sentinel_locate(ngx_http_faas_main_conf_t *fmcf,
    char **host, int *port, ngx_log_t *log);

/* ngx_http_faas_keys.c */
typedef void (*ngx_http_faas_fn_pt)(ngx_http_faas_fn_t *fn, ngx_int_t rc,
    void *data);

ngx_http_faas_fn_t *ngx_http_faas_fn_cached(ngx_str_t *name);
ngx_int_t ngx_http_faas_fn_fetch(ngx_str_t *name, ngx_http_faas_fn_pt handler,
    void *data);
void ngx_http_faas_fn_unref(ngx_http_faas_fn_t *fn);
void ngx_http_faas_fn_invalidate(u_char *name, size_t len);
void ngx_http_faas_fn_flush(void);
ngx_int_t ngx_http_faas_key_check(ngx_http_faas_main_conf_t *fmcf,
    ngx_http_faas_fn_t *fn, ngx_str_t *key);

/* ngx_http_faas_metrics.c: the metrics zone and its locations */
char *ngx_http_faas_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_faas_metrics_location(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_faas_metrics_check(ngx_conf_t *cf,
    ngx_http_faas_main_conf_t *fmcf);
void ngx_http_faas_metrics_step(ngx_http_faas_call_t *call,
    ngx_http_faas_step_e step);
void ngx_http_faas_metrics_end(ngx_http_faas_call_t *call);
/* an error of Redis (redis 1) or of an agent call (redis 0) */
void ngx_http_faas_metrics_error(ngx_http_faas_main_conf_t *fmcf,
    ngx_uint_t redis);

/* ngx_http_faas_jwt.c */
ngx_int_t ngx_http_faas_jwt_verify(ngx_http_request_t *r,
    ngx_http_faas_loc_conf_t *flcf, ngx_str_t *token, ngx_str_t *sub,
    ngx_uint_t *admin, const char **why);
ngx_int_t ngx_http_faas_jwt_bearer(ngx_http_request_t *r, ngx_str_t *token);
ngx_int_t ngx_http_faas_jwt_check_key(ngx_conf_t *cf,
    ngx_http_faas_loc_conf_t *flcf);
ngx_int_t ngx_http_faas_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_faas_unauthorized(ngx_http_request_t *r, const char *why);

/* ngx_http_faas_agent.c */

/* Why an agent call ended without an answer. */
typedef enum {
    NGX_HTTP_FAAS_AGENT_FAILED = 0,
    /*
     * (only before dispatch) the agent could not be reached at all
     * (connect refused, no socket, a kept-alive connection found closed
     * before a byte was written): it is down or restarting, the sandbox may
     * be fine
     */
    NGX_HTTP_FAAS_AGENT_UNREACHABLE,
    /* the answer is over faas_max_response_body: read and dropped */
    NGX_HTTP_FAAS_AGENT_TOO_LARGE
} ngx_http_faas_agent_failure_e;

/*
 * The end of an agent call. resp: the answer, or NULL on failure (failure
 * and error say why). dispatched: the whole request frame was written.
 */
typedef void (*ngx_http_faas_agent_pt)(ngx_http_faas_call_t *call,
    Faas__InvokeResponse *resp, ngx_uint_t dispatched,
    ngx_http_faas_agent_failure_e failure, const char *error);

ngx_int_t ngx_http_faas_agent_invoke(ngx_http_faas_call_t *call,
    Faas__InvokeRequest *m, ngx_msec_t timeout,
    ngx_http_faas_agent_pt handler);
void ngx_http_faas_agent_exit_process(void);
#if (NGX_SSL)
char *ngx_http_faas_agent_tls_init(ngx_conf_t *cf,
    ngx_http_faas_main_conf_t *fmcf);
#endif

#endif /* NGX_HTTP_FAAS_MODULE_H */
