/*
 * faas-agent -c config.json
 *
 * One per worker host. Serves InvokeRequests from gateways (Unix socket,
 * optional token-authenticated TCP) by thawing the named sandbox, handing
 * the event to its runtime, freezing it again and answering; uploads the
 * invocation logs to the blob store afterwards. See agent.h for the parts.
 *
 * Config keys (besides the shared ones in conf/CONFIG.md):
 *   socket            Unix socket path (required)
 *   tcp_listen        "host:port" (optional; then token is required)
 *   token             shared secret for TCP connections
 *   hello_timeout_ms  TCP: a connection without a hello by then is closed
 *                     (default 3000)
 *   max_connections   TCP connections open at once (default 1024)
 *   tls_cert, tls_key TCP over TLS with this certificate chain and key (PEM)
 *   tls_client_ca     with TLS: gateways must show a certificate this CA
 *                     signed (optional)
 *   spool_dir         logs waiting for the store (default <run_dir>/log-spool)
 *   store_url         where logs go; without it logs are not stored
 *   max_frame_bytes   gateway frame limit (default 8 MiB)
 *   max_inflight      agent-wide limit before OVERLOADED (default 4096)
 *   shutdown_timeout_ms  how long SIGTERM waits for calls (default 10000)
 *   log_retry_min_ms / log_retry_max_ms  spool retry backoff (200 / 5000)
 *   log_max_bytes     one call's log is cut to this (default 65536)
 *   log_queue_bytes   logs held in memory at once, shared fairly between
 *                     functions (default 64 MiB; logs.c)
 *   spin_us           poll a lone call's answer this long (default 0: off)
 *   freeze_after_idle_ms  keep a sandbox thawed this long after its call
 *                     (default 20; 0: freeze at once)
 */
#include "agent.h"

#include <errno.h>
#include <malloc.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "notify.h"

static const char *const string_keys[] = {
    "run_dir",   "cgroup_root", "runtimes_dir", "python",     "node",
    "freezer",   "store_url",   "socket",       "tcp_listen", "token",
    "spool_dir", "log_file",    "log_level",    "tls_cert",   "tls_key",
    "tls_client_ca", "socket_group", "metrics_listen", NULL,
};
static const char *const int_keys[] = {
    "uid_base",
    "uid_count",
    "max_frame_bytes",
    "max_inflight",
    "shutdown_timeout_ms",
    "log_retry_min_ms",
    "log_retry_max_ms",
    "log_max_bytes",
    "log_queue_bytes",
    "spin_us",
    "freeze_after_idle_ms",
    "hello_timeout_ms",
    "max_connections",
    NULL,
};

/* Integer keys checked here (the others where they are read). */
static const struct {
    const char *key;
    long long   lo, hi;
} int_ranges[] = {
    { "uid_base", 1000, 0x7fffffff },
    { "uid_count", 1, 1 << 24 },
    { "shutdown_timeout_ms", 0, 3600000 },
    { "log_retry_min_ms", 1, 3600000 },
    { "log_retry_max_ms", 1, 3600000 },
};
static const char *const store_keys[] = { FAAS_BLOB_CONFIG_KEYS, NULL };
static const char *const *const known_keys[] = { string_keys, int_keys,
                                                  store_keys, NULL };

static void
usage(void)
{
    fprintf(stderr, "usage: faas-agent -c config.json\n");
}

/* A start that failed: one line on stderr (the journal under systemd) and,
 * when there is a log file, in it too. Returns the exit status. */
static int
start_failed(const char *what, const char *msg)
{
    if (!faas_log_to_stderr()) {
        faas_err(NULL, "%s%s", what, msg);
    }
    fprintf(stderr, "faas-agent: %s%s\n", what, msg);
    return 1;
}

static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* tls_cert and tls_key go together, and only with tcp_listen. */
static int
load_tls(faas_agent_t *a, faas_error_t *err)
{
    const char *cert = faas_config_string(a->cfg, "tls_cert", NULL);
    const char *key = faas_config_string(a->cfg, "tls_key", NULL);
    const char *ca = faas_config_string(a->cfg, "tls_client_ca", NULL);

    if (cert == NULL && key == NULL && ca == NULL) {
        return 0;
    }
    if (cert == NULL || key == NULL) {
        return faas_error_set(err, 0,
                              "config: tls_cert and tls_key go together "
                              "(tls_client_ca needs both)");
    }
    if (a->tcp_listen == NULL) {
        return faas_error_set(err, 0, "config: tls_cert needs tcp_listen");
    }
    a->tls = faas_tls_server_new(cert, key, ca, err);
    return a->tls != NULL ? 0 : -1;
}

static int
load_listener_limits(faas_agent_t *a, faas_error_t *err)
{
    long long v;

    v = faas_config_int(a->cfg, "hello_timeout_ms", 3000);
    if (v < 1 || v > 600000) {
        return faas_error_set(err, 0,
                              "config: hello_timeout_ms must be 1..600000");
    }
    a->hello_timeout_ms = (uint64_t) v;
    v = faas_config_int(a->cfg, "max_connections", 1024);
    if (v < 1) {
        return faas_error_set(err, 0, "config: max_connections must be >= 1");
    }
    a->max_connections = (size_t) v;
    return load_tls(a, err);
}

static int
check_ranges(const json_t *cfg, faas_error_t *err)
{
    json_t *v;
    size_t  i;

    for (i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]); i++) {
        v = json_object_get(cfg, int_ranges[i].key);
        if (v != NULL && (json_integer_value(v) < int_ranges[i].lo ||
                          json_integer_value(v) > int_ranges[i].hi)) {
            return faas_error_set(err, 0, "config: %s must be %lld..%lld",
                                  int_ranges[i].key, int_ranges[i].lo,
                                  int_ranges[i].hi);
        }
    }
    return 0;
}

static int
load_config(faas_agent_t *a, const char *path, faas_error_t *err)
{
    long long   v;

    a->cfg = faas_config_load(path, err);
    if (a->cfg == NULL) {
        return -1;
    }
    if (faas_config_check_known(a->cfg, known_keys, err) < 0 ||
        faas_config_check_types(a->cfg, string_keys, int_keys, err) < 0 ||
        check_ranges(a->cfg, err) < 0) {
        return -1;
    }
    if (faas_config_require_string(a->cfg, "run_dir", &a->host.run_dir, err) <
            0 ||
        faas_config_require_string(a->cfg, "cgroup_root", &a->host.cgroup_root,
                                   err) < 0 ||
        faas_config_require_string(a->cfg, "socket", &a->socket_path, err) <
            0) {
        return -1;
    }
    a->host.runtimes_dir = faas_config_string(a->cfg, "runtimes_dir", "");
    a->host.python = faas_config_string(a->cfg, "python", "/usr/bin/python3");
    a->host.node = faas_config_string(a->cfg, "node", "/usr/bin/node");
    a->host.uid_base = (uid_t) faas_config_int(a->cfg, "uid_base", 100000);
    a->host.uid_count = (unsigned) faas_config_int(a->cfg, "uid_count", 65536);
    if (faas_sandbox_freezer_config(&a->host, a->cfg, err) < 0) {
        return -1;
    }
    a->tcp_listen = faas_config_string(a->cfg, "tcp_listen", NULL);
    a->token = faas_config_string(a->cfg, "token", NULL);
    if (a->tcp_listen != NULL && (a->token == NULL || a->token[0] == '\0')) {
        return faas_error_set(err, 0,
                              "config: token is required with "
                              "tcp_listen");
    }
    v = faas_config_int(a->cfg, "max_frame_bytes", FAAS_AGENT_MAX_FRAME);
    if (v < 1024 || v > (1LL << 30)) {
        return faas_error_set(err, 0,
                              "config: max_frame_bytes must be "
                              "between 1024 and 1 GiB");
    }
    a->max_frame = (size_t) v;
    v = faas_config_int(a->cfg, "max_inflight", 4096);
    if (v < 1) {
        return faas_error_set(err, 0, "config: max_inflight must be >= 1");
    }
    a->max_inflight = (size_t) v;
    v = faas_config_int(a->cfg, "spin_us", 0);
    if (v < 0 || v > 10000) {
        return faas_error_set(err, 0, "config: spin_us must be 0..10000");
    }
    a->spin_us = (unsigned) v;
    v = faas_config_int(a->cfg, "freeze_after_idle_ms", 20);
    if (v < 0 || v > 1000) {
        return faas_error_set(err, 0,
                              "config: freeze_after_idle_ms must be 0..1000");
    }
    a->freeze_after_idle_ms = (unsigned) v;
    return load_listener_limits(a, err);
}

static void
on_stop_tick(uv_timer_t *t)
{
    faas_agent_t *a = t->data;
    int           idle = faas_invoke_idle(a);
    int           late = uv_now(a->loop) >= a->stop_deadline;

    if (!idle && !late) {
        return;
    }
    if (!idle) {
        faas_warn(NULL,
                  "shutdown: %zu calls still running after the "
                  "shutdown timeout; exiting anyway",
                  a->inflight);
        faas_log(FAAS_LOG_INFO, NULL, "stopped");
        exit(0);
    }
    if (a->logs != NULL && !faas_logs_quiesce(a->logs)) {
        if (!late) {
            return; /* an upload is running: wait for it */
        }
        /* what it was uploading is still in the spool or the store */
        faas_warn(NULL, "shutdown: a log upload still runs; exiting anyway");
        faas_log(FAAS_LOG_INFO, NULL, "stopped");
        exit(0);
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *) t, NULL);
    faas_agent_server_close_conns(a);
    faas_invoke_shutdown(a);
    if (a->logs != NULL) {
        faas_logs_close(a->logs);
        a->logs = NULL;
    }
    uv_close((uv_handle_t *) &a->sigterm, NULL);
    uv_close((uv_handle_t *) &a->sigint, NULL);
    uv_close((uv_handle_t *) &a->sighup, NULL);
}

static void
on_signal(uv_signal_t *sig, int signum)
{
    faas_agent_t *a = sig->data;

    if (signum == SIGHUP) {
        faas_log_reopen();
        return;
    }
    if (a->stopping) {
        return;
    }
    a->stopping = 1;
    faas_info(NULL, "%s: stopping (%zu calls in flight)",
              signum == SIGTERM ? "SIGTERM" : "SIGINT", a->inflight);
    faas_notify_stopping("stopping: %zu calls in flight", a->inflight);
    faas_agent_server_stop(a);
    a->stop_deadline =
        uv_now(a->loop) +
        (uint64_t) faas_config_int(a->cfg, "shutdown_timeout_ms", 10000);
    uv_timer_init(a->loop, &a->stop_timer);
    a->stop_timer.data = a;
    uv_timer_start(&a->stop_timer, on_stop_tick, 0, 20);
}

int
main(int argc, char **argv)
{
    faas_agent_t a;
    faas_error_t err;
    const char  *cfg_path = NULL, *spool;
    char         spool_buf[4096];
    int          opt, ret;

    /* No fastbins: every call frees small blocks and then asks for a
     * large one (a runtime frame, a gateway frame), and with fastbins in
     * use each such request runs malloc_consolidate() over all of them
     * (~10% of the agent's CPU at 10,000 calls/s). The tcache still serves
     * the small sizes. */
    mallopt(M_MXFAST, 0);

    while ((opt = getopt(argc, argv, "c:h")) != -1) {
        switch (opt) {
        case 'c':
            cfg_path = optarg;
            break;
        default:
            usage();
            return opt == 'h' ? 0 : 1;
        }
    }
    if (cfg_path == NULL || optind != argc) {
        usage();
        return 1;
    }
    memset(&a, 0, sizeof(a));
    faas_error_clear(&err);
    if (load_config(&a, cfg_path, &err) < 0) {
        fprintf(stderr, "faas-agent: %s\n", err.msg);
        return 1;
    }
    ret = faas_log_init("agent", faas_config_string(a.cfg, "log_file", NULL),
                        faas_config_string(a.cfg, "log_level", "info"));
    if (ret < 0) {
        fprintf(stderr, "faas-agent: log_file: %s\n", strerror(-ret));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    a.loop = uv_default_loop();
    if (faas_invoke_init(&a, &err) < 0) {
        return start_failed("", err.msg);
    }
    if (faas_config_string(a.cfg, "store_url", NULL) != NULL) {
        spool = faas_config_string(a.cfg, "spool_dir", NULL);
        if (spool == NULL) {
            snprintf(spool_buf, sizeof(spool_buf), "%s/log-spool",
                     a.host.run_dir);
            spool = spool_buf;
        }
        a.logs = faas_logs_open(a.loop, a.cfg, spool, &err);
        if (a.logs == NULL) {
            return start_failed("logs: ", err.msg);
        }
    } else {
        faas_warn(NULL, "store_url is not set: invocation logs are not kept");
    }

    uv_signal_init(a.loop, &a.sigterm);
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sighup);
    a.sigterm.data = a.sigint.data = a.sighup.data = &a;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sighup, on_signal, SIGHUP);

    if (faas_agent_metrics_start(&a, &err) < 0) {
        return start_failed("", err.msg);
    }
    if (faas_agent_server_start(&a, &err) < 0) {
        return start_failed("", err.msg);
    }
    faas_info(NULL, "started (run_dir %s, cgroup_root %s)", a.host.run_dir,
              a.host.cgroup_root);
    faas_notify_ready("listening on %s", a.socket_path);
    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
    free(a.sandboxes);
    SSL_CTX_free(a.tls);
    json_decref(a.cfg);
    faas_info(NULL, "stopped");
    return 0;
}
