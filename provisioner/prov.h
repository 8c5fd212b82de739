/*
 * faas-provisioner internals (docs/DESIGN.md sections 4 and 6): one daemon per
 * worker host, one libuv loop. Redis is reached through hiredis async
 * connections: `cmd` for every short command and one per shard this host
 * leads, for the BLMOVE of that shard's queue into this host's processing
 * list (queue.c). Blocking work (downloads, unzip,
 * sandbox create/destroy) runs in the libuv thread pool.
 *
 *   main.c        config, start, signals, shutdown
 *   prov_redis.c  the connections (connect, AUTH, reconnect)
 *   leases.c      heartbeat, shard leases, rebalancing
 *   queue.c       BLMOVE of held shards, one job per ProvisionRequest
 *   revision.c    faas:rev:{rid}, read once per revision and kept
 *   code_cache.c  download, sha256, unzip, single-flight, GC
 *   capacity.c    memory budget and LRU eviction
 *   owner_limit.c the per-owner cap of live sandboxes (owner_max_sandboxes)
 *   sbx_table.c   the sandboxes this host manages, state files, destroy
 *   stem.c        stem cells: pre-started generic sandboxes
 *   reaper.c      keep-alive
 *   reconcile.c   host <-> Redis reconciliation (start and periodic)
 */
#ifndef FAAS_PROV_H
#define FAAS_PROV_H

#include <stdint.h>
#include <time.h>
#include <pthread.h>
#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <jansson.h>
#include "clock.h"   /* faas_now_ms: heartbeats are compared across hosts */
#include "error.h"
#include "metrics_http.h"
#include "blob.h"
#include "unpriv.h"
#include "sandbox.h"
#include "faas.pb-c.h"

#define PROV_REASON_MAX 640

typedef struct faas_prov_s faas_prov_t;
typedef struct faas_prov_job_s faas_prov_job_t;
typedef struct faas_prov_code_s faas_prov_code_t;
typedef struct faas_prov_sbx_s faas_prov_sbx_t;
typedef struct faas_prov_rev_s faas_prov_rev_t;

/* ---- Redis (prov_redis.c) ---- */

typedef struct faas_prov_redis_s {
    faas_prov_t            *prov;
    const char        *name;      /* "cmd" | "q<shard>", for logs */
    redisAsyncContext *ac;
    int                ready;     /* connected and authenticated */
    int                lost;      /* loss logged, recovery not yet */
    unsigned           backoff_ms;        /* before the next attempt */
    unsigned           connect_waited_ms; /* by the attempt in progress */
    uv_timer_t         retry;
    uv_timer_t         connect_watch;     /* the attempt in progress */
    void             (*on_ready)(faas_prov_t *p);   /* at each (re)connect */
} faas_prov_redis_t;

int faas_prov_redis_start(faas_prov_t *p, faas_prov_redis_t *r,
                          const char *name, void (*on_ready)(faas_prov_t *p));
void faas_prov_redis_stop(faas_prov_redis_t *r);
/* Drops a link that stopped answering and reconnects. */
void faas_prov_redis_reset(faas_prov_redis_t *r, const char *why);
/* Attaches ac to loop (redis_uv.c); -1 on failure. */
int faas_prov_redis_attach(redisAsyncContext *ac, uv_loop_t *loop);
/* redisAsyncCommand on r, or -1 if r is down (the callback is not called). */
int faas_prov_redis_cmd(faas_prov_redis_t *r, redisCallbackFn *fn, void *data,
                   const char *fmt, ...);
int faas_prov_redis_cmdargv(faas_prov_redis_t *r, redisCallbackFn *fn,
                            void *data,
                       int argc, const char **argv, const size_t *argvlen);

/* ---- sandboxes (sbx_table.c) ---- */

enum faas_prov_sbx_state {
    SBX_CREATING = 0,   /* being built, not listed yet */
    SBX_IDLE,           /* believed to be in its idle list */
    SBX_BUSY,           /* not in its idle list: popped by a gateway */
    SBX_DESTROYING,     /* taken out of the list, being destroyed */
};

struct faas_prov_sbx_s {
    faas_prov_sbx_t  *next;
    char         id[FAAS_SANDBOX_ID_LEN + 1];
    char        *rid;
    char        *entry;          /* the idle entry last pushed or seen */
    unsigned     memory_mb;
    unsigned     keep_alive_s;
    unsigned     timeout_ms;     /* the function's timeout (0: unknown) */
    faas_prov_code_t *code;           /* holds one reference, may be NULL */
    int          state;
    int          seen;           /* found in the list by the current scan */
    uint64_t     last_used_ms;   /* created, ran code, or returned */
    uint64_t     cpu_usec;       /* cgroup v2 cpu.stat usage at last scan */
    int          cpu_known;      /* cpu_usec holds a reading */
    uint64_t     mem_bytes;      /* memory the cgroup is charged, last scan */
    int          mem_known;      /* mem_bytes holds a reading */
    uint64_t     unlisted_ms;    /* when it was last found missing */
    uint64_t     switches;       /* voluntary context switches at the last
                                    scan that found it busy and thawed
                                    (0: not so) */
    unsigned     quiet_scans;    /* scans in a row found it frozen, unlisted
                                    and not run since the previous one */
    uint64_t     same_call_ms;   /* thawed since, without being frozen or
                                    blocking again: one call (0: not so) */
    int          lrem_pending;
    int          stuck_logged;   /* a create that never returned, logged */
    char        *origin;         /* adopted: meta.json origin_request_id */
    char        *owner;          /* its revision's owner (NULL: adopted) */
    int          had_state;      /* adopted with a state file: its create
                                    finished (it may or may not be listed) */
    int          claimed;        /* adopted, matched to a request left in
                                    the processing list */
    int          nocount;        /* destroy without DECR: never counted as
                                    listed (its request is served again) */
    pid_t        pid;            /* sandbox init, host pid (0: unknown) */
    int          child;          /* pid is a child of this process */
};

faas_prov_sbx_t *faas_prov_sbx_find(faas_prov_t *p, const char *id);
faas_prov_sbx_t *faas_prov_sbx_add(faas_prov_t *p, const char *id,
                                   const char *rid,
                         unsigned memory_mb, unsigned keep_alive_s);
/* Unlinks and frees s (drops its code reference and memory). */
void faas_prov_sbx_free(faas_prov_t *p, faas_prov_sbx_t *s);
/* Writes <run_dir>/prov/<id>.json (blocking, small). */
int faas_prov_sbx_save(faas_prov_t *p, faas_prov_sbx_t *s, faas_error_t *err);
/*
 * Destroys s in the thread pool, then removes its state file, DECRs
 * faas:count:{rid} and frees s. The caller has already taken it out of its
 * idle list (or it was not listed).
 */
void faas_prov_sbx_destroy(faas_prov_t *p, faas_prov_sbx_t *s, const char *why);
/*
 * CPU time the sandbox's processes used so far (cgroup v2 cpu.stat
 * usage_usec): 0, or -1 when it cannot be read. Blocking (one small read).
 */
int faas_prov_sbx_cpu_usec(faas_prov_t *p, const faas_prov_sbx_t *s,
                           uint64_t *usec);
/*
 * Notes the memory the sandbox's cgroup is charged now (v1
 * memory.usage_in_bytes, else v2 memory.current) in s->mem_bytes; leaves
 * s as it was when it cannot be read. Blocking (one small read).
 */
void faas_prov_sbx_note_memory(faas_prov_t *p, faas_prov_sbx_t *s);
/*
 * Voluntary context switches of the main threads of the sandbox's processes
 * so far (cgroup v2 cgroup.procs, /proc/<pid>/status): 0, or -1 when they
 * cannot be read. Every freeze puts each task through one, so a count that
 * does not move while the sandbox is thawed means one call that neither
 * ended nor blocked since. Blocking (a few small reads).
 */
int faas_prov_sbx_switches(faas_prov_t *p, const faas_prov_sbx_t *s,
                           uint64_t *n);
/* Reaps our zombie children that are sandbox inits (SIGCHLD, ticks). */
void faas_prov_sbx_reap(faas_prov_t *p);
/* 1 when s still has live processes; *frozen set. */
int faas_prov_sbx_alive(faas_prov_t *p, faas_prov_sbx_t *s, int *frozen);
/* "<id>|<endpoint>|<origin or ->" into a new string. */
char *faas_prov_sbx_entry(faas_prov_t *p, const char *id, const char *origin);

/* ---- code cache (code_cache.c) ---- */

enum faas_prov_code_state { CODE_LOADING = 0, CODE_READY };

struct faas_prov_code_s {
    faas_prov_code_t *next;
    char        *name;           /* "<rid>.<sha256>" */
    char        *dir;            /* <cache_dir>/<name> */
    char        *key;            /* store key */
    char         sha256[65];
    int          state;
    unsigned     refs;
    uint64_t     last_used_ms;
    faas_prov_job_t  *waiters;        /* jobs waiting for LOADING */
};

typedef void (*faas_prov_code_cb)(faas_prov_t *p, faas_prov_job_t *job,
                                  faas_prov_code_t *code,
                             const char *reason);

int faas_prov_code_init(faas_prov_t *p, faas_error_t *err);
/* Calls cb once, with a referenced READY entry or code NULL and a reason. */
void faas_prov_code_acquire(faas_prov_t *p, faas_prov_job_t *job,
                            faas_prov_code_cb cb);
void faas_prov_code_release(faas_prov_t *p, faas_prov_code_t *c);
/* Finds a READY entry by its directory (reconciliation); takes a ref. */
faas_prov_code_t *faas_prov_code_by_dir(faas_prov_t *p, const char *dir);
void faas_prov_code_gc(faas_prov_t *p);
/*
 * Blocking helper (thread pool), exposed for the tool's tests: unpacks zip
 * into dir in a child running as who (common/unpriv.h; max_fsize 0 means
 * the cache's 512 MiB), then gives dir back to the daemon's uid.
 */
int faas_prov_code_unzip(const char *zip, const char *dir,
                         const faas_unpriv_t *who, faas_error_t *err);

/* ---- revisions (revision.c) ---- */

/* faas:rev:{rid}: what a sandbox of the revision is made of. */
struct faas_prov_rev_s {
    faas_prov_rev_t *next;           /* in the cache, most recent first */
    unsigned     refs;               /* jobs using it */
    int          cached;
    char        *rid;
    char        *function;           /* the rid's name */
    unsigned     version;            /* and version */
    char        *runtime;
    char        *handler;
    char        *code_key;
    char        *code_sha256;
    char        *owner;
    unsigned     memory_mb;
    unsigned     timeout_ms;
    unsigned     keep_alive_s;
    json_t      *env;                /* object of strings */
};

typedef void (*faas_prov_rev_cb)(faas_prov_t *p, faas_prov_job_t *job,
                                 const char *reason);

/*
 * Sets job->rev (one reference: faas_prov_rev_release it) to the revision
 * job->req names and calls cb(reason NULL), or cb with the reason it cannot
 * be had ("function revision <rid> is unknown", ...). cb may run at once.
 */
void faas_prov_rev_acquire(faas_prov_t *p, faas_prov_job_t *job,
                           faas_prov_rev_cb cb);
void faas_prov_rev_release(faas_prov_t *p, faas_prov_rev_t *rev);
/* Empties the cache (shutdown). */
void faas_prov_rev_free_all(faas_prov_t *p);

/* ---- per-owner cap (owner_limit.c) ---- */

/* NULL when the job's owner may have one more sandbox on this host, else
 * the reason (written into buf) to fail the request with. */
const char *faas_prov_owner_refuse(faas_prov_t *p, const faas_prov_job_t *job,
                                   char *buf, size_t len);
/* Records the job's owner in its new sandbox s (left uncounted if out of
 * memory). */
void faas_prov_owner_note(faas_prov_sbx_t *s, const faas_prov_job_t *job);

/* ---- capacity (capacity.c) ---- */

typedef void (*faas_prov_cap_cb)(faas_prov_t *p, faas_prov_job_t *job, int ok);
/* Waits while max_busy sandboxes are busy or being created, then makes
 * room for job->memory_mb (evicting LRU idle sandboxes of other
 * revisions); cb(ok=1) when it fits, cb(ok=0) when the host is full. */
void faas_prov_capacity_reserve(faas_prov_t *p, faas_prov_job_t *job,
                                faas_prov_cap_cb cb);

/* ---- stem cells (stem.c) ---- */

struct faas_prov_stem_s;
/* Reads "stem_cells" and "stem_cells_max" and starts the refill timer. */
int faas_prov_stem_init(faas_prov_t *p, faas_error_t *err);
/* For the first sandbox of job's revision on this host: records the demand
 * and, when its pool holds a ready cell, moves it to the job (job->stem_id,
 * its memory no longer counted: the job reserves it); else stem_id "". */
void faas_prov_stem_take(faas_prov_t *p, faas_prov_job_t *job);
/* Destroys idle cells until need_mb are freed; returns the MB freed. */
unsigned faas_prov_stem_release(faas_prov_t *p, unsigned need_mb);
/* Destroys the cell job took, if any (the job failed before using it). */
void faas_prov_stem_discard(faas_prov_t *p, faas_prov_job_t *job);
/* Stops refilling and destroys the idle cells (shutdown). */
void faas_prov_stem_stop(faas_prov_t *p);

/* ---- jobs and queue (queue.c) ---- */

struct faas_prov_job_s {
    faas_prov_job_t       *next;        /* in a waiters list */
    faas_prov_job_t       *all_next;    /* every job in progress */
    faas_prov_job_t      **all_prev;
    faas_prov_t           *prov;
    Faas__ProvisionRequest *req;
    char                  *raw;         /* the request as queued: its */
    size_t                 raw_len;     /* processing-list entry */
    unsigned          memory_mb;
    unsigned          keep_alive_s;
    faas_prov_rev_t       *rev;
    faas_prov_code_t      *code;
    faas_prov_sbx_t       *sbx;
    uint64_t          popped_ms;
    uint64_t          create_ms;   /* how long faas_sandbox_create took */
    char              stem_id[FAAS_SANDBOX_ID_LEN + 1]; /* a stem cell to
                                                       specialise, or "" */
    double            import_ms;   /* the stem cell's handler import */
    int               evict_round;
    int               evict_pending;
    faas_prov_rev_cb       rev_cb;
    faas_prov_cap_cb       cap_cb;
    faas_prov_code_cb      code_cb;
    faas_error_t      err;
    int               rc;
    uv_work_t         work;
};

void faas_prov_queue_kick(faas_prov_t *p);
/* Re-sends the outcomes whose reply was lost (reconciliation tick). */
void faas_prov_queue_retry(faas_prov_t *p);
/* Resets per-shard connections whose BLMOVE (1 s timeout) has not been
 * answered for several seconds (heartbeat tick). */
void faas_prov_queue_watchdog(faas_prov_t *p);

/* ---- metrics (metrics.c, served by common/metrics_http.c) ---- */

/* The counters other files add to (NULL, ignored, without metrics_listen). */
struct faas_prov_metrics {
    faas_metric_t *creates;
    faas_metric_t *create_failures;
    faas_metric_t *create_seconds;
    faas_metric_t *code_hits;
    faas_metric_t *code_misses;
    faas_metric_t *redis_reconnects;
};
extern struct faas_prov_metrics faas_prov_m;

/* Serves the metrics on the `metrics_listen` key, if set. */
int faas_prov_metrics_start(faas_prov_t *p, faas_error_t *err);
void faas_prov_metrics_stop(void);
/* Closes the per-shard connections (shutdown). */
void faas_prov_queue_stop(faas_prov_t *p);

/* ---- leases (leases.c) ---- */

/*
 * Starts the heartbeat: each tick calls on_tick first, then on_settled once
 * the leases are settled (the layer above consumes the shards it holds).
 */
void faas_prov_leases_start(faas_prov_t *p, void (*on_tick)(faas_prov_t *p),
                            void (*on_settled)(faas_prov_t *p));
/* 1 when shard's queue is to be consumed now (held, valid, not handed over). */
int faas_prov_leases_consumable(faas_prov_t *p, unsigned shard);
/* Hands over the shards being released that no BLMOVE names any more. */
void faas_prov_leases_flush(faas_prov_t *p);
void faas_prov_leases_release_all(faas_prov_t *p, void (*done)(faas_prov_t *p));

/* ---- reaper and reconciliation ---- */

void faas_prov_reconcile_start(faas_prov_t *p);
/* Runs a scan at once, then every reconcile_ms: after Redis came back. */
void faas_prov_reconcile_soon(faas_prov_t *p);
/* Keep-alive decision on one listed idle sandbox, from the scan. */
void faas_prov_reaper_check(faas_prov_t *p, faas_prov_sbx_t *s, const char *key,
                       uint64_t now);
/* LREMs entry of s from key and destroys s only if it was removed. */
void faas_prov_reaper_take(faas_prov_t *p, faas_prov_sbx_t *s, const char *why,
                      void (*done)(faas_prov_t *p, faas_prov_sbx_t *s,
                                   int removed,
                                   void *data),
                      void *data);

/* ---- the daemon ---- */

struct faas_prov_s {
    uv_loop_t          *loop;
    json_t             *cfg;
    const char         *host_id;
    const char         *endpoint;
    const char         *run_dir;
    const char         *cache_dir;
    char               *state_dir;   /* <run_dir>/prov */
    faas_sandbox_host_t host;
    faas_blob_store_t  *store;
    pthread_mutex_t     store_lock;
    faas_unpriv_t       unzip;       /* who unpacks code (unzip_user) */

    unsigned  shards;
    unsigned  lease_ms;
    unsigned  heartbeat_ms;
    unsigned  memory_budget_mb;
    unsigned  memory_margin_pct;  /* added to a sandbox's measured use */
    unsigned  keep_alive_s;
    unsigned  code_gc_s;
    unsigned  reconcile_ms;
    unsigned  grace_ms;
    unsigned  create_concurrency;
    unsigned  max_pending;
    unsigned  err_ttl_s;
    unsigned  owner_max_sandboxes;   /* 0: no cap */
    unsigned  max_busy_per_cpu;
    unsigned  max_busy;       /* max_busy_per_cpu x CPUs; 0: no limit */
    faas_prov_job_t *busy_wait;       /* jobs waiting for max_busy, FIFO */
    faas_prov_job_t *busy_wait_tail;
    uv_timer_t busy_timer;
    int        busy_timer_on;

    faas_prov_redis_t cmd;
    faas_prov_redis_t *qc;   /* per shard, started when first held */
    char     *work_key;      /* faas:prov:work:<host_id> */

    /* leases */
    uint8_t  *held;          /* per shard: 1 held */
    uint8_t  *releasing;     /* per shard: 1 handing over */
    uint64_t *lease_ok_ms;   /* last successful acquire/extend */
    unsigned  live_hosts;
    uv_timer_t hb_timer;
    int       lease_tick_busy;

    /* queue */
    uint8_t  *q_pending;     /* per shard: a BLMOVE is outstanding */
    uint64_t *q_sent_ms;     /* per shard: when it was sent */
    uint64_t  hb_started_ms; /* when the lease tick in progress started */
    unsigned  q_outstanding; /* BLMOVEs outstanding */
    int       recovered;     /* processing list and jobs are in step */
    int       recovered_once;/* the previous run's requests were taken up */
    int       recover_pending;
    faas_prov_job_t *all_jobs;
    struct faas_prov_fin_s *fin_retry;   /* outcomes to send again */
    unsigned  jobs;          /* popped and not finished */
    unsigned  creating;      /* creates running in the thread pool */
    faas_prov_job_t *create_q, *create_q_tail;

    /* tables */
    faas_prov_sbx_t  *sbx;
    faas_prov_code_t *codes;
    faas_prov_rev_t  *revs;
    unsigned     n_revs;
    unsigned     used_mb;
    unsigned     destroying;
    struct faas_prov_stem_s *stem;

    uv_timer_t recon_timer;
    int        recon_busy;
    int        recon_done_once;
    int        redis_seen;    /* the command link was ready once */
    unsigned   fast_scans;    /* quick scans left after Redis lost our
                                 state (re-list without the grace period) */

    uv_signal_t sigterm, sigint, sigchld;
    int         stopping;
    uv_timer_t  stop_timer;
};

/* 1 while a BLMOVE naming shard's queue is outstanding (queue.c sends it,
 * leases.c hands a shard over only once none is). */
static inline int
faas_prov_shard_busy(const faas_prov_t *p, unsigned shard)
{
    return p->q_pending != NULL && p->q_pending[shard];
}

#endif
