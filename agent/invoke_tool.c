/*
 * faas-invoke: sends InvokeRequests to a faas-agent and prints each
 * InvokeResponse as one JSON line; with -n/-c it is the agent's benchmark
 * client (closed loop over kept-alive connections) and ends with a summary
 * line: invocations/s and p50/p99 latency.
 *
 *   faas-invoke -a unix:/path|tcp:host:port|/path [-t TOKEN]
 *               -s ID[,ID...] [-f FUNCTION] [-V VERSION] [-e EVENT | -E FILE]
 *               [-r REQUEST-ID] [-T TIMEOUT-MS] [-n N] [-c C] [-k CONNS] [-q]
 *
 * Sandboxes are used like a gateway uses its idle list: a request takes a
 * free sandbox of the -s list (waiting if all are busy) and gives it back
 * with the answer, unless the answer says the sandbox is gone.
 * Exit 0 once every answer arrived, 1 on usage or connection errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base64.h"
#include "clock.h"
#include "faas.pb-c.h"
#include "frame.h"
#include "status.h"

typedef struct tconn_s tconn_t;

typedef struct slot_s {
    tconn_t       *conn;
    int            busy;    /* a request in flight */
    int            waiting; /* waiting for a free sandbox */
    char           rid[65];
    int            sbx; /* index into the sandbox list */
    uint64_t       t0;
    struct slot_s *next_wait;
} slot_t;

struct tconn_s {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_pipe_t   pipe;
        uv_tcp_t    tcp;
    } u;
    uv_connect_t     creq;
    faas_frame_buf_t fb;
    int              connected;
    int              idx;
};

static struct {
    uv_loop_t  *loop;
    const char *endpoint;
    const char *token;
    char      **sbx;
    int        *sbx_busy;
    int        *sbx_dead;
    int         nsbx;
    int        *free_list;
    int         nfree;
    const char *function;
    unsigned    version;
    char       *event;
    size_t      event_len;
    const char *rid;
    unsigned    timeout_ms;
    long        n, c, k;
    int         quiet;
    long        sent, done;
    tconn_t    *conns;
    slot_t     *slots;
    slot_t     *wait_head, *wait_tail;
    uint64_t   *lat;
    uint64_t    t_start;
    long        status_count[16];
    int         failed;
    char        rid_prefix[17];
} T;

static void issue(slot_t *s);

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "faas-invoke: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void
usage(void)
{
    fprintf(
        stderr,
        "usage: faas-invoke -a unix:/path|tcp:host:port [-t TOKEN]\n"
        "         -s ID[,ID...] [-f FUNCTION] [-V VERSION]\n"
        "         [-e EVENT-JSON | -E FILE] [-r REQUEST-ID] [-T TIMEOUT-MS]\n"
        "         [-n N] [-c CONCURRENCY] [-k CONNECTIONS] [-q]\n");
    exit(1);
}

static void
print_response(const Faas__InvokeResponse *r)
{
    json_t *o = json_object(), *h = json_object(), *body;
    char   *line, *enc;
    size_t  i;

    json_object_set_new(o, "request_id", json_string(r->request_id));
    json_object_set_new(o, "status",
                        json_string(faas_status_name(r->status)));
    if (r->http_status != 0) {   /* the function's own, when it answered */
        json_object_set_new(o, "http_status", json_integer(r->http_status));
    }
    for (i = 0; i < r->n_headers; i++) {
        json_object_set_new(h, r->headers[i]->name,
                            json_string(r->headers[i]->value));
    }
    json_object_set_new(o, "headers", h);
    body = json_stringn((const char *) r->body.data, r->body.len);
    if (body != NULL) {
        json_object_set_new(o, "body", body);
    } else {
        enc = faas_base64_encode(r->body.data, r->body.len, NULL);
        json_object_set_new(o, "body_base64", json_string(enc));
        free(enc);
    }
    json_object_set_new(o, "duration_us", json_integer(r->duration_us));
    json_object_set_new(o, "memory_bytes", json_integer(r->memory_bytes));
    json_object_set_new(o, "log_key", json_string(r->log_key));
    json_object_set_new(o, "sandbox_alive", json_boolean(r->sandbox_alive));
    json_object_set_new(o, "error", json_string(r->error));
    line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", line);
    free(line);
    json_decref(o);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}

static void
finish(void)
{
    double  secs = (double) (uv_hrtime() - T.t_start) / 1e9;
    json_t *o, *st;
    char   *line;
    long    i;

    if (T.n > 1 || T.c > 1) {
        qsort(T.lat, (size_t) T.done, sizeof(uint64_t), cmp_u64);
        o = json_object();
        st = json_object();
        json_object_set_new(o, "invocations", json_integer(T.done));
        json_object_set_new(o, "concurrency", json_integer(T.c));
        json_object_set_new(o, "connections", json_integer(T.k));
        json_object_set_new(o, "sandboxes", json_integer(T.nsbx));
        json_object_set_new(o, "seconds", json_real(secs));
        json_object_set_new(o, "per_second",
                            json_real(secs > 0 ? T.done / secs : 0));
        json_object_set_new(
            o, "p50_us", json_integer(T.lat[(T.done - 1) * 50 / 100] / 1000));
        json_object_set_new(
            o, "p99_us", json_integer(T.lat[(T.done - 1) * 99 / 100] / 1000));
        json_object_set_new(o, "max_us",
                            json_integer(T.lat[T.done - 1] / 1000));
        for (i = 0; i < 16; i++) {
            if (T.status_count[i] > 0) {
                json_object_set_new(st, faas_status_name(i),
                                    json_integer(T.status_count[i]));
            }
        }
        json_object_set_new(o, "statuses", st);
        line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS |
                                 JSON_REAL_PRECISION(6));
        printf("%s\n", line);
        fprintf(
            stderr,
            "%ld invocations in %.3f s: %.0f/s, p50 %llu us, "
            "p99 %llu us (concurrency %ld, %ld connections, %d sandboxes)\n",
            T.done, secs, secs > 0 ? T.done / secs : 0,
            (unsigned long long) T.lat[(T.done - 1) * 50 / 100] / 1000,
            (unsigned long long) T.lat[(T.done - 1) * 99 / 100] / 1000, T.c,
            T.k, T.nsbx);
        free(line);
        json_decref(o);
    }
    fflush(stdout);
    exit(T.failed ? 1 : 0);
}

static void
on_write(uv_write_t *req, int status)
{
    if (status < 0) {
        die("write: %s", uv_strerror(status));
    }
    free(req->data);
    free(req);
}

static void
send_frame(tconn_t *c, const ProtobufCMessage *msg)
{
    size_t      size = protobuf_c_message_get_packed_size(msg);
    uint8_t    *buf = malloc(size + FAAS_FRAME_HDR);
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t    b;
    int         n;

    if (buf == NULL || w == NULL) {
        die("out of memory");
    }
    faas_frame_put_len(buf, (uint32_t) size);
    protobuf_c_message_pack(msg, buf + FAAS_FRAME_HDR);
    b = uv_buf_init((char *) buf, (unsigned) (size + FAAS_FRAME_HDR));
    n = uv_try_write(&c->u.s, &b, 1);
    if (n == (int) b.len) {
        free(buf);
        free(w);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        die("write: %s", uv_strerror(n));
    }
    if (n > 0) {
        b.base += n;
        b.len -= n;
    }
    w->data = buf;
    if (uv_write(w, &c->u.s, &b, 1, on_write) < 0) {
        die("write failed");
    }
}

static int
take_sandbox(void)
{
    if (T.nfree == 0) {
        return -1;
    }
    return T.free_list[--T.nfree];
}

static void
give_sandbox(int i, int alive)
{
    slot_t *s;

    if (!alive) {
        T.sbx_dead[i] = 1;
    } else {
        T.free_list[T.nfree++] = i;
    }
    while (T.nfree > 0 && T.wait_head != NULL) {
        s = T.wait_head;
        T.wait_head = s->next_wait;
        if (T.wait_head == NULL) {
            T.wait_tail = NULL;
        }
        s->waiting = 0;
        issue(s);
    }
    if (T.nfree == 0 && T.wait_head != NULL) {
        for (i = 0; i < T.nsbx; i++) {
            if (!T.sbx_dead[i]) {
                return;
            }
        }
        fprintf(stderr, "faas-invoke: every sandbox is gone\n");
        T.failed = 1;
        finish();
    }
}

static void
issue(slot_t *s)
{
    Faas__InvokeRequest req = FAAS__INVOKE_REQUEST__INIT;
    int                 i;

    if (s->busy || s->waiting || T.sent >= T.n || !s->conn->connected) {
        return;
    }
    i = take_sandbox();
    if (i < 0) {
        s->waiting = 1;
        s->next_wait = NULL;
        if (T.wait_tail != NULL) {
            T.wait_tail->next_wait = s;
        } else {
            T.wait_head = s;
        }
        T.wait_tail = s;
        return;
    }
    if (T.rid != NULL && T.n == 1) {
        snprintf(s->rid, sizeof(s->rid), "%s", T.rid);
    } else if (T.rid != NULL) {
        snprintf(s->rid, sizeof(s->rid), "%.40s%08lx", T.rid, T.sent);
    } else {
        snprintf(s->rid, sizeof(s->rid), "%s%016lx", T.rid_prefix, T.sent);
    }
    T.sent++;
    s->busy = 1;
    s->sbx = i;
    req.request_id = s->rid;
    req.sandbox_id = T.sbx[i];
    req.function = (char *) T.function;
    req.version = T.version;
    req.event.data = (uint8_t *) T.event;
    req.event.len = T.event_len;
    if (T.timeout_ms > 0) {
        req.timeout_ms = T.timeout_ms;
        req.deadline_ms = faas_now_ms() + T.timeout_ms;
    }
    s->t0 = uv_hrtime();
    send_frame(s->conn, &req.base);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char b[256 * 1024];

    (void) h;
    (void) suggested;
    buf->base = b;
    buf->len = sizeof(b);
}

static void
handle_response(tconn_t *c, const uint8_t *frame, size_t len)
{
    Faas__InvokeResponse *r;
    slot_t               *s = NULL;
    long                  i;
    uint64_t              now = uv_hrtime();

    r = faas__invoke_response__unpack(NULL, len, frame);
    if (r == NULL) {
        die("undecodable answer (%zu bytes)", len);
    }
    for (i = c->idx; i < T.c; i += T.k) {
        if (T.slots[i].busy && strcmp(T.slots[i].rid, r->request_id) == 0) {
            s = &T.slots[i];
            break;
        }
    }
    if (!T.quiet) {
        print_response(r);
    }
    if (s == NULL) {
        /* an answer to no request of ours: a connection-level error */
        fprintf(stderr, "faas-invoke: agent: %s: %s\n",
                faas_status_name(r->status),
                r->error);
        T.failed = 1;
        faas__invoke_response__free_unpacked(r, NULL);
        finish();
        return;
    }
    T.lat[T.done++] = now - s->t0;
    if (r->status < 16) {
        T.status_count[r->status]++;
    }
    s->busy = 0;
    give_sandbox(s->sbx, r->sandbox_alive ||
                             r->status == FAAS__INVOKE_STATUS__OVERLOADED ||
                             r->status == FAAS__INVOKE_STATUS__SANDBOX_BUSY);
    faas__invoke_response__free_unpacked(r, NULL);
    if (T.done >= T.n) {
        finish();
    }
    issue(s);
}

static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    tconn_t       *c = st->data;
    const uint8_t *frame;
    size_t         len;
    int            ret;

    if (nread < 0) {
        fprintf(stderr,
                "faas-invoke: connection %s after %ld of %ld "
                "answers\n",
                nread == UV_EOF ? "closed by the agent"
                                : uv_strerror((int) nread),
                T.done, T.n);
        T.failed = 1;
        finish();
    }
    if (nread <= 0) {
        return;
    }
    if (faas_frame_buf_append(&c->fb, buf->base, (size_t) nread, NULL) < 0) {
        die("out of memory");
    }
    while ((ret = faas_frame_buf_next(&c->fb, &frame, &len, NULL)) == 1) {
        handle_response(c, frame, len);
    }
    if (ret < 0) {
        die("oversized answer");
    }
}

static void
on_connect(uv_connect_t *req, int status)
{
    tconn_t         *c = req->data;
    Faas__AgentHello hello = FAAS__AGENT_HELLO__INIT;
    long             i;

    if (status < 0) {
        die("connect %s: %s", T.endpoint, uv_strerror(status));
    }
    c->connected = 1;
    if (c->u.h.type == UV_TCP) {
        uv_tcp_nodelay(&c->u.tcp, 1);
        if (T.token != NULL) {
            hello.token = (char *) T.token;
            send_frame(c, &hello.base);
        }
    }
    uv_read_start(&c->u.s, on_alloc, on_read);
    for (i = c->idx; i < T.c; i += T.k) {
        issue(&T.slots[i]);
    }
}

static void
connect_one(tconn_t *c)
{
    const char        *ep = T.endpoint;
    struct sockaddr_in sin;
    char               host[256];
    const char        *colon;
    int                ret;

    c->creq.data = c;
    c->u.h.data = c;
    faas_frame_buf_init(&c->fb, 64u * 1024 * 1024);
    if (strncmp(ep, "tcp:", 4) == 0) {
        colon = strrchr(ep + 4, ':');
        if (colon == NULL || (size_t) (colon - ep - 4) >= sizeof(host)) {
            die("bad endpoint %s", ep);
        }
        memcpy(host, ep + 4, colon - ep - 4);
        host[colon - ep - 4] = '\0';
        if (uv_ip4_addr(host, atoi(colon + 1), &sin) < 0) {
            die("bad endpoint %s", ep);
        }
        uv_tcp_init(T.loop, &c->u.tcp);
        c->u.h.data = c;
        ret = uv_tcp_connect(&c->creq, &c->u.tcp, (struct sockaddr *) &sin,
                             on_connect);
    } else {
        if (strncmp(ep, "unix:", 5) == 0) {
            ep += 5;
        }
        uv_pipe_init(T.loop, &c->u.pipe, 0);
        c->u.h.data = c;
        uv_pipe_connect(&c->creq, &c->u.pipe, ep, on_connect);
        ret = 0;
    }
    if (ret < 0) {
        die("connect %s: %s", T.endpoint, uv_strerror(ret));
    }
}

static char *
read_whole(const char *path, size_t *len)
{
    FILE  *f = fopen(path, "rb");
    char  *buf = NULL;
    size_t cap = 0, n = 0, r;

    if (f == NULL) {
        die("%s: %s", path, strerror(errno));
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            if (buf == NULL) {
                die("out of memory");
            }
        }
        r = fread(buf + n, 1, cap - n, f);
        if (r == 0) {
            break;
        }
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

int
main(int argc, char **argv)
{
    char   *list = NULL, *tok, *save;
    int     opt, i, fd;
    long    j;
    uint8_t rnd[8];

    T.n = 1;
    T.c = 1;
    T.k = 0;
    T.function = "";
    while ((opt = getopt(argc, argv, "a:t:s:f:V:e:E:r:T:n:c:k:qh")) != -1) {
        switch (opt) {
        case 'a':
            T.endpoint = optarg;
            break;
        case 't':
            T.token = optarg;
            break;
        case 's':
            list = optarg;
            break;
        case 'f':
            T.function = optarg;
            break;
        case 'V':
            T.version = (unsigned) atoi(optarg);
            break;
        case 'e':
            T.event = optarg;
            T.event_len = strlen(optarg);
            break;
        case 'E':
            T.event = read_whole(optarg, &T.event_len);
            break;
        case 'r':
            T.rid = optarg;
            break;
        case 'T':
            T.timeout_ms = (unsigned) atoi(optarg);
            break;
        case 'n':
            T.n = atol(optarg);
            break;
        case 'c':
            T.c = atol(optarg);
            break;
        case 'k':
            T.k = atol(optarg);
            break;
        case 'q':
            T.quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (T.endpoint == NULL || list == NULL || optind != argc || T.n < 1 ||
        T.c < 1) {
        usage();
    }
    if (T.event == NULL) {
        T.event = "{}";
        T.event_len = 2;
    }
    if (T.c > T.n) {
        T.c = T.n;
    }
    if (T.k <= 0 || T.k > T.c) {
        T.k = T.c;
    }
    T.sbx = calloc(strlen(list) / 2 + 2, sizeof(char *));
    for (tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        T.sbx[T.nsbx++] = tok;
    }
    if (T.nsbx == 0) {
        usage();
    }
    T.sbx_busy = calloc(T.nsbx, sizeof(int));
    T.sbx_dead = calloc(T.nsbx, sizeof(int));
    T.free_list = calloc(T.nsbx, sizeof(int));
    for (i = T.nsbx - 1; i >= 0; i--) {
        T.free_list[T.nfree++] = i;
    }
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t) sizeof(rnd)) {
        die("urandom");
    }
    close(fd);
    for (i = 0; i < 8; i++) {
        snprintf(T.rid_prefix + 2 * i, 3, "%02x", rnd[i]);
    }
    T.lat = calloc((size_t) T.n, sizeof(uint64_t));
    T.slots = calloc((size_t) T.c, sizeof(slot_t));
    T.conns = calloc((size_t) T.k, sizeof(tconn_t));
    if (T.lat == NULL || T.slots == NULL || T.conns == NULL) {
        die("out of memory");
    }
    T.loop = uv_default_loop();
    for (j = 0; j < T.k; j++) {
        T.conns[j].idx = (int) j;
    }
    for (j = 0; j < T.c; j++) {
        T.slots[j].conn = &T.conns[j % T.k];
    }
    T.t_start = uv_hrtime();
    for (j = 0; j < T.k; j++) {
        connect_one(&T.conns[j]);
    }
    uv_run(T.loop, UV_RUN_DEFAULT);
    fprintf(stderr, "faas-invoke: loop ended after %ld of %ld answers\n",
            T.done, T.n);
    return 1;
}
