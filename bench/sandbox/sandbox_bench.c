/*
 * faas-sandbox-bench: cold-start and freeze/thaw figures of the sandbox
 * library (driven by bench/sandbox/run.sh).
 *
 *   faas-sandbox-bench -c CFG --code DIR [--runtime python3] [-n 200]
 *                      [--freeze-n 20000]
 *
 * Prints create-to-ready (create returns: socket + ping + frozen)
 * percentiles, destroy time, and the cost of one freeze+thaw pair with the
 * v1 freezer with and without the pinned frozen cgroup, and with v2.
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
    int                  n = 200, fn = 20000, i, failed = 0, others;

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
        } else {
            fprintf(stderr, "usage: faas-sandbox-bench -c CFG --code DIR "
                            "[--runtime R] [-n N] [--freeze-n N]\n");
            return 1;
        }
    }
    if (cfgfile == NULL || code == NULL || n < 1 || fn < 1) {
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
        t0 = now_us();
        if (faas_sandbox_destroy(&host, id, &err) < 0) {
            fprintf(stderr, "destroy: %s\n", err.msg);
            return 1;
        }
        destroy_ms[i] = (now_us() - t0) / 1000;
    }
    qsort(create_ms, n, sizeof(double), cmp_double);
    qsort(destroy_ms, n, sizeof(double), cmp_double);
    printf("sandboxes created and destroyed: %d (%s)\n", n, runtime);
    printf("create-to-ready ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           pct(create_ms, n, 50), pct(create_ms, n, 90), pct(create_ms, n, 99),
           create_ms[n - 1]);
    printf("destroy ms:         p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           pct(destroy_ms, n, 50), pct(destroy_ms, n, 90),
           pct(destroy_ms, n, 99), destroy_ms[n - 1]);

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
