/*
 * faas-agent internals: the gateway-facing server (server.c), the
 * per-invocation state machine that talks to sandbox runtimes (invoke.c),
 * the checks on a gateway's request (request.c), the mapping of a
 * runtime's answer (answer.c), the log uploader with its disk spool
 * (logs.c), the TCP token (auth.c) and TLS on the TCP listener (tls.c).
 * Everything runs on one libuv loop; blocking work (sandbox destroy, blob
 * uploads) goes to the libuv thread pool.
 */
#ifndef FAAS_AGENT_H
#define FAAS_AGENT_H

#include <jansson.h>
#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "blob.h"
#include "error.h"
#include "faas.pb-c.h"
#include "frame.h"
#include "sandbox.h"

#define FAAS_AGENT_MAX_FRAME (8u * 1024 * 1024)
/* Before its hello a TCP peer is a stranger: its frames stay this small. */
#define FAAS_AGENT_HELLO_MAX_FRAME 1024u

typedef struct faas_agent_s      faas_agent_t;
typedef struct faas_agent_conn_s faas_agent_conn_t;
typedef struct faas_logs_s       faas_logs_t;
typedef struct faas_tls_conn_s   faas_tls_conn_t;

/* The daemon: configuration and global state, one per process. */
struct faas_agent_s {
    uv_loop_t          *loop;
    json_t             *cfg;
    faas_sandbox_host_t host;
    size_t              max_frame;    /* gateway frame limit */
    size_t              max_inflight; /* agent-wide OVERLOADED threshold */
    size_t              inflight;     /* invocations in progress */
    unsigned            spin_us;      /* poll for a lone call's answer */
    unsigned            freeze_after_idle_ms; /* 0: freeze after each call */
    int                 guard_fd;     /* to the freeze guard; -1: none */
    const char         *socket_path;
    const char         *tcp_listen;
    const char         *token;
    uint64_t            hello_timeout_ms; /* TCP: hello deadline */
    size_t              max_connections;  /* TCP connections at once */
    size_t              tcp_conns;        /* TCP connections open */
    uint64_t            refused_conns;    /* over the cap, not yet logged */
    uint64_t            refusal_logged_at; /* uv_now() of the last log */
    SSL_CTX            *tls;              /* TCP over TLS; NULL: plain */
    uv_pipe_t           unix_listener;
    uv_tcp_t            tcp_listener;
    int                 have_unix;
    int                 have_tcp;
    int                 stopping;      /* SIGTERM seen: no new connections */
    uint64_t            stop_deadline; /* uv_now() bound for in-flight calls */
    uv_timer_t          stop_timer;
    uv_signal_t         sigterm;
    uv_signal_t         sigint;
    uv_signal_t         sighup;
    void               *sandboxes; /* the sandbox table (invoke.c) */
    faas_agent_conn_t  *conns;     /* open gateway connections */
    faas_logs_t        *logs;      /* NULL: logs are not stored */
};

/* One gateway connection (Unix or TCP). Reference-counted: the handle holds
 * one reference, each invocation in flight another. */
struct faas_agent_conn_s {
    faas_agent_t *agent;
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_pipe_t   pipe;
        uv_tcp_t    tcp;
    } u;
    int              is_tcp;
    int              authed;  /* Unix: always; TCP: after a good hello */
    int              closing; /* no more reads; answers are dropped */
    int              close_after_write; /* close once the queued answer left */
    uv_timer_t       hello_timer; /* TCP: closes it if no hello comes */
    faas_tls_conn_t *tls;         /* TCP with tls_cert: its TLS state */
    unsigned         refs;
    faas_frame_buf_t fb;
    faas_agent_conn_t *next, *prev;
};

/* server.c */
int  faas_agent_server_start(faas_agent_t *a, faas_error_t *err);
void faas_agent_server_stop(faas_agent_t *a);
void faas_agent_server_close_conns(faas_agent_t *a);

/* metrics.c: served on the `metrics_listen` key, if set */
int faas_agent_metrics_start(faas_agent_t *a, faas_error_t *err);
void faas_agent_metrics_invoked(Faas__InvokeStatus status,
                                uint64_t duration_us);
/* Sends resp on conn (dropped if the connection is closing). */
void faas_agent_respond(faas_agent_conn_t *c, const Faas__InvokeResponse *resp);
void faas_agent_conn_ref(faas_agent_conn_t *c);
void faas_agent_conn_unref(faas_agent_conn_t *c);

/* invoke.c */
int faas_invoke_init(faas_agent_t *a, faas_error_t *err);
/* Starts one invocation; the answer is sent on c later (or at once). */
void faas_invoke_start(faas_agent_t *a, faas_agent_conn_t *c,
                       Faas__InvokeRequest *req);
/* Closes idle runtime connections and frees the table (at exit). */
void faas_invoke_shutdown(faas_agent_t *a);
/* 1 if invoke.c has nothing in progress (calls, destroys). */
int faas_invoke_idle(faas_agent_t *a);

/* guard.c */
/* Forks the freeze guard (before any thread starts). 0 or <0 with err. */
int  faas_guard_start(faas_agent_t *a, faas_error_t *err);
/* Tells the guard of a sandbox the agent serves (once per sandbox). */
void faas_guard_add(faas_agent_t *a, const char *id);
/* Clean exit: every sandbox is frozen, the guard has nothing to do. */
void faas_guard_bye(faas_agent_t *a);

/* request.c */
/* 0 if data is one JSON value (surrounded by whitespace), else -1 with a
 * reason and the offset in why. */
int faas_json_check(const char *data, size_t len, char *why, size_t wlen);
/* The id checks (request, sandbox, function): OK, or the status to answer
 * with (BAD_REQUEST, SANDBOX_GONE) and the reason in why. */
Faas__InvokeStatus faas_invoke_ids_check(const Faas__InvokeRequest *req,
                                         char *why, size_t wlen);
/* The event check: OK, or BAD_REQUEST with the reason in why. */
Faas__InvokeStatus faas_invoke_event_check(const Faas__InvokeRequest *req,
                                           char *why, size_t wlen);

/* answer.c */
/* A runtime's answer as InvokeResponse fields; pointers into json. */
typedef struct faas_runtime_answer_s {
    json_t              *json;
    Faas__InvokeResponse resp;        /* headers and body */
    Faas__InvokeStatus   status;      /* OK or FUNCTION_ERROR */
    uint32_t             http_status; /* the function's own (OK only) */
    char                 error[512];  /* "" unless FUNCTION_ERROR */
    const char          *logs;        /* NULL when none */
    size_t               logs_len;
    Faas__Header         ctype, *ctype_ptr;
    Faas__Header        *hdrs, **hp;
    char               **dumps;
    size_t               ndumps;
    char                *body_json, *err_body;
    uint8_t             *body_dec;
} faas_runtime_answer_t;

/*
 * Parses a runtime's answer frame for the call request_id. Returns 0, or -1
 * with why set when the runtime is broken (not JSON, wrong id). Free with
 * faas_runtime_answer_free() either way.
 */
int faas_runtime_answer_parse(faas_runtime_answer_t *a, const uint8_t *frame,
                              size_t len, const char *request_id,
                              const char **why);
void faas_runtime_answer_free(faas_runtime_answer_t *a);

/* logs.c */
/*
 * Opens the log pipeline: the blob store from cfg (store_url + S3 options),
 * the spool directory (created; leftover files are queued for delivery).
 * Returns NULL with err set on a bad configuration.
 */
faas_logs_t *faas_logs_open(uv_loop_t *loop, const json_t *cfg,
                            const char *spool_dir, faas_error_t *err);
/* Queues data (copied) for key; delivered in a worker thread, in order. */
void faas_logs_submit(faas_logs_t *l, const char *key, const char *data,
                      size_t len);
/* Makes the log key logs/<name>/<yyyy-mm-dd>/<request-id>.log (UTC). */
int faas_logs_key(char *buf, size_t len, const char *function,
                  const char *request_id);
/* Stops the retry timer; 1 once no upload is in flight (then free it). */
int faas_logs_quiesce(faas_logs_t *l);
/* Moves what is still queued in memory to the spool (blocking, at exit). */
void faas_logs_close(faas_logs_t *l);

/* auth.c */
/* 1 if the presented token equals the configured one (constant time). */
int faas_auth_token_ok(const char *expected, const uint8_t *got, size_t len);

/* tls.c */
/* The listener's context: certificate chain and key (PEM), and with
 * client_ca (may be NULL) a required client certificate. NULL with err. */
SSL_CTX *faas_tls_server_new(const char *cert, const char *key,
                             const char *client_ca, faas_error_t *err);
/* One connection's TLS state (server side); NULL when out of memory. */
faas_tls_conn_t *faas_tls_conn_new(SSL_CTX *ctx);
void             faas_tls_conn_free(faas_tls_conn_t *t);
/* Hands over n bytes read from the socket. 0 or -1 (out of memory). */
int faas_tls_conn_feed(faas_tls_conn_t *t, const void *data, size_t n);
/* Decrypts into buf: >0 bytes, 0 when it needs more input, <0 with err
 * when the handshake failed or the peer closed. */
ssize_t faas_tls_conn_read(faas_tls_conn_t *t, void *buf, size_t n,
                           faas_error_t *err);
/* Encrypts n bytes (after the handshake). 0 or -1. */
int faas_tls_conn_write(faas_tls_conn_t *t, const void *buf, size_t n);
/* The bytes to send to the peer now, malloc'd (NULL: none). */
uint8_t *faas_tls_conn_take_output(faas_tls_conn_t *t, size_t *len);

#endif
