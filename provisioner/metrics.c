/*
 * The provisioner's metrics (docs/DESIGN.md section 8), served on
 * `metrics_listen` by common/metrics_http.c: sandboxes by state and the
 * pools (creating, jobs, memory used) read from the tables once a second on
 * the loop; creates, their failures and latency, code-cache hits and Redis
 * reconnects counted where they happen.
 */
#include <uv.h>

#include "config.h"
#include "metrics_http.h"
#include "prov.h"

struct faas_prov_metrics faas_prov_m;

static faas_metric_t *by_state[4];
static faas_metric_t *creating, *jobs, *used_mb, *held;
static uv_timer_t     scan_timer;

static void
scan(uv_timer_t *t)
{
    faas_prov_t     *p = t->data;
    faas_prov_sbx_t *s;
    int64_t          n[4] = { 0, 0, 0, 0 }, h = 0;
    unsigned         i;

    for (s = p->sbx; s != NULL; s = s->next) {
        if (s->state >= 0 && s->state < 4) {
            n[s->state]++;
        }
    }
    for (i = 0; i < 4; i++) {
        faas_metric_set(by_state[i], n[i]);
    }
    for (i = 0; i < p->shards; i++) {
        h += p->held[i];
    }
    faas_metric_set(creating, p->creating);
    faas_metric_set(jobs, p->jobs);
    faas_metric_set(used_mb, p->used_mb);
    faas_metric_set(held, h);
}

static void
register_all(void)
{
    static const char *sbx_help = "Sandboxes this host manages, by state.";

    by_state[SBX_CREATING] = faas_metric_gauge(
        "faas_prov_sandboxes{state=\"creating\"}", sbx_help);
    by_state[SBX_IDLE] = faas_metric_gauge(
        "faas_prov_sandboxes{state=\"idle\"}", sbx_help);
    by_state[SBX_BUSY] = faas_metric_gauge(
        "faas_prov_sandboxes{state=\"busy\"}", sbx_help);
    by_state[SBX_DESTROYING] = faas_metric_gauge(
        "faas_prov_sandboxes{state=\"destroying\"}", sbx_help);
    creating = faas_metric_gauge("faas_prov_creating",
                                 "Creates running in the thread pool.");
    jobs = faas_metric_gauge("faas_prov_jobs",
                             "Requests taken and not finished.");
    used_mb = faas_metric_gauge("faas_prov_memory_used_mb",
                                "Memory budget used by sandboxes, MB.");
    held = faas_metric_gauge("faas_prov_shards_held",
                             "Provisioning shards this host leads.");
    faas_prov_m.creates = faas_metric_counter(
        "faas_prov_creates_total", "Sandboxes created and listed.");
    faas_prov_m.create_failures = faas_metric_counter(
        "faas_prov_create_failures_total", "Provision requests that failed.");
    faas_prov_m.create_seconds = faas_metric_histogram(
        "faas_prov_create_seconds", "Time faas_sandbox_create took.");
    faas_prov_m.code_hits = faas_metric_counter(
        "faas_prov_code_cache_total{result=\"hit\"}",
        "Code-cache look-ups: ready, or fetched from the store.");
    faas_prov_m.code_misses = faas_metric_counter(
        "faas_prov_code_cache_total{result=\"miss\"}",
        "Code-cache look-ups: ready, or fetched from the store.");
    faas_prov_m.redis_reconnects = faas_metric_counter(
        "faas_prov_redis_reconnects_total",
        "Redis connections made again after a loss.");
}

int
faas_prov_metrics_start(faas_prov_t *p, faas_error_t *err)
{
    const char *addr = faas_config_string(p->cfg, "metrics_listen", NULL);

    if (addr == NULL || addr[0] == '\0') {
        return 0;
    }
    register_all();
    if (faas_metrics_listen(addr, err) < 0) {
        return -1;
    }
    uv_timer_init(p->loop, &scan_timer);
    scan_timer.data = p;
    uv_timer_start(&scan_timer, scan, 0, 1000);
    uv_unref((uv_handle_t *) &scan_timer);   /* never holds the loop */
    return 0;
}

void
faas_prov_metrics_stop(void)
{
    faas_metrics_stop();
}
