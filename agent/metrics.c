/*
 * The agent's metrics (docs/DESIGN.md section 8), served on
 * `metrics_listen` by common/metrics_http.c: invocations by outcome and
 * their time in the sandbox, counted as each one is answered; calls in
 * flight and gateway connections read once a second on the loop.
 */
#include "agent.h"
#include "config.h"
#include "metrics_http.h"

static faas_metric_t *ok, *function_error, *failed, *duration;
static faas_metric_t *inflight, *tcp_conns;
static uv_timer_t     scan_timer;

static void
scan(uv_timer_t *t)
{
    faas_agent_t *a = t->data;

    faas_metric_set(inflight, (int64_t) a->inflight);
    faas_metric_set(tcp_conns, (int64_t) a->tcp_conns);
}

static void
register_all(void)
{
    static const char *help = "Invocations answered, by outcome.";

    ok = faas_metric_counter("faas_agent_invocations_total{result=\"ok\"}",
                             help);
    function_error = faas_metric_counter(
        "faas_agent_invocations_total{result=\"function_error\"}", help);
    failed = faas_metric_counter(
        "faas_agent_invocations_total{result=\"failed\"}", help);
    duration = faas_metric_histogram("faas_agent_invoke_seconds",
                                     "Time the function ran.");
    inflight = faas_metric_gauge("faas_agent_in_flight",
                                 "Invocations in progress.");
    tcp_conns = faas_metric_gauge("faas_agent_tcp_connections",
                                  "Gateway TCP connections open.");
}

int
faas_agent_metrics_start(faas_agent_t *a, faas_error_t *err)
{
    const char *addr = faas_config_string(a->cfg, "metrics_listen", NULL);

    if (addr == NULL || addr[0] == '\0') {
        return 0;
    }
    register_all();
    if (faas_metrics_listen(addr, err) < 0) {
        return -1;
    }
    uv_timer_init(a->loop, &scan_timer);
    scan_timer.data = a;
    uv_timer_start(&scan_timer, scan, 0, 1000);
    uv_unref((uv_handle_t *) &scan_timer);   /* never holds the loop */
    return 0;
}

void
faas_agent_metrics_invoked(Faas__InvokeStatus status, uint64_t duration_us)
{
    faas_metric_add(status == FAAS__INVOKE_STATUS__OK ? ok
                    : status == FAAS__INVOKE_STATUS__FUNCTION_ERROR
                    ? function_error : failed, 1);
    if (status == FAAS__INVOKE_STATUS__OK
        || status == FAAS__INVOKE_STATUS__FUNCTION_ERROR) {
        faas_metric_observe_us(duration, duration_us);
    }
}
