/*
 * The agent client: one InvokeRequest frame out, one InvokeResponse frame
 * back (4-byte big-endian length + protobuf), over a Unix or TCP
 * connection. Connections are kept alive in a per-worker pool per endpoint;
 * a new TCP connection starts with an AgentHello frame carrying
 * faas_agent_token. The wait has a (non-cancelable) timer: the function's
 * deadline plus a grace period, so `nginx -s reload` lets calls finish.
 *
 * "dispatched" tells the caller whether the whole request frame was
 * written: a failure before that ran nothing and may be retried on another
 * sandbox; a failure after it never is. "unreachable" (a failure before
 * dispatch) tells it that the agent itself could not be reached (connect
 * refused, no socket file, or a kept-alive connection found closed before a
 * byte of the call was written): the agent is down or restarting, and the
 * sandbox is probably fine.
 *
 * With faas_agent_tls on, TCP connections speak TLS (nginx's ngx_ssl client,
 * as ngx_http_upstream does): the handshake comes before the AgentHello and,
 * with faas_agent_tls_verify on, the agent's certificate must chain to
 * faas_agent_tls_trusted_certificate and name the endpoint's address.
 */
#include <sys/stat.h>

#include "ngx_http_faas_module.h"

#include <sys/un.h>

#include "frame.h"
#include "record.h"


/*
 * An answer frame may exceed faas_max_response_body by this much (the
 * headers and the other fields): a body over the cap but within it is
 * unpacked and refused (ngx_http_faas_answer_refused); a larger frame is
 * read and dropped as it comes (NGX_HTTP_FAAS_AGENT_TOO_LARGE), so the
 * connection stays usable and nothing that large is kept.
 */
#define NGX_HTTP_FAAS_AGENT_FRAME_SLACK  (1024 * 1024)
#define NGX_HTTP_FAAS_AGENT_MAX_IDLE   64


typedef struct {
    ngx_queue_t                queue;          /* all endpoint pools */
    ngx_queue_t                idle;
    ngx_uint_t                 nidle;
    size_t                     len;
    u_char                     endpoint[FAAS_ENDPOINT_MAX + 1];
} ngx_http_faas_apool_t;


typedef struct {
    ngx_queue_t                queue;
    ngx_connection_t          *c;
    ngx_http_faas_apool_t     *pool;
} ngx_http_faas_aidle_t;


struct ngx_http_faas_agent_s {
    ngx_http_faas_call_t      *call;
    ngx_connection_t          *c;
    ngx_http_faas_apool_t     *pool;
    ngx_http_faas_agent_pt     handler;
    ngx_event_t                timer;
    u_char                    *out;            /* all but the event */
    ngx_chain_t               *out_chain;      /* what is left to write */
    ngx_chain_t                out_links[3];
    ngx_buf_t                  out_bufs[3];
    u_char                     hdr[FAAS_FRAME_HDR];
    size_t                     hdr_got;
    u_char                    *in;
    size_t                     in_len;
    size_t                     in_got;
    unsigned                   connecting:1;
    unsigned                   dispatched:1;
    unsigned                   reused:1;       /* a kept-alive connection */
    unsigned                   unreachable:1;
    unsigned                   discard:1;      /* an answer too large */
    unsigned                   tls_pending:1;  /* handshake not done yet */
    unsigned                   refused:1;      /* we refused the agent */
};


static ngx_connection_t *ngx_http_faas_agent_connect(
    ngx_http_faas_agent_t *a, faas_entry_t *e, ngx_uint_t *connecting);
static void ngx_http_faas_agent_write(ngx_event_t *wev);
static void ngx_http_faas_agent_read(ngx_event_t *rev);
static void ngx_http_faas_agent_timeout(ngx_event_t *ev);
static void ngx_http_faas_agent_finish(ngx_http_faas_agent_t *a,
    Faas__InvokeResponse *resp, const char *error);
static void ngx_http_faas_agent_idle_handler(ngx_event_t *ev);
static void ngx_http_faas_agent_dummy(ngx_event_t *ev);
static void ngx_http_faas_agent_close(ngx_connection_t *c);
#if (NGX_SSL)
static void ngx_http_faas_agent_tls_start(ngx_http_faas_agent_t *a);
static void ngx_http_faas_agent_tls_done(ngx_connection_t *c);
#endif


static ngx_queue_t  ngx_http_faas_apools;
static ngx_uint_t   ngx_http_faas_apools_ready;


static ngx_http_faas_apool_t *
ngx_http_faas_agent_pool(faas_entry_t *e)
{
    size_t                  len;
    ngx_queue_t            *q;
    ngx_http_faas_apool_t  *p;

    if (!ngx_http_faas_apools_ready) {
        ngx_queue_init(&ngx_http_faas_apools);
        ngx_http_faas_apools_ready = 1;
    }

    len = ngx_strlen(e->endpoint);

    for (q = ngx_queue_head(&ngx_http_faas_apools);
         q != ngx_queue_sentinel(&ngx_http_faas_apools);
         q = ngx_queue_next(q))
    {
        p = ngx_queue_data(q, ngx_http_faas_apool_t, queue);
        if (p->len == len && ngx_memcmp(p->endpoint, e->endpoint, len) == 0) {
            return p;
        }
    }

    p = ngx_calloc(sizeof(ngx_http_faas_apool_t), ngx_cycle->log);
    if (p == NULL) {
        return NULL;
    }

    ngx_queue_init(&p->idle);
    p->len = len;
    ngx_memcpy(p->endpoint, e->endpoint, len + 1);
    ngx_queue_insert_tail(&ngx_http_faas_apools, &p->queue);

    return p;
}


/*
 * The frame is written from where its parts already are: the request
 * frame's own bytes (the AgentHello frame first on a new TCP connection,
 * the length, the InvokeRequest's fields) are packed into a->out, and the
 * event, the bulk of it, is sent from the call's pool where it was built
 * (a chain of three buffers: one writev). protobuf-c's pack_to_buffer()
 * hands over a bytes field's data as its own piece: that piece is linked,
 * not copied, so the bytes on the wire are those of a plain pack().
 */
typedef struct {
    ProtobufCBuffer         base;
    ngx_http_faas_agent_t  *a;
    const uint8_t          *event;
    size_t                  event_len;
    u_char                 *p;              /* next free byte of a->out */
    ngx_uint_t              nbufs;
} ngx_http_faas_agent_packer_t;


static void
ngx_http_faas_agent_buf(ngx_http_faas_agent_t *a, ngx_uint_t i,
    u_char *start, u_char *end)
{
    ngx_buf_t  *b = &a->out_bufs[i];

    ngx_memzero(b, sizeof(ngx_buf_t));
    b->start = b->pos = start;
    b->end = b->last = end;
    b->memory = 1;

    a->out_links[i].buf = b;
    a->out_links[i].next = NULL;
    if (i > 0) {
        a->out_links[i - 1].next = &a->out_links[i];
    }
}


static void
ngx_http_faas_agent_append(ProtobufCBuffer *buffer, size_t len,
    const uint8_t *data)
{
    ngx_http_faas_agent_packer_t  *pk = (ngx_http_faas_agent_packer_t *) buffer;
    ngx_http_faas_agent_t         *a = pk->a;

    if (data == pk->event && len == pk->event_len && pk->nbufs == 1) {
        /* the packed bytes so far, then the event where it is */
        ngx_http_faas_agent_buf(a, 0, a->out, pk->p);
        ngx_http_faas_agent_buf(a, 1, (u_char *) data, (u_char *) data + len);
        pk->nbufs = 2;
        return;
    }

    pk->p = ngx_cpymem(pk->p, data, len);
}


/* a->out and a->out_chain: [AgentHello frame] InvokeRequest frame. */
static ngx_int_t
ngx_http_faas_agent_frame(ngx_http_faas_agent_t *a, Faas__InvokeRequest *m,
    Faas__AgentHello *hello)
{
    size_t                         hlen, mlen;
    u_char                        *head;
    ngx_http_faas_agent_packer_t   pk;

    hlen = hello ? FAAS_FRAME_HDR + faas__agent_hello__get_packed_size(hello)
                 : 0;
    mlen = faas__invoke_request__get_packed_size(m);
    if (mlen > 0xffffffffu - FAAS_FRAME_HDR) {
        return NGX_ERROR;
    }

    a->out = ngx_alloc(hlen + FAAS_FRAME_HDR + mlen - m->event.len,
                       a->call->log);
    if (a->out == NULL) {
        return NGX_ERROR;
    }

    head = a->out;
    if (hello) {
        faas_frame_put_len(head, (uint32_t) (hlen - FAAS_FRAME_HDR));
        faas__agent_hello__pack(hello, head + FAAS_FRAME_HDR);
        head += hlen;
    }
    faas_frame_put_len(head, (uint32_t) mlen);

    ngx_memzero(&pk, sizeof(ngx_http_faas_agent_packer_t));
    pk.base.append = ngx_http_faas_agent_append;
    pk.a = a;
    pk.event = m->event.data;
    pk.event_len = m->event.len;
    pk.p = head + FAAS_FRAME_HDR;
    pk.nbufs = 1;

    faas__invoke_request__pack_to_buffer(m, &pk.base);

    if (pk.nbufs == 1) {
        /* no event (an empty one is not packed): one buffer */
        ngx_http_faas_agent_buf(a, 0, a->out, pk.p);

    } else if (pk.p > a->out_bufs[0].last) {
        /* the fields after the event */
        ngx_http_faas_agent_buf(a, 2, a->out_bufs[0].last, pk.p);
    }

    a->out_chain = &a->out_links[0];

    return NGX_OK;
}


/* Not a byte of the request written yet (the first buffer is never empty). */
static ngx_uint_t
ngx_http_faas_agent_unsent(ngx_http_faas_agent_t *a)
{
    return a->out_bufs[0].pos == a->out_bufs[0].start;
}


ngx_int_t
ngx_http_faas_agent_invoke(ngx_http_faas_call_t *call,
    Faas__InvokeRequest *m, ngx_msec_t timeout,
    ngx_http_faas_agent_pt handler)
{
    ngx_uint_t              connecting;
    ngx_queue_t            *q;
    ngx_connection_t       *c;
    ngx_http_faas_agent_t  *a;
    ngx_http_faas_aidle_t  *idle;
    Faas__AgentHello        hello = FAAS__AGENT_HELLO__INIT, *hp;

    a = ngx_calloc(sizeof(ngx_http_faas_agent_t), call->log);
    if (a == NULL) {
        return NGX_ERROR;
    }

    a->call = call;
    a->handler = handler;
    a->pool = ngx_http_faas_agent_pool(&call->entry);
    if (a->pool == NULL) {
        ngx_free(a);
        return NGX_ERROR;
    }

    c = NULL;
    connecting = 0;

    if (!ngx_queue_empty(&a->pool->idle)) {
        q = ngx_queue_head(&a->pool->idle);
        ngx_queue_remove(q);
        a->pool->nidle--;
        idle = ngx_queue_data(q, ngx_http_faas_aidle_t, queue);
        c = idle->c;
        ngx_free(idle);

        c->idle = 0;
        c->log = call->log;
        c->read->log = call->log;
        c->write->log = call->log;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        a->reused = 1;
        hp = NULL;

    } else {
        c = ngx_http_faas_agent_connect(a, &call->entry, &connecting);
        if (c == NULL) {
            connecting = a->unreachable;
            ngx_free(a);
            /* NGX_DECLINED: the agent is not there; NGX_ABORT: bad entry */
            return connecting ? NGX_DECLINED : NGX_ABORT;
        }

        hp = NULL;
        if (call->entry.type == FAAS_ENDPOINT_TCP) {
            hello.token = (char *) (call->fmcf->agent_token.data
                                    ? (char *) call->fmcf->agent_token.data
                                    : "");
            hp = &hello;
        }
    }

    if (ngx_http_faas_agent_frame(a, m, hp) != NGX_OK) {
        ngx_http_faas_agent_close(c);
        ngx_free(a);
        return NGX_ERROR;
    }

    a->c = c;
    a->connecting = connecting;
    a->tls_pending = (!a->reused && call->entry.type == FAAS_ENDPOINT_TCP
                      && call->fmcf->agent_tls);

    c->data = a;
    c->read->handler = ngx_http_faas_agent_read;
    c->write->handler = ngx_http_faas_agent_write;

    a->timer.handler = ngx_http_faas_agent_timeout;
    a->timer.data = a;
    a->timer.log = call->log;
    ngx_add_timer(&a->timer, timeout);

    if (!connecting) {
        ngx_http_faas_agent_write(c->write);
    }

    return NGX_OK;
}


static ngx_connection_t *
ngx_http_faas_agent_connect(ngx_http_faas_agent_t *a, faas_entry_t *e,
    ngx_uint_t *connecting)
{
    ngx_int_t                rc;
    ngx_str_t                host;
    ngx_addr_t               addr;
    ngx_file_info_t          fi;
    struct sockaddr_un      *sun;
    ngx_peer_connection_t    pc;
    ngx_http_faas_call_t    *call = a->call;

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));

    if (e->type == FAAS_ENDPOINT_UNIX) {
        sun = ngx_pcalloc(call->pool, sizeof(struct sockaddr_un));
        if (sun == NULL) {
            return NULL;
        }

        sun->sun_family = AF_UNIX;
        ngx_cpystrn((u_char *) sun->sun_path, (u_char *) e->path,
                    sizeof(sun->sun_path));

        /* an agent that stops removes its socket file: no connect() then */
        if (ngx_file_info(sun->sun_path, &fi) == NGX_FILE_ERROR
            && ngx_errno == NGX_ENOENT)
        {
            ngx_log_error(NGX_LOG_INFO, call->log, 0,
                          "faas: %s: agent %s is not listening (no socket)",
                          call->request_id, e->endpoint);
            a->unreachable = 1;
            return NULL;
        }

        pc.sockaddr = (struct sockaddr *) sun;
        pc.socklen = sizeof(struct sockaddr_un);

    } else {
        host.data = (u_char *) e->host;
        host.len = ngx_strlen(e->host);

        if (ngx_parse_addr(call->pool, &addr, host.data, host.len)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, call->log, 0,
                          "faas: agent host \"%s\" is not an IP address",
                          e->host);
            return NULL;
        }

        ngx_inet_set_port(addr.sockaddr, (in_port_t) e->port);
        pc.sockaddr = addr.sockaddr;
        pc.socklen = addr.socklen;
    }

    pc.get = ngx_event_get_peer;
    pc.log = call->log;
    pc.log_error = NGX_ERROR_ERR;

    {
        static ngx_str_t  agent_name = ngx_string("faas-agent");
        pc.name = &agent_name;
    }

    rc = ngx_event_connect_peer(&pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc.connection) {
            ngx_close_connection(pc.connection);
        }

        ngx_log_error(NGX_LOG_INFO, call->log, 0,
                      "faas: %s: cannot connect to agent %s",
                      call->request_id, e->endpoint);
        a->unreachable = (rc == NGX_DECLINED);
        return NULL;
    }

    *connecting = (rc == NGX_AGAIN);

    pc.connection->pool = NULL;

    return pc.connection;
}


static void
ngx_http_faas_agent_write(ngx_event_t *wev)
{
    int                     err;
    socklen_t               len;
    ngx_chain_t            *cl;
    ngx_connection_t       *c = wev->data;
    ngx_http_faas_agent_t  *a = c->data;

    if (a->connecting) {
        a->connecting = 0;
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_log_error(NGX_LOG_INFO, c->log, err,
                          "faas: %s: connect to agent %s failed",
                          a->call->request_id, a->call->entry.endpoint);
            a->unreachable = 1;
            ngx_http_faas_agent_finish(a, NULL, "agent unreachable");
            return;
        }
    }

    if (a->tls_pending) {
#if (NGX_SSL)
        ngx_http_faas_agent_tls_start(a);
#else
        ngx_http_faas_agent_finish(a, NULL, "nginx without TLS");
#endif
        return;
    }

    if (a->out_chain) {
        cl = c->send_chain(c, a->out_chain, 0);

        if (cl == NGX_CHAIN_ERROR) {
            if (a->reused && ngx_http_faas_agent_unsent(a)) {
                /* the agent closed the kept-alive connection meanwhile */
                a->unreachable = 1;
            }
            ngx_http_faas_agent_finish(a, NULL, "agent write failed");
            return;
        }

        a->out_chain = cl;

        if (cl) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_faas_agent_finish(a, NULL, "agent write failed");
            }
            return;
        }
    }

    if (!a->dispatched) {
        a->dispatched = 1;
        c->write->handler = ngx_http_faas_agent_dummy;
        ngx_http_faas_agent_read(c->read);
    }
}


static void
ngx_http_faas_agent_read(ngx_event_t *rev)
{
    u_char                  scratch[16384];
    ssize_t                 n;
    ngx_connection_t       *c = rev->data;
    ngx_http_faas_agent_t  *a = c->data;
    Faas__InvokeResponse   *resp;

    if (!a->dispatched) {
        /* an early answer or EOF: the write handler will see it */
        if (a->connecting) {
            return;
        }
    }

    while (a->hdr_got < FAAS_FRAME_HDR) {
        n = c->recv(c, a->hdr + a->hdr_got, FAAS_FRAME_HDR - a->hdr_got);

        if (n == NGX_AGAIN) {
            goto again;
        }

        if (n == NGX_ERROR || n == 0) {
            goto closed;
        }

        a->hdr_got += n;

        if (a->hdr_got == FAAS_FRAME_HDR) {
            a->in_len = faas_frame_get_len(a->hdr);

            if (a->in_len > a->call->flcf->max_response_body
                            + NGX_HTTP_FAAS_AGENT_FRAME_SLACK)
            {
                ngx_log_error(NGX_LOG_ERR, c->log, 0,
                              "faas: %s: function %V answered %uz bytes, "
                              "more than faas_max_response_body %uz: 502",
                              a->call->request_id, &a->call->fn->name,
                              a->in_len, a->call->flcf->max_response_body);
                a->discard = 1;
                break;
            }

            a->in = ngx_alloc(a->in_len ? a->in_len : 1, c->log);
            if (a->in == NULL) {
                ngx_http_faas_agent_finish(a, NULL, "out of memory");
                return;
            }
        }
    }

    while (a->in_got < a->in_len) {
        if (a->discard) {
            n = c->recv(c, scratch,
                        ngx_min(sizeof(scratch), a->in_len - a->in_got));

        } else {
            n = c->recv(c, a->in + a->in_got, a->in_len - a->in_got);
        }

        if (n == NGX_AGAIN) {
            goto again;
        }

        if (n == NGX_ERROR || n == 0) {
            goto closed;
        }

        a->in_got += n;
    }

    if (a->discard) {
        ngx_http_faas_agent_finish(a, NULL, "function response too large");
        return;
    }

    /* the one copy of the body, into the call's pool */
    resp = ngx_http_faas_answer_unpack(a->call, a->in, a->in_len);
    if (resp == NULL) {
        ngx_http_faas_agent_finish(a, NULL, "malformed agent answer");
        return;
    }

    ngx_http_faas_agent_finish(a, resp, NULL);
    return;

again:

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_faas_agent_finish(a, NULL, "agent read failed");
    }

    return;

closed:

    if (!a->dispatched && a->reused && ngx_http_faas_agent_unsent(a)) {
        a->unreachable = 1;
    }

    ngx_http_faas_agent_finish(a, NULL, a->dispatched
                                        ? "agent connection lost"
                                        : "agent closed the connection");
}


static void
ngx_http_faas_agent_timeout(ngx_event_t *ev)
{
    ngx_http_faas_agent_t  *a = ev->data;

    ngx_log_error(NGX_LOG_ERR, a->call->log, 0,
                  "faas: %s: agent %s did not answer in time",
                  a->call->request_id, a->call->entry.endpoint);

    ngx_http_faas_agent_finish(a, NULL, "agent timed out");
}


static void
ngx_http_faas_agent_keep(ngx_http_faas_agent_t *a)
{
    int                     n;
    char                    buf[1];
    ngx_connection_t       *c = a->c;
    ngx_http_faas_aidle_t  *idle;

    if (ngx_terminate || ngx_exiting
        || a->pool->nidle >= NGX_HTTP_FAAS_AGENT_MAX_IDLE)
    {
        ngx_http_faas_agent_close(c);
        return;
    }

    /* nothing more may be pending: the agent sends one frame per call */
    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n != -1 || ngx_socket_errno != NGX_EAGAIN) {
        ngx_http_faas_agent_close(c);
        return;
    }

    c->read->ready = 0;

    idle = ngx_alloc(sizeof(ngx_http_faas_aidle_t), ngx_cycle->log);
    if (idle == NULL) {
        ngx_http_faas_agent_close(c);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_free(idle);
        ngx_http_faas_agent_close(c);
        return;
    }

    idle->c = c;
    idle->pool = a->pool;
    ngx_queue_insert_head(&a->pool->idle, &idle->queue);
    a->pool->nidle++;

    c->data = idle;
    c->idle = 1;
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->read->handler = ngx_http_faas_agent_idle_handler;
    c->write->handler = ngx_http_faas_agent_dummy;
}


static void
ngx_http_faas_agent_finish(ngx_http_faas_agent_t *a,
    Faas__InvokeResponse *resp, const char *error)
{
    ngx_uint_t                     dispatched, whole;
    ngx_http_faas_call_t          *call;
    ngx_http_faas_agent_failure_e  failure;

    if (a->timer.timer_set) {
        ngx_del_timer(&a->timer);
    }

    /* a whole frame was read: the connection can serve another call
     * (unless the gateway refused the agent's certificate) */
    whole = resp != NULL || (a->discard && a->in_got == a->in_len);

    if (whole && !a->refused) {
        ngx_http_faas_agent_keep(a);

    } else {
        ngx_http_faas_agent_close(a->c);
    }

    call = a->call;
    dispatched = a->dispatched;

    failure = NGX_HTTP_FAAS_AGENT_FAILED;

    if (resp == NULL && !dispatched && a->unreachable) {
        failure = NGX_HTTP_FAAS_AGENT_UNREACHABLE;

    } else if (resp == NULL && whole) {
        failure = NGX_HTTP_FAAS_AGENT_TOO_LARGE;
    }

    ngx_free(a->out);
    ngx_free(a->in);

    a->handler(call, resp, dispatched, failure, error);

    ngx_free(a);
}


static void
ngx_http_faas_agent_idle_handler(ngx_event_t *ev)
{
    int                     n;
    char                    buf[1];
    ngx_connection_t       *c = ev->data;
    ngx_http_faas_aidle_t  *idle = c->data;

    if (!c->close && !ev->timedout) {
        n = recv(c->fd, buf, 1, MSG_PEEK);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            ev->ready = 0;

            if (ngx_handle_read_event(c->read, 0) == NGX_OK) {
                return;
            }
        }
    }

    ngx_queue_remove(&idle->queue);
    idle->pool->nidle--;
    ngx_free(idle);
    ngx_http_faas_agent_close(c);
}


static void
ngx_http_faas_agent_dummy(ngx_event_t *ev)
{
}


/* Closes an agent connection, freeing its TLS state and pool if it has one
 * (no close_notify: the agent needs none, and nothing waits for it). */
static void
ngx_http_faas_agent_close(ngx_connection_t *c)
{
    ngx_pool_t  *pool = c->pool;

#if (NGX_SSL)
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    ngx_close_connection(c);

    if (pool) {
        ngx_destroy_pool(pool);
    }
}


#if (NGX_SSL)

static void
ngx_http_faas_agent_tls_start(ngx_http_faas_agent_t *a)
{
    ngx_int_t          rc;
    ngx_connection_t  *c = a->c;

    c->pool = ngx_create_pool(512, ngx_cycle->log);
    if (c->pool == NULL
        || ngx_ssl_create_connection(a->call->fmcf->agent_ssl, c,
                                     NGX_SSL_CLIENT)
           != NGX_OK)
    {
        ngx_http_faas_agent_finish(a, NULL, "agent TLS setup failed");
        return;
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_http_faas_agent_tls_done;
        return;
    }

    ngx_http_faas_agent_tls_done(c);
}


/*
 * The gateway refuses an agent whose certificate does not verify as an
 * agent refuses a wrong token: an UNAUTHORIZED answer before anything ran,
 * so the call is answered 502 and the sandbox's entry is kept (the sandbox
 * is fine, the agent's identity is not).
 */
static void
ngx_http_faas_agent_refuse(ngx_http_faas_agent_t *a, const char *why)
{
    size_t                 len;
    u_char                *buf;
    Faas__InvokeResponse   refusal = FAAS__INVOKE_RESPONSE__INIT;
    Faas__InvokeResponse  *resp;

    refusal.request_id = (char *) a->call->request_id;
    refusal.status = FAAS__INVOKE_STATUS__UNAUTHORIZED;
    refusal.error = (char *) why;
    refusal.sandbox_alive = 1;

    len = faas__invoke_response__get_packed_size(&refusal);

    buf = ngx_alloc(len, a->call->log);
    if (buf == NULL) {
        ngx_http_faas_agent_finish(a, NULL, why);
        return;
    }

    /* unpacked like an agent's answer, into the call's pool */
    faas__invoke_response__pack(&refusal, buf);
    resp = ngx_http_faas_answer_unpack(a->call, buf, len);
    ngx_free(buf);

    a->refused = 1;
    ngx_http_faas_agent_finish(a, resp, resp ? NULL : why);
}


/* Agent endpoints are IP addresses: the certificate must carry it as an
 * IP subjectAltName (ngx_ssl_check_host matches DNS names only). */
static ngx_int_t
ngx_http_faas_agent_tls_names(ngx_connection_t *c, const char *ip)
{
    int    rc;
    X509  *cert;

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_ERROR;
    }

    rc = X509_check_ip_asc(cert, ip, 0);
    X509_free(cert);

    return rc == 1 ? NGX_OK : NGX_ERROR;
}


/* The handshake ended: check the agent's certificate, then send the hello
 * and the call. */
static void
ngx_http_faas_agent_tls_done(ngx_connection_t *c)
{
    long                    rc;
    ngx_http_faas_agent_t  *a = c->data;

    if (!c->ssl->handshaked) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "faas: %s: TLS handshake with agent %s failed",
                      a->call->request_id, a->call->entry.endpoint);
        ngx_http_faas_agent_finish(a, NULL, "agent TLS handshake failed");
        return;
    }

    if (a->call->fmcf->agent_tls_verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "faas: %s: agent %s certificate does not verify: "
                          "(%l:%s)", a->call->request_id,
                          a->call->entry.endpoint, rc,
                          X509_verify_cert_error_string(rc));
            ngx_http_faas_agent_refuse(a, "agent certificate does not verify");
            return;
        }

        if (ngx_http_faas_agent_tls_names(c, a->call->entry.host) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "faas: %s: agent certificate does not name %s",
                          a->call->request_id, a->call->entry.host);
            ngx_http_faas_agent_refuse(a, "agent certificate does not verify");
            return;
        }
    }

    a->tls_pending = 0;
    c->read->handler = ngx_http_faas_agent_read;
    c->write->handler = ngx_http_faas_agent_write;

    ngx_http_faas_agent_write(c->write);
}


/* faas_agent_tls on: the client context, made once at configuration. */
char *
ngx_http_faas_agent_tls_init(ngx_conf_t *cf, ngx_http_faas_main_conf_t *fmcf)
{
    ngx_pool_cleanup_t  *cln;

    fmcf->agent_ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (fmcf->agent_ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    fmcf->agent_ssl->log = cf->log;

    if (ngx_ssl_create(fmcf->agent_ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3,
                       NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(fmcf->agent_ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = fmcf->agent_ssl;

    if (fmcf->agent_tls_certificate.len
        && ngx_ssl_certificate(cf, fmcf->agent_ssl,
                               &fmcf->agent_tls_certificate,
                               &fmcf->agent_tls_certificate_key, NULL)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!fmcf->agent_tls_verify) {
        return NGX_CONF_OK;
    }

    if (fmcf->agent_tls_trusted_certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"faas_agent_tls_verify\" is on but "
                           "\"faas_agent_tls_trusted_certificate\" is not set");
        return NGX_CONF_ERROR;
    }

    if (ngx_ssl_trusted_certificate(cf, fmcf->agent_ssl,
                                    &fmcf->agent_tls_trusted_certificate, 1)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}

#endif


void
ngx_http_faas_agent_exit_process(void)
{
    ngx_queue_t            *q, *iq;
    ngx_http_faas_apool_t  *p;
    ngx_http_faas_aidle_t  *idle;

    if (!ngx_http_faas_apools_ready) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_faas_apools)) {
        q = ngx_queue_head(&ngx_http_faas_apools);
        ngx_queue_remove(q);
        p = ngx_queue_data(q, ngx_http_faas_apool_t, queue);

        while (!ngx_queue_empty(&p->idle)) {
            iq = ngx_queue_head(&p->idle);
            ngx_queue_remove(iq);
            idle = ngx_queue_data(iq, ngx_http_faas_aidle_t, queue);
            ngx_http_faas_agent_close(idle->c);
            ngx_free(idle);
        }

        ngx_free(p);
    }
}
