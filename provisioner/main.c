/*
 * faas-provisioner: one per worker host. Leads a share of the provisioning
 * shards, builds sandboxes for the requests queued on them, lists them idle,
 * reaps them after their keep-alive and keeps Redis and the host in step.
 *
 *   faas-provisioner -c config.json
 *
 * SIGTERM/SIGINT: stop consuming, finish the jobs in progress, hand the
 * leases over, exit 0. Sandboxes outlive the daemon (a restart adopts them).
 *
 * The daemon is a child subreaper (PR_SET_CHILD_SUBREAPER): the sandboxes it
 * creates are re-parented to it rather than to pid 1 (which may never reap),
 * and it reaps them on SIGCHLD (sbx_table.c). When it dies they are
 * re-parented to pid 1 and keep running; the next run adopts them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "notify.h"
#include "prov.h"

#define STOP_MAX_MS 20000

static uint64_t stop_started;
static uv_timer_t ready_timer;


/* mkdir -p path (0755). 0 or -errno. */
static int
mkdir_p(const char *path)
{
    char  *copy = strdup(path), *s;
    int    rc = 0;

    if (copy == NULL) {
        return -ENOMEM;
    }
    for (s = copy + 1; *s != '\0' && rc == 0; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
                rc = -errno;
            }
            *s = '/';
        }
    }
    if (rc == 0 && mkdir(copy, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
    }
    free(copy);
    return rc;
}


static void
usage(void)
{
    fprintf(stderr, "usage: faas-provisioner -c config.json\n");
}


static void
after_release(faas_prov_t *p)
{
    faas_info(NULL, "stopped");
    uv_timer_stop(&p->stop_timer);
    uv_timer_stop(&p->recon_timer);
    uv_timer_stop(&p->hb_timer);
    faas_prov_stem_stop(p);
    faas_prov_queue_stop(p);
    faas_prov_redis_stop(&p->cmd);
    uv_stop(p->loop);
}


/* At each (re)connect of the command link. */
static void
cmd_ready(faas_prov_t *p)
{
    faas_prov_queue_kick(p);
    faas_prov_reconcile_soon(p);
}


static void
stop_poll(uv_timer_t *t)
{
    faas_prov_t *p = t->data;

    if ((p->q_outstanding > 0 || p->jobs > 0 || p->destroying > 0)
        && faas_now_ms() - stop_started < STOP_MAX_MS) {
        return;
    }
    uv_timer_stop(t);
    faas_prov_leases_release_all(p, after_release);
}


/* Ready for the service manager once Redis has answered and this host
 * holds a shard lease, i.e. it consumes provisioning requests. */
static void
ready_poll(uv_timer_t *t)
{
    faas_prov_t *p = t->data;
    unsigned     i;

    if (p->stopping) {
        uv_timer_stop(t);
        return;
    }
    for (i = 0; i < p->shards; i++) {
        if (faas_prov_leases_consumable(p, i)) {
            faas_notify_ready("host %s: serving provisioning requests",
                              p->host_id);
            uv_timer_stop(t);
            return;
        }
    }
}


static void
sigchld_cb(uv_signal_t *s, int signum)
{
    (void) signum;
    faas_prov_sbx_reap(s->data);
}


static void
signal_cb(uv_signal_t *s, int signum)
{
    faas_prov_t *p = s->data;

    if (p->stopping) {
        return;
    }
    faas_info(NULL, "signal %d: stopping", signum);
    faas_prov_stem_stop(p);
    faas_notify_stopping("signal %d: finishing the jobs in progress", signum);
    p->stopping = 1;
    stop_started = faas_now_ms();
    uv_timer_start(&p->stop_timer, stop_poll, 0, 20);
}


static int
config_load(faas_prov_t *p, const char *path, faas_error_t *err)
{
    static const char *const strings[] = {
        "host_id", "agent_endpoint", "run_dir", "cgroup_root", "runtimes_dir",
        "python", "node", "freezer", "store_url", "cache_dir", "redis",
        "redis_password", "redis_sentinels", "redis_master", "log_file",
        "log_level", "unzip_user", "metrics_listen", NULL,
    };
    static const char *const ints[] = {
        "uid_base", "uid_count", "shards", "lease_ms", "heartbeat_ms",
        "memory_budget_mb", "keep_alive_s", "code_gc_s", "reconcile_ms",
        "reconcile_grace_ms", "create_concurrency", "max_pending",
        "err_ttl_s", "zygote_idle_s", "owner_max_sandboxes", "stem_cells_max",
        "max_busy_per_cpu", "memory_margin_pct", NULL,
    };
    /* checked where they are read: sandbox/ and common/blob_s3.c */
    static const char *const others[] = {
        "zygote", "zygote_lib", "cpu_mb_per_vcpu", "require_swap_accounting",
        "stem_cells",
        FAAS_BLOB_CONFIG_KEYS, NULL,
    };
    static const char *const *const known[] = { strings, ints, others, NULL };
    long long   v;
    int         rc;

    p->cfg = faas_config_load(path, err);
    if (p->cfg == NULL) {
        return -1;
    }
    rc = faas_config_check_known(p->cfg, known, err);
    if (rc == 0) {
        rc = faas_config_check_types(p->cfg, strings, ints, err);
    }
    if (rc < 0) {
        return rc;
    }
    if (faas_config_require_string(p->cfg, "host_id", &p->host_id, err) < 0
        || faas_config_require_string(p->cfg, "agent_endpoint", &p->endpoint,
                                      err)
               < 0
        || faas_config_require_string(p->cfg, "run_dir", &p->run_dir, err) < 0
        || faas_config_require_string(p->cfg, "cache_dir", &p->cache_dir, err)
               < 0
        || faas_config_require_string(p->cfg, "runtimes_dir",
                                      &p->host.runtimes_dir, err)
               < 0) {
        return -1;
    }
    if (*p->host_id == '\0' || strpbrk(p->host_id, " |{}") != NULL) {
        return faas_error_set(err, 0, "config: host_id must be a non-empty "
                              "word");
    }
    if ((strncmp(p->endpoint, "unix:/", 6) != 0
         && strncmp(p->endpoint, "tcp:", 4) != 0)
        || strchr(p->endpoint, '|') != NULL) {
        return faas_error_set(err, 0, "config: agent_endpoint must be "
                              "unix:/path or tcp:host:port");
    }
    if (faas_config_string(p->cfg, "store_url", NULL) == NULL) {
        return faas_error_set(err, 0, "config: store_url is required");
    }
#define INT_KEY(field, key, def, lo, hi)                                      \
    v = faas_config_int(p->cfg, key, def);                                   \
    if (v < (lo) || v > (hi)) {                                               \
        return faas_error_set(err, 0, "config: %s must be in [%lld, %lld]",   \
                              key, (long long) (lo), (long long) (hi));       \
    }                                                                         \
    p->field = (unsigned) v;

    INT_KEY(shards, "shards", 64, 1, 16384);
    INT_KEY(lease_ms, "lease_ms", 5000, 100, 600000);
    INT_KEY(heartbeat_ms, "heartbeat_ms", p->lease_ms / 3, 10, p->lease_ms / 2);
    INT_KEY(memory_budget_mb, "memory_budget_mb", 16384, 1, 1 << 30);
    INT_KEY(memory_margin_pct, "memory_margin_pct", 50, 0, 100000);
    INT_KEY(keep_alive_s, "keep_alive_s", 600, 1, 86400 * 30);
    INT_KEY(code_gc_s, "code_gc_s", 3600, 1, 86400 * 365);
    INT_KEY(reconcile_ms, "reconcile_ms", 3000, 50, 3600000);
    INT_KEY(grace_ms, "reconcile_grace_ms", 10000, 0, 3600000);
    INT_KEY(create_concurrency, "create_concurrency", 4, 1, 64);
    INT_KEY(max_pending, "max_pending", 64, 1, 100000);
    INT_KEY(err_ttl_s, "err_ttl_s", 30, 1, 86400);
    INT_KEY(owner_max_sandboxes, "owner_max_sandboxes", 0, 0, 1 << 20);
    INT_KEY(max_busy_per_cpu, "max_busy_per_cpu", 8, 0, 100000);
    INT_KEY(host.uid_base, "uid_base", 100000, 1000, 0x7fffffff);
    INT_KEY(host.uid_count, "uid_count", 65536, 1, 1 << 24);
#undef INT_KEY
    if (geteuid() == 0
        && faas_unpriv_user(faas_config_string(p->cfg, "unzip_user",
                                               "nobody"),
                            &p->unzip, err) < 0) {
        return faas_error_wrap(err, "config: unzip_user");
    }
    p->unzip.max_as = 256ULL << 20;
    p->host.run_dir = p->run_dir;
    p->host.cgroup_root = faas_config_string(p->cfg, "cgroup_root", "faas");
    p->host.python = faas_config_string(p->cfg, "python", "/usr/bin/python3");
    p->host.node = faas_config_string(p->cfg, "node", "/usr/bin/node");
    /* python3 sandboxes forked from a zygote per function (sandbox.h) */
    p->host.zygote = FAAS_ZYGOTE_FUNCTION;
    if (faas_sandbox_zygote_config(&p->host, p->cfg, err) < 0) {
        return -1;
    }
    p->host.zygote_lib = faas_config_string(p->cfg, "zygote_lib", NULL);
    if (faas_sandbox_freezer_config(&p->host, p->cfg, err) < 0 ||
        faas_sandbox_limits_config(&p->host, p->cfg, err) < 0) {
        return -1;
    }
    /* sandboxes busy or being created at once: 0 is no limit */
    v = sysconf(_SC_NPROCESSORS_ONLN);
    p->max_busy = p->max_busy_per_cpu * (unsigned) (v > 0 ? v : 1);
    if (p->max_pending < p->create_concurrency) {
        p->max_pending = p->create_concurrency;
    }
    return 0;
}


int
main(int argc, char **argv)
{
    static faas_prov_t p;
    faas_error_t  err = { 0 };
    const char   *cfgpath = NULL;
    char          work_key[512];   /* as leases.c reads other hosts' */
    char          buf[32];
    int           opt;

    while ((opt = getopt(argc, argv, "c:h")) != -1) {
        if (opt == 'c') {
            cfgpath = optarg;
        } else {
            usage();
            return opt == 'h' ? 0 : 1;
        }
    }
    if (cfgpath == NULL) {
        usage();
        return 1;
    }
    if (config_load(&p, cfgpath, &err) < 0) {
        fprintf(stderr, "faas-provisioner: %s\n", err.msg);
        return 1;
    }
    if (faas_log_init("provisioner",
                      faas_config_string(p.cfg, "log_file", NULL),
                      faas_config_string(p.cfg, "log_level", "info"))
        < 0) {
        fprintf(stderr, "faas-provisioner: cannot open the log file\n");
        return 1;
    }
    /* Creates, destroys and downloads share libuv's pool: size it first. */
    snprintf(buf, sizeof(buf), "%u", p.create_concurrency + 4);
    setenv("UV_THREADPOOL_SIZE", buf, 1);
    pthread_mutex_init(&p.store_lock, NULL);

    if ((opt = mkdir_p(p.run_dir)) < 0) {
        fprintf(stderr, "faas-provisioner: mkdir %s: %s\n", p.run_dir,
                strerror(-opt));
        return 1;
    }
    if ((opt = mkdir_p(p.cache_dir)) < 0) {
        fprintf(stderr, "faas-provisioner: mkdir %s: %s\n", p.cache_dir,
                strerror(-opt));
        return 1;
    }
    if (faas_sandbox_host_init(&p.host, &err) < 0) {
        fprintf(stderr, "faas-provisioner: %s\n", err.msg);
        return 1;
    }
    if (asprintf(&p.state_dir, "%s/prov", p.run_dir) < 0
        || (mkdir(p.state_dir, 0700) < 0 && errno != EEXIST)) {
        fprintf(stderr, "faas-provisioner: mkdir %s/prov: %s\n", p.run_dir,
                strerror(errno));
        return 1;
    }
    p.store = faas_blob_open(faas_config_string(p.cfg, "store_url", NULL),
                             p.cfg, &err);
    if (p.store == NULL) {
        fprintf(stderr, "faas-provisioner: store: %s\n", err.msg);
        return 1;
    }
    if (faas_prov_code_init(&p, &err) < 0) {
        fprintf(stderr, "faas-provisioner: cache: %s\n", err.msg);
        return 1;
    }
    p.held = calloc(p.shards, 1);
    p.releasing = calloc(p.shards, 1);
    p.lease_ok_ms = calloc(p.shards, sizeof(*p.lease_ok_ms));
    p.q_pending = calloc(p.shards, 1);
    p.q_sent_ms = calloc(p.shards, sizeof(*p.q_sent_ms));
    p.qc = calloc(p.shards, sizeof(*p.qc));
    if (p.held == NULL || p.releasing == NULL || p.lease_ok_ms == NULL
        || p.q_pending == NULL || p.q_sent_ms == NULL || p.qc == NULL
        || faas_key_prov_work(work_key, sizeof(work_key), p.host_id) < 0
        || (p.work_key = strdup(work_key)) == NULL) {
        fprintf(stderr, "faas-provisioner: out of memory\n");
        return 1;
    }
    p.live_hosts = 1;
    p.loop = uv_default_loop();

    uv_signal_init(p.loop, &p.sigterm);
    uv_signal_init(p.loop, &p.sigint);
    p.sigterm.data = p.sigint.data = &p;
    uv_signal_start(&p.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&p.sigint, signal_cb, SIGINT);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        fprintf(stderr, "faas-provisioner: PR_SET_CHILD_SUBREAPER: %s\n",
                strerror(errno));
        return 1;
    }
    uv_signal_init(p.loop, &p.sigchld);
    p.sigchld.data = &p;
    uv_signal_start(&p.sigchld, sigchld_cb, SIGCHLD);
    uv_timer_init(p.loop, &p.stop_timer);
    p.stop_timer.data = &p;
    signal(SIGPIPE, SIG_IGN);

    if (faas_prov_metrics_start(&p, &err) < 0) {
        fprintf(stderr, "faas-provisioner: %s\n", err.msg);
        return 1;
    }
    faas_prov_redis_start(&p, &p.cmd, "cmd", cmd_ready);
    faas_prov_reconcile_start(&p);
    if (faas_prov_stem_init(&p, &err) < 0) {
        faas_err(NULL, "%s", err.msg);
        return 1;
    }
    faas_prov_leases_start(&p, faas_prov_queue_watchdog, faas_prov_queue_kick);
    uv_timer_init(p.loop, &ready_timer);
    ready_timer.data = &p;
    uv_timer_start(&ready_timer, ready_poll, 20, 20);
    faas_info(NULL, "started: host %s, endpoint %s, %u shards, budget %u MB, "
              "at most %u sandboxes busy or being created", p.host_id,
              p.endpoint, p.shards, p.memory_budget_mb, p.max_busy);

    uv_run(p.loop, UV_RUN_DEFAULT);
    faas_prov_metrics_stop();
    /* the zygotes are caches: the next provisioner starts its own */
    if (faas_sandbox_zygote_stop_all(&p.host, &err) < 0) {
        faas_err(NULL, "stopping the zygotes: %s", err.msg);
    }
    faas_prov_sbx_reap(&p);
    faas_prov_rev_free_all(&p);
    faas_blob_close(p.store);
    json_decref(p.cfg);
    return 0;
}
