/*
 * A daemon's own metrics in the Prometheus text format, served on a small
 * HTTP port (the `metrics_listen` key, docs/DESIGN.md section 8).
 *
 * Metrics are registered at start, before faas_metrics_listen(), from the
 * main thread; afterwards any thread updates them (atomic, lock-free) and
 * libmicrohttpd's own thread reads them for a scrape. libmicrohttpd is the
 * registry's HTTP server already: one well-kept server for every daemon,
 * off their event loops, so a slow scraper never delays a call.
 */
#ifndef FAAS_METRICS_HTTP_H
#define FAAS_METRICS_HTTP_H

#include <stdint.h>

#include "error.h"

typedef struct faas_metric faas_metric_t;

/*
 * Registers a counter, a gauge or a histogram (seconds, fixed buckets from
 * 1 ms to 10 s). name may carry labels: `faas_sandboxes{state="idle"}`;
 * metrics of one family are registered one after the other. Returns the
 * metric (static storage, never freed), or NULL past 64 metrics.
 */
faas_metric_t *faas_metric_counter(const char *name, const char *help);
faas_metric_t *faas_metric_gauge(const char *name, const char *help);
faas_metric_t *faas_metric_histogram(const char *name, const char *help);

/* Each accepts NULL (a metric that could not be registered). */
void faas_metric_add(faas_metric_t *m, int64_t v);
void faas_metric_set(faas_metric_t *m, int64_t v);
void faas_metric_observe_us(faas_metric_t *m, uint64_t us);

/*
 * Serves GET /metrics on addr (`host:port`, `[v6]:port`); NULL or "" serves
 * nothing. Returns 0, or -1 with err (bad address, port taken).
 */
int faas_metrics_listen(const char *addr, faas_error_t *err);
void faas_metrics_stop(void);

#endif
