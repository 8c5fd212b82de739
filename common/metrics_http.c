/*
 * A daemon's metrics, served by libmicrohttpd's own thread (metrics_http.h).
 */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "metrics_http.h"

#define MAX_METRICS 64
#define NBUCKETS    14                 /* 13 bounds and +Inf */
#define TEXT_MAX    (MAX_METRICS * 2048)

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct faas_metric {
    const char *name;
    const char *help;
    enum kind   kind;
    int64_t     value;                 /* counter, gauge */
    uint64_t    buckets[NBUCKETS];     /* histogram: not cumulative */
    uint64_t    sum_us;
    uint64_t    count;
};

static const uint64_t bounds_us[NBUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};
static const char *bounds_s[NBUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10", "+Inf"
};

static struct faas_metric metrics[MAX_METRICS];
static unsigned nmetrics;
static struct MHD_Daemon *daemon_;

static faas_metric_t *
add(const char *name, const char *help, enum kind kind)
{
    faas_metric_t *m;

    if (nmetrics == MAX_METRICS) {
        faas_err(NULL, "metrics: no room for %s", name);
        return NULL;
    }
    m = &metrics[nmetrics++];
    m->name = name;
    m->help = help;
    m->kind = kind;
    return m;
}

faas_metric_t *
faas_metric_counter(const char *name, const char *help)
{
    return add(name, help, COUNTER);
}

faas_metric_t *
faas_metric_gauge(const char *name, const char *help)
{
    return add(name, help, GAUGE);
}

faas_metric_t *
faas_metric_histogram(const char *name, const char *help)
{
    return add(name, help, HISTOGRAM);
}

void
faas_metric_add(faas_metric_t *m, int64_t v)
{
    if (m) {
        __atomic_fetch_add(&m->value, v, __ATOMIC_RELAXED);
    }
}

void
faas_metric_set(faas_metric_t *m, int64_t v)
{
    if (m) {
        __atomic_store_n(&m->value, v, __ATOMIC_RELAXED);
    }
}

void
faas_metric_observe_us(faas_metric_t *m, uint64_t us)
{
    unsigned i;

    if (m == NULL) {
        return;
    }
    for (i = 0; i < NBUCKETS - 1 && us > bounds_us[i]; i++) {
    }
    __atomic_fetch_add(&m->buckets[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&m->sum_us, us, __ATOMIC_RELAXED);
    __atomic_fetch_add(&m->count, 1, __ATOMIC_RELAXED);
}

/* The family of a name: what precedes its labels. */
static size_t
family_len(const char *name)
{
    return strcspn(name, "{");
}

static int
same_family(const faas_metric_t *a, const faas_metric_t *b)
{
    return b && family_len(a->name) == family_len(b->name)
           && strncmp(a->name, b->name, family_len(a->name)) == 0;
}

/* Appends to buf (of TEXT_MAX bytes) at *n; output past the end is cut. */
static void
put(char *buf, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
put(char *buf, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int     k;

    if (*n >= TEXT_MAX) {
        return;
    }
    va_start(ap, fmt);
    k = vsnprintf(buf + *n, TEXT_MAX - *n, fmt, ap);
    va_end(ap);
    *n = k < 0 ? TEXT_MAX : *n + (size_t) k;
}

/* A histogram's lines; its own labels (if any) go before le. */
static void
render_histogram(char *buf, size_t *n, const faas_metric_t *m)
{
    int         fl = (int) family_len(m->name);
    const char *in = m->name[fl] ? m->name + fl + 1 : "";
    int         il = *in ? (int) strlen(in) - 1 : 0;  /* without the } */
    uint64_t    cum = 0, sum;
    unsigned    i;

    for (i = 0; i < NBUCKETS; i++) {
        cum += __atomic_load_n(&m->buckets[i], __ATOMIC_RELAXED);
        put(buf, n, "%.*s_bucket{%.*s%sle=\"%s\"} %llu\n", fl, m->name, il,
            in, il ? "," : "", bounds_s[i], (unsigned long long) cum);
    }
    sum = __atomic_load_n(&m->sum_us, __ATOMIC_RELAXED);
    put(buf, n, "%.*s_sum%s%.*s%s %llu.%06llu\n", fl, m->name, il ? "{" : "",
        il, in, il ? "}" : "", (unsigned long long) (sum / 1000000),
        (unsigned long long) (sum % 1000000));
    put(buf, n, "%.*s_count%s%.*s%s %llu\n", fl, m->name, il ? "{" : "", il,
        in, il ? "}" : "",
        (unsigned long long) __atomic_load_n(&m->count, __ATOMIC_RELAXED));
}

static const char *kind_names[] = { "counter", "gauge", "histogram" };

/* The whole text; returns its length. */
static size_t
render(char *buf)
{
    size_t   n = 0;
    unsigned i;

    for (i = 0; i < nmetrics; i++) {
        const faas_metric_t *m = &metrics[i];
        int                  fl = (int) family_len(m->name);

        if (i == 0 || !same_family(m, &metrics[i - 1])) {
            put(buf, &n, "# HELP %.*s %s\n# TYPE %.*s %s\n", fl, m->name,
                m->help, fl, m->name, kind_names[m->kind]);
        }
        if (m->kind == HISTOGRAM) {
            render_histogram(buf, &n, m);
        } else {
            put(buf, &n, "%s %lld\n", m->name, (long long)
                __atomic_load_n(&m->value, __ATOMIC_RELAXED));
        }
    }
    return n < TEXT_MAX ? n : TEXT_MAX - 1;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *data,
           size_t *data_len, void **state)
{
    struct MHD_Response *res;
    enum MHD_Result      rc;
    unsigned             status = MHD_HTTP_OK;
    char                *buf;
    size_t               len;

    (void) cls; (void) version; (void) data; (void) data_len; (void) state;

    buf = malloc(TEXT_MAX);
    if (buf == NULL) {
        return MHD_NO;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        len = (size_t) snprintf(buf, TEXT_MAX, "GET only\n");
    } else if (strcmp(url, "/metrics") != 0) {
        status = MHD_HTTP_NOT_FOUND;
        len = (size_t) snprintf(buf, TEXT_MAX, "only /metrics here\n");
    } else {
        len = render(buf);
    }
    res = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (res == NULL) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(res, "Content-Type",
                            "text/plain; version=0.0.4");
    rc = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return rc;
}

/* A listening TCP socket on host:port ([v6]:port); -1 with err. */
static int
listen_on(const char *addr, faas_error_t *err)
{
    cleanup_free char *host = NULL;
    struct addrinfo    hints, *ai = NULL;
    const char        *colon = strrchr(addr, ':');
    int                fd, one = 1, rc;

    if (colon == NULL || colon == addr || colon[1] == '\0') {
        return faas_error_set(err, 0, "metrics_listen \"%s\": not host:port",
                              addr);
    }
    host = strndup(addr[0] == '[' ? addr + 1 : addr,
                   (size_t) (colon - addr) - (addr[0] == '[' ? 2 : 0));
    if (host == NULL) {
        return faas_error_set(err, errno, "strndup");
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        return faas_error_set(err, 0, "metrics_listen \"%s\": %s", addr,
                              gai_strerror(rc));
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return faas_error_set(err, errno, "socket");
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        rc = errno;
        freeaddrinfo(ai);
        close(fd);
        return faas_error_set(err, rc, "metrics_listen \"%s\"", addr);
    }
    freeaddrinfo(ai);
    return fd;
}

int
faas_metrics_listen(const char *addr, faas_error_t *err)
{
    int fd;

    if (addr == NULL || addr[0] == '\0') {
        return 0;
    }
    fd = listen_on(addr, err);
    if (fd < 0) {
        return -1;
    }
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD
                               | MHD_USE_ERROR_LOG,
                               0, NULL, NULL, on_request, NULL,
                               MHD_OPTION_LISTEN_SOCKET, fd,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 10,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned) 16,
                               MHD_OPTION_END);
    if (daemon_ == NULL) {
        close(fd);
        return faas_error_set(err, 0, "metrics_listen \"%s\": cannot start "
                              "the HTTP server", addr);
    }
    faas_info(NULL, "metrics on http://%s/metrics", addr);
    return 0;
}

void
faas_metrics_stop(void)
{
    if (daemon_) {
        MHD_stop_daemon(daemon_);
        daemon_ = NULL;
    }
}
