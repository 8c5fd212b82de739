/*
 * faas-sandbox: the sandbox library from the command line, for tests and
 * benches.
 *
 *   faas-sandbox -c CFG init
 *   faas-sandbox -c CFG create --function F --version N --runtime R
 *                --handler FILE.FN --code DIR [--memory MB] [--timeout MS]
 *                [--pids N] [--tmp MB] [--env K=V ...] [--ready-timeout MS]
 *                [--zygote | --stem]
 *   faas-sandbox -c CFG destroy ID
 *   faas-sandbox -c CFG list
 *   faas-sandbox -c CFG state ID
 *   faas-sandbox -c CFG invoke ID [EVENT-JSON] [--timeout-ms N]
 *   faas-sandbox -c CFG cleanup            (also stops the zygotes)
 *   faas-sandbox -c CFG zygote run|start|stop|status
 *       run: exec the python3 zygote in this process (foreground);
 *       start: start it in the background and wait until it answers;
 *       stop: stop it; status: print its pid, exit 1 if none answers.
 *
 * --zygote (or "zygote": true in CFG) creates python3 sandboxes through the
 * zygote when it answers, else the fresh way (and starts the zygote).
 * --stem builds a stem cell of the spec's runtime and limits, then
 * specialises it with the spec (docs/DESIGN.md section 6).
 *
 * Exit 0 on success, 1 with a one-line reason on stderr.
 */
#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "frame.h"
#include "sandbox.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX (8 << 20)

static faas_sandbox_host_t host;

static int
die(const char *fmt, const char *a)
{
    fprintf(stderr, "faas-sandbox: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return 1;
}

static int
usage(void)
{
    fprintf(stderr,
            "usage: faas-sandbox -c CFG init|list|cleanup\n"
            "       faas-sandbox -c CFG create --function F --version N "
            "--runtime python3|nodejs --handler FILE.FN --code DIR\n"
            "            [--memory MB] [--timeout MS] [--pids N] [--tmp MB] "
            "[--env K=V ...] [--ready-timeout MS] [--zygote | --stem]\n"
            "       faas-sandbox -c CFG destroy|state ID\n"
            "       faas-sandbox -c CFG invoke ID [EVENT-JSON] "
            "[--timeout-ms N]\n"
            "       faas-sandbox -c CFG zygote run|start|stop|status\n");
    return 1;
}

static int
parse_uint(const char *s, unsigned *out)
{
    char              *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT_MAX) {
        return -1;
    }
    *out = (unsigned) v;
    return 0;
}

static int
cmd_create(int argc, char **argv)
{
    faas_sandbox_spec_t  spec;
    cleanup_json json_t *env = json_object();
    char                 id[FAAS_SANDBOX_ID_LEN + 1], code[PATH_MAX];
    faas_error_t         err;
    unsigned            *num;
    const char          *opt, *val;
    char                *eq;
    int                  i, stem = 0;

    memset(&spec, 0, sizeof(spec));
    for (i = 0; i < argc; i += 2) {
        opt = argv[i];
        if (strcmp(opt, "--zygote") == 0) {
            host.zygote = FAAS_ZYGOTE_SHARED;
            i--;
            continue;
        }
        if (strcmp(opt, "--stem") == 0) {
            stem = 1;
            i--;
            continue;
        }
        val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            return die("%s needs a value", opt);
        }
        num = NULL;
        if (strcmp(opt, "--function") == 0) {
            spec.function = val;
        } else if (strcmp(opt, "--runtime") == 0) {
            spec.runtime = val;
        } else if (strcmp(opt, "--handler") == 0) {
            spec.handler = val;
        } else if (strcmp(opt, "--code") == 0) {
            if (realpath(val, code) == NULL) {
                fprintf(stderr, "faas-sandbox: code dir %s: %s\n", val,
                        strerror(errno));
                return 1;
            }
            spec.code_dir = code;
        } else if (strcmp(opt, "--origin") == 0) {
            spec.origin_request_id = val;
        } else if (strcmp(opt, "--env") == 0) {
            eq = strchr(val, '=');
            if (eq == NULL || eq == val) {
                return die("--env %s: expected K=V", val);
            }
            *eq = '\0';
            json_object_set_new(env, val, json_string(eq + 1));
        } else if (strcmp(opt, "--version") == 0) {
            num = &spec.version;
        } else if (strcmp(opt, "--memory") == 0) {
            num = &spec.memory_mb;
        } else if (strcmp(opt, "--timeout") == 0) {
            num = &spec.timeout_ms;
        } else if (strcmp(opt, "--pids") == 0) {
            num = &spec.pids_max;
        } else if (strcmp(opt, "--tmp") == 0) {
            num = &spec.tmp_mb;
        } else if (strcmp(opt, "--cpu-shares") == 0) {
            num = &spec.cpu_shares;
        } else if (strcmp(opt, "--ready-timeout") == 0) {
            num = &spec.ready_timeout_ms;
        } else {
            return die("unknown option %s", opt);
        }
        if (num != NULL && parse_uint(val, num) < 0) {
            return die("%s: not a number", opt);
        }
    }
    if (spec.function == NULL || spec.runtime == NULL || spec.handler == NULL ||
        spec.code_dir == NULL || spec.version == 0) {
        return die("%s", "create needs --function, --version, --runtime, "
                         "--handler and --code");
    }
    spec.env = env;
    if (faas_sandbox_host_init(&host, &err) < 0 ||
        faas_sandbox_id_new(id, &err) < 0) {
        return die("%s", err.msg);
    }
    if (stem) {
        /* a stem cell of the spec's limits, then given the function */
        if (faas_sandbox_stem_create(&host, &spec, id, &err) < 0) {
            return die("%s", err.msg);
        }
        if (faas_sandbox_specialise(&host, &spec, id, NULL, &err) < 0) {
            faas_error_t derr;

            faas_sandbox_destroy(&host, id, &derr);
            return die("%s", err.msg);
        }
    } else if (faas_sandbox_create(&host, &spec, id, &err) < 0) {
        return die("%s", err.msg);
    }
    printf("%s\n", id);
    return 0;
}

static int
print_id(const char *id, void *data)
{
    (void) data;
    printf("%s\n", id);
    return 0;
}

static int
destroy_one(const char *id, void *data)
{
    faas_error_t err;
    int         *failed = data;

    if (faas_sandbox_destroy(&host, id, &err) < 0) {
        fprintf(stderr, "faas-sandbox: %s\n", err.msg);
        (*failed)++;
    }
    return 0;
}

static int
cmd_state(const char *id)
{
    faas_cgroup_t *cg = NULL;
    faas_error_t   err;
    int            r;

    if (!faas_sandbox_id_valid(id)) {
        return die("invalid sandbox id %s", id);
    }
    if (faas_cgroup_open(&host, id, &cg, &err) < 0) {
        return die("%s", err.msg);
    }
    r = faas_cgroup_frozen(cg, &err);
    faas_cgroup_close(cg);
    if (r < 0) {
        return die("%s", err.msg);
    }
    printf("%s\n", r ? "frozen" : "thawed");
    return 0;
}

static int
send_invoke(const char *id, json_t *event, unsigned timeout_ms, char **answer,
            faas_error_t *err)
{
    cleanup_close int    fd = -1;
    cleanup_json json_t *meta = NULL, *req = NULL;
    cleanup_free char   *body = NULL;
    uint8_t             *buf = NULL;
    struct timeval       tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    const char          *fn;
    char                 rid[FAAS_SANDBOX_ID_LEN + 1], arn[160], grp[100];
    char                 ver[24];
    size_t               len;
    int                  ret;

    if (faas_sandbox_meta(&host, id, &meta, err) < 0) {
        return -1;
    }
    fn = json_string_value(json_object_get(meta, "function"));
    fn = fn ? fn : "";
    faas_sandbox_id_new(rid, NULL);
    snprintf(arn, sizeof(arn), "arn:aws:lambda:local:000000000000:function:%s",
             fn);
    snprintf(grp, sizeof(grp), "/aws/lambda/%s", fn);
    req = json_pack("{s:s, s:O, s:I, s:{s:s, s:s, s:O, s:s, s:s, s:s, s:s}}",
                    "id", rid + 2, "event", event, "deadline_ms",
                    (json_int_t) (faas_now_ms() + timeout_ms), "context",
                    "function_name", fn, "function_version", "",
                    "memory_limit_in_mb", json_object_get(meta, "memory_mb"),
                    "aws_request_id", rid + 2, "invoked_function_arn", arn,
                    "log_group_name", grp, "log_stream_name", id);
    if (req == NULL) {
        return faas_error_set(err, ENOMEM, "request");
    }
    snprintf(ver, sizeof(ver), "%lld",
             (long long) json_integer_value(json_object_get(meta, "version")));
    json_object_set_new(json_object_get(req, "context"), "function_version",
                        json_string(ver));
    body = json_dumps(req, JSON_COMPACT);
    fd = faas_sandbox_connect(&host, id, 0, err);
    if (fd < 0) {
        return fd;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if ((ret = faas_frame_write(fd, body, strlen(body), err)) < 0) {
        return ret;
    }
    ret = faas_frame_read(fd, &buf, &len, ANSWER_MAX, err);
    if (ret == 0) {
        return faas_error_set(err, ECONNRESET, "connection lost");
    }
    if (ret < 0) {
        if (err->code == EAGAIN || err->code == EWOULDBLOCK) {
            return faas_error_set(err, ETIMEDOUT, "no answer in %u ms",
                                  timeout_ms);
        }
        return faas_error_wrap(err, "connection lost");
    }
    *answer = (char *) buf;
    return 0;
}

static int
cmd_invoke(int argc, char **argv)
{
    const char          *id = argv[0], *ev = "{}";
    cleanup_json json_t *event = NULL;
    faas_cgroup_t       *cg = NULL;
    faas_error_t         err, ferr;
    unsigned             timeout = 10000;
    char                *answer = NULL;
    int                  i, ret;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout-ms") == 0) {
            if (i + 1 >= argc || parse_uint(argv[i + 1], &timeout) < 0 ||
                timeout == 0) {
                return die("%s", "--timeout-ms needs a positive number");
            }
            i++;
        } else {
            ev = argv[i];
        }
    }
    if (!faas_sandbox_id_valid(id)) {
        return die("invalid sandbox id %s", id);
    }
    event = json_loads(ev, JSON_DECODE_ANY, NULL);
    if (event == NULL) {
        return die("%s", "event is not valid JSON");
    }
    if (faas_cgroup_open(&host, id, &cg, &err) < 0) {
        return die("%s", err.msg);
    }
    ret = faas_cgroup_thaw(cg, &err);
    if (ret == 0) {
        ret = send_invoke(id, event, timeout, &answer, &err);
    }
    if (faas_cgroup_freeze(cg, &ferr) == 0) {
        /* settle, so that `state` right after says frozen (bounded: a dying
         * sandbox may never report FROZEN) */
        for (i = 0; i < 2000 && faas_cgroup_frozen(cg, &ferr) == 0; i++) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    faas_cgroup_close(cg);
    if (ret < 0) {
        return die("%s", err.msg);
    }
    printf("%s\n", answer);
    free(answer);
    return 0;
}

static int
cmd_zygote(const char *what)
{
    faas_error_t err;
    pid_t        pid;
    long long    deadline;

    if (strcmp(what, "run") == 0 || strcmp(what, "start") == 0) {
        if (faas_sandbox_host_init(&host, &err) < 0) {
            return die("%s", err.msg);
        }
    }
    if (strcmp(what, "run") == 0) {
        faas_sandbox_zygote_start(&host, "python3", 1, &err);
        return die("%s", err.msg);
    }
    if (strcmp(what, "start") == 0) {
        if (faas_sandbox_zygote_start(&host, "python3", 0, &err) < 0 &&
            err.code != EEXIST) {
            return die("%s", err.msg);
        }
        deadline = (long long) faas_mono_ms() + 20000;
        while (faas_sandbox_zygote_ping(&host, "python3", &pid, &err) < 0) {
            if ((long long) faas_mono_ms() > deadline) {
                return die("zygote not answering: %s", err.msg);
            }
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
        printf("%ld\n", (long) pid);
        return 0;
    }
    if (strcmp(what, "stop") == 0) {
        if (faas_sandbox_zygote_stop(&host, "python3", &err) < 0) {
            return die("%s", err.msg);
        }
        return 0;
    }
    if (strcmp(what, "status") == 0) {
        if (faas_sandbox_zygote_ping(&host, "python3", &pid, &err) < 0) {
            return die("%s", err.msg);
        }
        printf("%ld\n", (long) pid);
        return 0;
    }
    return usage();
}

int
main(int argc, char **argv)
{
    cleanup_json json_t *cfg = NULL;
    const char          *cfgfile = NULL, *cmd;
    faas_error_t         err;
    int                  failed = 0;

    if (argc >= 3 && strcmp(argv[1], "-c") == 0) {
        cfgfile = argv[2];
        argc -= 3;
        argv += 3;
    }
    if (cfgfile == NULL || argc < 1) {
        return usage();
    }
    cfg = faas_config_load(cfgfile, &err);
    if (cfg == NULL || faas_sandbox_host_from_config(&host, cfg, &err) < 0) {
        return die("%s", err.msg);
    }
    cmd = argv[0];
    if (strcmp(cmd, "init") == 0 && argc == 1) {
        if (faas_sandbox_host_init(&host, &err) < 0) {
            return die("%s", err.msg);
        }
        return 0;
    }
    if (strcmp(cmd, "create") == 0) {
        return cmd_create(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "destroy") == 0 && argc == 2) {
        if (faas_sandbox_destroy(&host, argv[1], &err) < 0) {
            return die("%s", err.msg);
        }
        return 0;
    }
    if (strcmp(cmd, "list") == 0 && argc == 1) {
        return faas_sandbox_list(&host, print_id, NULL, &err) < 0
                   ? die("%s", err.msg)
                   : 0;
    }
    if (strcmp(cmd, "state") == 0 && argc == 2) {
        return cmd_state(argv[1]);
    }
    if (strcmp(cmd, "invoke") == 0 && argc >= 2) {
        return cmd_invoke(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "zygote") == 0 && argc == 2) {
        return cmd_zygote(argv[1]);
    }
    if (strcmp(cmd, "cleanup") == 0 && argc == 1) {
        if (faas_sandbox_zygote_stop_all(&host, &err) < 0) {
            fprintf(stderr, "faas-sandbox: %s\n", err.msg);
            failed++;
        }
        if (faas_sandbox_list(&host, destroy_one, &failed, &err) < 0) {
            return die("%s", err.msg);
        }
        return failed ? 1 : 0;
    }
    return usage();
}
