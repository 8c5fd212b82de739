/*
 * The sandbox library's C API (ASan build): ids, config, create/destroy and
 * the faas_cgroup_* fast path the agent uses. Needs root and cgroups; run
 * through t/sandbox/api.t, which passes a config file and a code dir, and
 * checks that nothing is left behind.
 *
 *   sandbox_test CONFIG.json CODE_DIR
 */
#include "config.h"
#include "sandbox.h"
#include "tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int
count_id(const char *id, void *data)
{
    const char **want = data;

    if (strcmp(id, want[0]) == 0) {
        want[1] = id;
    }
    return 0;
}

static int
wait_frozen(faas_cgroup_t *cg, int want)
{
    struct timespec ts = {0, 1000000};
    int             i, r = -1;

    for (i = 0; i < 5000; i++) {
        r = faas_cgroup_frozen(cg, NULL);
        if (r == want) {
            return r;
        }
        nanosleep(&ts, NULL);
    }
    return r;
}

int
main(int argc, char **argv)
{
    faas_sandbox_host_t host;
    faas_sandbox_spec_t spec;
    faas_error_t        err;
    faas_cgroup_t      *cg = NULL;
    json_t             *cfg, *bad, *meta = NULL;
    char        id[FAAS_SANDBOX_ID_LEN + 1], id2[FAAS_SANDBOX_ID_LEN + 1];
    char        sock[256];
    const char *seen[2];
    uint64_t    peak = 0, peak2 = 0;
    int         ret;

    if (argc != 3) {
        printf("1..0 # SKIP run through t/sandbox/api.t\n");
        return 0;
    }

    ok(faas_sandbox_id_valid("s-0123456789abcdef"), "valid id accepted");
    ok(!faas_sandbox_id_valid("s-0123456789ABCDEF"), "upper-case hex refused");
    ok(!faas_sandbox_id_valid("s-0123456789abcde"), "short id refused");
    ok(!faas_sandbox_id_valid("s-0123456789abcdef0"), "long id refused");
    ok(!faas_sandbox_id_valid("../0123456789abcde"), "path refused");
    ok(faas_sandbox_id_new(id, &err) == 0 && strlen(id) == 18 &&
           strncmp(id, "s-", 2) == 0 &&
           strspn(id + 2, "0123456789abcdef") == 16,
       "new ids are s- and 16 lowercase hex digits");
    ok(faas_sandbox_id_new(id2, &err) == 0 && strcmp(id, id2) != 0,
       "new ids differ");

    bad = json_pack("{s:s, s:s, s:s}", "run_dir", "/x", "runtimes_dir", "/y",
                    "freezer", "v9");
    ok(faas_sandbox_host_from_config(&host, bad, &err) < 0 &&
           strstr(err.msg, "freezer") != NULL,
       "bad freezer refused: %s", err.msg);
    json_decref(bad);
    bad = json_pack("{s:s}", "runtimes_dir", "/y");
    ok(faas_sandbox_host_from_config(&host, bad, &err) < 0 &&
           strstr(err.msg, "run_dir") != NULL,
       "missing run_dir refused: %s", err.msg);
    json_decref(bad);
    bad = json_pack("{s:s, s:s, s:s}", "run_dir", "/x", "runtimes_dir", "/y",
                    "cgroup_root", "../etc");
    ok(faas_sandbox_host_from_config(&host, bad, &err) < 0,
       "cgroup_root with a slash refused");
    json_decref(bad);

    cfg = faas_config_load(argv[1], &err);
    ok(cfg != NULL, "config loads");
    if (cfg == NULL) {
        return done_testing();
    }
    ret = faas_sandbox_host_from_config(&host, cfg, &err);
    is_int(ret, 0, "host from config");
    is_int(host.freezer, FAAS_FREEZER_V1, "freezer defaults to v1");
    is_int(faas_sandbox_host_init(&host, &err), 0, "host init");
    is_int(faas_sandbox_host_init(&host, &err), 0, "host init is idempotent");

    memset(&spec, 0, sizeof(spec));
    spec.function = "api";
    spec.version = 7;
    spec.runtime = "python3";
    spec.handler = "handler.handler";
    spec.code_dir = argv[2];
    spec.memory_mb = 64;
    spec.origin_request_id = "req-1";
    faas_sandbox_id_new(id, NULL);
    ret = faas_sandbox_create(&host, &spec, id, &err);
    is_int(ret, 0, "create");
    if (ret < 0) {
        diag("%s", err.msg);
        return done_testing();
    }
    is_int(faas_sandbox_exists(&host, id), 1, "exists");
    is_int(faas_sandbox_create(&host, &spec, id, &err) < 0, 1,
           "creating the same id again fails");
    is_int(faas_sandbox_exists(&host, id), 1, "... and leaves the first alone");

    ok(faas_sandbox_meta(&host, id, &meta, &err) == 0, "meta");
    is_str(json_string_value(json_object_get(meta, "rid")), "api@7",
           "meta rid");
    is_str(json_string_value(json_object_get(meta, "origin_request_id")),
           "req-1", "meta origin_request_id");
    json_decref(meta);
    ok(faas_sandbox_socket_path(&host, id, sock, sizeof(sock)) == 0 &&
           access(sock, F_OK) == 0,
       "socket path exists");
    seen[0] = id;
    seen[1] = NULL;
    ok(faas_sandbox_list(&host, count_id, seen, &err) == 0 && seen[1] != NULL,
       "list reports the sandbox");

    ret = faas_cgroup_open(&host, id, &cg, &err);
    is_int(ret, 0, "cgroup open");
    if (ret == 0) {
        is_int(faas_cgroup_frozen(cg, &err), 1, "frozen after create");
        is_int(faas_cgroup_thaw(cg, &err), 0, "thaw");
        is_int(wait_frozen(cg, 0), 0, "thawed");
        is_int(faas_cgroup_freeze(cg, &err), 0, "freeze");
        is_int(wait_frozen(cg, 1), 1, "frozen again");
        is_int(faas_cgroup_nprocs(cg), 1, "one process: the runtime");
        ok(faas_cgroup_memory_peak(cg, &peak, &err) == 0 && peak > 1 << 20,
           "memory peak is the runtime's (%llu bytes)",
           (unsigned long long) peak);
        is_int(faas_cgroup_memory_peak_reset(cg, &err), 0, "peak reset");
        ok(faas_cgroup_memory_peak(cg, &peak2, &err) == 0 && peak2 <= peak,
           "peak after reset is the current usage");
        is_int(faas_cgroup_oom_killed(cg), 0, "no OOM kill");
        faas_cgroup_close(cg);
    }

    is_int(faas_sandbox_destroy(&host, id, &err), 0, "destroy");
    is_int(faas_sandbox_exists(&host, id), 0, "gone");
    ok(faas_cgroup_open(&host, id, &cg, &err) < 0, "no cgroup handle for it");
    is_int(faas_sandbox_destroy(&host, id, &err), 0, "destroy is idempotent");
    ok(faas_sandbox_destroy(&host, "s-../../../etc/x", &err) == -EINVAL,
       "destroy refuses an invalid id");
    ok(faas_sandbox_meta(&host, id, &meta, &err) == -ENOENT,
       "meta of a gone sandbox: -ENOENT");

    /* several creates from one thread reuse its inotify instance */
    {
        char ids[3][FAAS_SANDBOX_ID_LEN + 1];
        int  k, good = 0;

        for (k = 0; k < 3; k++) {
            faas_sandbox_id_new(ids[k], NULL);
            if (faas_sandbox_create(&host, &spec, ids[k], &err) == 0 &&
                faas_cgroup_open(&host, ids[k], &cg, &err) == 0) {
                good += faas_cgroup_frozen(cg, &err) == 1;
                faas_cgroup_close(cg);
            } else {
                diag("%s", err.msg);
            }
        }
        is_int(good, 3, "three creates in a row from one thread, all ready");
        for (k = 0; k < 3; k++) {
            faas_sandbox_destroy(&host, ids[k], &err);
        }
    }

    spec.code_dir = "/nonexistent/code";
    faas_sandbox_id_new(id, NULL);
    ok(faas_sandbox_create(&host, &spec, id, &err) < 0 &&
           strstr(err.msg, "/nonexistent/code") != NULL,
       "missing code dir: %s", err.msg);
    is_int(faas_sandbox_exists(&host, id), 0, "nothing created for it");
    json_decref(cfg);
    return done_testing();
}
