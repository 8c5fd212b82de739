/*
 * faas-loadgen: a small HTTP/1.1 load generator for bench/.
 *
 *   faas-loadgen [options] URL          (http://host:port/path or https://)
 *
 * Closed loop (default): every connection keeps one request in flight and
 * sends the next as soon as the answer is in (like wrk). The number of
 * connections follows -c, or a piecewise-linear schedule (--schedule
 * "0:0,60:2000,120:0" = seconds:connections), so a ramp up and down is one
 * run. Latency: request written -> answer read.
 *
 * Open loop (-R RATE or --open with --schedule of rates): requests are
 * issued at a fixed rate whatever the server does; each goes to an idle
 * kept-alive connection (up to -c of them, opened when needed) or waits in a
 * queue. Latency is measured from the moment the request was DUE, so a slow
 * server is not hidden (no coordinated omission). Requests still queued when
 * the run ends are reported as "unsent" and counted as failed.
 *
 * Every answer with a status outside 200-299 and every socket error (connect,
 * read, write, reset, early close, TLS, malformed answer, timeout) on a
 * request is a failure. Latencies go into log-bucketed histograms (1/32
 * relative precision, like HDR histograms), one per second of the run.
 *
 * Output: a summary on stdout; --csv FILE one line per second; --json FILE
 * the summary as one JSON object. Epoll, non-blocking sockets, OpenSSL for
 * https (certificates are not verified: this is a benchmark on loopback),
 * one event loop per thread (-t).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* ---- histogram: values in microseconds, 32 sub-buckets per power of two -- */

#define SUB_BITS 5
#define SUB (1u << SUB_BITS)
#define HIST_N (2 * SUB + 40 * SUB)

typedef struct {
    uint32_t b[HIST_N];
} hist_t;

static unsigned hist_index(uint64_t v)
{
    unsigned k, idx;

    if (v < 2 * SUB)
        return (unsigned) v;
    k = 63 - __builtin_clzll(v); /* v >= 64 -> k >= 6 */
    idx = 2 * SUB + (k - SUB_BITS - 1) * SUB
          + (unsigned) ((v >> (k - SUB_BITS)) & (SUB - 1));
    return idx < HIST_N ? idx : HIST_N - 1;
}

/* The middle of bucket idx, in microseconds. */
static double hist_value(unsigned idx)
{
    unsigned k, sub;
    double lo, width;

    if (idx < 2 * SUB)
        return idx;
    k = (idx - 2 * SUB) / SUB + SUB_BITS + 1;
    sub = (idx - 2 * SUB) % SUB;
    width = ldexp(1.0, (int) (k - SUB_BITS));
    lo = ldexp(1.0, (int) k) + sub * width;
    return lo + width / 2;
}

static void hist_add(hist_t *h, uint64_t us)
{
    h->b[hist_index(us)]++;
}

static void hist_merge(hist_t *to, const hist_t *from)
{
    for (unsigned i = 0; i < HIST_N; i++)
        to->b[i] += from->b[i];
}

static uint64_t hist_count(const hist_t *h)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < HIST_N; i++)
        n += h->b[i];
    return n;
}

/* The p-th percentile (0 < p <= 100) in milliseconds; 0 when empty. */
static double hist_pct(const hist_t *h, double p)
{
    uint64_t n = hist_count(h), want, acc = 0;

    if (n == 0)
        return 0;
    want = (uint64_t) ceil(n * p / 100.0);
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < HIST_N; i++) {
        acc += h->b[i];
        if (acc >= want)
            return hist_value(i) / 1000.0;
    }
    return hist_value(HIST_N - 1) / 1000.0;
}

static double hist_max(const hist_t *h)
{
    for (unsigned i = HIST_N; i-- > 0;)
        if (h->b[i])
            return hist_value(i) / 1000.0;
    return 0;
}

/* ---- options and schedule ------------------------------------------------- */

typedef struct {
    double t, v;
} point_t;

static struct {
    char host[256], port[16], path[2048];
    int tls, open_loop, threads, conns;
    double rate, duration, timeout, drain, think, warmup;
    point_t sched[64];
    int nsched;
    const char *csv, *json, *label;
    char *request;
    size_t request_len;
    struct addrinfo *addr;
    SSL_CTX *ssl_ctx;
} opt;

/* The schedule's value at time t (seconds), linear between points. */
static double sched_at(double t)
{
    if (opt.nsched == 0)
        return opt.open_loop ? opt.rate : opt.conns;
    if (t <= opt.sched[0].t)
        return opt.sched[0].v;
    for (int i = 1; i < opt.nsched; i++) {
        point_t a = opt.sched[i - 1], b = opt.sched[i];
        if (t <= b.t) {
            if (b.t <= a.t)
                return b.v;
            return a.v + (b.v - a.v) * (t - a.t) / (b.t - a.t);
        }
    }
    return opt.sched[opt.nsched - 1].v;
}

static double sched_max(void)
{
    double m = 0;

    if (opt.nsched == 0)
        return opt.open_loop ? opt.rate : opt.conns;
    for (int i = 0; i < opt.nsched; i++)
        if (opt.sched[i].v > m)
            m = opt.sched[i].v;
    return m;
}

/* ---- per-thread state ----------------------------------------------------- */

enum { C_FREE, C_CONNECTING, C_HANDSHAKE, C_IDLE, C_WRITING, C_READING };
enum { B_HEAD, B_LENGTH, B_CHUNKED, B_UNTIL_CLOSE };
enum { K_SIZE, K_EXT, K_DATA, K_DATA_CR, K_DATA_LF, K_TRAILER, K_TRAILER_LINE };

typedef struct {
    uint64_t ok, non2xx, sockerr, timeouts, status[6];
    uint32_t conns, target;
    hist_t lat;
} bucket_t;

typedef struct thread_s thread_t;

typedef struct {
    thread_t *th;
    int fd, state, want;
    SSL *ssl;
    uint64_t t_sent, t_due;  /* ns: when written / when due (open loop) */
    size_t wpos;
    int in_req;              /* a request is assigned to this connection */
    char head[8192];
    size_t hlen;
    int body_mode, chunk_state, close_after, status;
    uint64_t remaining;
    uint64_t not_before;     /* ns: no reconnect before (after an error) */
    uint64_t next_at;        /* ns: closed loop with --think: next request */
} conn_t;

struct thread_s {
    int idx, ep, stopping;
    pthread_t tid;
    conn_t *conns;
    int nconns_max, nopen;
    double share;            /* this thread's fraction of conns / rate */
    uint64_t start, *queue;  /* open loop: due times (ring) */
    size_t qcap, qhead, qlen;
    double credit;
    uint64_t last_tick;
    bucket_t *buckets;
    int nbuckets;
    uint64_t unsent, abandoned, connects, errs_connect, errs_io, errs_parse, errs_tls;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static bucket_t *bucket_of(thread_t *th, uint64_t t)
{
    int64_t s = t > th->start ? (int64_t) ((t - th->start) / 1000000000ull) : 0;

    if (s >= th->nbuckets)
        s = th->nbuckets - 1;
    return &th->buckets[s];
}

static void set_want(conn_t *c, int ev)
{
    struct epoll_event e = { .events = (uint32_t) ev, .data.ptr = c };

    if (c->want == ev)
        return;
    epoll_ctl(c->th->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->want = ev;
}

static void conn_close(conn_t *c)
{
    if (c->state == C_FREE)
        return;
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    epoll_ctl(c->th->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = C_FREE;
    c->th->nopen--;
}

/* A request on c failed (socket error of any kind, or timeout). */
static void conn_fail(conn_t *c, int timeout, uint64_t *counter)
{
    thread_t *th = c->th;
    uint64_t t = now_ns();

    if (counter)
        (*counter)++;
    if (c->in_req) {
        bucket_t *b = bucket_of(th, t);
        if (timeout)
            b->timeouts++;
        else
            b->sockerr++;
    }
    c->in_req = 0;
    conn_close(c);
    c->not_before = t + 10000000ull; /* 10 ms before this slot reconnects */
}

static void send_request(conn_t *c, uint64_t due);

static void conn_open(thread_t *th, conn_t *c)
{
    struct epoll_event e = { .events = EPOLLOUT, .data.ptr = c };
    int one = 1;

    c->fd = socket(opt.addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = C_FREE;
        c->not_before = now_ns() + 100000000ull;
        th->errs_connect++;
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->th = th;
    c->state = C_CONNECTING;
    c->want = EPOLLOUT;
    c->ssl = NULL;
    c->in_req = 0;
    c->t_sent = now_ns();
    c->next_at = 0;
    th->nopen++;
    th->connects++;
    epoll_ctl(th->ep, EPOLL_CTL_ADD, c->fd, &e);
    if (connect(c->fd, opt.addr->ai_addr, opt.addr->ai_addrlen) < 0 && errno != EINPROGRESS) {
        /* in the closed loop this connection carries a request: a failure */
        c->in_req = !opt.open_loop;
        conn_fail(c, 0, &th->errs_connect);
    }
}

/* The connection is ready for a request: closed loop sends one at once,
 * open loop takes the oldest due one, or idles. */
static void conn_ready(conn_t *c)
{
    thread_t *th = c->th;

    c->state = C_IDLE;
    if (th->stopping) {
        conn_close(c);
        return;
    }
    if (!opt.open_loop) {
        if (c->next_at > now_ns()) {
            set_want(c, EPOLLIN); /* thinking; notice a close by the server */
            return;
        }
        send_request(c, 0);
        return;
    }
    if (th->qlen) {
        uint64_t due = th->queue[th->qhead];
        th->qhead = (th->qhead + 1) % th->qcap;
        th->qlen--;
        send_request(c, due);
        return;
    }
    set_want(c, EPOLLIN); /* notice a close by the server */
}

static void do_handshake(conn_t *c)
{
    int r = SSL_connect(c->ssl);

    if (r == 1) {
        conn_ready(c);
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        set_want(c, EPOLLIN);
        return;
    case SSL_ERROR_WANT_WRITE:
        set_want(c, EPOLLOUT);
        return;
    default:
        ERR_clear_error();
        c->in_req = !opt.open_loop;
        conn_fail(c, 0, &c->th->errs_tls);
    }
}

static void on_connected(conn_t *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        c->in_req = !opt.open_loop;
        conn_fail(c, 0, &c->th->errs_connect);
        return;
    }
    if (!opt.tls) {
        conn_ready(c);
        return;
    }
    c->ssl = SSL_new(opt.ssl_ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, opt.host);
    c->state = C_HANDSHAKE;
    do_handshake(c);
}

static void do_write(conn_t *c)
{
    while (c->wpos < opt.request_len) {
        ssize_t n;
        if (c->ssl) {
            int r = SSL_write(c->ssl, opt.request + c->wpos, (int) (opt.request_len - c->wpos));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE) {
                    set_want(c, EPOLLOUT);
                    return;
                }
                if (e == SSL_ERROR_WANT_READ) {
                    set_want(c, EPOLLIN);
                    return;
                }
                ERR_clear_error();
                conn_fail(c, 0, &c->th->errs_io);
                return;
            }
            n = r;
        } else {
            n = send(c->fd, opt.request + c->wpos, opt.request_len - c->wpos, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN) {
                    set_want(c, EPOLLOUT);
                    return;
                }
                conn_fail(c, 0, &c->th->errs_io);
                return;
            }
        }
        c->wpos += (size_t) n;
    }
    c->state = C_READING;
    c->hlen = 0;
    c->body_mode = B_HEAD;
    c->close_after = 0;
    set_want(c, EPOLLIN);
}

static void send_request(conn_t *c, uint64_t due)
{
    c->t_sent = now_ns();
    c->t_due = due ? due : c->t_sent;
    c->in_req = 1;
    c->wpos = 0;
    c->state = C_WRITING;
    do_write(c);
}

static int closed_target(thread_t *th, uint64_t t);

/* A whole answer is in. */
static void on_response(conn_t *c)
{
    thread_t *th = c->th;
    uint64_t t = now_ns();
    bucket_t *b = bucket_of(th, t);
    int cls = c->status / 100;

    hist_add(&b->lat, (t - c->t_due) / 1000);
    if (cls >= 1 && cls <= 5)
        b->status[cls]++;
    else
        b->status[0]++;
    if (cls == 2)
        b->ok++;
    else
        b->non2xx++;
    c->in_req = 0;
    c->next_at = opt.think > 0 ? t + (uint64_t) (opt.think * 1e9) : 0;
    if (c->close_after || (!opt.open_loop && th->nopen > closed_target(th, t))) {
        conn_close(c);
        c->not_before = 0;
        return;
    }
    conn_ready(c);
}

static int parse_head(conn_t *c, size_t end)
{
    char *p = c->head, *eol;
    int chunked = 0, have_len = 0, http10 = 0;
    uint64_t len = 0;

    if (strncmp(p, "HTTP/1.", 7) || end < 12)
        return -1;
    http10 = p[7] == '0';
    c->status = atoi(p + 9);
    if (c->status < 100 || c->status > 999)
        return -1;
    p = strstr(p, "\r\n") + 2;
    while (p < c->head + end - 2) {
        eol = strstr(p, "\r\n");
        if (!eol)
            return -1;
        *eol = '\0';
        if (!strncasecmp(p, "content-length:", 15)) {
            len = strtoull(p + 15, NULL, 10);
            have_len = 1;
        } else if (!strncasecmp(p, "transfer-encoding:", 18)) {
            if (strcasestr(p + 18, "chunked"))
                chunked = 1;
        } else if (!strncasecmp(p, "connection:", 11)) {
            if (strcasestr(p + 11, "close"))
                c->close_after = 1;
        }
        p = eol + 2;
    }
    if (http10)
        c->close_after = 1;
    if (c->status == 204 || c->status == 304 || c->status / 100 == 1) {
        c->body_mode = B_LENGTH;
        c->remaining = 0;
    } else if (chunked) {
        c->body_mode = B_CHUNKED;
        c->chunk_state = K_SIZE;
        c->remaining = 0;
    } else if (have_len) {
        c->body_mode = B_LENGTH;
        c->remaining = len;
    } else {
        c->body_mode = B_UNTIL_CLOSE;
        c->close_after = 1;
    }
    return 0;
}

/* Feeds body bytes; returns 1 when the answer is complete, -1 on error. */
static int feed_body(conn_t *c, const char *d, size_t n)
{
    if (c->body_mode == B_LENGTH) {
        c->remaining -= n < c->remaining ? n : c->remaining;
        return c->remaining == 0;
    }
    if (c->body_mode == B_UNTIL_CLOSE)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = d[i];
        switch (c->chunk_state) {
        case K_SIZE:
            if (ch >= '0' && ch <= '9')
                c->remaining = c->remaining * 16 + (uint64_t) (ch - '0');
            else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
                c->remaining = c->remaining * 16 + (uint64_t) ((ch | 0x20) - 'a' + 10);
            else if (ch == '\n')
                c->chunk_state = c->remaining ? K_DATA : K_TRAILER;
            else if (ch == ';' || ch == ' ' || ch == '\t')
                c->chunk_state = K_EXT;
            else if (ch != '\r')
                return -1;
            break;
        case K_EXT:
            if (ch == '\n')
                c->chunk_state = c->remaining ? K_DATA : K_TRAILER;
            break;
        case K_DATA: {
            size_t take = n - i < c->remaining ? n - i : (size_t) c->remaining;
            c->remaining -= take;
            i += take - 1;
            if (c->remaining == 0)
                c->chunk_state = K_DATA_CR;
            break;
        }
        case K_DATA_CR:
            if (ch == '\r')
                c->chunk_state = K_DATA_LF;
            else if (ch == '\n')
                c->chunk_state = K_SIZE;
            else
                return -1;
            break;
        case K_DATA_LF:
            if (ch != '\n')
                return -1;
            c->chunk_state = K_SIZE;
            break;
        case K_TRAILER:
            if (ch == '\n')
                return 1;
            if (ch != '\r')
                c->chunk_state = K_TRAILER_LINE;
            break;
        case K_TRAILER_LINE:
            if (ch == '\n')
                c->chunk_state = K_TRAILER;
            break;
        }
    }
    return 0;
}

static void do_read(conn_t *c)
{
    char buf[16384];

    for (;;) {
        ssize_t n;
        if (c->ssl) {
            int r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ)
                    return;
                if (e == SSL_ERROR_WANT_WRITE) {
                    set_want(c, EPOLLOUT);
                    return;
                }
                ERR_clear_error();
                n = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
                if (n < 0)
                    errno = ECONNRESET;
            } else {
                n = r;
            }
        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EAGAIN)
                return;
        }
        if (n <= 0) {
            if (c->state == C_READING && c->body_mode == B_UNTIL_CLOSE && n == 0) {
                c->close_after = 1;
                on_response(c);
                return;
            }
            if (c->state == C_IDLE || !c->in_req) {
                /* the server closed a kept-alive idle connection: no request lost */
                conn_close(c);
                c->not_before = 0;
                return;
            }
            conn_fail(c, 0, &c->th->errs_io);
            return;
        }
        if (c->state != C_READING) {
            /* bytes nobody asked for */
            conn_fail(c, 0, &c->th->errs_parse);
            return;
        }
        size_t off = 0;
        if (c->body_mode == B_HEAD) {
            size_t take = (size_t) n, hlen0 = c->hlen;
            char *end;
            if (take > sizeof(c->head) - 1 - c->hlen)
                take = sizeof(c->head) - 1 - c->hlen;
            memcpy(c->head + c->hlen, buf, take);
            c->hlen += take;
            c->head[c->hlen] = '\0';
            end = strstr(c->head, "\r\n\r\n");
            if (!end) {
                if (c->hlen >= sizeof(c->head) - 1) {
                    conn_fail(c, 0, &c->th->errs_parse);
                    return;
                }
                continue;
            }
            size_t hend = (size_t) (end - c->head) + 4;
            /* bytes of buf after the head */
            off = hend - hlen0;
            if (parse_head(c, hend) < 0) {
                conn_fail(c, 0, &c->th->errs_parse);
                return;
            }
            if (c->body_mode == B_LENGTH && c->remaining == 0) {
                on_response(c);
                return;
            }
        }
        int r = feed_body(c, buf + off, (size_t) n - off);
        if (r < 0) {
            conn_fail(c, 0, &c->th->errs_parse);
            return;
        }
        if (r == 1) {
            on_response(c);
            return;
        }
    }
}

static void on_event(conn_t *c, uint32_t ev)
{
    switch (c->state) {
    case C_CONNECTING:
        on_connected(c);
        break;
    case C_HANDSHAKE:
        do_handshake(c);
        break;
    case C_WRITING:
        do_write(c);
        break;
    case C_READING:
    case C_IDLE:
        if (c->ssl && c->state == C_READING && (ev & EPOLLOUT) && c->want == EPOLLOUT)
            set_want(c, EPOLLIN); /* SSL_read wanted to write: retry the read */
        do_read(c);
        break;
    default:
        break;
    }
}

/* This thread's share of the schedule's connections at time t. */
static int closed_target(thread_t *th, uint64_t t)
{
    double s = (double) (t - th->start) / 1e9;
    double total = s < opt.duration ? sched_at(s) : 0;
    /* thread i of n gets floor(total*(i+1)/n) - floor(total*i/n) */
    long hi = (long) floor(total * (th->idx + 1) / opt.threads + 1e-9);
    long lo = (long) floor(total * th->idx / opt.threads + 1e-9);
    return (int) (hi - lo);
}

static void open_some(thread_t *th, int want, uint64_t t)
{
    for (int i = 0; i < th->nconns_max && th->nopen < want; i++) {
        conn_t *c = &th->conns[i];
        if (c->state == C_FREE && c->not_before <= t)
            conn_open(th, c);
    }
}

static void check_timeouts(thread_t *th, uint64_t t)
{
    uint64_t lim = (uint64_t) (opt.timeout * 1e9);

    for (int i = 0; i < th->nconns_max; i++) {
        conn_t *c = &th->conns[i];
        if (c->state == C_FREE)
            continue;
        if (c->t_sent >= t || t - c->t_sent <= lim)
            continue;
        if (c->in_req)
            conn_fail(c, 1, NULL);
        else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
            conn_fail(c, 1, &th->errs_connect);
    }
}

static void *thread_main(void *arg)
{
    thread_t *th = arg;
    struct epoll_event evs[256];
    uint64_t end = th->start + (uint64_t) (opt.duration * 1e9), t, last_to = 0;
    uint64_t drain_end = end + (uint64_t) (opt.drain * 1e9);

    th->last_tick = th->start;
    for (;;) {
        int n = epoll_wait(th->ep, evs, 256, 1);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        t = now_ns();
        if (t >= end) {
            th->stopping = 1;
            /* no new requests; wait for those in flight, then stop */
            int busy = 0;
            for (int i = 0; i < th->nconns_max; i++) {
                conn_t *c = &th->conns[i];
                if (c->state != C_FREE && c->in_req && c->state >= C_WRITING)
                    busy++;
                else if (c->state != C_FREE && !(c->in_req && c->state >= C_WRITING))
                    conn_close(c);
            }
            if (!busy || t >= drain_end)
                break;
            if (t - last_to > 100000000ull) {
                check_timeouts(th, t);
                last_to = t;
            }
            continue;
        }
        bucket_t *b = bucket_of(th, t);
        if (opt.open_loop) {
            double s = (double) (t - th->start) / 1e9;
            th->credit += sched_at(s) * th->share * (double) (t - th->last_tick) / 1e9;
            th->last_tick = t;
            while (th->credit >= 1.0) {
                th->credit -= 1.0;
                if (th->qlen == th->qcap) {
                    th->unsent++; /* the queue is full: this one is never sent */
                    continue;
                }
                th->queue[(th->qhead + th->qlen) % th->qcap] = t;
                th->qlen++;
            }
            /* hand queued requests to idle connections */
            for (int i = 0; i < th->nconns_max && th->qlen; i++) {
                conn_t *c = &th->conns[i];
                if (c->state == C_IDLE && !c->in_req)
                    conn_ready(c);
            }
            /* more connections when requests wait (idle ones not counted) */
            int idle = 0, connecting = 0;
            for (int i = 0; i < th->nconns_max; i++) {
                if (th->conns[i].state == C_IDLE)
                    idle++;
                else if (th->conns[i].state == C_CONNECTING || th->conns[i].state == C_HANDSHAKE)
                    connecting++;
            }
            if ((int) th->qlen > idle + connecting)
                open_some(th, th->nopen + ((int) th->qlen - idle - connecting), t);
            b->target = (uint32_t) (sched_at(s) * th->share + 0.5);
        } else {
            int want = closed_target(th, t);
            if (th->nopen < want)
                open_some(th, want, t);
            if (opt.think > 0)
                for (int i = 0; i < th->nconns_max; i++) {
                    conn_t *c = &th->conns[i];
                    if (c->state == C_IDLE && !c->in_req && c->next_at <= t) {
                        if (th->nopen > want)
                            conn_close(c);
                        else
                            send_request(c, 0);
                    }
                }
            b->target = (uint32_t) want;
        }
        if ((uint32_t) th->nopen > b->conns)
            b->conns = (uint32_t) th->nopen;
        if (t - last_to > 100000000ull) {
            check_timeouts(th, t);
            last_to = t;
        }
    }
    for (int i = 0; i < th->nconns_max; i++) {
        conn_t *c = &th->conns[i];
        if (c->state != C_FREE) {
            if (c->in_req)
                th->abandoned++;
            conn_close(c);
        }
    }
    th->unsent += th->qlen;
    return NULL;
}

/* ---- set-up --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: faas-loadgen [options] URL\n"
            "  -c N            connections (closed loop; the open loop's cap), default 64\n"
            "  -d SEC          duration (default 10, or the schedule's last time)\n"
            "  -R RATE         open loop at RATE requests/s\n"
            "  --open          open loop, rate from --schedule\n"
            "  --schedule S    T:V,T:V,...  connections (closed) or rate (open) over time,\n"
            "                  linear between points, e.g. 0:0,60:2000,120:0\n"
            "  -t N            threads (default 1)\n"
            "  --think SEC     closed loop: pause between an answer and the next request\n"
            "                  on the same connection (a 'virtual user'), default 0\n"
            "  -m METHOD       default GET (POST when --body is given)\n"
            "  -H 'K: V'       extra header (repeatable)\n"
            "  --body S        request body\n"
            "  --timeout SEC   per request (default 30): then a failure\n"
            "  --drain SEC     after the run, wait this long for answers in flight (default 10)\n"
            "  --warmup SEC    leave the first SEC seconds out of the summary (the CSV\n"
            "                  keeps them): connection set-up, TLS handshakes\n"
            "  --csv FILE      per-second figures\n"
            "  --json FILE     the summary as JSON\n"
            "  --label S       name printed with the summary\n");
    exit(2);
}

static int parse_schedule(const char *s)
{
    char *dup = strdup(s), *save = NULL, *tok;

    opt.nsched = 0;
    for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':'), *e1, *e2;
        if (!colon || opt.nsched == 64)
            goto bad;
        *colon = '\0';
        opt.sched[opt.nsched].t = strtod(tok, &e1);
        opt.sched[opt.nsched].v = strtod(colon + 1, &e2);
        if (*e1 || *e2 || opt.sched[opt.nsched].v < 0
            || (opt.nsched && opt.sched[opt.nsched].t < opt.sched[opt.nsched - 1].t))
            goto bad;
        opt.nsched++;
    }
    free(dup);
    return opt.nsched ? 0 : -1;
bad:
    free(dup);
    return -1;
}

static int parse_url(const char *url)
{
    const char *p, *slash, *colon;
    size_t hl;

    if (!strncmp(url, "http://", 7)) {
        p = url + 7;
        opt.tls = 0;
    } else if (!strncmp(url, "https://", 8)) {
        p = url + 8;
        opt.tls = 1;
    } else {
        return -1;
    }
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t) (slash - p));
    hl = (size_t) ((colon ? colon : slash) - p);
    if (hl == 0 || hl >= sizeof(opt.host))
        return -1;
    memcpy(opt.host, p, hl);
    opt.host[hl] = '\0';
    if (colon) {
        size_t pl = (size_t) (slash - colon - 1);
        if (pl == 0 || pl >= sizeof(opt.port))
            return -1;
        memcpy(opt.port, colon + 1, pl);
        opt.port[pl] = '\0';
    } else {
        strcpy(opt.port, opt.tls ? "443" : "80");
    }
    snprintf(opt.path, sizeof(opt.path), "%s", *slash ? slash : "/");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "open", no_argument, NULL, 'O' },      { "schedule", required_argument, NULL, 'S' },
        { "body", required_argument, NULL, 'B' }, { "timeout", required_argument, NULL, 'T' },
        { "drain", required_argument, NULL, 'D' }, { "csv", required_argument, NULL, 'C' },
        { "json", required_argument, NULL, 'J' }, { "label", required_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'h' },      { "think", required_argument, NULL, 'K' },
        { "warmup", required_argument, NULL, 'W' },      { NULL, 0, NULL, 0 },
    };
    const char *method = NULL, *body = NULL;
    char headers[8192] = "";
    size_t hlen = 0;
    int o, dur_set = 0;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    struct rlimit rl;

    opt.conns = 64;
    opt.threads = 1;
    opt.duration = 10;
    opt.timeout = 30;
    opt.drain = 10;
    opt.label = "";
    while ((o = getopt_long(argc, argv, "c:d:R:t:m:H:h", lo, NULL)) != -1) {
        switch (o) {
        case 'c': opt.conns = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); dur_set = 1; break;
        case 'R': opt.rate = atof(optarg); opt.open_loop = 1; break;
        case 'O': opt.open_loop = 1; break;
        case 'S':
            if (parse_schedule(optarg) < 0) {
                fprintf(stderr, "faas-loadgen: bad --schedule %s\n", optarg);
                return 2;
            }
            break;
        case 't': opt.threads = atoi(optarg); break;
        case 'm': method = optarg; break;
        case 'H': {
            int w = snprintf(headers + hlen, sizeof(headers) - hlen, "%s\r\n", optarg);
            if (w < 0 || (size_t) w >= sizeof(headers) - hlen) {
                fprintf(stderr, "faas-loadgen: headers too long\n");
                return 2;
            }
            hlen += (size_t) w;
            break;
        }
        case 'B': body = optarg; break;
        case 'T': opt.timeout = atof(optarg); break;
        case 'D': opt.drain = atof(optarg); break;
        case 'K': opt.think = atof(optarg); break;
        case 'W': opt.warmup = atof(optarg); break;
        case 'C': opt.csv = optarg; break;
        case 'J': opt.json = optarg; break;
        case 'L': opt.label = optarg; break;
        default: usage();
        }
    }
    if (optind != argc - 1 || parse_url(argv[optind]) < 0)
        usage();
    if (opt.threads < 1 || opt.threads > 64 || opt.conns < 1 || opt.timeout <= 0
        || opt.duration <= 0 || opt.warmup < 0 || opt.warmup >= opt.duration
        || (opt.open_loop && opt.rate <= 0 && !opt.nsched)) {
        fprintf(stderr, "faas-loadgen: bad -c/-t/-d/-R/--timeout\n");
        return 2;
    }
    if (opt.nsched && !dur_set)
        opt.duration = opt.sched[opt.nsched - 1].t;
    if (!method)
        method = body ? "POST" : "GET";

    {
        size_t blen = body ? strlen(body) : 0;
        size_t cap = strlen(method) + strlen(opt.path) + strlen(opt.host) + hlen + blen + 128;
        opt.request = malloc(cap);
        opt.request_len = (size_t) snprintf(opt.request, cap,
                                            "%s %s HTTP/1.1\r\nHost: %s:%s\r\n%s", method,
                                            opt.path, opt.host, opt.port, headers);
        if (body)
            opt.request_len += (size_t) snprintf(opt.request + opt.request_len,
                                                 cap - opt.request_len,
                                                 "Content-Length: %zu\r\n\r\n%s", blen, body);
        else
            opt.request_len += (size_t) snprintf(opt.request + opt.request_len,
                                                 cap - opt.request_len, "\r\n");
    }
    if (getaddrinfo(opt.host, opt.port, &hints, &opt.addr) != 0) {
        fprintf(stderr, "faas-loadgen: cannot resolve %s:%s\n", opt.host, opt.port);
        return 2;
    }
    if (opt.tls) {
        opt.ssl_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(opt.ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
    signal(SIGPIPE, SIG_IGN);

    /* enough descriptors for every connection */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t need = (rlim_t) opt.conns + (rlim_t) sched_max() + 64;
        if (rl.rlim_cur < need) {
            rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    int maxc = opt.open_loop ? opt.conns : (int) ceil(sched_max());
    int nb = (int) ceil(opt.duration + opt.drain) + 2;
    thread_t *ths = calloc((size_t) opt.threads, sizeof(*ths));
    uint64_t start = now_ns();
    for (int i = 0; i < opt.threads; i++) {
        thread_t *th = &ths[i];
        th->idx = i;
        th->ep = epoll_create1(EPOLL_CLOEXEC);
        th->nconns_max = maxc / opt.threads + 1;
        th->conns = calloc((size_t) th->nconns_max, sizeof(conn_t));
        for (int j = 0; j < th->nconns_max; j++) {
            th->conns[j].fd = -1;
            th->conns[j].th = th;
        }
        th->share = 1.0 / opt.threads;
        th->qcap = 1 << 20;
        th->queue = opt.open_loop ? malloc(th->qcap * sizeof(uint64_t)) : NULL;
        th->nbuckets = nb;
        th->buckets = calloc((size_t) nb, sizeof(bucket_t));
        th->start = start;
    }
    for (int i = 0; i < opt.threads; i++)
        pthread_create(&ths[i].tid, NULL, thread_main, &ths[i]);
    for (int i = 0; i < opt.threads; i++)
        pthread_join(ths[i].tid, NULL);
    double wall = (double) (now_ns() - start) / 1e9;

    /* ---- merge and report ---- */
    bucket_t *all = calloc((size_t) nb, sizeof(bucket_t));
    hist_t *total = calloc(1, sizeof(hist_t));
    uint64_t ok = 0, non2xx = 0, sockerr = 0, timeouts = 0, status[6] = { 0 };
    uint64_t unsent = 0, abandoned = 0, connects = 0, e_conn = 0, e_io = 0, e_parse = 0, e_tls = 0;
    int last = 0;
    for (int i = 0; i < opt.threads; i++) {
        thread_t *th = &ths[i];
        for (int s = 0; s < nb; s++) {
            bucket_t *a = &all[s], *b = &th->buckets[s];
            a->ok += b->ok;
            a->non2xx += b->non2xx;
            a->sockerr += b->sockerr;
            a->timeouts += b->timeouts;
            for (int k = 0; k < 6; k++)
                a->status[k] += b->status[k];
            a->conns += b->conns;
            a->target += b->target;
            hist_merge(&a->lat, &b->lat);
        }
        unsent += th->unsent;
        abandoned += th->abandoned;
        connects += th->connects;
        e_conn += th->errs_connect;
        e_io += th->errs_io;
        e_parse += th->errs_parse;
        e_tls += th->errs_tls;
    }
    double peak = 0, measured = opt.duration - (double) (int) ceil(opt.warmup);
    int full_secs = (int) floor(opt.duration), warm = (int) ceil(opt.warmup);
    for (int s = 0; s < nb; s++) {
        bucket_t *a = &all[s];
        uint64_t done = a->ok + a->non2xx + a->sockerr + a->timeouts;
        if (done || a->conns)
            last = s;
        if (s < warm)
            continue;
        ok += a->ok;
        non2xx += a->non2xx;
        sockerr += a->sockerr;
        timeouts += a->timeouts;
        for (int k = 0; k < 6; k++)
            status[k] += a->status[k];
        hist_merge(total, &a->lat);
        if (s < full_secs && (double) (a->ok + a->non2xx) > peak)
            peak = (double) (a->ok + a->non2xx);
    }
    uint64_t failed = non2xx + sockerr + timeouts + unsent;
    uint64_t requests = ok + failed;
    double succ = requests ? 100.0 * (double) ok / (double) requests : 0;

    if (opt.csv) {
        FILE *f = fopen(opt.csv, "w");
        if (!f) {
            perror(opt.csv);
            return 1;
        }
        fprintf(f, "second,target,connections,requests,ok,non2xx,socket_errors,timeouts,"
                   "p50_ms,p90_ms,p95_ms,p99_ms,max_ms\n");
        for (int s = 0; s <= last; s++) {
            bucket_t *a = &all[s];
            fprintf(f, "%d,%u,%u,%llu,%llu,%llu,%llu,%llu,%.3f,%.3f,%.3f,%.3f,%.3f\n", s,
                    a->target, a->conns,
                    (unsigned long long) (a->ok + a->non2xx + a->sockerr + a->timeouts),
                    (unsigned long long) a->ok, (unsigned long long) a->non2xx,
                    (unsigned long long) a->sockerr, (unsigned long long) a->timeouts,
                    hist_pct(&a->lat, 50), hist_pct(&a->lat, 90), hist_pct(&a->lat, 95),
                    hist_pct(&a->lat, 99), hist_max(&a->lat));
        }
        fclose(f);
    }

    printf("%s%s%s %s://%s:%s%s  %s loop, %s %.0f, %d thread(s), %.1f s\n", opt.label,
           *opt.label ? ": " : "", method, opt.tls ? "https" : "http", opt.host, opt.port,
           opt.path, opt.open_loop ? "open" : (opt.think > 0 ? "closed (think time)" : "closed"),
           opt.open_loop ? (opt.nsched ? "peak rate" : "rate") : (opt.nsched ? "peak connections" : "connections"),
           sched_max(), opt.threads, wall);
    printf("  requests %llu  ok %llu  failed %llu (non-2xx %llu, socket errors %llu, timeouts %llu, unsent %llu)  success %.4f%%\n",
           (unsigned long long) requests, (unsigned long long) ok, (unsigned long long) failed,
           (unsigned long long) non2xx, (unsigned long long) sockerr,
           (unsigned long long) timeouts, (unsigned long long) unsent, succ);
    if (warm)
        printf("  (the first %d s, the warm-up, are left out of these figures)\n", warm);
    printf("  requests/s %.0f (mean over %.0f s), peak %.0f in one second\n",
           (double) (ok + non2xx) / measured, measured, peak);
    printf("  latency ms: p50 %.3f  p90 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
           hist_pct(total, 50), hist_pct(total, 90), hist_pct(total, 95), hist_pct(total, 99),
           hist_pct(total, 99.9), hist_max(total));
    printf("  status 1xx %llu 2xx %llu 3xx %llu 4xx %llu 5xx %llu other %llu; connections opened %llu "
           "(errors: connect %llu, io %llu, tls %llu, parse %llu); in flight at the end %llu\n",
           (unsigned long long) status[1], (unsigned long long) status[2],
           (unsigned long long) status[3], (unsigned long long) status[4],
           (unsigned long long) status[5], (unsigned long long) status[0],
           (unsigned long long) connects, (unsigned long long) e_conn, (unsigned long long) e_io,
           (unsigned long long) e_tls, (unsigned long long) e_parse,
           (unsigned long long) abandoned);

    if (opt.json) {
        FILE *f = fopen(opt.json, "w");
        if (!f) {
            perror(opt.json);
            return 1;
        }
        fprintf(f,
                "{\"label\":\"%s\",\"mode\":\"%s\",\"tls\":%d,\"threads\":%d,\"peak_target\":%.0f,"
                "\"duration_s\":%.3f,\"wall_s\":%.3f,\"requests\":%llu,\"ok\":%llu,\"failed\":%llu,"
                "\"non2xx\":%llu,\"socket_errors\":%llu,\"timeouts\":%llu,\"unsent\":%llu,"
                "\"success_pct\":%.6f,\"rps\":%.1f,\"peak_rps\":%.0f,\"p50_ms\":%.3f,"
                "\"p90_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
                "\"connections_opened\":%llu,\"in_flight_at_end\":%llu,"
                "\"status\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu}}\n",
                opt.label, opt.open_loop ? "open" : "closed", opt.tls, opt.threads, sched_max(),
                measured, wall, (unsigned long long) requests, (unsigned long long) ok,
                (unsigned long long) failed, (unsigned long long) non2xx,
                (unsigned long long) sockerr, (unsigned long long) timeouts,
                (unsigned long long) unsent, succ, (double) (ok + non2xx) / measured, peak,
                hist_pct(total, 50), hist_pct(total, 90), hist_pct(total, 95),
                hist_pct(total, 99), hist_pct(total, 99.9), hist_max(total),
                (unsigned long long) connects, (unsigned long long) abandoned,
                (unsigned long long) status[1], (unsigned long long) status[2],
                (unsigned long long) status[3], (unsigned long long) status[4],
                (unsigned long long) status[5]);
        fclose(f);
    }
    for (int i = 0; i < opt.threads; i++) {
        close(ths[i].ep);
        free(ths[i].conns);
        free(ths[i].queue);
        free(ths[i].buckets);
    }
    free(ths);
    free(all);
    free(total);
    free(opt.request);
    freeaddrinfo(opt.addr);
    if (opt.ssl_ctx)
        SSL_CTX_free(opt.ssl_ctx);
    return 0;
}
