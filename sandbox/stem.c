/*
 * Stem cells (docs/DESIGN.md section 6): sandboxes built ahead of demand
 * with no function, given one function once. A stem cell is built by the
 * fresh path (never from a zygote, so a Python cell is its own interpreter:
 * its own address layout and str hash secret), with an empty directory of
 * its own bound read-only at /var/task. Specialising it mounts the code over
 * that directory inside the cell's mount namespace, then tells the runtime
 * to import the handler.
 */
#include "cleanup.h"
#include "clock.h"
#include "frame.h"
#include "sandbox_int.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEM_ANSWER_MAX   65536
#define STEM_TIMEOUT_MS   10000 /* mount + import + answer */
#define STEM_FREEZE_MS    5000

static int
stem_dir(char *buf, size_t len, const faas_sandbox_host_t *host,
         const char *id)
{
    return sbx_path(buf, len, host, SBX_STEM_DIR, id);
}

void
sbx_stem_dir_remove(const faas_sandbox_host_t *host, const char *id)
{
    char dir[PATH_MAX];

    if (stem_dir(dir, sizeof(dir), host, id) == 0) {
        (void) rmdir(dir);
    }
}

int
sbx_write_stem_meta(const faas_sandbox_host_t *host,
                    const faas_sandbox_spec_t *spec, const char *id,
                    uid_t uid, long pid, faas_error_t *err)
{
    char                 path[PATH_MAX], tmp[PATH_MAX + 8];
    cleanup_json json_t *m = NULL;

    m = json_pack("{s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:s, s:b, s:b}", "id",
                  id, "runtime", spec->runtime, "memory_mb",
                  (int) spec->memory_mb, "timeout_ms", (int) spec->timeout_ms,
                  "uid", (json_int_t) uid, "pid", (json_int_t) pid,
                  "created_ms", (json_int_t) faas_now_ms(), "code_dir",
                  spec->code_dir, "stem", 1, "zygote", 0);
    if (m == NULL) {
        return faas_error_set(err, ENOMEM, "meta.json");
    }
    sbx_path(path, sizeof(path), host, id, "meta.json");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(m, tmp, JSON_COMPACT) < 0) {
        return faas_error_set(err, errno, "write %s", tmp);
    }
    if (rename(tmp, path) < 0) {
        return faas_error_set(err, errno, "rename %s", tmp);
    }
    return 0;
}

/* See sandbox.h. */
int
faas_sandbox_stem_create(const faas_sandbox_host_t *host,
                         const faas_sandbox_spec_t *limits, const char *id,
                         faas_error_t *err)
{
    faas_sandbox_spec_t spec;
    char                dir[PATH_MAX];
    int                 ret;

    if (!faas_sandbox_id_valid(id)) {
        return faas_error_set(err, EINVAL, "invalid sandbox id");
    }
    if (stem_dir(dir, sizeof(dir), host, id) < 0) {
        return faas_error_set(err, ENAMETOOLONG, "stem dir");
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        return faas_error_set(err, errno, "mkdir %s", dir);
    }
    memset(&spec, 0, sizeof(spec));
    spec.function = "stem";       /* placeholders: the runtime loads nothing */
    spec.version = 1;
    spec.handler = "stem.stem";
    spec.runtime = limits->runtime;
    spec.code_dir = dir;
    spec.memory_mb = limits->memory_mb;
    spec.pids_max = limits->pids_max;
    spec.tmp_mb = limits->tmp_mb;
    spec.cpu_shares = limits->cpu_shares;
    spec.ready_timeout_ms = limits->ready_timeout_ms;
    spec.stem = 1;
    ret = faas_sandbox_create(host, &spec, id, err);
    if (ret < 0) {
        (void) rmdir(dir);
    }
    return ret;
}

/* --- specialising -------------------------------------------------------- */

/* The child side of mount_code: system calls only. */
static void __attribute__((noreturn))
mount_code_child(const char *code_dir, int pidfd, int err_wr)
{
    struct mount_attr attr = {
        .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    };
    int tree, e;
    const char *step;

    step = "open_tree";
    /* a clone of code_dir alone: no mount below it comes along */
    tree = (int) syscall(SYS_open_tree, AT_FDCWD, code_dir,
                         OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) {
        goto fail;
    }
    step = "mount_setattr";
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr,
                sizeof(attr)) < 0) {
        goto fail;
    }
    step = "setns";
    if (setns(pidfd, CLONE_NEWNS) < 0) {
        goto fail;
    }
    step = "move_mount";
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, "/var/task",
                MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        goto fail;
    }
    _exit(0);
fail:
    e = errno;
    if (write(err_wr, &e, sizeof(e)) == (ssize_t) sizeof(e)) {
        (void) write(err_wr, step, strlen(step));
    }
    _exit(1);
}

/*
 * Mounts code_dir read-only over /var/task in the mount namespace of the
 * cell's init (pidfd). setns() into a mount namespace needs a process of
 * one thread: a forked child does it.
 */
static int
mount_code(const char *code_dir, int pidfd, faas_error_t *err)
{
    int   pipefd[2], st, e = 0;
    char  step[32] = "";
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        return faas_error_set(err, errno, "pipe");
    }
    pid = fork();
    if (pid < 0) {
        e = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return faas_error_set(err, e, "fork");
    }
    if (pid == 0) {
        close(pipefd[0]);
        mount_code_child(code_dir, pidfd, pipefd[1]);
    }
    close(pipefd[1]);
    if (read(pipefd[0], &e, sizeof(e)) == (ssize_t) sizeof(e)) {
        ssize_t n = read(pipefd[0], step, sizeof(step) - 1);
        step[n > 0 ? n : 0] = '\0';
    }
    close(pipefd[0]);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (e != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        return faas_error_set(err, e ? e : EIO, "mount the code: %s",
                              step[0] ? step : "helper died");
    }
    return 0;
}

/*
 * The cell's init, as a pidfd, once it is known to be that sandbox's
 * process (its cgroup names the id): a pid recycled by another process is
 * never entered.
 */
static int
cell_pidfd(const char *id, long pid, faas_error_t *err)
{
    char   path[64], buf[4096];
    int    pidfd;
    FILE  *f;
    size_t n;

    pidfd = (int) syscall(SYS_pidfd_open, (pid_t) pid, 0);
    if (pidfd < 0) {
        return faas_error_set(err, errno, "pidfd_open %ld", pid);
    }
    snprintf(path, sizeof(path), "/proc/%ld/cgroup", pid);
    f = fopen(path, "re");
    n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL) {
        fclose(f);
    }
    buf[n] = '\0';
    if (strstr(buf, id) == NULL) {
        close(pidfd);
        return faas_error_set(err, ESRCH, "the stem cell's init is gone");
    }
    return pidfd;
}

/* The function's environment, by the rules of a fresh sandbox's launch
 * (sandbox.c build_launch): FAAS_* are the platform's. */
static json_t *
function_env(const faas_sandbox_spec_t *s, faas_error_t *err)
{
    json_t     *env, *val;
    const char *key;

    env = json_object();
    if (env == NULL) {
        faas_error_set(err, ENOMEM, "environment");
        return NULL;
    }
    if (s->env != NULL) {
        json_object_foreach((json_t *) s->env, key, val)
        {
            if (!json_is_string(val)) {
                faas_error_set(err, EINVAL, "env %s: not a string", key);
                json_decref(env);
                return NULL;
            }
            if (key[0] != '\0' && strchr(key, '=') == NULL &&
                strncmp(key, "FAAS_", 5) != 0) {
                json_object_set(env, key, val);
            }
        }
    }
    if (json_object_size(env) > SBX_ENV_MAX - 16) {
        faas_error_set(err, E2BIG, "too many env variables");
        json_decref(env);
        return NULL;
    }
#define SETENV(k, ...)                                                        \
    do {                                                                      \
        char v_[256];                                                         \
        snprintf(v_, sizeof(v_), __VA_ARGS__);                                \
        json_object_set_new(env, k, json_string(v_));                         \
    } while (0)
    SETENV("FAAS_HANDLER", "%s", s->handler);
    SETENV("FAAS_FUNCTION_NAME", "%s", s->function);
    SETENV("FAAS_FUNCTION_VERSION", "%u", s->version);
    SETENV("FAAS_TIMEOUT_MS", "%u", s->timeout_ms ? s->timeout_ms : 3000);
    if (json_object_get(env, "AWS_LAMBDA_FUNCTION_NAME") == NULL) {
        SETENV("AWS_LAMBDA_FUNCTION_NAME", "%s", s->function);
    }
    if (json_object_get(env, "AWS_LAMBDA_FUNCTION_VERSION") == NULL) {
        SETENV("AWS_LAMBDA_FUNCTION_VERSION", "%u", s->version);
    }
#undef SETENV
    return env;
}

/* Sends the specialise frame and reads the runtime's answer. */
static int
tell_runtime(const faas_sandbox_host_t *host, const faas_sandbox_spec_t *spec,
             const char *id, double *import_ms, faas_error_t *err)
{
    cleanup_close int     fd = -1;
    cleanup_free uint8_t *buf = NULL;
    cleanup_free char    *req = NULL;
    cleanup_json json_t  *env = NULL, *frame = NULL, *ans = NULL;
    struct timeval        tv = {STEM_TIMEOUT_MS / 1000, 0};
    size_t                len;
    int                   ret;

    env = function_env(spec, err);
    if (env == NULL) {
        return -1;
    }
    frame = json_pack("{s:s, s:{s:O}}", "id", "specialise", "specialise",
                      "env", env);
    req = frame != NULL ? json_dumps(frame, JSON_COMPACT) : NULL;
    if (req == NULL) {
        return faas_error_set(err, ENOMEM, "specialise frame");
    }
    fd = faas_sandbox_connect(host, id, 0, err);
    if (fd < 0) {
        return fd;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if ((ret = faas_frame_write(fd, req, strlen(req), err)) < 0) {
        return ret;
    }
    ret = faas_frame_read(fd, &buf, &len, STEM_ANSWER_MAX, err);
    if (ret <= 0) {
        return ret == 0 ? faas_error_set(err, ECONNRESET, "no answer")
                        : ret;
    }
    ans = json_loadb((const char *) buf, len, 0, NULL);
    if (ans == NULL || !json_is_true(json_object_get(ans, "specialised"))) {
        return faas_error_set(err, EPROTO, "the runtime refused: %.200s",
                              (const char *) buf);
    }
    if (import_ms != NULL) {
        *import_ms = json_number_value(json_object_get(ans, "import_ms"));
    }
    /* an "init_error" is the function's: its calls report it, as a fresh
     * sandbox's do */
    return 0;
}

static int
set_frozen(const faas_sandbox_host_t *host, const char *id, int frozen,
           faas_error_t *err)
{
    faas_cgroup_t *cg = NULL;
    long long      deadline = (long long) faas_mono_ms() + STEM_FREEZE_MS;
    int            ret;

    ret = faas_cgroup_open(host, id, &cg, err);
    if (ret < 0) {
        return ret;
    }
    ret = frozen ? faas_cgroup_freeze(cg, err) : faas_cgroup_thaw(cg, err);
    while (ret == 0 && frozen) {
        ret = faas_cgroup_frozen(cg, err);
        if (ret == 1) {
            ret = 0;
            break;
        }
        if (ret == 0 && (long long) faas_mono_ms() > deadline) {
            ret = faas_error_set(err, ETIMEDOUT, "freeze");
            break;
        }
        if (ret == 0) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    faas_cgroup_close(cg);
    return ret;
}

/* meta.json of a sandbox of spec, keeping what the cell's creation wrote
 * (uid, pid, created_ms) and "stem": true. */
static int
rewrite_meta(const faas_sandbox_host_t *host, const faas_sandbox_spec_t *spec,
             const char *id, json_t *meta, faas_error_t *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], rid[96];
    int  bad;

    snprintf(rid, sizeof(rid), "%s@%u", spec->function, spec->version);
    bad = json_object_set_new(meta, "function", json_string(spec->function))
          | json_object_set_new(meta, "version", json_integer(spec->version))
          | json_object_set_new(meta, "rid", json_string(rid))
          | json_object_set_new(meta, "handler", json_string(spec->handler))
          | json_object_set_new(meta, "timeout_ms",
                                json_integer(spec->timeout_ms ? spec->timeout_ms
                                                              : 3000))
          | json_object_set_new(meta, "code_dir", json_string(spec->code_dir))
          | json_object_set_new(meta, "specialised_ms",
                                json_integer((json_int_t) faas_now_ms()));
    if (spec->origin_request_id != NULL) {
        bad |= json_object_set_new(meta, "origin_request_id",
                                   json_string(spec->origin_request_id));
    }
    if (bad) {
        return faas_error_set(err, ENOMEM, "meta.json");
    }
    sbx_path(path, sizeof(path), host, id, "meta.json");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(meta, tmp, JSON_COMPACT) < 0) {
        return faas_error_set(err, errno, "write %s", tmp);
    }
    if (rename(tmp, path) < 0) {
        return faas_error_set(err, errno, "rename %s", tmp);
    }
    return 0;
}

/* The cell's meta.json, if id is a stem cell that spec may take. */
static int
check_cell(const faas_sandbox_host_t *host, const faas_sandbox_spec_t *spec,
           const char *id, json_t **meta, faas_error_t *err)
{
    struct stat st;
    json_t     *m;
    const char *rt;

    if (spec->function == NULL || spec->handler == NULL ||
        spec->version == 0 || spec->code_dir == NULL ||
        spec->code_dir[0] != '/' || stat(spec->code_dir, &st) < 0 ||
        !S_ISDIR(st.st_mode)) {
        return faas_error_set(err, EINVAL, "specialise %s: bad spec", id);
    }
    if (faas_sandbox_meta(host, id, meta, err) < 0) {
        return faas_error_wrap(err, "specialise %s", id);
    }
    m = *meta;
    rt = json_string_value(json_object_get(m, "runtime"));
    if (!json_is_true(json_object_get(m, "stem")) ||
        json_object_get(m, "rid") != NULL) {
        return faas_error_set(err, EINVAL, "%s is not a free stem cell", id);
    }
    if (rt == NULL || strcmp(rt, spec->runtime) != 0 ||
        json_integer_value(json_object_get(m, "memory_mb")) !=
            (json_int_t) (spec->memory_mb ? spec->memory_mb : 128)) {
        return faas_error_set(err, EINVAL, "stem cell %s is of another "
                              "runtime or memory size", id);
    }
    return 0;
}

/* See sandbox.h. */
int
faas_sandbox_specialise(const faas_sandbox_host_t *host,
                        const faas_sandbox_spec_t *spec_in, const char *id,
                        double *import_ms, faas_error_t *err)
{
    cleanup_json json_t *meta = NULL;
    cleanup_close int    pidfd = -1;
    faas_sandbox_spec_t  s = *spec_in;
    const faas_sandbox_spec_t *spec = &s;
    int                  ret;

    if (s.memory_mb == 0) {
        s.memory_mb = 128;
    }
    if (s.timeout_ms == 0) {
        s.timeout_ms = 3000;
    }
    if (!faas_sandbox_id_valid(id)) {
        return faas_error_set(err, EINVAL, "invalid sandbox id");
    }
    ret = check_cell(host, spec, id, &meta, err);
    if (ret < 0) {
        return ret;
    }
    pidfd = cell_pidfd(id, (long) json_integer_value(json_object_get(meta,
                                                                     "pid")),
                       err);
    if (pidfd < 0) {
        return faas_error_wrap(err, "specialise %s", id);
    }
    ret = mount_code(spec->code_dir, pidfd, err);
    /* the import runs at a whole CPU, as a fresh sandbox's start-up does */
    if (ret == 0) {
        ret = sbx_cgroup_unlimit_cpu(host, id, err);
    }
    if (ret == 0) {
        ret = set_frozen(host, id, 0, err);
    }
    if (ret == 0) {
        ret = tell_runtime(host, spec, id, import_ms, err);
    }
    if (ret == 0) {
        ret = sbx_cgroup_limit_cpu(host, id, spec, err);
    }
    if (ret == 0) {
        ret = set_frozen(host, id, 1, err);
    }
    if (ret == 0) {
        ret = rewrite_meta(host, spec, id, meta, err);
    }
    if (ret < 0) {
        return faas_error_wrap(err, "specialise %s", id);
    }
    sbx_zygote_note(host, spec->runtime, spec->function, spec->version);
    return 0;
}
