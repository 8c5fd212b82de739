/*
 * Sandbox cgroups: one per sandbox in the v1 memory, pids, cpu and freezer
 * hierarchies, plus one in the cgroup2 mount (cgroup.freeze, cgroup.kill).
 * The permanently frozen <root>/.pin keeps v1 freezes in the microsecond
 * range (docs/DESIGN.md sections 6 and 12).
 */
#include "cleanup.h"
#include "clock.h"
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG_BASE "/sys/fs/cgroup"
#define CG_V2 "unified"
#define CG_PIN ".pin"
#define CG_KILL_MS 10000
#define CPU_PERIOD_US 100000 /* the kernel's default CFS period */
#define CPU_QUOTA_MIN_US 1000 /* the smallest quota the kernel takes */

const char *const sbx_v1_hiers[SBX_HIERS] = {"memory", "pids", "cpu",
                                             "freezer"};

struct faas_cgroup_s {
    enum faas_freezer freezer;
    int               freeze_fd; /* v1 freezer.state (rw) or v2 cgroup.freeze */
    int               peak_fd;   /* memory.max_usage_in_bytes (rw) */
    char              events[PATH_MAX]; /* v2 cgroup.events */
    char              oom[PATH_MAX];    /* memory.oom_control */
    char              procs[PATH_MAX];  /* freezer cgroup.procs */
};

int
sbx_cgroup_path(char *buf, size_t len, const char *hier,
                const faas_sandbox_host_t *host, const char *id)
{
    int n;

    if (id != NULL) {
        n = snprintf(buf, len, CG_BASE "/%s/%s/%s", hier, host->cgroup_root,
                     id);
    } else {
        n = snprintf(buf, len, CG_BASE "/%s/%s", hier, host->cgroup_root);
    }
    return (n < 0 || (size_t) n >= len) ? -ENAMETOOLONG : 0;
}

/* buf = dir + "/" + file, truncated safely (paths are checked on creation). */
static void
join(char *buf, size_t len, const char *dir, const char *file)
{
    size_t a = strlen(dir), b = strlen(file);

    if (a + 1 + b >= len) {
        buf[0] = '\0';
        return;
    }
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, file, b + 1);
}

int
sbx_write_file(const char *path, const char *val, faas_error_t *err)
{
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    size_t            len = strlen(val);

    if (fd < 0) {
        return faas_error_set(err, errno, "open %s", path);
    }
    if (write(fd, val, len) != (ssize_t) len) {
        return faas_error_set(err, errno, "write %s to %s", val, path);
    }
    return 0;
}

static int
write_cg(const char *dir, const char *file, const char *val, int optional,
         faas_error_t *err)
{
    char path[PATH_MAX];

    join(path, sizeof(path), dir, file);
    if (optional && access(path, F_OK) < 0) {
        return 0;
    }
    return sbx_write_file(path, val, err);
}

static int
mkdir_cg(const char *path, faas_error_t *err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        return faas_error_set(err, errno, "mkdir %s", path);
    }
    return 0;
}

int
sbx_cgroup_host_init(const faas_sandbox_host_t *host, faas_error_t *err)
{
    char path[PATH_MAX];
    int  i, ret;

    for (i = 0; i <= SBX_HIERS; i++) {
        ret = sbx_cgroup_path(path, sizeof(path),
                              i < SBX_HIERS ? sbx_v1_hiers[i] : CG_V2, host,
                              NULL);
        if (ret < 0) {
            return faas_error_set(err, -ret, "cgroup path");
        }
        ret = mkdir_cg(path, err);
        if (ret < 0) {
            return ret;
        }
    }
    /* The pin: an empty v1 freezer cgroup that stays FROZEN forever. */
    ret = sbx_cgroup_path(path, sizeof(path), "freezer", host, CG_PIN);
    if (ret < 0) {
        return faas_error_set(err, -ret, "cgroup path");
    }
    ret = mkdir_cg(path, err);
    if (ret < 0) {
        return ret;
    }
    return write_cg(path, "freezer.state", "FROZEN", 0, err);
}

/*
 * memory.limit_in_bytes, and no swap beyond it: memory.memsw (v1), or
 * memory.swap.max = 0 (v2, written with the v2 cgroup) where the memory
 * controller is on cgroup2. A host that accounts neither (v1 booted
 * without swapaccount) would let a sandbox swap without bound: refused
 * unless the config says otherwise.
 */
static int
limit_memory(const faas_sandbox_host_t *host, const char *dir,
             const faas_sandbox_spec_t *spec, faas_error_t *err)
{
    char path[PATH_MAX], val[32];
    int  ret;

    snprintf(val, sizeof(val), "%llu",
             (unsigned long long) spec->memory_mb << 20);
    ret = write_cg(dir, "memory.limit_in_bytes", val, 0, err);
    if (ret < 0) {
        return ret;
    }
    join(path, sizeof(path), dir, "memory.memsw.limit_in_bytes");
    if (access(path, F_OK) == 0) {
        return sbx_write_file(path, val, err);
    }
    sbx_cgroup_path(path, sizeof(path), CG_V2, host, NULL);
    join(path, sizeof(path), path, "memory.swap.max");
    if (access(path, F_OK) == 0 || host->allow_unaccounted_swap) {
        return 0;
    }
    return faas_error_set(err, ENOTSUP,
                          "this host does not account swap (no "
                          "memory.memsw.limit_in_bytes, no memory.swap.max): "
                          "a sandbox could swap beyond its memory limit; boot "
                          "with swapaccount=1, or set "
                          "\"require_swap_accounting\": false");
}

/*
 * The CFS quota: memory_mb / cpu_mb_per_vcpu of a CPU per period, as Lambda
 * scales CPU with memory (docs/DESIGN.md section 6).
 */
int
sbx_cgroup_limit_cpu(const faas_sandbox_host_t *host, const char *id,
                     const faas_sandbox_spec_t *spec, faas_error_t *err)
{
    char               path[PATH_MAX], val[48];
    unsigned           per_cpu = host->cpu_mb_per_vcpu;
    unsigned long long quota;
    int                ret;

    if (per_cpu == 0) {
        per_cpu = FAAS_CPU_MB_PER_VCPU;
    }
    quota = (unsigned long long) CPU_PERIOD_US * spec->memory_mb / per_cpu;
    if (quota < CPU_QUOTA_MIN_US) {
        quota = CPU_QUOTA_MIN_US;
    }
    sbx_cgroup_path(path, sizeof(path), "cpu", host, id);
    snprintf(val, sizeof(val), "%u", CPU_PERIOD_US);
    ret = write_cg(path, "cpu.cfs_period_us", val, 1, err);
    if (ret == 0) {
        snprintf(val, sizeof(val), "%llu", quota);
        ret = write_cg(path, "cpu.cfs_quota_us", val, 1, err);
    }
    if (ret == 0) {
        sbx_cgroup_path(path, sizeof(path), CG_V2, host, id);
        snprintf(val, sizeof(val), "%llu %u", quota, CPU_PERIOD_US);
        ret = write_cg(path, "cpu.max", val, 1, err);
    }
    return ret;
}

/* Lifts the CFS quota again (a stem cell imports its handler at a whole
 * CPU, as a fresh sandbox does at start-up; stem.c). */
int
sbx_cgroup_unlimit_cpu(const faas_sandbox_host_t *host, const char *id,
                       faas_error_t *err)
{
    char path[PATH_MAX], val[48];
    int  ret;

    sbx_cgroup_path(path, sizeof(path), "cpu", host, id);
    ret = write_cg(path, "cpu.cfs_quota_us", "-1", 1, err);
    if (ret == 0) {
        sbx_cgroup_path(path, sizeof(path), CG_V2, host, id);
        snprintf(val, sizeof(val), "max %u", CPU_PERIOD_US);
        ret = write_cg(path, "cpu.max", val, 1, err);
    }
    return ret;
}

int
sbx_cgroup_create(const faas_sandbox_host_t *host, const char *id,
                  const faas_sandbox_spec_t *spec, faas_error_t *err)
{
    char path[PATH_MAX], val[32];
    int  i, ret;

    for (i = 0; i <= SBX_HIERS; i++) {
        sbx_cgroup_path(path, sizeof(path),
                        i < SBX_HIERS ? sbx_v1_hiers[i] : CG_V2, host, id);
        ret = mkdir_cg(path, err);
        if (ret < 0) {
            return ret;
        }
        if (i == 0) {
            ret = limit_memory(host, path, spec, err);
            if (ret < 0) {
                return ret;
            }
        } else if (i == 1) {
            snprintf(val, sizeof(val), "%u", spec->pids_max);
            if ((ret = write_cg(path, "pids.max", val, 0, err)) < 0) {
                return ret;
            }
        } else if (i == 2) {
            snprintf(val, sizeof(val), "%u", spec->cpu_shares);
            if ((ret = write_cg(path, "cpu.shares", val, 0, err)) < 0) {
                return ret;
            }
        } else if (i == SBX_HIERS) {
            if ((ret = write_cg(path, "memory.swap.max", "0", 1, err)) < 0) {
                return ret;
            }
        }
    }
    return 0;
}

static void
nap(unsigned *us)
{
    struct timespec ts = {0, (long) *us * 1000};

    nanosleep(&ts, NULL);
    if (*us < 10000) {
        *us *= 2;
    }
}

/* SIGKILLs every pid listed in <dir>/cgroup.procs. Returns how many. */
static int
kill_procs(const char *dir)
{
    char                 path[PATH_MAX];
    cleanup_fclose FILE *f = NULL;
    long                 pid;
    int                  n = 0;

    join(path, sizeof(path), dir, "cgroup.procs");
    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    while (fscanf(f, "%ld", &pid) == 1) {
        if (pid > 0) {
            kill((pid_t) pid, SIGKILL);
            n++;
        }
    }
    return n;
}

int
sbx_cgroup_remove(const faas_sandbox_host_t *host, const char *id,
                  faas_error_t *err)
{
    char      dirs[SBX_HIERS + 1][PATH_MAX];
    int       gone[SBX_HIERS + 1] = {0};
    int       i, left;
    unsigned  us = 100;
    long long deadline = (long long) faas_mono_ms() + CG_KILL_MS;

    for (i = 0; i <= SBX_HIERS; i++) {
        sbx_cgroup_path(dirs[i], sizeof(dirs[i]),
                        i < SBX_HIERS ? sbx_v1_hiers[i] : CG_V2, host, id);
        if (access(dirs[i], F_OK) < 0) {
            gone[i] = 1;
        }
    }
    /* Thaw first: SIGKILL is not delivered inside a frozen v1 cgroup. */
    if (!gone[3]) {
        write_cg(dirs[3], "freezer.state", "THAWED", 1, NULL);
    }
    if (!gone[SBX_HIERS]) {
        write_cg(dirs[SBX_HIERS], "cgroup.freeze", "0", 1, NULL);
        write_cg(dirs[SBX_HIERS], "cgroup.kill", "1", 1, NULL);
    }
    for (;;) {
        left = 0;
        for (i = 0; i <= SBX_HIERS; i++) {
            if (gone[i]) {
                continue;
            }
            kill_procs(dirs[i]);
            if (rmdir(dirs[i]) == 0 || errno == ENOENT) {
                gone[i] = 1;
            } else if (errno != EBUSY) {
                return faas_error_set(err, errno, "rmdir %s", dirs[i]);
            } else {
                left++;
            }
        }
        if (left == 0) {
            return 0;
        }
        if ((long long) faas_mono_ms() > deadline) {
            return faas_error_set(err, EBUSY, "cgroups of %s still busy", id);
        }
        nap(&us);
    }
}

/*
 * Opens the handle of sandbox id: its freezer file (v1 freezer.state or v2
 * cgroup.freeze, by host->freezer) and memory.max_usage_in_bytes stay open.
 * Free with faas_cgroup_close().
 */
int
faas_cgroup_open(const faas_sandbox_host_t *host, const char *id,
                 faas_cgroup_t **cgp, faas_error_t *err)
{
    char                        dir[PATH_MAX], path[PATH_MAX];
    cleanup_free faas_cgroup_t *cg = NULL;

    if (!faas_sandbox_id_valid(id)) {
        return faas_error_set(err, EINVAL, "invalid sandbox id");
    }
    cg = calloc(1, sizeof(*cg));
    if (cg == NULL) {
        return faas_error_set(err, ENOMEM, "cgroup handle");
    }
    cg->freezer =
        host->freezer == FAAS_FREEZER_V2 ? FAAS_FREEZER_V2 : FAAS_FREEZER_V1;
    cg->peak_fd = -1;
    if (cg->freezer == FAAS_FREEZER_V2) {
        sbx_cgroup_path(dir, sizeof(dir), CG_V2, host, id);
        join(path, sizeof(path), dir, "cgroup.freeze");
        join(cg->events, sizeof(cg->events), dir, "cgroup.events");
    } else {
        sbx_cgroup_path(dir, sizeof(dir), "freezer", host, id);
        join(path, sizeof(path), dir, "freezer.state");
    }
    cg->freeze_fd = open(path, O_RDWR | O_CLOEXEC);
    if (cg->freeze_fd < 0) {
        return faas_error_set(err, errno, "open %s", path);
    }
    sbx_cgroup_path(dir, sizeof(dir), "freezer", host, id);
    join(cg->procs, sizeof(cg->procs), dir, "cgroup.procs");
    sbx_cgroup_path(dir, sizeof(dir), "memory", host, id);
    join(cg->oom, sizeof(cg->oom), dir, "memory.oom_control");
    join(path, sizeof(path), dir, "memory.max_usage_in_bytes");
    cg->peak_fd = open(path, O_RDWR | O_CLOEXEC);
    if (cg->peak_fd < 0) {
        int e = errno;
        close(cg->freeze_fd);
        return faas_error_set(err, e, "open %s", path);
    }
    *cgp = steal_pointer(&cg);
    return 0;
}

void
faas_cgroup_close(faas_cgroup_t *cg)
{
    if (cg == NULL) {
        return;
    }
    if (cg->freeze_fd >= 0) {
        close(cg->freeze_fd);
    }
    if (cg->peak_fd >= 0) {
        close(cg->peak_fd);
    }
    free(cg);
}

static int
set_frozen(faas_cgroup_t *cg, int frozen, faas_error_t *err)
{
    const char *v;
    size_t      len;

    if (cg->freezer == FAAS_FREEZER_V2) {
        v = frozen ? "1" : "0";
    } else {
        v = frozen ? "FROZEN" : "THAWED";
    }
    len = strlen(v);
    if (pwrite(cg->freeze_fd, v, len, 0) != (ssize_t) len) {
        return faas_error_set(err, errno, "%s", frozen ? "freeze" : "thaw");
    }
    return 0;
}

/* Starts freezing the sandbox (one pwrite). 0 or <0. */
int
faas_cgroup_freeze(faas_cgroup_t *cg, faas_error_t *err)
{
    return set_frozen(cg, 1, err);
}

/* Thaws the sandbox (one pwrite). 0 or <0. */
int
faas_cgroup_thaw(faas_cgroup_t *cg, faas_error_t *err)
{
    return set_frozen(cg, 0, err);
}

static ssize_t
read_path(const char *path, char *buf, size_t len)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t           n;

    if (fd < 0) {
        return -errno;
    }
    n = read(fd, buf, len - 1);
    if (n < 0) {
        return -errno;
    }
    buf[n] = '\0';
    return n;
}

int
faas_cgroup_frozen(faas_cgroup_t *cg, faas_error_t *err)
{
    char    buf[256];
    ssize_t n;

    if (cg->freezer == FAAS_FREEZER_V2) {
        n = read_path(cg->events, buf, sizeof(buf));
        if (n < 0) {
            return faas_error_set(err, (int) -n, "read %s", cg->events);
        }
        return strstr(buf, "frozen 1") != NULL;
    }
    n = pread(cg->freeze_fd, buf, sizeof(buf) - 1, 0);
    if (n < 0) {
        return faas_error_set(err, errno, "read freezer.state");
    }
    buf[n] = '\0';
    return strncmp(buf, "FROZEN", 6) == 0;
}

int
faas_cgroup_memory_peak(faas_cgroup_t *cg, uint64_t *bytes, faas_error_t *err)
{
    char    buf[64];
    ssize_t n;

    n = pread(cg->peak_fd, buf, sizeof(buf) - 1, 0);
    if (n < 0) {
        return faas_error_set(err, errno, "read memory.max_usage_in_bytes");
    }
    buf[n] = '\0';
    *bytes = strtoull(buf, NULL, 10);
    return 0;
}

int
faas_cgroup_memory_peak_reset(faas_cgroup_t *cg, faas_error_t *err)
{
    if (pwrite(cg->peak_fd, "0", 1, 0) != 1) {
        return faas_error_set(err, errno, "reset memory.max_usage_in_bytes");
    }
    return 0;
}

int
faas_cgroup_oom_killed(faas_cgroup_t *cg)
{
    char    buf[256];
    char   *p;
    ssize_t n;

    n = read_path(cg->oom, buf, sizeof(buf));
    if (n < 0) {
        return 0;
    }
    p = strstr(buf, "oom_kill ");
    return p != NULL && strtoull(p + 9, NULL, 10) > 0;
}

int
faas_cgroup_nprocs(faas_cgroup_t *cg)
{
    cleanup_fclose FILE *f = fopen(cg->procs, "re");
    long                 pid;
    int                  n = 0;

    if (f == NULL) {
        return -errno;
    }
    while (fscanf(f, "%ld", &pid) == 1) {
        n++;
    }
    return n;
}
