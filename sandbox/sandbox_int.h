/*
 * Internals of the sandbox library, shared by sandbox.c (the public API),
 * cgroup.c, rootfs.c, seccomp.c and sandbox_init.c (the child side).
 *
 * Everything the child processes need is prepared by the caller in a
 * sbx_launch_t before fork(): the children only make system calls (no
 * malloc, no stdio), so forking a multi-threaded daemon is safe.
 */
#ifndef FAAS_SANDBOX_INT_H
#define FAAS_SANDBOX_INT_H

#include "sandbox.h"
#include "zygote_int.h"
#include <limits.h>
#include <linux/filter.h>

#define SBX_HIERS 4 /* v1: memory, pids, cpu, freezer */
#define SBX_ENV_MAX 128
#define SBX_ARGV_MAX 8
#define SBX_RUN_TMPFS_KB 4096 /* size of the per-sandbox run dir tmpfs */

extern const char *const sbx_v1_hiers[SBX_HIERS];

/* What the two children of faas_sandbox_create need, built before fork. */
typedef struct sbx_launch_s {
    /* v1 "tasks" files the sandbox process enters (writing "0" there moves
     * the calling thread without the global threadgroup lock, hence no RCU
     * grace period; that process is single-threaded). It is born in the v2
     * cgroup: clone3 with CLONE_INTO_CGROUP into cg2_fd, or the first child
     * enters cg2_procs when clone3 lacks it. */
    char  cg_tasks[SBX_HIERS][PATH_MAX];
    char  cg2_procs[PATH_MAX];
    int   cg2_fd;
    char  root_mnt[PATH_MAX]; /* empty dir the new root tmpfs is mounted on */
    char  run_dir[PATH_MAX];  /* host <run_dir>/sbx/<id> */
    char  code_dir[PATH_MAX];
    char  runtimes_dir[PATH_MAX];
    char  tmp_opts[64]; /* "size=64m,mode=1777" */
    char  passwd[512];
    char  group[256];
    uid_t uid;
    gid_t gid;
    unsigned long      fsize; /* RLIMIT_FSIZE bytes */
    char              *argv[SBX_ARGV_MAX];
    char              *envp[SBX_ENV_MAX + 1];
    struct sock_fprog *seccomp;
    int log_fd;  /* runtime.log (created by the caller; unused by children) */
    int info_fd; /* A -> caller: host pid of the runtime */
    int go_fd;   /* caller -> A and B: one byte each */
    int err_fd;  /* B -> caller: a sbx_setup_error_t; CLOEXEC */
    int piv_rd, piv_wr; /* B -> A: root pivoted, detach the old one */
    int parent_fds[3];  /* the caller's pipe ends, closed in children */
    /* The zygote path (zygote.c): A asks the runtime's zygote for B instead
     * of cloning it. blob_fd is a memfd holding this launch (zygote_int.h);
     * only B reads it, never the zygote, so no sandbox's environment ever
     * sits in the zygote's memory, which later sandboxes inherit. */
    int zygote_fd; /* connected to the zygote, or -1 */
    char zygote_key[ZYG_KEY_MAX]; /* the revision of a per-function zygote */
    int blob_fd;   /* the launch for B, or -1 */
} sbx_launch_t;

/* What the sandbox's first process reports when a setup step fails. */
typedef struct sbx_setup_error_s {
    int  errnum;
    char step[124];
} sbx_setup_error_t;

/* sandbox_init.c: runs in the first child; never returns. */
void sbx_child_main(sbx_launch_t *l) __attribute__((noreturn));
/* In a child: writes a sbx_setup_error_t (errno, step) to err_fd (if >= 0)
 * and exits 127. */
void sbx_report_failure(int err_fd, const char *step)
    __attribute__((noreturn));
/* Every signal back to its default disposition, none blocked. */
void sbx_reset_signals(void);

/* sandbox_init.c: B's side, shared by the fresh path and the zygote.
 * sbx_clone_sandbox() clones B into the namespaces and the v2 cgroup
 * (fork-like: returns 0 in B). sbx_sandbox_enter() runs in B: cgroups,
 * root, hostname, lo, fds, rlimits, privileges, waits for "go", loads the
 * seccomp filter; pre_drop (may be NULL) runs just before the privileges
 * are dropped. It returns only on success; on failure it reports the
 * step on err_fd and exits. */
long sbx_clone_sandbox(const sbx_launch_t *l, unsigned long long extra);
void sbx_sandbox_enter(sbx_launch_t *l, int (*pre_drop)(sbx_launch_t *l));

/* rootfs.c: in the sandbox's mount namespace, builds and enters the root.
 * The old root stays at SBX_OLD_ROOT (a 0700 root-owned dir) for the first
 * child to detach from outside, off the critical path: the detach waits for
 * an RCU grace period (~10 ms).
 * Returns 0 or -1 with *what naming the failed step (errno set). */
#define SBX_OLD_ROOT "/.oldroot"

/* sandbox.c: <run_dir>/sbx[/<id>[/<file>]] into buf; -ENAMETOOLONG. */
int sbx_path(char *buf, size_t len, const faas_sandbox_host_t *host,
             const char *id, const char *file);

/* stem.c: stem cells (docs/DESIGN.md section 6). The empty directory a stem
 * cell binds at /var/task is <run_dir>/sbx/.stem/<id>. */
#define SBX_STEM_DIR ".stem"
int sbx_write_stem_meta(const faas_sandbox_host_t *host,
                        const faas_sandbox_spec_t *spec, const char *id,
                        uid_t uid, long pid, faas_error_t *err);
void sbx_stem_dir_remove(const faas_sandbox_host_t *host, const char *id);
/* sandbox.c: what a create of function@version tells the zygote logic. */
void sbx_zygote_note(const faas_sandbox_host_t *host, const char *runtime,
                     const char *function, unsigned version);
int sbx_rootfs_setup(const sbx_launch_t *l, const char **what);

/* seccomp.c: the compiled filter (built once per process, then cached). */
int sbx_seccomp_prog(struct sock_fprog **prog, faas_error_t *err);

/* zygote.c: a connected control socket (timeouts set), or <0; the blob
 * memfd of a launch (see zygote_int.h), or <0. */
int sbx_zygote_connect(const faas_sandbox_host_t *host, const char *runtime,
                       const char *key, faas_error_t *err);
/* zygote.c: starts the zygote of key (NULL: the shared one) in the
 * background; -EEXIST when it runs. */
int sbx_zygote_start(const faas_sandbox_host_t *host, const char *runtime,
                     const char *key, faas_error_t *err);
int sbx_zygote_blob(const sbx_launch_t *l, faas_error_t *err);
/* zygote.c: SIGKILLs the runtime's zygote if one holds its lock (no wait). */
void sbx_zygote_kill(const faas_sandbox_host_t *host, const char *runtime,
                     const char *key);

/* cgroup.c */
int sbx_cgroup_path(char *buf, size_t len, const char *hier,
                    const faas_sandbox_host_t *host, const char *id);
int sbx_cgroup_create(const faas_sandbox_host_t *host, const char *id,
                      const faas_sandbox_spec_t *spec, faas_error_t *err);
/* The CFS quota of the sandbox's memory size (cpu_mb_per_vcpu), v1 and v2
 * where the cpu controller is there. */
int sbx_cgroup_limit_cpu(const faas_sandbox_host_t *host, const char *id,
                         const faas_sandbox_spec_t *spec, faas_error_t *err);
int sbx_cgroup_unlimit_cpu(const faas_sandbox_host_t *host, const char *id,
                           faas_error_t *err);
int sbx_cgroup_remove(const faas_sandbox_host_t *host, const char *id,
                      faas_error_t *err);
int sbx_cgroup_host_init(const faas_sandbox_host_t *host, faas_error_t *err);
int sbx_write_file(const char *path, const char *val, faas_error_t *err);

#endif
