/*
 * One invocation, from an InvokeRequest to its InvokeResponse:
 *
 *   validate -> sandbox entry (cached cgroup handle + kept-alive runtime
 *   connection) -> reset peak memory -> runtime JSON frame -> thaw (unless
 *   still thawed from its last call) -> wait (uv timer at the deadline) ->
 *   [freeze once the whole answer is in the socket] -> answer frame -> peak
 *   memory -> freeze, or with freeze_after_idle_ms the same timer set to
 *   freeze it after that idle period -> InvokeResponse -> logs to the store
 *   (after the answer, logs.c)
 *
 * A deadline that passes or a runtime connection that breaks mid-call
 * destroys the sandbox (in the thread pool) before the answer (TIMEOUT or
 * SANDBOX_CRASHED, sandbox_alive false). One call at a time per sandbox: a
 * second request for a busy sandbox is answered SANDBOX_BUSY at once.
 *
 * The agent never creates sandboxes: any sandbox present on the host (run
 * dir + cgroups of cgroup_root) is served, so sandboxes outlive an agent.
 */
#include "agent.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "ids.h"
#include "log.h"
#include "status.h"

#define TABLE_SIZE 4096
#define RUNTIME_MAX_FRAME (8u * 1024 * 1024 + 4096)
#define RUNTIME_FRAME_LIMIT (8u * 1024 * 1024) /* the runtimes refuse more */

typedef struct sbx_s   sbx_t;
typedef struct inv_s   inv_t;
typedef struct rconn_s rconn_t;

/* The kept-alive connection to a sandbox's runtime. Allocated apart from
 * the sandbox because uv_close finishes later. */
struct rconn_s {
    uv_poll_t        poll;
    int              fd;
    sbx_t           *sbx; /* NULL once detached (closing) */
    faas_frame_buf_t fb;
    uint8_t         *wbuf; /* the part of a request not yet written */
    size_t           wlen, woff;
};

/* What the agent knows of one sandbox. */
struct sbx_s {
    char           id[FAAS_SANDBOX_ID_LEN + 1];
    faas_agent_t  *agent;
    faas_cgroup_t *cg;
    rconn_t       *rc;
    uv_timer_t     timer;  /* the call's deadline; idle: the freeze */
    inv_t         *cur;    /* the call in progress; NULL when idle */
    int            dying;  /* being destroyed: SANDBOX_GONE */
    int            frozen; /* frozen early, before its answer was read */
    int            thawed; /* thawed by the agent and not frozen since */
    char           function[64];
    unsigned       version;
    unsigned       memory_mb;
    unsigned       timeout_ms;
    sbx_t         *next; /* hash chain */
};

struct inv_s {
    faas_agent_t        *agent;
    faas_agent_conn_t   *conn;
    Faas__InvokeRequest *req;
    sbx_t               *sbx;
    uint64_t             t0; /* uv_hrtime() at the runtime write */
    uint64_t             duration_us;
    uint64_t             memory_bytes;
    Faas__InvokeStatus   status;
    uint32_t             http_status;
    char                *error; /* malloc'd, may be NULL */
    char                 log_key[256];
    char                *logs; /* malloc'd log text, may be NULL */
    size_t               logs_len;
};

typedef struct destroy_work_s {
    uv_work_t    work;
    sbx_t       *sbx;
    inv_t       *inv; /* answered once the sandbox is gone; may be NULL */
    faas_error_t err;
    int          ret;
} destroy_work_t;

typedef struct table_s {
    sbx_t   *buckets[TABLE_SIZE];
    size_t   count;
    unsigned destroying; /* destroy jobs in the thread pool */
} table_t;

static void sbx_drop(sbx_t *s);
static void rconn_close(sbx_t *s);

/* ---- the sandbox table ------------------------------------------------ */

static unsigned
hash_id(const char *id)
{
    unsigned h = 5381;

    while (*id) {
        h = h * 33 + (unsigned char) *id++;
    }
    return h % TABLE_SIZE;
}

static sbx_t *
table_get(table_t *t, const char *id)
{
    sbx_t *s;

    for (s = t->buckets[hash_id(id)]; s != NULL; s = s->next) {
        if (strcmp(s->id, id) == 0) {
            return s;
        }
    }
    return NULL;
}

static void
table_put(table_t *t, sbx_t *s)
{
    unsigned h = hash_id(s->id);

    s->next = t->buckets[h];
    t->buckets[h] = s;
    t->count++;
}

static void
table_del(table_t *t, sbx_t *s)
{
    sbx_t **pp;

    for (pp = &t->buckets[hash_id(s->id)]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            t->count--;
            return;
        }
    }
}

/*
 * Sets up the sandbox table. Returns 0 or <0 with err.
 */
int
faas_invoke_init(faas_agent_t *a, faas_error_t *err)
{
    a->guard_fd = -1;
    a->sandboxes = calloc(1, sizeof(table_t));
    if (a->sandboxes == NULL) {
        return faas_error_set(err, ENOMEM, "sandbox table");
    }
    /* sandboxes kept thawed must not outlive a killed agent thawed */
    if (a->freeze_after_idle_ms > 0) {
        return faas_guard_start(a, err);
    }
    return 0;
}

int
faas_invoke_idle(faas_agent_t *a)
{
    table_t *t = a->sandboxes;

    return a->inflight == 0 && (t == NULL || t->destroying == 0);
}

/* ---- answering -------------------------------------------------------- */

static void
inv_free(inv_t *inv)
{
    faas__invoke_request__free_unpacked(inv->req, NULL);
    free(inv->error);
    free(inv->logs);
    free(inv);
}

/* Answers a request that never ran (no invocation state). */
static void answer_now(faas_agent_conn_t *c, Faas__InvokeRequest *req,
                       Faas__InvokeStatus status, int alive,
                       const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* http_status stays 0: nothing ran, the gateway picks the HTTP code. */
static void
answer_now(faas_agent_conn_t *c, Faas__InvokeRequest *req,
           Faas__InvokeStatus status, int alive, const char *fmt, ...)
{
    Faas__InvokeResponse resp = FAAS__INVOKE_RESPONSE__INIT;
    char                 why[512];
    va_list              ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    resp.request_id = req->request_id;
    resp.status = status;
    resp.sandbox_alive = alive;
    resp.error = why;
    faas_info(req->request_id[0] ? req->request_id : NULL, "%s %s: %s",
              req->sandbox_id[0] ? req->sandbox_id : "-",
              faas_status_name(status),
              why);
    faas_agent_respond(c, &resp);
    faas__invoke_request__free_unpacked(req, NULL);
}

static void set_error(inv_t *inv, Faas__InvokeStatus status,
                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Any failure, the function's own included: http_status becomes 0, only a
 * response the function returned carries one (the gateway maps the rest).
 */
static void
set_error(inv_t *inv, Faas__InvokeStatus status, const char *fmt, ...)
{
    va_list ap;
    char    why[512];

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    inv->status = status;
    inv->http_status = 0;
    free(inv->error);
    inv->error = strdup(why);
}

/*
 * Sends the answer held in inv (body/headers given by the caller for OK and
 * FUNCTION_ERROR), then hands the logs to the uploader and frees inv.
 */
static void
inv_finish(inv_t *inv, Faas__InvokeResponse *resp)
{
    faas_agent_t *a = inv->agent;
    const char   *rid = inv->req->request_id;
    const char   *name;

    resp->request_id = inv->req->request_id;
    resp->status = inv->status;
    resp->http_status = inv->http_status;
    resp->duration_us = inv->duration_us;
    resp->memory_bytes = inv->memory_bytes;
    resp->sandbox_alive = inv->sbx != NULL && !inv->sbx->dying;
    resp->error = inv->error;
    resp->log_key = "";
    if (a->logs != NULL && inv->logs != NULL && inv->logs_len > 0) {
        name = inv->req->function[0] ? inv->req->function
                                     : (inv->sbx ? inv->sbx->function : "");
        if (name[0] == '\0') {
            name = "unknown";
        }
        if (faas_logs_key(inv->log_key, sizeof(inv->log_key), name, rid) == 0) {
            resp->log_key = inv->log_key;
        }
    }
    faas_agent_respond(inv->conn, resp);
    faas_agent_metrics_invoked(inv->status, inv->duration_us);

    if (inv->status == FAAS__INVOKE_STATUS__OK ||
        inv->status == FAAS__INVOKE_STATUS__FUNCTION_ERROR) {
        faas_debug(rid, "%s %s http %u in %llu us", inv->req->sandbox_id,
                   faas_status_name(inv->status),
                   inv->http_status, (unsigned long long) inv->duration_us);
    } else {
        faas_warn(rid, "%s %s: %s", inv->req->sandbox_id,
                  faas_status_name(inv->status),
                  inv->error ? inv->error : "");
    }
    if (resp->log_key[0] != '\0') {
        faas_logs_submit(a->logs, inv->log_key, inv->logs, inv->logs_len);
    }
    faas_agent_conn_unref(inv->conn);
    a->inflight--;
    inv_free(inv);
}

/* Answers an invocation that produced no HTTP answer (errors). */
static void
inv_finish_plain(inv_t *inv)
{
    Faas__InvokeResponse resp = FAAS__INVOKE_RESPONSE__INIT;

    inv_finish(inv, &resp);
}

/* ---- sandbox destroy (thread pool) ------------------------------------ */

static void
destroy_work(uv_work_t *w)
{
    destroy_work_t *d = (destroy_work_t *) w;

    faas_error_clear(&d->err);
    d->ret = faas_sandbox_destroy(&d->sbx->agent->host, d->sbx->id, &d->err);
}

static void
destroy_done(uv_work_t *w, int status)
{
    destroy_work_t *d = (destroy_work_t *) w;
    sbx_t          *s = d->sbx;
    table_t        *t = s->agent->sandboxes;

    (void) status;
    t->destroying--;
    if (d->ret < 0) {
        faas_err(d->inv ? d->inv->req->request_id : NULL, "destroy %s: %s",
                 s->id, d->err.msg);
    } else {
        faas_info(d->inv ? d->inv->req->request_id : NULL,
                  "sandbox %s destroyed", s->id);
    }
    if (d->inv != NULL) {
        inv_finish_plain(d->inv);
    }
    sbx_drop(s);
    free(d);
}

/* Kills the sandbox of the current call; the call is answered (TIMEOUT or
 * SANDBOX_CRASHED as already set in inv) once it is gone. */
static void
sbx_destroy(sbx_t *s, inv_t *inv)
{
    destroy_work_t *d;
    table_t        *t = s->agent->sandboxes;
    int             ret;

    s->dying = 1;
    s->cur = NULL;
    uv_timer_stop(&s->timer);
    rconn_close(s);
    if (s->cg != NULL) {
        faas_cgroup_close(s->cg);
        s->cg = NULL;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        faas_err(inv ? inv->req->request_id : NULL, "destroy %s: out of memory",
                 s->id);
        if (inv != NULL) {
            inv_finish_plain(inv);
        }
        sbx_drop(s);
        return;
    }
    d->sbx = s;
    d->inv = inv;
    t->destroying++;
    ret = uv_queue_work(s->agent->loop, &d->work, destroy_work, destroy_done);
    if (ret < 0) {
        t->destroying--;
        faas_err(NULL, "destroy %s: %s", s->id, uv_strerror(ret));
        if (inv != NULL) {
            inv_finish_plain(inv);
        }
        sbx_drop(s);
        free(d);
    }
}

/* ---- sandbox entries -------------------------------------------------- */

/* Freezes s (one write; a v1 freezer settles to FROZEN by itself). A
 * cgroup already removed (ENOENT, ENODEV) is a sandbox destroyed meanwhile:
 * nothing left to freeze. */
static void
sbx_freeze(sbx_t *s, const char *rid)
{
    faas_error_t err;

    if (faas_cgroup_freeze(s->cg, &err) < 0) {
        if (err.code == ENOENT || err.code == ENODEV) {
            faas_info(rid, "freeze %s: %s", s->id, err.msg);
        } else {
            faas_err(rid, "freeze %s: %s", s->id, err.msg);
        }
    }
    s->thawed = 0;
}

/* The sandbox stayed idle for freeze_after_idle_ms after its call. */
static void
on_idle_freeze(uv_timer_t *t)
{
    sbx_t *s = t->data;

    if (s->cur == NULL && s->thawed && !s->dying && s->cg != NULL) {
        sbx_freeze(s, NULL);
    }
}

static void
on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Forgets a sandbox (idle, or destroyed): closes handles, frees later. */
static void
sbx_drop(sbx_t *s)
{
    table_t *t = s->agent->sandboxes;

    table_del(t, s);
    rconn_close(s);
    if (s->thawed && !s->dying && s->cg != NULL) {
        sbx_freeze(s, NULL);
    }
    if (s->cg != NULL) {
        faas_cgroup_close(s->cg);
        s->cg = NULL;
    }
    uv_close((uv_handle_t *) &s->timer, on_timer_closed);
}

/*
 * Opens a sandbox that exists on the host: its cgroup handle and what its
 * meta.json says (defaults for the context). NULL if it is not there.
 */
static sbx_t *
sbx_open(faas_agent_t *a, const char *id, faas_error_t *err)
{
    cleanup_json json_t *meta = NULL;
    sbx_t               *s;
    const char          *fn;

    if (faas_sandbox_meta(&a->host, id, &meta, err) < 0) {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        faas_error_set(err, ENOMEM, "sandbox entry");
        return NULL;
    }
    if (faas_cgroup_open(&a->host, id, &s->cg, err) < 0) {
        free(s);
        return NULL;
    }
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->agent = a;
    fn = json_string_value(json_object_get(meta, "function"));
    snprintf(s->function, sizeof(s->function), "%s",
             fn != NULL && faas_name_valid(fn, strlen(fn)) ? fn : "");
    s->version =
        (unsigned) json_integer_value(json_object_get(meta, "version"));
    s->memory_mb =
        (unsigned) json_integer_value(json_object_get(meta, "memory_mb"));
    s->timeout_ms =
        (unsigned) json_integer_value(json_object_get(meta, "timeout_ms"));
    uv_timer_init(a->loop, &s->timer);
    s->timer.data = s;
    table_put(a->sandboxes, s);
    faas_guard_add(a, s->id);
    return s;
}

/* ---- the runtime connection ------------------------------------------- */

static void
on_rconn_closed(uv_handle_t *h)
{
    rconn_t *rc = h->data;

    close(rc->fd);
    free(rc->wbuf);
    faas_frame_buf_free(&rc->fb);
    free(rc);
}

static void
rconn_close(sbx_t *s)
{
    rconn_t *rc = s->rc;

    if (rc == NULL) {
        return;
    }
    s->rc = NULL;
    rc->sbx = NULL;
    uv_poll_stop(&rc->poll);
    uv_close((uv_handle_t *) &rc->poll, on_rconn_closed);
}

static void runtime_answer(sbx_t *s, const uint8_t *frame, size_t len);
static void runtime_broken(sbx_t *s, const char *why);

/*
 * Reads what the runtime sent (n < 0: -errno, 0: EOF) and dispatches a
 * complete answer frame.
 */
static void
rconn_input(rconn_t *rc, const char *data, ssize_t n)
{
    sbx_t         *s = rc->sbx;
    faas_error_t   err;
    const uint8_t *frame;
    size_t         len;
    int            ret;
    char           why[FAAS_ERROR_MAX + 64];

    if (s == NULL) {
        return;
    }
    if (n <= 0) {
        snprintf(why, sizeof(why), "runtime connection %s",
                 n == 0 ? "closed" : strerror((int) -n));
        runtime_broken(s, why);
        return;
    }
    if (faas_frame_buf_append(&rc->fb, data, (size_t) n, &err) < 0) {
        runtime_broken(s, err.msg);
        return;
    }
    ret = faas_frame_buf_next(&rc->fb, &frame, &len, &err);
    if (ret < 0) {
        snprintf(why, sizeof(why), "runtime: %s", err.msg);
        runtime_broken(s, why);
        return;
    }
    if (ret == 0) {
        return;
    }
    if (s->cur == NULL) {
        runtime_broken(s, "runtime sent a frame while idle");
        return;
    }
    runtime_answer(s, frame, len);
    /* A well-behaved runtime sends one answer per request. */
    if (s->rc == rc && rc->fb.len > rc->fb.consumed) {
        runtime_broken(s, "runtime sent more than one answer");
    }
}

/*
 * One read from the runtime socket. Returns 1 if something was handled
 * (data, EOF, error), 0 if nothing was there (EAGAIN).
 *
 * When a whole answer frame already waits in the socket, the sandbox is
 * frozen BEFORE it is read: reading frees the runtime's send buffer, which
 * wakes every task sleeping on that socket, the runtime's own blocking
 * recv() included (a useless cross-vCPU wake-up per call); a frozen task
 * is not woken. The runtime has written its whole answer by then.
 */
static int
rconn_read(rconn_t *rc)
{
    static char buf[64 * 1024];
    sbx_t      *s = rc->sbx;
    ssize_t     n;

    if (s != NULL && s->agent->freeze_after_idle_ms == 0 && s->cur != NULL &&
        !s->frozen && s->cg != NULL && rc->fb.len == rc->fb.consumed) {
        n = recv(rc->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_PEEK);
        if (n >= FAAS_FRAME_HDR &&
            (size_t) n >=
                FAAS_FRAME_HDR + faas_frame_get_len((uint8_t *) buf)) {
            sbx_freeze(s, NULL);
            s->frozen = 1;
        }
    }
    n = recv(rc->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return 0;
        }
        n = -errno;
    }
    rconn_input(rc, buf, n);
    return 1;
}

/* Writes what is left of the request: 0 (all written, or the rest waits in
 * rc->wbuf for writability) or -errno. */
static int
rconn_flush(rconn_t *rc)
{
    ssize_t n;

    while (rc->woff < rc->wlen) {
        n = send(rc->fd, rc->wbuf + rc->woff, rc->wlen - rc->woff,
                 MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0; /* the rest when writable */
            }
            return -errno;
        }
        rc->woff += (size_t) n;
    }
    free(rc->wbuf);
    rc->wbuf = NULL;
    rc->wlen = rc->woff = 0;
    return 0;
}

static void
on_rconn_poll(uv_poll_t *h, int status, int events)
{
    rconn_t *rc = h->data;
    sbx_t   *s = rc->sbx;
    int      ret;

    if (s == NULL) {
        return;
    }
    if (status < 0) {
        runtime_broken(s, uv_strerror(status));
        return;
    }
    if ((events & UV_WRITABLE) && rc->wbuf != NULL) {
        ret = rconn_flush(rc);
        if (ret < 0) {
            runtime_broken(s, "runtime write failed");
            return;
        }
        if (rc->wbuf == NULL) {
            uv_poll_start(&rc->poll, UV_READABLE | UV_DISCONNECT,
                          on_rconn_poll);
        }
    }
    if (rc->sbx != NULL && (events & (UV_READABLE | UV_DISCONNECT))) {
        rconn_read(rc);
    }
}

/* Sends a request frame (takes buf); the rest goes out when writable. */
static int
rconn_send(rconn_t *rc, uint8_t *buf, size_t len)
{
    int ret;

    free(rc->wbuf);
    rc->wbuf = buf;
    rc->wlen = len;
    rc->woff = 0;
    ret = rconn_flush(rc);
    if (ret == 0 && rc->wbuf != NULL) {
        ret =
            uv_poll_start(&rc->poll, UV_READABLE | UV_WRITABLE | UV_DISCONNECT,
                          on_rconn_poll);
    }
    return ret;
}

/*
 * Connects to the runtime socket (non-blocking connect on a Unix socket
 * completes at once or fails). Returns 0, -ENOENT/-ECONNREFUSED when the
 * runtime is not there, other <0 errors.
 */
static int
rconn_open(sbx_t *s, faas_error_t *err)
{
    faas_agent_t      *a = s->agent;
    cleanup_close int  fd = -1;
    rconn_t           *rc;
    int                ret;

    /* Never a plain connect(): the sandbox owns its socket file and could
     * swap it for a symlink to a host socket. */
    fd = faas_sandbox_connect(&a->host, s->id, SOCK_NONBLOCK, err);
    if (fd < 0) {
        return fd;
    }
    rc = calloc(1, sizeof(*rc));
    if (rc == NULL) {
        return faas_error_set(err, ENOMEM, "runtime connection");
    }
    faas_frame_buf_init(&rc->fb, RUNTIME_MAX_FRAME);
    ret = uv_poll_init(a->loop, &rc->poll, fd);
    if (ret < 0) {
        faas_frame_buf_free(&rc->fb);
        free(rc);
        return faas_error_set(err, -ret, "uv_poll_init");
    }
    rc->poll.data = rc;
    rc->fd = steal_fd(&fd); /* closed with the poll handle */
    ret = uv_poll_start(&rc->poll, UV_READABLE | UV_DISCONNECT, on_rconn_poll);
    if (ret < 0) {
        uv_close((uv_handle_t *) &rc->poll, on_rconn_closed);
        return faas_error_set(err, -ret, "poll runtime socket");
    }
    rc->sbx = s;
    s->rc = rc;
    return 0;
}

/* ---- the call --------------------------------------------------------- */

/* Appends the runtime request frame for inv to a malloc'd buffer. */
static uint8_t *
build_runtime_frame(inv_t *inv, uint64_t deadline, size_t *out_len)
{
    Faas__InvokeRequest *r = inv->req;
    sbx_t               *s = inv->sbx;
    const char          *fn = r->function[0] ? r->function : s->function;
    unsigned             ver = r->version ? r->version : s->version;
    unsigned             mem = r->memory_mb ? r->memory_mb : s->memory_mb;
    const char          *event = "{}";
    size_t               elen = 2;
    char                 head[1024], tail[1024], date[16];
    int                  hn, tn;
    uint8_t             *buf;
    time_t               t = time(NULL);
    struct tm            tm;
    const char          *tp;
    int                  trace;

    tp = r->traceparent ? r->traceparent : "";
    trace = faas_traceparent_valid(tp, strlen(tp));
    if (r->event.len > 0) {
        event = (const char *) r->event.data;
        elen = r->event.len;
    }
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y/%m/%d", &tm);
    hn = snprintf(head, sizeof(head),
                  "{\"id\":\"%s\",\"event\":", r->request_id);
    tn = snprintf(tail, sizeof(tail),
                  ",\"deadline_ms\":%llu,\"context\":{"
                  "\"function_name\":\"%s\",\"function_version\":\"%u\","
                  "\"memory_limit_in_mb\":%u,\"aws_request_id\":\"%s\","
                  "\"invoked_function_arn\":"
                  "\"arn:aws:lambda:local:000000000000:function:%s:%u\","
                  "\"log_group_name\":\"/aws/lambda/%s\","
                  "\"log_stream_name\":\"%s/[%u]%s\"%s%.*s%s%s%s}%s}",
                  (unsigned long long) deadline, fn, ver, mem, r->request_id,
                  fn, ver, fn, date, ver, s->id,
                  /* the trace context, when the gateway sent a valid one */
                  trace ? ",\"trace_id\":\"" : "",
                  trace ? FAAS_TRACE_ID_LEN : 0, trace ? tp + 3 : "",
                  trace ? "\",\"traceparent\":\"" : "",
                  trace ? tp : "", trace ? "\"" : "",
                  /* how the runtime should wait for its next call */
                  s->agent->freeze_after_idle_ms ? ",\"kept_thawed\":true"
                                                 : "");
    if (hn < 0 || tn < 0 || (size_t) hn >= sizeof(head) ||
        (size_t) tn >= sizeof(tail)) {
        return NULL;
    }
    *out_len = FAAS_FRAME_HDR + hn + elen + tn;
    buf = malloc(*out_len);
    if (buf == NULL) {
        return NULL;
    }
    faas_frame_put_len(buf, (uint32_t) (*out_len - FAAS_FRAME_HDR));
    memcpy(buf + FAAS_FRAME_HDR, head, hn);
    memcpy(buf + FAAS_FRAME_HDR + hn, event, elen);
    memcpy(buf + FAAS_FRAME_HDR + hn + elen, tail, tn);
    return buf;
}

static void
on_deadline(uv_timer_t *t)
{
    sbx_t *s = t->data;
    inv_t *inv = s->cur;

    if (inv == NULL) {
        return;
    }
    inv->duration_us = (uv_hrtime() - inv->t0) / 1000;
    set_error(inv, FAAS__INVOKE_STATUS__TIMEOUT,
              "timed out after %llu ms: sandbox destroyed",
              (unsigned long long) inv->duration_us / 1000);
    inv->logs_len = (size_t) asprintf(
        &inv->logs,
        "[faas: invocation timed out after %llu ms; sandbox %s destroyed]\n",
        (unsigned long long) inv->duration_us / 1000, s->id);
    if ((ssize_t) inv->logs_len < 0) {
        inv->logs = NULL;
        inv->logs_len = 0;
    }
    sbx_destroy(s, inv);
}

/* The runtime connection broke: mid-call it is a crash, idle a goodbye. */
static void
runtime_broken(sbx_t *s, const char *why)
{
    inv_t *inv = s->cur;
    int    oom;

    if (inv == NULL) {
        faas_info(NULL, "sandbox %s: %s while idle", s->id, why);
        if (!s->dying) {
            sbx_drop(s);
        }
        return;
    }
    inv->duration_us = (uv_hrtime() - inv->t0) / 1000;
    oom = s->cg != NULL && faas_cgroup_oom_killed(s->cg) == 1;
    if (s->cg != NULL) {
        faas_cgroup_memory_peak(s->cg, &inv->memory_bytes, NULL);
    }
    set_error(inv, FAAS__INVOKE_STATUS__SANDBOX_CRASHED,
              "sandbox crashed%s: %s", oom ? " (out of memory)" : "", why);
    inv->logs_len =
        (size_t) asprintf(&inv->logs, "[faas: sandbox %s crashed%s: %s]\n",
                          s->id, oom ? " (out of memory)" : "", why);
    if ((ssize_t) inv->logs_len < 0) {
        inv->logs = NULL;
        inv->logs_len = 0;
    }
    sbx_destroy(s, inv);
}

/* The runtime's answer arrived: map it, freeze, reply. */
static void
runtime_answer(sbx_t *s, const uint8_t *frame, size_t len)
{
    inv_t                *inv = s->cur;
    faas_error_t          err;
    faas_runtime_answer_t ans;
    const char           *why;

    uv_timer_stop(&s->timer);
    inv->duration_us = (uv_hrtime() - inv->t0) / 1000;
    if (faas_runtime_answer_parse(&ans, frame, len, inv->req->request_id,
                                  &why) < 0) {
        faas_runtime_answer_free(&ans);
        runtime_broken(s, why);
        return;
    }
    if (faas_cgroup_memory_peak(s->cg, &inv->memory_bytes, &err) < 0) {
        faas_debug(inv->req->request_id, "memory peak: %s", err.msg);
    }
    s->cur = NULL;
    if (s->frozen) {
        /* frozen before the answer was read (rconn_read) */
    } else if (s->agent->freeze_after_idle_ms == 0) {
        sbx_freeze(s, inv->req->request_id);
    } else {
        /* kept thawed: the next call needs no thaw (docs/DESIGN.md
         * section 6) */
        uv_timer_start(&s->timer, on_idle_freeze,
                       s->agent->freeze_after_idle_ms, 0);
    }

    if (ans.logs != NULL) {
        inv->logs_len = ans.logs_len;
        inv->logs = malloc(inv->logs_len + 1);
        if (inv->logs != NULL) {
            memcpy(inv->logs, ans.logs, inv->logs_len + 1);
        }
    }
    inv->status = ans.status;
    inv->http_status = ans.http_status;
    if (ans.error[0] != '\0') {
        set_error(inv, ans.status, "%s", ans.error);
    }
    inv_finish(inv, &ans.resp);
    faas_runtime_answer_free(&ans);
}

/*
 * With no other call in flight, polls the runtime socket for up to spin_us
 * before going back to the loop: the answer of a short handler is then
 * picked up without the agent being woken (a cross-vCPU wake-up costs tens
 * of microseconds in a VM). Yields the CPU between polls, so a runtime on
 * the same vCPU still runs. Off when spin_us is 0.
 */
static void
spin_for_answer(sbx_t *s)
{
    faas_agent_t *a = s->agent;
    uint64_t      end;

    if (a->spin_us == 0 || a->inflight != 1 || s->rc == NULL) {
        return;
    }
    end = uv_hrtime() + (uint64_t) a->spin_us * 1000;
    do {
        if (rconn_read(s->rc) && (s->cur == NULL || s->rc == NULL)) {
            return;
        }
        sched_yield();
    } while (s->cur != NULL && s->rc != NULL && uv_hrtime() < end);
}

/*
 * Starts the call for req on connection c; takes ownership of req. The
 * answer goes to c now (nothing to run) or when the call ends.
 */
void
faas_invoke_start(faas_agent_t *a, faas_agent_conn_t *c,
                  Faas__InvokeRequest *req)
{
    faas_error_t       err;
    char               why[256];
    Faas__InvokeStatus status;
    sbx_t             *s;
    inv_t             *inv;
    uint64_t           now, deadline;
    unsigned           timeout;
    uint8_t           *buf;
    size_t             blen;
    int                ret, spin;

    status = faas_invoke_ids_check(req, why, sizeof(why));
    if (status != FAAS__INVOKE_STATUS__OK) {
        answer_now(c, req, status,
                   status != FAAS__INVOKE_STATUS__SANDBOX_GONE, "%s", why);
        return;
    }
    if (a->stopping) {
        answer_now(c, req, FAAS__INVOKE_STATUS__AGENT_DRAINING, 1,
                   "agent is shutting down");
        return;
    }
    if (a->inflight >= a->max_inflight) {
        answer_now(c, req, FAAS__INVOKE_STATUS__OVERLOADED, 1,
                   "agent saturated: %zu calls in flight", a->inflight);
        return;
    }
    status = faas_invoke_event_check(req, why, sizeof(why));
    if (status != FAAS__INVOKE_STATUS__OK) {
        answer_now(c, req, status, 1, "%s", why);
        return;
    }

    s = table_get(a->sandboxes, req->sandbox_id);
    if (s == NULL) {
        s = sbx_open(a, req->sandbox_id, &err);
        if (s == NULL) {
            answer_now(c, req, FAAS__INVOKE_STATUS__SANDBOX_GONE, 0,
                       "no such sandbox: %s", err.msg);
            return;
        }
    }
    if (s->dying) {
        answer_now(c, req, FAAS__INVOKE_STATUS__SANDBOX_GONE, 0,
                   "no such sandbox: %s is being destroyed", s->id);
        return;
    }
    if (s->cur != NULL) {
        /* sandbox_alive false: whoever holds it gives it back */
        answer_now(c, req, FAAS__INVOKE_STATUS__SANDBOX_BUSY, 0,
                   "sandbox %s is busy with another call", s->id);
        return;
    }
    if (req->function[0] != '\0' && s->function[0] != '\0' &&
        strcmp(req->function, s->function) != 0) {
        answer_now(c, req, FAAS__INVOKE_STATUS__SANDBOX_GONE, 0,
                   "no such sandbox: %s runs function %s, not %s", s->id,
                   s->function, req->function);
        return;
    }

    now = faas_now_ms();
    timeout = req->timeout_ms ? req->timeout_ms
                              : (s->timeout_ms ? s->timeout_ms : 3000);
    deadline = req->deadline_ms ? req->deadline_ms : now + timeout;
    if (deadline <= now) {
        answer_now(c, req, FAAS__INVOKE_STATUS__TIMEOUT, 1,
                   "deadline passed before the call started (not run)");
        return;
    }

    if (s->rc == NULL && (ret = rconn_open(s, &err)) < 0) {
        sbx_drop(s);
        if (ret == -EAGAIN) {
            answer_now(c, req, FAAS__INVOKE_STATUS__OVERLOADED, 1,
                       "runtime of %s is not accepting: %s", req->sandbox_id,
                       err.msg);
        } else {
            answer_now(c, req, FAAS__INVOKE_STATUS__SANDBOX_GONE, 0,
                       "no such sandbox: runtime not reachable: %s", err.msg);
        }
        return;
    }

    inv = calloc(1, sizeof(*inv));
    if (inv == NULL) {
        answer_now(c, req, FAAS__INVOKE_STATUS__OVERLOADED, 1,
                   "out of memory");
        return;
    }
    inv->agent = a;
    inv->conn = c;
    inv->req = req;
    inv->sbx = s;
    buf = build_runtime_frame(inv, deadline, &blen);
    if (buf == NULL || blen - FAAS_FRAME_HDR > RUNTIME_FRAME_LIMIT) {
        free(buf);
        inv->req = NULL;
        free(inv);
        answer_now(c, req, FAAS__INVOKE_STATUS__BAD_REQUEST, 1,
                   "bad request: event too large for the runtime (its "
                   "frames are limited to %u bytes)",
                   RUNTIME_FRAME_LIMIT);
        return;
    }
    if (faas_cgroup_memory_peak_reset(s->cg, &err) < 0) {
        faas_debug(req->request_id, "memory peak reset: %s", err.msg);
    }
    faas_agent_conn_ref(c);
    a->inflight++;
    s->cur = inv;
    inv->t0 = uv_hrtime();

    /* The request goes out before the thaw: a runtime frozen in its recv()
     * then wakes once, on the thaw, with the request already there, instead
     * of once for the thaw and once more for the data. */
    s->frozen = 0;
    if (rconn_send(s->rc, buf, blen) < 0) {
        runtime_broken(s, "runtime write failed");
        return;
    }
    if (!s->thawed && faas_cgroup_thaw(s->cg, &err) < 0) {
        /* the cgroup went away: nothing ran */
        set_error(inv, FAAS__INVOKE_STATUS__SANDBOX_GONE,
                  "no such sandbox: thaw: %s", err.msg);
        s->cur = NULL;
        s->dying = 1;
        inv_finish_plain(inv);
        sbx_drop(s);
        return;
    }
    s->thawed = 1;
    spin = s->rc->wbuf == NULL;
    uv_timer_start(&s->timer, on_deadline, deadline - now, 0);
    if (spin) {
        spin_for_answer(s);
    }
}

/* Closes every idle sandbox entry (runtime connections, cgroup handles). */
void
faas_invoke_shutdown(faas_agent_t *a)
{
    table_t *t = a->sandboxes;
    sbx_t   *s, *next;
    size_t   i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < TABLE_SIZE; i++) {
        for (s = t->buckets[i]; s != NULL; s = next) {
            next = s->next;
            if (s->cur == NULL && !s->dying) {
                sbx_drop(s); /* frozen if it was kept thawed */
            }
        }
    }
    faas_guard_bye(a);
}
