/*
 * The sandbox builder: the provisioner is the container runtime (docs/DESIGN.md
 * section 6). Used by faas-provisioner (create, destroy, reconcile) and by
 * faas-agent (freeze, thaw, memory, destroy on timeout or crash).
 *
 * On the host a sandbox <id> is:
 *   <run_dir>/sbx/<id>/            run directory; mounted at /run/faas inside
 *   <run_dir>/sbx/<id>/function.sock   the runtime's socket
 *   <run_dir>/sbx/<id>/meta.json   what it runs: {"id","function","version",
 *                                  "rid","runtime","handler","memory_mb",
 *                                  "timeout_ms","uid","pid","created_ms",
 *                                  "origin_request_id","code_dir"}
 *   /sys/fs/cgroup/<hier>/<cgroup_root>/<id>   for memory, pids, cpu, freezer
 *   /sys/fs/cgroup/unified/<cgroup_root>/<id>  v2 (cgroup.freeze, cgroup.kill)
 * Sandboxes are not children of the calling process: they outlive it. A
 * caller that is a child subreaper (faas-provisioner is one, so that it can
 * reap destroyed sandboxes on hosts whose pid 1 does not) gets them as
 * children; they are re-parented to pid 1 when it dies, and keep running.
 */
#ifndef FAAS_SANDBOX_H
#define FAAS_SANDBOX_H

#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "error.h"

#define FAAS_SANDBOX_ID_LEN 18 /* "s-" + 16 lowercase hex digits */

enum faas_freezer {
    FAAS_FREEZER_V1 = 1, /* freezer.state */
    FAAS_FREEZER_V2 = 2, /* cgroup.freeze */
};

/* Host-wide settings, from the daemon's config. */
typedef struct faas_sandbox_host_s {
    const char       *run_dir;      /* e.g. /var/lib/faas/run */
    const char       *cgroup_root;  /* name under each hierarchy, e.g. "faas" */
    const char       *runtimes_dir; /* runtimes */
    const char       *python;       /* /usr/bin/python3 */
    const char       *node;         /* /usr/bin/node */
    uid_t             uid_base;     /* sandboxes run as uid_base + slot */
    unsigned          uid_count;    /* number of slots */
    enum faas_freezer freezer;      /* which freezer to use */
    int               zygote;       /* FAAS_ZYGOTE_*: python3 sandboxes
                                       are forked from a zygote when one
                                       answers (zygote.c) */
    unsigned          zygote_idle_s; /* a per-function zygote exits after
                                        this long without a spawn */
    const char       *zygote_lib;   /* config "zygote_lib": the _faas_zygote
                                       extension; default: next to the
                                       running binary */
    unsigned          cpu_mb_per_vcpu; /* CPU scales with memory: this many
                                          MB of memory_mb buy one CPU
                                          (0: FAAS_CPU_MB_PER_VCPU) */
    int               allow_unaccounted_swap; /* create even where the
                                                 host does not account swap */
} faas_sandbox_host_t;

/* Lambda's ratio: a function with 1,769 MB has one full vCPU. */
#define FAAS_CPU_MB_PER_VCPU 1769

/* One sandbox to build. Zero values take the documented defaults. */
typedef struct faas_sandbox_spec_s {
    const char    *function;          /* [a-z][a-z0-9-]{0,62} */
    unsigned       version;
    const char    *runtime;           /* "python3" | "nodejs" */
    const char    *handler;           /* "file.function" */
    const char    *code_dir;          /* unpacked code, bound at /var/task */
    unsigned       memory_mb;         /* default 128 */
    unsigned       timeout_ms;        /* default 3000 (for the context) */
    unsigned       pids_max;          /* default 64 */
    unsigned       tmp_mb;            /* default 64 */
    unsigned       cpu_shares;        /* default 1024 */
    const json_t  *env;               /* object of strings, may be NULL */
    const char    *origin_request_id; /* recorded in meta.json, may be NULL */
    unsigned       ready_timeout_ms;  /* default 10000: socket + ping answer */
    int            stem;              /* a stem cell: set by
                                         faas_sandbox_stem_create only */
} faas_sandbox_spec_t;

/*
 * Fills host from a daemon config object (keys run_dir and runtimes_dir,
 * required; cgroup_root "faas", python, node, uid_base 100000, uid_count
 * 65536, freezer, zygote, zygote_idle_s, zygote_lib, cpu_mb_per_vcpu,
 * require_swap_accounting).
 * The strings point into cfg, which must outlive host.
 */
int faas_sandbox_host_from_config(faas_sandbox_host_t *host, const json_t *cfg,
                                  faas_error_t *err);

/* 1 if id is "s-" + 16 lowercase hex digits, else 0. */
int faas_sandbox_id_valid(const char *id);

/* Fills id (FAAS_SANDBOX_ID_LEN + 1 bytes) with a new random id. */
int faas_sandbox_id_new(char *id, faas_error_t *err);

/*
 * Prepares the host: cgroup roots, the permanently frozen pin cgroup
 * (<root>/.pin, keeps v1 freezes in the microsecond range), run_dir/sbx.
 * Idempotent; call once at daemon start.
 */
int faas_sandbox_host_init(const faas_sandbox_host_t *host, faas_error_t *err);

/*
 * Builds sandbox `id` (from faas_sandbox_id_new) from spec and returns once
 * its runtime's socket exists (inotify) and answers a ping, with the sandbox
 * FROZEN. On failure everything built so far is destroyed and err says why
 * (for a runtime that dies at start, its last output is in the message).
 */
int faas_sandbox_create(const faas_sandbox_host_t *host,
                        const faas_sandbox_spec_t *spec, const char *id,
                        faas_error_t *err);

/*
 * Kills every process in the sandbox's cgroups (frozen, stopped and forking
 * ones included), removes the cgroups and the run directory. Destroying a
 * sandbox that does not exist succeeds. Refuses invalid ids.
 */
int faas_sandbox_destroy(const faas_sandbox_host_t *host, const char *id,
                         faas_error_t *err);

/* 1 if the run directory and cgroup of id exist, 0 if not. */
int faas_sandbox_exists(const faas_sandbox_host_t *host, const char *id);

/* Reads meta.json. Returns a new reference in *meta. -ENOENT if missing. */
int faas_sandbox_meta(const faas_sandbox_host_t *host, const char *id,
                      json_t **meta, faas_error_t *err);

/* Writes the socket path of id into buf. */
int faas_sandbox_socket_path(const faas_sandbox_host_t *host, const char *id,
                             char *buf, size_t len);

/*
 * Connects to the runtime socket of id without following a symlink: the
 * sandbox owns its socket file and could replace it with a link to a host
 * socket. flags may hold SOCK_NONBLOCK. Returns the connected fd (caller
 * closes it) or <0 (-ENOTSOCK when the file is not a socket).
 */
int faas_sandbox_connect(const faas_sandbox_host_t *host, const char *id,
                         int flags, faas_error_t *err);

/* Calls fn for each sandbox id present on the host (run dirs and cgroups). */
int faas_sandbox_list(const faas_sandbox_host_t *host,
                      int (*fn)(const char *id, void *data), void *data,
                      faas_error_t *err);

/*
 * Fast freeze/thaw for the agent's hot path: a handle keeps the cgroup files
 * open so each call is one pwrite().
 */
typedef struct faas_cgroup_s faas_cgroup_t;

int faas_cgroup_open(const faas_sandbox_host_t *host, const char *id,
                     faas_cgroup_t **cg, faas_error_t *err);
void faas_cgroup_close(faas_cgroup_t *cg);
int faas_cgroup_freeze(faas_cgroup_t *cg, faas_error_t *err);
int faas_cgroup_thaw(faas_cgroup_t *cg, faas_error_t *err);
/* 1 frozen, 0 thawed (or freezing), <0 error. */
int faas_cgroup_frozen(faas_cgroup_t *cg, faas_error_t *err);
/* Peak memory since the last reset (memory.max_usage_in_bytes). */
int faas_cgroup_memory_peak(faas_cgroup_t *cg, uint64_t *bytes,
                            faas_error_t *err);
int faas_cgroup_memory_peak_reset(faas_cgroup_t *cg, faas_error_t *err);
/* 1 if the memory cgroup saw an OOM kill since creation. */
int faas_cgroup_oom_killed(faas_cgroup_t *cg);
/* Number of processes still in the sandbox. */
int faas_cgroup_nprocs(faas_cgroup_t *cg);

/*
 * Stem cells (stem.c, docs/DESIGN.md section 6): generic sandboxes built
 * ahead of demand, exactly as a fresh sandbox (namespaces, cgroups of
 * memory_mb, uid, seccomp, root, never from a zygote), with the runtime
 * started but no function: /var/task is an empty directory of their own
 * (<run_dir>/sbx/.stem/<id>) and the runtime (FAAS_STEM=1) loads nothing.
 * Their meta.json has "stem": true and no "rid".
 *
 * faas_sandbox_stem_create: builds stem cell id with the runtime and the
 * limits of `limits` (runtime, memory_mb, pids_max, tmp_mb, cpu_shares,
 * ready_timeout_ms; the rest is ignored) and returns it FROZEN, like
 * faas_sandbox_create.
 *
 * faas_sandbox_specialise: gives stem cell id, once, the function of spec
 * (runtime and memory_mb must match the cell's): mounts spec->code_dir
 * read-only (nosuid, nodev, nothing below it) over /var/task inside the
 * cell's mount namespace (open_tree + move_mount from a helper process that
 * joined it), thaws the cell, sends its runtime the function's environment
 * (the "specialise" frame: it imports the handler), freezes it again and
 * rewrites meta.json as for a fresh sandbox of spec ("stem": true kept).
 * *import_ms (may be NULL) gets the runtime's handler import time. On
 * failure the cell is unusable: the caller destroys it.
 */
int faas_sandbox_stem_create(const faas_sandbox_host_t *host,
                             const faas_sandbox_spec_t *limits,
                             const char *id, faas_error_t *err);
int faas_sandbox_specialise(const faas_sandbox_host_t *host,
                            const faas_sandbox_spec_t *spec, const char *id,
                            double *import_ms, faas_error_t *err);

/* Which zygote forks python3 sandboxes (config "zygote"). */
enum {
    FAAS_ZYGOTE_OFF = 0,      /* false / "off": every sandbox the fresh way */
    FAAS_ZYGOTE_SHARED = 1,   /* true / "shared": one zygote per host for
                                 every function: its sandboxes share the
                                 zygote's ASLR layout and hash secret */
    FAAS_ZYGOTE_FUNCTION = 2, /* "function": a zygote per function revision
                                 (function@version, never reused), so only
                                 sandboxes of one function's code, hence
                                 of one owner, share them */
};

/* Reads "freezer" ("v1", the default, or "v2") from cfg into host. */
int faas_sandbox_freezer_config(faas_sandbox_host_t *host, const json_t *cfg,
                                faas_error_t *err);

/* Reads "cpu_mb_per_vcpu" (1..1048576, default 1769) and
 * "require_swap_accounting" (a boolean, default true) from cfg into host. */
int faas_sandbox_limits_config(faas_sandbox_host_t *host, const json_t *cfg,
                               faas_error_t *err);

/* Reads "zygote" (a boolean or "off" | "shared" | "function") and
 * "zygote_idle_s" from cfg into host; absent keys keep host's values. */
int faas_sandbox_zygote_config(faas_sandbox_host_t *host, const json_t *cfg,
                               faas_error_t *err);

/*
 * Runtime zygotes (zygote.c; python3 only: nodejs cannot fork safely).
 * With host->zygote set, faas_sandbox_create forks python3 sandboxes from
 * the zygote of run_dir (shared) or of the sandbox's function (per
 * function); when none answers it starts one in the background and builds
 * that sandbox the fresh way. meta.json says "zygote": true for a
 * zygote-made sandbox. A per-function zygote exits after zygote_idle_s
 * without a spawn. The functions below act on the shared zygote.
 *
 * faas_sandbox_zygote_start: starts the zygote; in the background (returns
 * at once, the zygote answers a few ms later), or with foreground set by
 * exec'ing it in the calling process (returns only on failure). -EEXIST
 * (err->code EEXIST) when one already runs.
 * faas_sandbox_zygote_ping: 0 and its pid when the zygote answers.
 * faas_sandbox_zygote_stop: stops it (SIGTERM, then SIGKILL); its sandboxes
 * live on. 0 when none runs.
 */
int faas_sandbox_zygote_start(const faas_sandbox_host_t *host,
                              const char *runtime, int foreground,
                              faas_error_t *err);
int faas_sandbox_zygote_ping(const faas_sandbox_host_t *host,
                             const char *runtime, pid_t *pid,
                             faas_error_t *err);
int faas_sandbox_zygote_stop(const faas_sandbox_host_t *host,
                             const char *runtime, faas_error_t *err);
/* Stops every zygote of run_dir, shared and per function; returns how many
 * ran, or -1 when one would not exit. */
int faas_sandbox_zygote_stop_all(const faas_sandbox_host_t *host,
                                 faas_error_t *err);

#endif
