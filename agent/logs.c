/*
 * Invocation logs to the blob store, never on the answer's path:
 *
 *   faas_logs_submit() queues (key, text) in memory; one job at a time in
 *   the libuv thread pool puts the queue to the store in order. When a put
 *   fails, that log and every later one go to the spool directory instead
 *   (one file per log: "<seq>-<key with / as %2F>", written to .tmp then
 *   renamed), and a timer on the loop retries the oldest spool file with
 *   exponential backoff (log_retry_min_ms .. log_retry_max_ms). While the
 *   spool is not empty new logs are spooled too, so the store receives logs
 *   in submission order. A delivered spool file is deleted. At start the
 *   spool left by an earlier agent is delivered first.
 *
 * The agent bounds what a tenant can make it hold, whatever the runtime in
 * the sandbox did (docs/DESIGN.md section 12): one call's log is cut to
 * log_max_bytes, ending with "[faas: log truncated, N bytes dropped]"; the
 * bytes accepted but not yet delivered or spooled ("pending": the memory
 * queue and the running job) are at most log_queue_bytes, and one function
 * may hold at most log_queue_bytes / (functions with logs pending + 1) of
 * them (never less than log_max_bytes), so a share is always left for a
 * function that has nothing pending. A log over its function's share (or
 * over the queue) is replaced by a one-line marker, so the key the
 * execution record names still exists.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"

#define SPOOL_BATCH 64
#define LOG_MAX_DEFAULT    65536 /* the runtimes' FAAS_LOG_MAX */
#define QUEUE_MAX_DEFAULT  (64LL * 1024 * 1024)
#define MARKER_ROOM        64    /* the truncation marker and a newline */
#define DROP_REPORT_MS     10000 /* drops are summed up in the log this often */

typedef struct item_s {
    struct item_s *next;
    char          *key;
    char          *data; /* NULL for a spooled item */
    size_t         len;
    char          *spool; /* spool file name (under spool_dir) or NULL */
    char          *fn;    /* function charged for len (NULL: spool file) */
} item_t;

typedef struct list_s {
    item_t *head, *tail;
    size_t  count;
} list_t;

typedef struct job_s {
    uv_work_t    work;
    faas_logs_t *logs;
    list_t       items;      /* what this job handles, in order */
    int          spool_only; /* store known down: spool without trying */
    int          from_spool; /* items are spool files to deliver */
    int          failed;     /* the store refused: back off */
    list_t       spooled;    /* items the job moved to the spool */
    size_t       delivered;
    json_t      *charges; /* function -> bytes pending in this job */
    faas_error_t err;
} job_t;

struct faas_logs_s {
    uv_loop_t         *loop;
    faas_blob_store_t *store;
    char              *spool_dir;
    list_t             queue; /* in memory, not yet handled */
    size_t             log_max;       /* one call's log */
    size_t             pending_max;   /* log_queue_bytes */
    size_t             pending_bytes; /* queued or in the running job */
    json_t            *pending;       /* function -> its pending bytes */
    uint64_t           truncated, truncated_bytes; /* since last report */
    uint64_t           shed, shed_bytes;
    uint64_t           reported_at;   /* uv_now() of the last report */
    list_t             spool; /* spool files waiting, oldest first */
    uint64_t           seq;   /* next spool sequence number */
    int                busy;  /* a job is in the thread pool */
    int                down;  /* the store failed; waiting for the timer */
    int                closing;
    uint64_t           backoff;
    uint64_t           retry_min, retry_max;
    uv_timer_t         timer;
};

static void pump(faas_logs_t *l);

static void
list_push(list_t *l, item_t *it)
{
    it->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = it;
    } else {
        l->head = it;
    }
    l->tail = it;
    l->count++;
}

static item_t *
list_pop(list_t *l)
{
    item_t *it = l->head;

    if (it != NULL) {
        l->head = it->next;
        if (l->head == NULL) {
            l->tail = NULL;
        }
        l->count--;
        it->next = NULL;
    }
    return it;
}

static void
list_concat(list_t *dst, list_t *src)
{
    if (src->head == NULL) {
        return;
    }
    if (dst->tail != NULL) {
        dst->tail->next = src->head;
    } else {
        dst->head = src->head;
    }
    dst->tail = src->tail;
    dst->count += src->count;
    memset(src, 0, sizeof(*src));
}

static void
item_free(item_t *it)
{
    free(it->fn);
    free(it->key);
    free(it->data);
    free(it->spool);
    free(it);
}

/*
 * Writes logs/<function>/<yyyy-mm-dd>/<request-id>.log (UTC date) into buf.
 * Returns 0, or -1 if it does not fit.
 */
int
faas_logs_key(char *buf, size_t len, const char *function,
              const char *request_id)
{
    time_t    t = time(NULL);
    struct tm tm;
    int       n;

    gmtime_r(&t, &tm);
    n = snprintf(buf, len, "logs/%s/%04d-%02d-%02d/%s.log", function,
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, request_id);
    return n < 0 || (size_t) n >= len ? -1 : 0;
}

/* ---- spool files ------------------------------------------------------ */

/* "<20-digit seq>-<key with '%' -> %25 and '/' -> %2F>" */
static char *
spool_name(uint64_t seq, const char *key)
{
    size_t      n = strlen(key);
    char       *s = malloc(24 + n * 3 + 1), *p;
    const char *k;

    if (s == NULL) {
        return NULL;
    }
    p = s + sprintf(s, "%020llu-", (unsigned long long) seq);
    for (k = key; *k; k++) {
        if (*k == '/') {
            p += sprintf(p, "%%2F");
        } else if (*k == '%') {
            p += sprintf(p, "%%25");
        } else {
            *p++ = *k;
        }
    }
    *p = '\0';
    return s;
}

/* The key back from a spool name; NULL if the name is not ours. */
static char *
spool_key(const char *name, uint64_t *seq)
{
    char       *end, *key, *p;
    const char *n;

    *seq = strtoull(name, &end, 10);
    if (end - name != 20 || *end != '-') {
        return NULL;
    }
    key = malloc(strlen(end) + 1);
    if (key == NULL) {
        return NULL;
    }
    for (n = end + 1, p = key; *n; n++) {
        if (strncmp(n, "%2F", 3) == 0) {
            *p++ = '/';
            n += 2;
        } else if (strncmp(n, "%25", 3) == 0) {
            *p++ = '%';
            n += 2;
        } else {
            *p++ = *n;
        }
    }
    *p = '\0';
    return key;
}

/* Thread pool: writes it to the spool. 0 or <0. */
static int
spool_write(faas_logs_t *l, item_t *it, faas_error_t *err)
{
    char              path[4096], tmp[4096 + 8];
    cleanup_close int fd = -1;
    size_t            off = 0;
    ssize_t           n;

    snprintf(path, sizeof(path), "%s/%s", l->spool_dir, it->spool);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return faas_error_set(err, errno, "spool %s", tmp);
    }
    while (off < it->len) {
        n = write(fd, it->data + off, it->len - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            faas_error_set(err, errno, "spool %s", tmp);
            unlink(tmp);
            return -1;
        }
        off += (size_t) n;
    }
    if (rename(tmp, path) < 0) {
        faas_error_set(err, errno, "spool rename %s", path);
        unlink(tmp);
        return -1;
    }
    free(it->data);
    it->data = NULL;
    return 0;
}

/* ---- the budget (loop thread only) ----------------------------------- */

/* Adds delta (may be negative) to fn's entry in map; a zero entry goes. */
static void
charge(json_t *map, const char *fn, long long delta)
{
    json_t   *v = json_object_get(map, fn);
    long long n = (v != NULL ? json_integer_value(v) : 0) + delta;

    if (n <= 0) {
        json_object_del(map, fn);
    } else if (v != NULL) {
        json_integer_set(v, n);
    } else {
        json_object_set_new(map, fn, json_integer(n));
    }
}

/* Gives back what a finished job held. */
static void
release(faas_logs_t *l, json_t *charges)
{
    const char *fn;
    json_t     *v;
    long long   n;

    json_object_foreach(charges, fn, v) {
        n = json_integer_value(v);
        charge(l->pending, fn, -n);
        l->pending_bytes -= (size_t) n;
    }
}

/* How many bytes fn may have pending: its share of the queue. */
static size_t
share_of(faas_logs_t *l, const char *fn)
{
    size_t others = json_object_size(l->pending);
    size_t share;

    if (json_object_get(l->pending, fn) != NULL) {
        others--;
    }
    /* + 2: fn itself and a share kept for a function with nothing yet */
    share = l->pending_max / (others + 2);
    return share > l->log_max ? share : l->log_max;
}

/* The function a key logs/<function>/... belongs to, into buf. */
static void
function_of(const char *key, char *buf, size_t len)
{
    const char *p = strchr(key, '/');
    size_t      n = 0;

    p = p != NULL ? p + 1 : key;
    while (p[n] != '\0' && p[n] != '/' && n + 1 < len) {
        buf[n] = p[n];
        n++;
    }
    buf[n] = '\0';
}

/* Moves n to the start of the UTF-8 sequence data[n] is part of. */
static size_t
utf8_boundary(const char *data, size_t n)
{
    while (n > 0 && ((unsigned char) data[n] & 0xC0) == 0x80) {
        n--;
    }
    return n;
}

/*
 * data cut to l->log_max bytes (as the runtimes cut it: on a UTF-8 boundary,
 * then a newline if needed and the marker), malloc'd, its length in *out.
 */
static char *
cut_log(faas_logs_t *l, const char *data, size_t len, size_t *out)
{
    size_t keep = utf8_boundary(data, l->log_max - MARKER_ROOM);
    char  *buf = malloc(l->log_max + 1);
    size_t n = keep;

    if (buf == NULL) {
        return NULL;
    }
    memcpy(buf, data, keep);
    if (keep > 0 && buf[keep - 1] != '\n') {
        buf[n++] = '\n';
    }
    n += (size_t) snprintf(buf + n, l->log_max + 1 - n,
                           "[faas: log truncated, %zu bytes dropped]\n",
                           len - keep);
    *out = n;
    return buf;
}

/* Says what was cut or dropped, summed over DROP_REPORT_MS. */
static void
report_drops(faas_logs_t *l)
{
    uint64_t now = uv_now(l->loop);

    if ((l->truncated == 0 && l->shed == 0) ||
        (l->reported_at != 0 && now - l->reported_at < DROP_REPORT_MS)) {
        return;
    }
    faas_warn(NULL,
              "logs: %llu cut to log_max_bytes (%llu bytes dropped), "
              "%llu dropped over their function's queue share (%llu bytes)",
              (unsigned long long) l->truncated,
              (unsigned long long) l->truncated_bytes,
              (unsigned long long) l->shed,
              (unsigned long long) l->shed_bytes);
    l->truncated = l->truncated_bytes = l->shed = l->shed_bytes = 0;
    l->reported_at = now;
}

/* ---- the job ---------------------------------------------------------- */

static void
job_work(uv_work_t *w)
{
    job_t       *j = (job_t *) w;
    faas_logs_t *l = j->logs;
    item_t      *it;
    list_t       keep = {0};
    char         path[4096];
    faas_error_t err;

    faas_error_clear(&j->err);
    while ((it = list_pop(&j->items)) != NULL) {
        if (j->from_spool) {
            if (!j->failed) {
                snprintf(path, sizeof(path), "%s/%s", l->spool_dir, it->spool);
                if (faas_blob_put_file(l->store, it->key, path, &j->err) == 0) {
                    unlink(path);
                    j->delivered++;
                    item_free(it);
                    continue;
                }
                if (access(path, F_OK) < 0) {
                    /* vanished from the spool: nothing to deliver */
                    item_free(it);
                    continue;
                }
                j->failed = 1;
            }
            list_push(&keep, it); /* stays in the spool, in order */
            continue;
        }
        if (!j->spool_only && !j->failed) {
            if (faas_blob_put(l->store, it->key, it->data, it->len, &j->err) ==
                0) {
                j->delivered++;
                item_free(it);
                continue;
            }
            j->failed = 1;
        }
        if (spool_write(l, it, &err) < 0) {
            faas_log(FAAS_LOG_ERROR, NULL, "log %s lost: %s", it->key, err.msg);
            item_free(it);
            continue;
        }
        list_push(&j->spooled, it);
    }
    j->items = keep;
}

static void
job_done(uv_work_t *w, int status)
{
    job_t       *j = (job_t *) w;
    faas_logs_t *l = j->logs;
    list_t       rest;

    (void) status;
    l->busy = 0;
    if (j->from_spool) {
        /* undelivered spool items go back to the front, in order */
        rest = l->spool;
        memset(&l->spool, 0, sizeof(l->spool));
        list_concat(&l->spool, &j->items);
        list_concat(&l->spool, &rest);
    }
    list_concat(&l->spool, &j->spooled);
    if (j->charges != NULL) {
        release(l, j->charges);
        json_decref(j->charges);
    }
    if (j->delivered > 0 && j->from_spool) {
        faas_info(NULL, "delivered %zu spooled logs, %zu left", j->delivered,
                  l->spool.count);
    }
    if (j->failed) {
        if (!l->down) {
            faas_warn(NULL, "log store failed, spooling to %s: %s",
                      l->spool_dir, j->err.msg);
        }
        l->down = 1;
        l->backoff = l->backoff ? l->backoff * 2 : l->retry_min;
        if (l->backoff > l->retry_max) {
            l->backoff = l->retry_max;
        }
    } else if (j->from_spool || !j->spool_only) {
        l->backoff = 0;
    }
    free(j);
    pump(l);
}

static void
on_retry(uv_timer_t *t)
{
    faas_logs_t *l = t->data;

    l->down = 0;
    pump(l);
}

/* Starts the next job if none runs: spool first, then the memory queue. */
static void
pump(faas_logs_t *l)
{
    job_t  *j;
    item_t *it;
    size_t  n;
    int     ret;

    if (l->busy || l->closing) {
        return;
    }
    if (l->down) {
        if (!l->closing && !uv_is_active((uv_handle_t *) &l->timer)) {
            uv_timer_start(&l->timer, on_retry, l->backoff, 0);
        }
        if (l->queue.count == 0) {
            return;
        }
    }
    if (l->queue.count == 0 && l->spool.count == 0) {
        return;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return;
    }
    j->logs = l;
    if (l->down || l->spool.count > 0) {
        if (!l->down && l->spool.count > 0) {
            /* deliver the oldest spool files first */
            j->from_spool = 1;
            for (n = 0; n < SPOOL_BATCH && (it = list_pop(&l->spool)); n++) {
                list_push(&j->items, it);
            }
        } else {
            j->spool_only = 1;
            list_concat(&j->items, &l->queue);
        }
    } else {
        list_concat(&j->items, &l->queue);
    }
    if (!j->from_spool) {
        /* give spool names (and sequence numbers) in submission order; the
         * job holds its items' charges until it is done */
        j->charges = json_object();
        for (it = j->items.head; it != NULL; it = it->next) {
            it->spool = spool_name(l->seq++, it->key);
            charge(j->charges, it->fn, (long long) it->len);
        }
    }
    l->busy = 1;
    ret = uv_queue_work(l->loop, &j->work, job_work, job_done);
    if (ret < 0) {
        faas_err(NULL, "log upload: %s", uv_strerror(ret));
        l->busy = 0;
        if (j->from_spool) {
            list_concat(&j->items, &l->spool);
            l->spool = j->items;
        } else {
            list_concat(&j->items, &l->queue);
            l->queue = j->items;
        }
        json_decref(j->charges);
        free(j);
    }
}

/*
 * The text to queue for one call's log, malloc'd: data itself, cut to
 * log_max, or a marker when fn's share of the queue (or the queue) is full.
 */
static char *
admit(faas_logs_t *l, const char *fn, const char *data, size_t len,
      size_t *out)
{
    json_t *v = json_object_get(l->pending, fn);
    size_t  used = v != NULL ? (size_t) json_integer_value(v) : 0;
    size_t  want = len > l->log_max ? l->log_max : len;
    char   *buf;
    int     n;

    if (used + want > share_of(l, fn) ||
        l->pending_bytes + want > l->pending_max) {
        l->shed++;
        l->shed_bytes += len;
        n = asprintf(&buf, "[faas: log dropped, %zu bytes: this function's "
                     "share of the agent's log queue is full]\n", len);
        if (n < 0) {
            return NULL;
        }
        *out = (size_t) n;
        return buf;
    }
    if (len > l->log_max) {
        l->truncated++;
        l->truncated_bytes += len - l->log_max;
        return cut_log(l, data, len, out);
    }
    buf = malloc(len ? len : 1);
    if (buf != NULL) {
        memcpy(buf, data, len);
        *out = len;
    }
    return buf;
}

/*
 * Queues data for key (a copy, within the limits above). Never blocks.
 */
void
faas_logs_submit(faas_logs_t *l, const char *key, const char *data, size_t len)
{
    item_t *it;
    char    fn[128];

    if (l->closing) {
        return;
    }
    function_of(key, fn, sizeof(fn));
    it = calloc(1, sizeof(*it));
    if (it == NULL || (it->key = strdup(key)) == NULL ||
        (it->fn = strdup(fn)) == NULL ||
        (it->data = admit(l, fn, data, len, &it->len)) == NULL) {
        if (it != NULL) {
            item_free(it);
        }
        faas_err(NULL, "log %s dropped: out of memory", key);
        return;
    }
    charge(l->pending, fn, (long long) it->len);
    l->pending_bytes += it->len;
    list_push(&l->queue, it);
    report_drops(l);
    pump(l);
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Queues the spool files left by an earlier run, oldest first. */
static int
spool_load(faas_logs_t *l, faas_error_t *err)
{
    cleanup_closedir DIR *d = NULL;
    struct dirent        *e;
    char                **names = NULL, **nn, path[4096];
    size_t                n = 0, cap = 0, i;
    uint64_t              seq;
    item_t               *it;
    char                 *key;
    size_t                nlen;

    d = opendir(l->spool_dir);
    if (d == NULL) {
        return faas_error_set(err, errno, "spool %s", l->spool_dir);
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        nlen = strlen(e->d_name);
        if (nlen > 4 && strcmp(e->d_name + nlen - 4, ".tmp") == 0) {
            /* a write that never finished */
            snprintf(path, sizeof(path), "%s/%s", l->spool_dir, e->d_name);
            unlink(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            nn = realloc(names, cap * sizeof(*names));
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    if (n > 0) {
        qsort(names, n, sizeof(*names), cmp_names);
    }
    for (i = 0; i < n; i++) {
        key = names[i] ? spool_key(names[i], &seq) : NULL;
        if (key == NULL) {
            faas_warn(NULL, "spool: ignoring %s", names[i] ? names[i] : "?");
            free(names[i]);
            continue;
        }
        it = calloc(1, sizeof(*it));
        if (it == NULL) {
            free(key);
            free(names[i]);
            continue;
        }
        it->key = key;
        it->spool = names[i];
        list_push(&l->spool, it);
        if (seq >= l->seq) {
            l->seq = seq + 1;
        }
    }
    free(names);
    if (l->spool.count > 0) {
        faas_info(NULL, "spool %s: %zu logs to deliver", l->spool_dir,
                  l->spool.count);
    }
    return 0;
}

static int
mkdir_p(const char *dir, faas_error_t *err)
{
    char  buf[4096];
    char *p;

    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int) sizeof(buf)) {
        return faas_error_set(err, ENAMETOOLONG, "spool_dir");
    }
    for (p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
                return faas_error_set(err, errno, "mkdir %s", buf);
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
        return faas_error_set(err, errno, "mkdir %s", buf);
    }
    return 0;
}

/* log_max_bytes and log_queue_bytes, checked. */
static int
limits_config(faas_logs_t *l, const json_t *cfg, faas_error_t *err)
{
    long long max = faas_config_int(cfg, "log_max_bytes", LOG_MAX_DEFAULT);
    long long queue = faas_config_int(cfg, "log_queue_bytes",
                                      QUEUE_MAX_DEFAULT);

    if (max < 1024 || max > FAAS_AGENT_MAX_FRAME) {
        return faas_error_set(err, 0, "config: log_max_bytes must be "
                              "1024..%u", FAAS_AGENT_MAX_FRAME);
    }
    if (queue < max || queue > (1LL << 32)) {
        return faas_error_set(err, 0, "config: log_queue_bytes must be "
                              "log_max_bytes..4 GiB");
    }
    l->log_max = (size_t) max;
    l->pending_max = (size_t) queue;
    l->pending = json_object();
    return l->pending != NULL ? 0 : faas_error_set(err, ENOMEM, "logs");
}

faas_logs_t *
faas_logs_open(uv_loop_t *loop, const json_t *cfg, const char *spool_dir,
               faas_error_t *err)
{
    const char  *url = faas_config_string(cfg, "store_url", NULL);
    faas_logs_t *l;

    if (url == NULL) {
        faas_error_set(err, 0, "store_url is not set");
        return NULL;
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        faas_error_set(err, ENOMEM, "logs");
        return NULL;
    }
    l->loop = loop;
    if (limits_config(l, cfg, err) < 0) {
        free(l);
        return NULL;
    }
    l->retry_min = (uint64_t) faas_config_int(cfg, "log_retry_min_ms", 200);
    l->retry_max = (uint64_t) faas_config_int(cfg, "log_retry_max_ms", 5000);
    if (l->retry_min == 0) {
        l->retry_min = 1;
    }
    if (l->retry_max < l->retry_min) {
        l->retry_max = l->retry_min;
    }
    l->spool_dir = strdup(spool_dir);
    l->store = faas_blob_open(url, cfg, err);
    if (l->spool_dir == NULL || l->store == NULL ||
        mkdir_p(spool_dir, err) < 0 || spool_load(l, err) < 0) {
        if (l->store != NULL) {
            faas_blob_close(l->store);
        }
        json_decref(l->pending);
        free(l->spool_dir);
        free(l);
        return NULL;
    }
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    pump(l);
    return l;
}

int
faas_logs_quiesce(faas_logs_t *l)
{
    l->closing = 1;
    uv_timer_stop(&l->timer);
    return !l->busy;
}

static void
on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/*
 * At exit, once no job runs: tries the store once for what is still in
 * memory (spooling it on failure), then frees everything. Spool files stay
 * for the next start. Blocking.
 */
void
faas_logs_close(faas_logs_t *l)
{
    job_t   j;
    item_t *it;

    memset(&j, 0, sizeof(j));
    j.logs = l;
    j.spool_only = l->down || l->spool.count > 0;
    list_concat(&j.items, &l->queue);
    for (it = j.items.head; it != NULL; it = it->next) {
        it->spool = spool_name(l->seq++, it->key);
    }
    if (j.items.count > 0) {
        job_work(&j.work);
    }
    while ((it = list_pop(&j.spooled)) != NULL) {
        item_free(it);
    }
    while ((it = list_pop(&l->spool)) != NULL) {
        item_free(it);
    }
    faas_blob_close(l->store);
    json_decref(l->pending);
    free(l->spool_dir);
    uv_close((uv_handle_t *) &l->timer, on_timer_closed); /* frees l */
}
