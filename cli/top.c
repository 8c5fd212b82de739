/*
 * faasctl top: per-function figures computed from execution records (the
 * registry's executions endpoint), the same figures as a live status page:
 * call rate, p50/p99 of the gateway's total time, cold-start share, errors.
 */
#include "faasctl.h"

#include <stdlib.h>
#include <string.h>


static int
cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *) a, y = *(const long long *) b;

    return x < y ? -1 : x > y;
}


/* The nearest-rank percentile p (0-100) of n sorted values. */
static long long
percentile(const long long *v, size_t n, int p)
{
    size_t rank;

    if (n == 0) {
        return 0;
    }
    rank = (n * (size_t) p + 99) / 100;
    return v[rank ? rank - 1 : 0];
}


static int
is_error(json_t *e)
{
    const char *st = json_string_value(json_object_get(e, "status"));

    return (st != NULL && strcmp(st, "OK") != 0)
           || json_integer_value(json_object_get(e, "http_status")) >= 500;
}


int
fctl_top_stats(json_t *execs, long long now_ms, long long window_ms,
               fctl_top_stats_t *st)
{
    long long  *total;
    long long   ts, oldest = now_ms;
    size_t      i, n = 0;
    json_t     *e;
    const char *start;

    memset(st, 0, sizeof(*st));
    total = malloc((json_array_size(execs) + 1) * sizeof(long long));
    if (total == NULL) {
        return -1;
    }
    json_array_foreach(execs, i, e) {
        ts = json_integer_value(json_object_get(e, "timestamp_ms"));
        if (ts <= now_ms - window_ms || ts > now_ms) {
            continue;
        }
        total[n++] = json_integer_value(json_object_get(e, "total_us"));
        oldest = ts < oldest ? ts : oldest;
        start = json_string_value(json_object_get(e, "start_type"));
        st->cold += start != NULL && strcmp(start, "COLD") == 0;
        st->errors += is_error(e);
    }
    st->calls = (long) n;
    /* a full page may not reach back the whole window: rate over its span */
    if (n > 0 && json_array_size(execs) >= FCTL_TOP_PAGE) {
        window_ms = now_ms - oldest + 1;
    }
    st->rate = (double) n * 1000.0 / (double) window_ms;
    qsort(total, n, sizeof(long long), cmp_ll);
    st->p50_us = percentile(total, n, 50);
    st->p99_us = percentile(total, n, 99);
    free(total);
    return 0;
}


void
fctl_top_header(FILE *out, long window_s)
{
    fprintf(out, "%-24s %8s %7s %10s %10s %6s %7s   (last %lds)\n",
            "FUNCTION", "RATE/s", "CALLS", "P50-MS", "P99-MS", "COLD%",
            "ERRORS", window_s);
}


void
fctl_top_row(FILE *out, const char *name, const fctl_top_stats_t *st)
{
    fprintf(out, "%-24s %8.2f %7ld %10.3f %10.3f %6.1f %7ld\n", name,
            st->rate, st->calls, st->p50_us / 1e3, st->p99_us / 1e3,
            st->calls ? 100.0 * st->cold / st->calls : 0.0, st->errors);
}
