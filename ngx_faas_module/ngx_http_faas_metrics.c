/*
 * Gateway metrics (docs/DESIGN.md section 8): counters and histograms in a
 * shared-memory zone, so every worker adds to the same figures and a reload
 * keeps them, shown in the Prometheus text format (faas_metrics;) and as
 * JSON for the status page (faas_status_page;).
 *
 * A function gets a slot the first time one of its calls takes a step (so
 * an unknown name, answered 404 before that, never takes one); beyond
 * faas_metrics_max_functions its calls go to the slot "_other" (a function
 * name starts with a letter, so it cannot clash). Every figure is an
 * ngx_atomic_t updated with ngx_atomic_fetch_add: no lock on the call's
 * path; the zone's mutex is taken only to give a function its slot.
 */
#include "ngx_http_faas_module.h"


#define NGX_HTTP_FAAS_M_NAME     64          /* [a-z][a-z0-9-]{0,62} + NUL */
#define NGX_HTTP_FAAS_M_STARTS   4           /* none, cold, warm, stolen */
#define NGX_HTTP_FAAS_M_CLASSES  5           /* 1xx .. 5xx */
#define NGX_HTTP_FAAS_M_BUCKETS  14          /* 13 bounds and +Inf */
#define NGX_HTTP_FAAS_M_LINE     256         /* a text line at most */


typedef enum {
    NGX_HTTP_FAAS_H_TOTAL = 0,               /* the whole call */
    NGX_HTTP_FAAS_H_SANDBOX,                 /* in the sandbox */
    NGX_HTTP_FAAS_H_COLD,                    /* a cold start */
    NGX_HTTP_FAAS_H_WAIT,                    /* waiting for a sandbox */
    NGX_HTTP_FAAS_H_N
} ngx_http_faas_hist_e;


typedef struct {
    ngx_atomic_t               buckets[NGX_HTTP_FAAS_M_BUCKETS];
    ngx_atomic_t               sum_us;
    ngx_atomic_t               count;
} ngx_http_faas_hist_t;


typedef struct {
    u_char                     name[NGX_HTTP_FAAS_M_NAME];
    size_t                     len;
    ngx_atomic_t               calls[NGX_HTTP_FAAS_M_STARTS]
                                    [NGX_HTTP_FAAS_M_CLASSES];
    ngx_atomic_t               shed;           /* gateway 429 / 503 */
    ngx_atomic_t               in_flight;
    ngx_http_faas_hist_t       hist[NGX_HTTP_FAAS_H_N];
} ngx_http_faas_slot_t;


typedef struct {
    ngx_atomic_t               redis_errors;
    ngx_atomic_t               agent_errors;
    ngx_atomic_t               used;           /* slots given out */
    ngx_uint_t                 nslots;         /* max functions + "other" */
    ngx_http_faas_slot_t       slots[1];
} ngx_http_faas_metrics_sh_t;


/* upper bounds of the buckets, in microseconds (the last is +Inf) */
static const uint64_t  ngx_http_faas_bounds_us[NGX_HTTP_FAAS_M_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};

static const char  *ngx_http_faas_bounds_s[NGX_HTTP_FAAS_M_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10", "+Inf"
};

static const char  *ngx_http_faas_hist_names[NGX_HTTP_FAAS_H_N] = {
    "faas_call_duration_seconds",
    "faas_sandbox_duration_seconds",
    "faas_cold_start_seconds",
    "faas_sandbox_wait_seconds"
};

static const char  *ngx_http_faas_hist_help[NGX_HTTP_FAAS_H_N] = {
    "Time from the request to the answer.",
    "Time the function ran, as its agent measured it.",
    "Time a cold-started call waited for its new sandbox.",
    "Time a call waited for a sandbox (cold, stolen or queued)."
};

static const char  *ngx_http_faas_start_names[NGX_HTTP_FAAS_M_STARTS] = {
    "none", "cold", "warm", "stolen"
};

static ngx_str_t  ngx_http_faas_text_type =
    ngx_string("text/plain; version=0.0.4");
static ngx_str_t  ngx_http_faas_json_type = ngx_string("application/json");
static ngx_str_t  ngx_http_faas_html_type =
    ngx_string("text/html; charset=utf-8");


/* the status page (ngx_http_faas_status_page.h: the page as a C string) */
#include "ngx_http_faas_status_page.h"


static ngx_http_faas_metrics_sh_t *
ngx_http_faas_metrics_sh(ngx_http_faas_main_conf_t *fmcf)
{
    return fmcf->metrics_zone ? fmcf->metrics_zone->data : NULL;
}


/* ---- the zone ---- */

static ngx_int_t
ngx_http_faas_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_faas_metrics_sh_t  *osh = data;

    size_t                       size;
    ngx_uint_t                   nslots;
    ngx_slab_pool_t             *shpool;
    ngx_http_faas_metrics_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    nslots = *(ngx_uint_t *) shm_zone->data + 1;

    /* a reload with the same number of slots keeps the figures */
    if (osh && osh->nslots == nslots) {
        shm_zone->data = osh;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    /*
     * (a different number of functions: new figures; the old block stays,
     * the old workers may still be adding to it while they finish)
     */

    size = sizeof(ngx_http_faas_metrics_sh_t)
           + (nslots - 1) * sizeof(ngx_http_faas_slot_t);

    sh = ngx_slab_calloc(shpool, size);
    if (sh == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "faas_metrics_zone \"%V\" is too small for %ui "
                      "functions (%uz bytes needed)", &shm_zone->shm.name,
                      nslots - 1, size + 8 * ngx_pagesize);
        return NGX_ERROR;
    }

    sh->nslots = nslots;
    ngx_memcpy(sh->slots[nslots - 1].name, "_other", sizeof("_other"));
    sh->slots[nslots - 1].len = sizeof("_other") - 1;

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


/* faas_metrics_zone name size; */
char *
ngx_http_faas_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_faas_main_conf_t *fmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (fmcf->metrics_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);
    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" (at least %uz)",
                           &value[2], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    fmcf->metrics_zone = ngx_shared_memory_add(cf, &value[1], size,
                                               &ngx_http_faas_module);
    if (fmcf->metrics_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (fmcf->metrics_zone->data) {
        return "is duplicate";
    }

    fmcf->metrics_zone->init = ngx_http_faas_metrics_init_zone;
    /* (until init: where the number of functions is) */
    fmcf->metrics_zone->data = &fmcf->metrics_max_functions;

    return NGX_CONF_OK;
}


/* ---- the calls ---- */

/* The slot of the function called name, if it has one. */
static ngx_http_faas_slot_t *
ngx_http_faas_metrics_find(ngx_http_faas_metrics_sh_t *sh, u_char *name,
    size_t len)
{
    ngx_uint_t             i, used;
    ngx_http_faas_slot_t  *slot;

    used = sh->used;
    for (i = 0; i < used; i++) {
        slot = &sh->slots[i];
        if (slot->len == len && ngx_memcmp(slot->name, name, len) == 0) {
            return slot;
        }
    }

    return NULL;
}


static ngx_http_faas_slot_t *
ngx_http_faas_metrics_slot(ngx_http_faas_main_conf_t *fmcf,
    ngx_http_faas_metrics_sh_t *sh, ngx_str_t *name)
{
    ngx_uint_t             used;
    ngx_slab_pool_t       *shpool;
    ngx_http_faas_slot_t  *slot;

    slot = ngx_http_faas_metrics_find(sh, name->data, name->len);
    if (slot) {
        return slot;
    }

    if (name->len >= NGX_HTTP_FAAS_M_NAME
        || sh->used >= sh->nslots - 1)
    {
        return &sh->slots[sh->nslots - 1];
    }

    shpool = (ngx_slab_pool_t *) fmcf->metrics_zone->shm.addr;
    ngx_shmtx_lock(&shpool->mutex);

    /* another worker may have taken it meanwhile */
    slot = ngx_http_faas_metrics_find(sh, name->data, name->len);
    used = sh->used;

    if (slot == NULL && used < sh->nslots - 1) {
        slot = &sh->slots[used];
        ngx_memcpy(slot->name, name->data, name->len);
        slot->name[name->len] = '\0';
        slot->len = name->len;
        ngx_memory_barrier();
        sh->used = used + 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return slot ? slot : &sh->slots[sh->nslots - 1];
}


static void
ngx_http_faas_hist_add(ngx_http_faas_hist_t *h, uint64_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_FAAS_M_BUCKETS - 1; i++) {
        if (us <= ngx_http_faas_bounds_us[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->buckets[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum_us, (ngx_atomic_int_t) us);
    (void) ngx_atomic_fetch_add(&h->count, 1);
}


static void
ngx_http_faas_metrics_answered(ngx_http_faas_call_t *call,
    ngx_http_faas_slot_t *slot)
{
    ngx_uint_t  status, class, start;

    status = call->http_status ? call->http_status : NGX_HTTP_OK;
    class = status / 100;
    class = (class >= 1 && class <= 5) ? class - 1 : 4;

    start = (call->start_type >= 0
             && call->start_type < NGX_HTTP_FAAS_M_STARTS)
            ? (ngx_uint_t) call->start_type : 0;

    (void) ngx_atomic_fetch_add(&slot->calls[start][class], 1);

    if (call->resp == NULL
        && (status == NGX_HTTP_SERVICE_UNAVAILABLE
            || status == NGX_HTTP_TOO_MANY_REQUESTS))
    {
        (void) ngx_atomic_fetch_add(&slot->shed, 1);
    }

    ngx_http_faas_hist_add(&slot->hist[NGX_HTTP_FAAS_H_TOTAL],
                           ngx_http_faas_now_us() - call->t_start_us);

    if (call->resp) {
        ngx_http_faas_hist_add(&slot->hist[NGX_HTTP_FAAS_H_SANDBOX],
                               call->resp->duration_us);
    }

    if (call->start_type == FAAS_START_COLD) {
        ngx_http_faas_hist_add(&slot->hist[NGX_HTTP_FAAS_H_COLD],
                               call->cold_us);
    }

    /* (a call that waited in vain: the time it waited) */
    if (call->t_wait_us && call->start_type != FAAS_START_WARM) {
        ngx_http_faas_hist_add(&slot->hist[NGX_HTTP_FAAS_H_WAIT],
                               call->start_type ? call->cold_us
                               : ngx_http_faas_now_us() - call->t_wait_us);
    }
}


/*
 * Called by ngx_http_faas_call_next for each step: the call's first step
 * makes it in flight, RESPOND counts it.
 */
void
ngx_http_faas_metrics_step(ngx_http_faas_call_t *call,
    ngx_http_faas_step_e step)
{
    ngx_http_faas_slot_t        *slot;
    ngx_http_faas_metrics_sh_t  *sh;

    sh = ngx_http_faas_metrics_sh(call->fmcf);
    if (sh == NULL || call->fn == NULL) {
        return;
    }

    slot = call->metrics;

    if (slot == NULL) {
        slot = ngx_http_faas_metrics_slot(call->fmcf, sh, &call->fn->name);
        call->metrics = slot;
        (void) ngx_atomic_fetch_add(&slot->in_flight, 1);
    }

    if (step == NGX_HTTP_FAAS_RESPOND) {
        ngx_http_faas_metrics_answered(call, slot);
    }
}


/* Called when the call is freed: it is no longer in flight. */
void
ngx_http_faas_metrics_end(ngx_http_faas_call_t *call)
{
    ngx_http_faas_slot_t  *slot = call->metrics;

    if (slot) {
        (void) ngx_atomic_fetch_add(&slot->in_flight, -1);
    }
}


void
ngx_http_faas_metrics_error(ngx_http_faas_main_conf_t *fmcf,
    ngx_uint_t redis)
{
    ngx_http_faas_metrics_sh_t  *sh;

    sh = fmcf ? ngx_http_faas_metrics_sh(fmcf) : NULL;
    if (sh == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(redis ? &sh->redis_errors : &sh->agent_errors,
                                1);
}


/* ---- the Prometheus text ---- */

static u_char *
ngx_http_faas_seconds(u_char *p, uint64_t us)
{
    return ngx_sprintf(p, "%uL.%06uL", us / 1000000, us % 1000000);
}


static u_char *
ngx_http_faas_text_hist(u_char *p, ngx_http_faas_slot_t *slot,
    ngx_http_faas_hist_e which)
{
    uint64_t               cumulative;
    ngx_uint_t             i;
    const char            *name = ngx_http_faas_hist_names[which];
    ngx_http_faas_hist_t  *h = &slot->hist[which];

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_FAAS_M_BUCKETS; i++) {
        cumulative += h->buckets[i];
        p = ngx_sprintf(p, "%s_bucket{function=\"%s\",le=\"%s\"} %uL\n",
                        name, slot->name, ngx_http_faas_bounds_s[i],
                        cumulative);
    }

    p = ngx_sprintf(p, "%s_sum{function=\"%s\"} ", name, slot->name);
    p = ngx_http_faas_seconds(p, h->sum_us);
    p = ngx_sprintf(p, "\n%s_count{function=\"%s\"} %uA\n", name,
                    slot->name, h->count);

    return p;
}


static u_char *
ngx_http_faas_text_slot(u_char *p, ngx_http_faas_slot_t *slot,
    const char *what)
{
    ngx_uint_t  s, c;

    if (ngx_strcmp(what, "calls") == 0) {
        for (s = 0; s < NGX_HTTP_FAAS_M_STARTS; s++) {
            for (c = 0; c < NGX_HTTP_FAAS_M_CLASSES; c++) {
                if (slot->calls[s][c] == 0) {
                    continue;
                }

                p = ngx_sprintf(p, "faas_invocations_total{function=\"%s\","
                                "start=\"%s\",status=\"%uixx\"} %uA\n",
                                slot->name, ngx_http_faas_start_names[s],
                                c + 1, slot->calls[s][c]);
            }
        }

    } else if (ngx_strcmp(what, "shed") == 0) {
        p = ngx_sprintf(p, "faas_shed_total{function=\"%s\"} %uA\n",
                        slot->name, slot->shed);

    } else {
        p = ngx_sprintf(p, "faas_in_flight{function=\"%s\"} %uA\n",
                        slot->name, slot->in_flight);
    }

    return p;
}


static ngx_uint_t
ngx_http_faas_slot_shown(ngx_http_faas_metrics_sh_t *sh, ngx_uint_t i)
{
    /* the "other" slot only once a call went there */
    return i < sh->used
           || (i == sh->nslots - 1
               && sh->slots[i].hist[NGX_HTTP_FAAS_H_TOTAL].count
                  + sh->slots[i].in_flight);
}


static u_char *
ngx_http_faas_text(u_char *p, ngx_http_faas_metrics_sh_t *sh)
{
    ngx_uint_t   i, k;
    static const char  *series[][3] = {
        { "calls", "faas_invocations_total", "counter" },
        { "shed", "faas_shed_total", "counter" },
        { "in_flight", "faas_in_flight", "gauge" }
    };
    static const char  *help[] = {
        "Calls answered, by function, start type and status class.",
        "Calls the gateway answered 429 or 503 itself (shed, throttled).",
        "Calls taking place now."
    };

    for (k = 0; k < 3; k++) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", series[k][1],
                        help[k], series[k][1], series[k][2]);

        for (i = 0; i < sh->nslots; i++) {
            if (ngx_http_faas_slot_shown(sh, i)) {
                p = ngx_http_faas_text_slot(p, &sh->slots[i], series[k][0]);
            }
        }
    }

    for (k = 0; k < NGX_HTTP_FAAS_H_N; k++) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s histogram\n",
                        ngx_http_faas_hist_names[k],
                        ngx_http_faas_hist_help[k],
                        ngx_http_faas_hist_names[k]);

        for (i = 0; i < sh->nslots; i++) {
            if (ngx_http_faas_slot_shown(sh, i)) {
                p = ngx_http_faas_text_hist(p, &sh->slots[i], k);
            }
        }
    }

    p = ngx_sprintf(p, "# HELP faas_redis_errors_total Redis connections "
                    "lost or refused.\n"
                    "# TYPE faas_redis_errors_total counter\n"
                    "faas_redis_errors_total %uA\n"
                    "# HELP faas_agent_errors_total Agent calls ended "
                    "without an answer.\n"
                    "# TYPE faas_agent_errors_total counter\n"
                    "faas_agent_errors_total %uA\n",
                    sh->redis_errors, sh->agent_errors);

    return p;
}


/* ---- the JSON view of the status page ---- */

static u_char *
ngx_http_faas_json_slot(u_char *p, ngx_http_faas_slot_t *slot)
{
    ngx_uint_t             s, c, i;
    ngx_atomic_uint_t      calls, cold, errors;
    ngx_http_faas_hist_t  *h = &slot->hist[NGX_HTTP_FAAS_H_TOTAL];

    calls = cold = errors = 0;

    for (s = 0; s < NGX_HTTP_FAAS_M_STARTS; s++) {
        for (c = 0; c < NGX_HTTP_FAAS_M_CLASSES; c++) {
            calls += slot->calls[s][c];
            errors += c >= 4 ? slot->calls[s][c] : 0;
        }
    }

    for (c = 0; c < NGX_HTTP_FAAS_M_CLASSES; c++) {
        cold += slot->calls[FAAS_START_COLD][c];
    }

    p = ngx_sprintf(p, "{\"name\":\"%s\",\"calls\":%uA,\"cold\":%uA,"
                    "\"errors\":%uA,\"shed\":%uA,\"in_flight\":%uA,"
                    "\"sum_us\":%uA,\"buckets\":[",
                    slot->name, calls, cold, errors, slot->shed,
                    slot->in_flight, h->sum_us);

    for (i = 0; i < NGX_HTTP_FAAS_M_BUCKETS; i++) {
        p = ngx_sprintf(p, "%s%uA", i ? "," : "", h->buckets[i]);
    }

    return ngx_sprintf(p, "]}");
}


static u_char *
ngx_http_faas_json(u_char *p, ngx_http_faas_metrics_sh_t *sh)
{
    ngx_uint_t  i, n;

    p = ngx_sprintf(p, "{\"time_ms\":%uL,\"le_ms\":[",
                    (uint64_t) (ngx_http_faas_now_us() / 1000));

    for (i = 0; i < NGX_HTTP_FAAS_M_BUCKETS - 1; i++) {
        p = ngx_sprintf(p, "%s%uL", i ? "," : "",
                        ngx_http_faas_bounds_us[i] / 1000);
    }

    p = ngx_sprintf(p, "],\"redis_errors\":%uA,\"agent_errors\":%uA,"
                    "\"functions\":[", sh->redis_errors, sh->agent_errors);

    for (i = 0, n = 0; i < sh->nslots; i++) {
        if (ngx_http_faas_slot_shown(sh, i)) {
            p = ngx_sprintf(p, "%s", n++ ? "," : "");
            p = ngx_http_faas_json_slot(p, &sh->slots[i]);
        }
    }

    return ngx_sprintf(p, "]}\n");
}


/* ---- the locations ---- */

static ngx_int_t
ngx_http_faas_metrics_send(ngx_http_request_t *r, ngx_str_t *type,
    u_char *data, size_t len)
{
    ngx_int_t    rc;
    ngx_buf_t   *b;
    ngx_chain_t  out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* json: the status page's view, else the Prometheus text */
static ngx_int_t
ngx_http_faas_metrics_figures(ngx_http_request_t *r, ngx_uint_t json)
{
    u_char                      *buf, *p;
    size_t                       size;
    ngx_http_faas_main_conf_t   *fmcf;
    ngx_http_faas_metrics_sh_t  *sh;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_faas_module);
    sh = ngx_http_faas_metrics_sh(fmcf);

    /* lines per function: 20 counters, 2 gauges, 4 histograms of 16 */
    size = (sh->nslots * 90 + 32) * NGX_HTTP_FAAS_M_LINE;

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = json ? ngx_http_faas_json(buf, sh) : ngx_http_faas_text(buf, sh);

    return ngx_http_faas_metrics_send(r, json ? &ngx_http_faas_json_type
                                              : &ngx_http_faas_text_type,
                                      buf, p - buf);
}


static ngx_int_t
ngx_http_faas_metrics_handler(ngx_http_request_t *r)
{
    return ngx_http_faas_metrics_figures(r, 0);
}


/* The page, or with ?format=json the figures it polls. */
static ngx_int_t
ngx_http_faas_status_handler(ngx_http_request_t *r)
{
    ngx_str_t  format;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
        && format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0)
    {
        return ngx_http_faas_metrics_figures(r, 1);
    }

    return ngx_http_faas_metrics_send(r, &ngx_http_faas_html_type,
                                      (u_char *) ngx_http_faas_status_page,
                                      sizeof(ngx_http_faas_status_page) - 1);
}


/* faas_metrics; and faas_status_page; (the zone must exist: checked later) */
char *
ngx_http_faas_metrics_location(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_faas_main_conf_t  *fmcf;

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_faas_module);
    fmcf->metrics_used = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate";
    }

    clcf->handler = cmd->post ? ngx_http_faas_status_handler
                              : ngx_http_faas_metrics_handler;

    return NGX_CONF_OK;
}


/* postconfiguration: a metrics location needs the zone. */
ngx_int_t
ngx_http_faas_metrics_check(ngx_conf_t *cf, ngx_http_faas_main_conf_t *fmcf)
{
    if (fmcf->metrics_used && fmcf->metrics_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"faas_metrics\" and "
                           "\"faas_status_page\" need \"faas_metrics_zone\"");
        return NGX_ERROR;
    }

    return NGX_OK;
}
