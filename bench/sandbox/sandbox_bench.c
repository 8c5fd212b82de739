/*
 * faas-sandbox-bench: cold-start and freeze/thaw figures of the sandbox
 * library (driven by bench/sandbox/run.sh).
 *
 *   faas-sandbox-bench -c CFG --code DIR [--runtime python3] [-n 200]
 *                      [--freeze-n 20000] [--zygote] [--keep 10]
 *
 * Prints create-to-ready (create returns: socket + ping + frozen)
 * percentiles, destroy time, the memory of --keep live sandboxes (RSS and
 * PSS of each runtime process, from /proc/PID/smaps_rollup), and the cost
 * of one freeze+thaw pair with the v1 freezer with and without the pinned
 * frozen cgroup, and with v2 (--freeze-n 0 skips that part).
 * --zygote: sandboxes are forked from the python3 zygote (started and
 * waited for first; every create is checked to have used it).
 */
#include "cleanup.h"
#include "config.h"
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* "Rss:" and "Pss:" of /proc/pid/smaps_rollup, in kB. */
static int
mem_kb(long pid, double *rss, double *pss)
{
    char  path[64], line[256];
    FILE *f;
    long  v;
    int   got = 0;

    snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "Rss: %ld kB", &v) == 1) {
            *rss = v;
            got++;
        } else if (sscanf(line, "Pss: %ld kB", &v) == 1) {
            *pss = v;
            got++;
        }
    }
    fclose(f);
    return got == 2 ? 0 : -1;
}

/* /proc/pid/schedstat: ns on a CPU, ns waiting for one (run queue). */
static int
sched_ns(long pid, double *run, double *wait)
{
    char  path[64];
    FILE *f;
    int   ok;

    snprintf(path, sizeof(path), "/proc/%ld/schedstat", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    ok = fscanf(f, "%lf %lf", run, wait) == 2;
    fclose(f);
    return ok ? 0 : -1;
}

/* 1 if meta.json of id says the zygote made it, 0 if not, -1 on error;
 * *pid = the runtime's pid. */
static int
made_by_zygote(faas_sandbox_host_t *host, const char *id, long *pid)
{
    json_t      *meta = NULL;
    faas_error_t err;
    int          z;

    if (faas_sandbox_meta(host, id, &meta, &err) < 0) {
        return -1;
    }
    z = json_is_true(json_object_get(meta, "zygote"));
    *pid = (long) json_integer_value(json_object_get(meta, "pid"));
    json_decref(meta);
    return z;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

static double
pct(double *v, int n, double p)
{
    int i = (int) (p / 100.0 * (n - 1) + 0.5);

    return v[i < n ? i : n - 1];
}

/* FROZEN v1 freezer cgroups two levels below the hierarchy's root. */
static int
other_frozen(void)
{
    const char    *base = "/sys/fs/cgroup/freezer";
    char           path[PATH_MAX], state[32];
    DIR           *d1, *d2;
    struct dirent *e1, *e2;
    FILE          *f;
    int            n = 0;

    d1 = opendir(base);
    while (d1 != NULL && (e1 = readdir(d1)) != NULL) {
        if (e1->d_type != DT_DIR || e1->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", base, e1->d_name);
        d2 = opendir(path);
        while (d2 != NULL && (e2 = readdir(d2)) != NULL) {
            if (e2->d_type != DT_DIR || strcmp(e2->d_name, ".") == 0 ||
                strcmp(e2->d_name, "..") == 0) {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s/%s/freezer.state", base,
                     e1->d_name, e2->d_name);
            f = fopen(path, "r");
            if (f != NULL) {
                if (fgets(state, sizeof(state), f) != NULL &&
                    strncmp(state, "FROZEN", 6) == 0) {
                    n++;
                }
                fclose(f);
            }
        }
        if (d2 != NULL) {
            closedir(d2);
        }
    }
    if (d1 != NULL) {
        closedir(d1);
    }
    return n;
}

static double
freeze_thaw_us(faas_sandbox_host_t *host, const char *id, int n)
{
    faas_cgroup_t *cg = NULL;
    faas_error_t   err;
    double         t0, t;
    int            i;

    if (faas_cgroup_open(host, id, &cg, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    faas_cgroup_thaw(cg, &err);
    t0 = now_us();
    for (i = 0; i < n; i++) {
        faas_cgroup_freeze(cg, &err);
        faas_cgroup_thaw(cg, &err);
    }
    t = (now_us() - t0) / n;
    faas_cgroup_freeze(cg, &err);
    faas_cgroup_close(cg);
    return t;
}

int
main(int argc, char **argv)
{
    cleanup_json json_t *cfg = NULL;
    faas_sandbox_host_t  host;
    faas_sandbox_spec_t  spec;
    faas_error_t         err;
    const char          *cfgfile = NULL, *code = NULL, *runtime = "python3";
    char                 id[FAAS_SANDBOX_ID_LEN + 1], pin[PATH_MAX];
    double              *create_ms, *destroy_ms, t0, pinned, unpinned, v2;
    double              *cpu_ms, *wait_ms, run_ns, wait_ns;
    int                  n = 200, fn = 20000, i, failed = 0, others;
    int                  zygote = 0, keep = 10, k;
    pid_t                zpid = 0;
    long                 pid;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            cfgfile = argv[++i];
        } else if (strcmp(argv[i], "--code") == 0 && i + 1 < argc) {
            code = argv[++i];
        } else if (strcmp(argv[i], "--runtime") == 0 && i + 1 < argc) {
            runtime = argv[++i];
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--freeze-n") == 0 && i + 1 < argc) {
            fn = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc) {
            keep = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--zygote") == 0) {
            zygote = 1;
        } else {
            fprintf(stderr, "usage: faas-sandbox-bench -c CFG --code DIR "
                            "[--runtime R] [-n N] [--freeze-n N] [--zygote] "
                            "[--keep N]\n");
            return 1;
        }
    }
    if (cfgfile == NULL || code == NULL || n < 1 || fn < 0 || keep < 0) {
        fprintf(stderr, "faas-sandbox-bench: -c and --code are required\n");
        return 1;
    }
    cfg = faas_config_load(cfgfile, &err);
    if (cfg == NULL || faas_sandbox_host_from_config(&host, cfg, &err) < 0 ||
        faas_sandbox_host_init(&host, &err) < 0) {
        fprintf(stderr, "faas-sandbox-bench: %s\n", err.msg);
        return 1;
    }
    memset(&spec, 0, sizeof(spec));
    spec.function = "bench";
    spec.version = 1;
    spec.runtime = runtime;
    spec.handler = "handler.handler";
    spec.code_dir = code;
    create_ms = calloc(n, sizeof(double));
    destroy_ms = calloc(n, sizeof(double));
    cpu_ms = calloc(n, sizeof(double));
    wait_ms = calloc(n, sizeof(double));
    if (zygote) {
        host.zygote = 1;
        faas_sandbox_zygote_start(&host, runtime, 0, &err);
        for (i = 0; faas_sandbox_zygote_ping(&host, runtime, &zpid, &err) < 0;
             i++) {
            if (i > 4000) {
                fprintf(stderr, "faas-sandbox-bench: zygote: %s\n", err.msg);
                return 1;
            }
            usleep(5000);
        }
    }

    for (i = 0; i < n; i++) {
        faas_sandbox_id_new(id, NULL);
        t0 = now_us();
        if (faas_sandbox_create(&host, &spec, id, &err) < 0) {
            fprintf(stderr, "create: %s\n", err.msg);
            failed++;
            i--;
            if (failed > 5) {
                return 1;
            }
            continue;
        }
        create_ms[i] = (now_us() - t0) / 1000;
        if (made_by_zygote(&host, id, &pid) != zygote) {
            fprintf(stderr, "create: %s was %s made by the zygote\n", id,
                    zygote ? "not" : "");
            return 1;
        }
        if (sched_ns(pid, &run_ns, &wait_ns) == 0) {
            cpu_ms[i] = run_ns / 1e6;
            wait_ms[i] = wait_ns / 1e6;
        }
        t0 = now_us();
        if (faas_sandbox_destroy(&host, id, &err) < 0) {
            fprintf(stderr, "destroy: %s\n", err.msg);
            return 1;
        }
        destroy_ms[i] = (now_us() - t0) / 1000;
    }
    qsort(create_ms, n, sizeof(double), cmp_double);
    qsort(destroy_ms, n, sizeof(double), cmp_double);
    qsort(cpu_ms, n, sizeof(double), cmp_double);
    qsort(wait_ms, n, sizeof(double), cmp_double);
    printf("sandboxes created and destroyed: %d (%s)\n", n, runtime);
    printf("create-to-ready ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           pct(create_ms, n, 50), pct(create_ms, n, 90), pct(create_ms, n, 99),
           create_ms[n - 1]);
    printf("destroy ms:         p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           pct(destroy_ms, n, 50), pct(destroy_ms, n, 90),
           pct(destroy_ms, n, 99), destroy_ms[n - 1]);
    /* the sandbox process's own share, from /proc/PID/schedstat when
     * create returned: on-CPU time, and time spent waiting for a CPU
     * (high when the machine is loaded) */
    printf("runtime process at ready, ms: on-CPU p50 %.2f p99 %.2f  "
           "run-queue wait p50 %.2f p99 %.2f\n",
           pct(cpu_ms, n, 50), pct(cpu_ms, n, 99), pct(wait_ms, n, 50),
           pct(wait_ms, n, 99));

    /* memory of `keep` live (frozen, idle) sandboxes side by side */
    if (keep > 0) {
        char(*ids)[FAAS_SANDBOX_ID_LEN + 1] = calloc(keep, sizeof(*ids));
        double rss = 0, pss = 0, r, p;
        int    measured = 0;

        for (k = 0; k < keep; k++) {
            faas_sandbox_id_new(ids[k], NULL);
            if (faas_sandbox_create(&host, &spec, ids[k], &err) < 0) {
                fprintf(stderr, "create: %s\n", err.msg);
                return 1;
            }
        }
        for (k = 0; k < keep; k++) {
            if (made_by_zygote(&host, ids[k], &pid) >= 0 &&
                mem_kb(pid, &r, &p) == 0) {
                rss += r;
                pss += p;
                measured++;
            }
        }
        for (k = 0; k < keep; k++) {
            faas_sandbox_destroy(&host, ids[k], &err);
        }
        free(ids);
        if (measured > 0) {
            printf("memory per sandbox (%d live): RSS %.0f kB  PSS %.0f kB\n",
                   measured, rss / measured, pss / measured);
        }
        if (zpid > 0 && mem_kb(zpid, &r, &p) == 0) {
            printf("zygote process: RSS %.0f kB  PSS %.0f kB\n", r, p);
        }
    }
    if (zygote) {
        faas_sandbox_zygote_stop(&host, runtime, &err);
    }
    free(cpu_ms);
    free(wait_ms);
    if (fn == 0) {
        free(create_ms);
        free(destroy_ms);
        return 0;
    }

    /* freeze + thaw of one live sandbox */
    faas_sandbox_id_new(id, NULL);
    host.freezer = FAAS_FREEZER_V1;
    if (faas_sandbox_create(&host, &spec, id, &err) < 0) {
        fprintf(stderr, "create: %s\n", err.msg);
        return 1;
    }
    pinned = freeze_thaw_us(&host, id, fn);
    snprintf(pin, sizeof(pin), "/sys/fs/cgroup/freezer/%s/.pin",
             host.cgroup_root);
    {
        char  state[PATH_MAX + 32];
        FILE *f;
        snprintf(state, sizeof(state), "%s/freezer.state", pin);
        f = fopen(state, "w");
        if (f) {
            fputs("THAWED", f);
            fclose(f);
        }
        rmdir(pin);
    }
    others = other_frozen();
    unpinned = freeze_thaw_us(&host, id, fn / 10 > 0 ? fn / 10 : 1);
    faas_sandbox_host_init(&host, &err); /* the pin again */
    host.freezer = FAAS_FREEZER_V2;
    v2 = freeze_thaw_us(&host, id, fn);
    faas_sandbox_destroy(&host, id, &err);
    printf("freeze+thaw us: v1 with pin %.1f  v1 without pin %.1f  v2 %.1f\n",
           pinned, unpinned, v2);
    if (others > 0) {
        printf("(%d other frozen v1 freezer cgroups on this host kept the "
               "kernel's switch on: the no-pin figure is not a real one)\n",
               others);
    }
    free(create_ms);
    free(destroy_ms);
    return 0;
}
