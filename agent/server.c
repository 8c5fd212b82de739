/*
 * The gateway-facing side of faas-agent: the Unix and TCP listeners and the
 * connections. Each connection reads length-prefixed protobuf frames with
 * the incremental decoder of common/frame.h; every InvokeRequest is handed
 * to invoke.c at once, so many calls run concurrently per connection and
 * their answers go back in completion order (request_id matches them).
 *
 * A TCP connection must open with an AgentHello carrying the token; a good
 * hello gets no answer, a bad one an UNAUTHORIZED answer and a close.
 * Until that hello a TCP peer is not trusted with memory or time: a frame
 * over 1 KiB, or no hello within hello_timeout_ms, closes it without an
 * answer, and at most max_connections TCP connections are open at once.
 * Undecodable or oversized frames get a BAD_REQUEST answer and a close.
 * With tls_cert the TCP stream is TLS (tls.c) and the frames travel inside.
 */
#include "agent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "unpriv.h"

typedef struct write_req_s {
    uv_write_t         req;
    faas_agent_conn_t *conn;
    uint8_t           *buf;
    int                close_after;
} write_req_t;

#define MAX_QUEUED_ANSWERS (64u * 1024 * 1024)

static char read_buf[64 * 1024];

void
faas_agent_conn_ref(faas_agent_conn_t *c)
{
    c->refs++;
}

void
faas_agent_conn_unref(faas_agent_conn_t *c)
{
    if (--c->refs > 0) {
        return;
    }
    faas_frame_buf_free(&c->fb);
    faas_tls_conn_free(c->tls);
    free(c);
}

static void
on_hello_timer_closed(uv_handle_t *h)
{
    faas_agent_conn_unref(h->data);
}

static void
on_conn_closed(uv_handle_t *h)
{
    faas_agent_conn_t *c = h->data;
    faas_agent_t      *a = c->agent;

    if (c->is_tcp) {
        a->tcp_conns--;
    }

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        a->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    faas_agent_conn_unref(c);
}

static void
conn_close(faas_agent_conn_t *c)
{
    if (uv_is_closing(&c->u.h)) {
        return;
    }
    c->closing = 1;
    if (c->is_tcp && !uv_is_closing((uv_handle_t *) &c->hello_timer)) {
        uv_close((uv_handle_t *) &c->hello_timer, on_hello_timer_closed);
    }
    uv_close(&c->u.h, on_conn_closed);
}

/* Closes a connection that has not earned an answer. */
static void
conn_drop(faas_agent_conn_t *c, const char *why)
{
    faas_info(NULL, "tcp connection: %s: closing", why);
    conn_close(c);
}

static void
on_hello_timeout(uv_timer_t *t)
{
    conn_drop(t->data, "no hello in time");
}

static void
on_write(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *) req;

    if (status < 0 && status != UV_ECANCELED) {
        faas_debug(NULL, "answer write failed: %s", uv_strerror(status));
    }
    if (w->close_after || (status < 0 && status != UV_ECANCELED)) {
        conn_close(w->conn);
    }
    faas_agent_conn_unref(w->conn);
    free(w->buf);
    free(w);
}

/* Writes total bytes of buf (taken over): a direct write when the socket
 * takes them, else a queued one. With close_after the connection closes
 * once they left. */
static void
conn_write(faas_agent_conn_t *c, uint8_t *buf, size_t total, int close_after)
{
    uv_buf_t     b;
    int          n;
    write_req_t *w;

    n = 0;
    if (!close_after) {
        b = uv_buf_init((char *) buf, (unsigned) total);
        n = uv_try_write(&c->u.s, &b, 1);
        if (n == (int) total) {
            free(buf);
            return;
        }
        if (n < 0 && n != UV_EAGAIN) {
            free(buf);
            conn_close(c);
            return;
        }
        if (n < 0) {
            n = 0;
        }
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        free(buf);
        conn_close(c);
        return;
    }
    w->conn = c;
    w->buf = buf;
    w->close_after = close_after;
    faas_agent_conn_ref(c);
    b = uv_buf_init((char *) buf + n, (unsigned) (total - n));
    if (uv_write(&w->req, &c->u.s, &b, 1, on_write) < 0) {
        faas_agent_conn_unref(c);
        free(buf);
        free(w);
        conn_close(c);
        return;
    }
    if (uv_stream_get_write_queue_size(&c->u.s) > MAX_QUEUED_ANSWERS) {
        /* the peer does not read its answers */
        faas_warn(NULL, "connection: %zu bytes of answers unread: closing",
                  uv_stream_get_write_queue_size(&c->u.s));
        conn_close(c);
    }
}

/* Sends what TLS has for the peer (handshake records, encrypted answers). */
static void
conn_flush_tls(faas_agent_conn_t *c, int close_after)
{
    uint8_t *out;
    size_t   len;

    out = faas_tls_conn_take_output(c->tls, &len);
    if (out != NULL) {
        conn_write(c, out, len, close_after);
    } else if (close_after) {
        conn_close(c);
    }
}

/* Writes a whole frame, encrypted on a TLS connection. */
static void
conn_send(faas_agent_conn_t *c, const Faas__InvokeResponse *resp,
          int close_after)
{
    uint8_t *buf;
    size_t   size, total;

    size = faas__invoke_response__get_packed_size(resp);
    total = size + FAAS_FRAME_HDR;
    buf = malloc(total);
    if (buf == NULL) {
        faas_err(resp->request_id, "out of memory for an answer: closing");
        conn_close(c);
        return;
    }
    faas_frame_put_len(buf, (uint32_t) size);
    faas__invoke_response__pack(resp, buf + FAAS_FRAME_HDR);
    if (c->tls == NULL) {
        conn_write(c, buf, total, close_after);
        return;
    }
    if (faas_tls_conn_write(c->tls, buf, total) < 0) {
        free(buf);
        faas_info(resp->request_id, "tls: an answer could not be encrypted");
        conn_close(c);
        return;
    }
    free(buf);
    conn_flush_tls(c, close_after);
}

void
faas_agent_respond(faas_agent_conn_t *c, const Faas__InvokeResponse *resp)
{
    if (c->closing) {
        return;
    }
    conn_send(c, resp, 0);
}

/* Answers a protocol error and closes the connection after the answer. */
static void
conn_fail(faas_agent_conn_t *c, Faas__InvokeStatus status, const char *why)
{
    Faas__InvokeResponse resp = FAAS__INVOKE_RESPONSE__INIT;

    resp.status = status;
    resp.error = (char *) why;
    resp.sandbox_alive = 1;
    faas_info(NULL, "%s connection: %s", c->is_tcp ? "tcp" : "unix", why);
    uv_read_stop(&c->u.s);
    c->closing = 1;
    conn_send(c, &resp, 1);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void) h;
    (void) suggested;
    buf->base = read_buf;
    buf->len = sizeof(read_buf);
}

static int
handle_frame(faas_agent_conn_t *c, const uint8_t *frame, size_t len)
{
    faas_agent_t        *a = c->agent;
    Faas__AgentHello    *hello;
    Faas__InvokeRequest *req;
    int                  ok;

    if (!c->authed) {
        hello = faas__agent_hello__unpack(NULL, len, frame);
        ok = hello != NULL &&
             faas_auth_token_ok(a->token, (const uint8_t *) hello->token,
                                strlen(hello->token));
        if (hello != NULL) {
            faas__agent_hello__free_unpacked(hello, NULL);
        }
        if (!ok) {
            conn_fail(c, FAAS__INVOKE_STATUS__UNAUTHORIZED,
                      "unauthorized: the first frame must be an AgentHello "
                      "with the agent's token");
            return -1;
        }
        c->authed = 1;
        c->fb.max = a->max_frame;
        uv_timer_stop(&c->hello_timer);
        return 0;
    }
    req = faas__invoke_request__unpack(NULL, len, frame);
    if (req == NULL) {
        conn_fail(c, FAAS__INVOKE_STATUS__BAD_REQUEST,
                  "bad request: frame is not an InvokeRequest");
        return -1;
    }
    faas_invoke_start(a, c, req);
    return 0;
}

/* Decodes and handles the frames in n more bytes of the gateway's stream. */
static void
conn_input(faas_agent_conn_t *c, const void *data, size_t n)
{
    faas_error_t   err;
    const uint8_t *frame;
    size_t         len;
    int            ret;
    char           why[FAAS_ERROR_MAX + 32];

    if (faas_frame_buf_append(&c->fb, data, n, &err) < 0) {
        conn_fail(c, FAAS__INVOKE_STATUS__BAD_REQUEST, err.msg);
        return;
    }
    while (!c->closing) {
        ret = faas_frame_buf_next(&c->fb, &frame, &len, &err);
        if (ret == 0) {
            break;
        }
        if (ret < 0 && !c->authed) {
            conn_drop(c, err.msg);
            break;
        }
        if (ret < 0) {
            snprintf(why, sizeof(why), "bad request: %s", err.msg);
            conn_fail(c, FAAS__INVOKE_STATUS__BAD_REQUEST, why);
            break;
        }
        if (handle_frame(c, frame, len) < 0) {
            break;
        }
    }
}

/* Decrypts n bytes from the socket and handles what they carried. */
static void
conn_input_tls(faas_agent_conn_t *c, const void *data, size_t n)
{
    static char  plain[16 * 1024];
    faas_error_t err;
    ssize_t      got;

    faas_error_clear(&err);
    if (faas_tls_conn_feed(c->tls, data, n) < 0) {
        conn_drop(c, "tls: out of memory");
        return;
    }
    while (!c->closing) {
        got = faas_tls_conn_read(c->tls, plain, sizeof(plain), &err);
        if (got == 0) {
            conn_flush_tls(c, 0);
            return;
        }
        if (got < 0) {
            faas_info(NULL, "tcp connection: %s: closing", err.msg);
            conn_flush_tls(c, 1); /* the alert, if any */
            return;
        }
        conn_input(c, plain, (size_t) got);
    }
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    faas_agent_conn_t *c = s->data;

    if (nread < 0) {
        if (nread != UV_EOF) {
            faas_debug(NULL, "connection read: %s", uv_strerror((int) nread));
        }
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closing) {
        return;
    }
    faas_agent_conn_ref(c);
    if (c->tls != NULL) {
        conn_input_tls(c, buf->base, (size_t) nread);
    } else {
        conn_input(c, buf->base, (size_t) nread);
    }
    faas_agent_conn_unref(c);
}

static void
on_refused_closed(uv_handle_t *h)
{
    free(h);
}

/* Accepts and closes at once a TCP connection over max_connections; logs
 * once a second at most, with how many were refused since the last log. */
static void
refuse_connection(uv_stream_t *server)
{
    faas_agent_t *a = server->data;
    uv_tcp_t     *t;
    uint64_t      now;

    t = malloc(sizeof(*t));
    if (t == NULL) {
        return;
    }
    uv_tcp_init(a->loop, t);
    (void) uv_accept(server, (uv_stream_t *) t);
    uv_close((uv_handle_t *) t, on_refused_closed);
    a->refused_conns++;
    now = uv_now(a->loop);
    if (a->refusal_logged_at == 0 || now - a->refusal_logged_at >= 1000) {
        faas_warn(NULL,
                  "tcp: %zu connections open (max_connections): "
                  "%llu refused", a->tcp_conns,
                  (unsigned long long) a->refused_conns);
        a->refused_conns = 0;
        a->refusal_logged_at = now;
    }
}

/* A TCP connection gets hello_timeout_ms to say hello; the timer holds a
 * reference on the connection until it is closed. */
static void
start_hello_timer(faas_agent_conn_t *c)
{
    uv_timer_init(c->agent->loop, &c->hello_timer);
    c->hello_timer.data = c;
    faas_agent_conn_ref(c);
    uv_timer_start(&c->hello_timer, on_hello_timeout,
                   c->agent->hello_timeout_ms, 0);
}

static void
on_connection(uv_stream_t *server, int status)
{
    faas_agent_t      *a = server->data;
    faas_agent_conn_t *c;
    int                is_tcp = server->type == UV_TCP;
    int                ret;

    if (status < 0) {
        faas_warn(NULL, "accept: %s", uv_strerror(status));
        return;
    }
    if (is_tcp && a->tcp_conns >= a->max_connections) {
        refuse_connection(server);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        faas_err(NULL, "accept: out of memory");
        return;
    }
    c->agent = a;
    c->is_tcp = is_tcp;
    c->authed = !is_tcp;
    c->refs = 1;
    faas_frame_buf_init(&c->fb,
                        is_tcp ? FAAS_AGENT_HELLO_MAX_FRAME : a->max_frame);
    if (is_tcp) {
        uv_tcp_init(a->loop, &c->u.tcp);
        start_hello_timer(c);
        a->tcp_conns++;
    } else {
        uv_pipe_init(a->loop, &c->u.pipe, 0);
    }
    c->u.h.data = c;
    c->next = a->conns;
    if (a->conns != NULL) {
        a->conns->prev = c;
    }
    a->conns = c;
    ret = uv_accept(server, &c->u.s);
    if (ret < 0) {
        faas_warn(NULL, "accept: %s", uv_strerror(ret));
        conn_close(c);
        return;
    }
    if (is_tcp && a->tls != NULL) {
        c->tls = faas_tls_conn_new(a->tls);
        if (c->tls == NULL) {
            faas_err(NULL, "accept: out of memory for TLS");
            conn_close(c);
            return;
        }
    }
    if (is_tcp) {
        uv_tcp_nodelay(&c->u.tcp, 1);
        uv_tcp_keepalive(&c->u.tcp, 1, 60);
    }
    ret = uv_read_start(&c->u.s, on_alloc, on_read);
    if (ret < 0) {
        conn_close(c);
    }
}

static int
parse_hostport(const char *spec, struct sockaddr_storage *ss, faas_error_t *err)
{
    char        host[256];
    const char *colon;
    long        port;
    char       *end;
    size_t      hlen;

    colon = strrchr(spec, ':');
    if (colon == NULL) {
        return faas_error_set(err, 0, "tcp_listen %s: expected host:port",
                              spec);
    }
    hlen = (size_t) (colon - spec);
    if (hlen >= sizeof(host)) {
        return faas_error_set(err, 0, "tcp_listen %s: host too long", spec);
    }
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) {
        return faas_error_set(err, 0, "tcp_listen %s: bad port", spec);
    }
    if (host[0] == '\0') {
        snprintf(host, sizeof(host), "0.0.0.0");
    }
    if (uv_ip4_addr(host, (int) port, (struct sockaddr_in *) ss) == 0) {
        return 0;
    }
    if (uv_ip6_addr(host, (int) port, (struct sockaddr_in6 *) ss) == 0) {
        return 0;
    }
    return faas_error_set(err, 0, "tcp_listen %s: host must be an IP address",
                          spec);
}

/*
 * Binds and listens on the Unix socket (a stale file from a killed agent is
 * replaced; mode 0660) and, if configured, on TCP. Returns 0 or <0 with err.
 */
int
faas_agent_server_start(faas_agent_t *a, faas_error_t *err)
{
    struct sockaddr_storage ss;
    struct stat             st;
    int                     ret;

    if (a->socket_path != NULL) {
        if (lstat(a->socket_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            unlink(a->socket_path);
        }
        uv_pipe_init(a->loop, &a->unix_listener, 0);
        a->unix_listener.data = a;
        a->have_unix = 1;
        ret = uv_pipe_bind(&a->unix_listener, a->socket_path);
        if (ret < 0) {
            return faas_error_set(err, -ret, "bind %s", a->socket_path);
        }
        if (chmod(a->socket_path, 0660) < 0) {
            return faas_error_set(err, errno, "chmod %s", a->socket_path);
        }
        /* nginx's workers reach the socket through this group */
        if (faas_unpriv_socket_group(a->socket_path,
                                     faas_config_string(a->cfg,
                                                        "socket_group", NULL),
                                     err) < 0) {
            return faas_error_wrap(err, "socket_group");
        }
        ret = uv_listen((uv_stream_t *) &a->unix_listener, 1024, on_connection);
        if (ret < 0) {
            return faas_error_set(err, -ret, "listen %s", a->socket_path);
        }
        faas_info(NULL, "listening on unix:%s", a->socket_path);
    }
    if (a->tcp_listen != NULL) {
        ret = parse_hostport(a->tcp_listen, &ss, err);
        if (ret < 0) {
            return ret;
        }
        uv_tcp_init(a->loop, &a->tcp_listener);
        a->tcp_listener.data = a;
        a->have_tcp = 1;
        ret = uv_tcp_bind(&a->tcp_listener, (struct sockaddr *) &ss, 0);
        if (ret == 0) {
            ret = uv_listen((uv_stream_t *) &a->tcp_listener, 1024,
                            on_connection);
        }
        if (ret < 0) {
            return faas_error_set(err, -ret, "listen tcp %s", a->tcp_listen);
        }
        faas_info(NULL, "listening on tcp:%s", a->tcp_listen);
    }
    return 0;
}

/* Closes the listeners (no new connections); existing ones stay open. */
void
faas_agent_server_stop(faas_agent_t *a)
{
    if (a->have_unix && !uv_is_closing((uv_handle_t *) &a->unix_listener)) {
        uv_close((uv_handle_t *) &a->unix_listener, NULL);
        if (a->socket_path != NULL) {
            unlink(a->socket_path);
        }
    }
    if (a->have_tcp && !uv_is_closing((uv_handle_t *) &a->tcp_listener)) {
        uv_close((uv_handle_t *) &a->tcp_listener, NULL);
    }
}

/* Closes every gateway connection (at exit, once calls are done). */
void
faas_agent_server_close_conns(faas_agent_t *a)
{
    faas_agent_conn_t *c, *next;

    for (c = a->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
}
