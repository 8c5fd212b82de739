/*
 * The registry's metrics (docs/DESIGN.md section 8), served on
 * `metrics_listen` by common/metrics_http.c: execution records drained,
 * dropped as malformed, still waiting in faas:records (the lag, read after
 * each batch), and the drain's Redis reconnects.
 */
#include "registry.h"

#include "config.h"
#include "metrics_http.h"

struct faas_registry_metrics faas_registry_m;

int
faas_registry_metrics_start(faas_registry_t *reg, faas_error_t *err)
{
    const char *addr = faas_config_string(reg->cfg, "metrics_listen", NULL);

    if (addr == NULL || addr[0] == '\0') {
        return 0;
    }
    faas_registry_m.drained = faas_metric_counter(
        "faas_registry_records_drained_total",
        "Execution records written to the database.");
    faas_registry_m.malformed = faas_metric_counter(
        "faas_registry_records_malformed_total",
        "Execution records that did not decode, dropped.");
    faas_registry_m.lag = faas_metric_gauge(
        "faas_registry_records_waiting",
        "Records in faas:records after the last batch (the drain's lag).");
    faas_registry_m.redis_reconnects = faas_metric_counter(
        "faas_registry_redis_reconnects_total",
        "Redis connections of the drain made again after a loss.");
    return faas_metrics_listen(addr, err);
}
