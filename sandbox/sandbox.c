/*
 * The sandbox library's public side: ids, host preparation, create (with
 * readiness: inotify on the run dir, then a ping frame), destroy, listing
 * and meta.json. The child side is in sandbox_init.c and rootfs.c.
 */
#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "frame.h"
#include "sandbox_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOCK_NAME "function.sock"
#define META_NAME "meta.json"
#define LOG_NAME "runtime.log"
#define UID_DIR ".uid"
#define ROOT_DIR ".root"
#define READY_DEFAULT 10000
#define PING_MAX (1 << 20)
#define STALE_SLOT_S 60

static void
nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    nanosleep(&ts, NULL);
}

int
faas_sandbox_host_from_config(faas_sandbox_host_t *host, const json_t *cfg,
                              faas_error_t *err)
{
    static const char *const strs[] = {
        "run_dir", "cgroup_root", "runtimes_dir", "python",
        "node",    "freezer",     "zygote_lib",   NULL};
    static const char *const ints[] = {"uid_base", "uid_count",
                                       "cpu_mb_per_vcpu", NULL};
    long long                base, count;
    int                      ret;

    memset(host, 0, sizeof(*host));
    ret = faas_config_check_types(cfg, strs, ints, err);
    if (ret < 0) {
        return ret;
    }
    if ((ret = faas_config_require_string(cfg, "run_dir", &host->run_dir,
                                          err)) < 0 ||
        (ret = faas_config_require_string(cfg, "runtimes_dir",
                                          &host->runtimes_dir, err)) < 0) {
        return ret;
    }
    host->cgroup_root = faas_config_string(cfg, "cgroup_root", "faas");
    host->python = faas_config_string(cfg, "python", "/usr/bin/python3");
    host->node = faas_config_string(cfg, "node", "/usr/bin/node");
    base = faas_config_int(cfg, "uid_base", 100000);
    count = faas_config_int(cfg, "uid_count", 65536);
    if (base < 1000 || count < 1 || base + count > 0x7fffffffLL) {
        return faas_error_set(err, 0,
                              "config: uid_base/uid_count out of range");
    }
    host->uid_base = (uid_t) base;
    host->uid_count = (unsigned) count;
    if (faas_sandbox_zygote_config(host, cfg, err) < 0) {
        return -1;
    }
    host->zygote_lib = faas_config_string(cfg, "zygote_lib", NULL);
    if (faas_sandbox_limits_config(host, cfg, err) < 0) {
        return -1;
    }
    if (faas_sandbox_freezer_config(host, cfg, err) < 0) {
        return -1;
    }
    if (strchr(host->cgroup_root, '/') != NULL ||
        host->cgroup_root[0] == '\0' || host->cgroup_root[0] == '.') {
        return faas_error_set(err, 0, "config: invalid cgroup_root");
    }
    return 0;
}

int
faas_sandbox_id_valid(const char *id)
{
    int i;

    if (id == NULL || strlen(id) != FAAS_SANDBOX_ID_LEN || id[0] != 's' ||
        id[1] != '-') {
        return 0;
    }
    for (i = 2; i < FAAS_SANDBOX_ID_LEN; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') ||
              (id[i] >= 'a' && id[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int
faas_sandbox_id_new(char *id, faas_error_t *err)
{
    unsigned char b[8];
    int           i;

    if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
        return faas_error_set(err, errno, "getrandom");
    }
    id[0] = 's';
    id[1] = '-';
    for (i = 0; i < 8; i++) {
        id[2 + 2 * i] = "0123456789abcdef"[b[i] >> 4];
        id[3 + 2 * i] = "0123456789abcdef"[b[i] & 15];
    }
    id[FAAS_SANDBOX_ID_LEN] = '\0';
    return 0;
}

int
sbx_path(char *buf, size_t len, const faas_sandbox_host_t *host, const char *id,
         const char *file)
{
    int n;

    if (id == NULL) {
        n = snprintf(buf, len, "%s/sbx", host->run_dir);
    } else if (file == NULL) {
        n = snprintf(buf, len, "%s/sbx/%s", host->run_dir, id);
    } else {
        n = snprintf(buf, len, "%s/sbx/%s/%s", host->run_dir, id, file);
    }
    return (n < 0 || (size_t) n >= len) ? -ENAMETOOLONG : 0;
}

int
faas_sandbox_socket_path(const faas_sandbox_host_t *host, const char *id,
                         char *buf, size_t len)
{
    return sbx_path(buf, len, host, id, SOCK_NAME);
}

/* Connects through /proc/self/fd/N of an O_PATH|O_NOFOLLOW fd. */
static int
connect_nofollow(const char *path, int flags, faas_error_t *err)
{
    struct sockaddr_un sa;
    struct stat        st;
    cleanup_close int  pfd = -1, fd = -1;

    pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0) {
        return faas_error_set(err, errno, "connect %s", path);
    }
    if (fstat(pfd, &st) < 0) {
        return faas_error_set(err, errno, "stat %s", path);
    }
    if (!S_ISSOCK(st.st_mode)) {
        return faas_error_set(err, ENOTSOCK, "connect %s", path);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", pfd);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (flags & SOCK_NONBLOCK),
                0);
    if (fd < 0) {
        return faas_error_set(err, errno, "socket");
    }
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
        return faas_error_set(err, errno, "connect %s", path);
    }
    return steal_fd(&fd);
}

int
faas_sandbox_connect(const faas_sandbox_host_t *host, const char *id, int flags,
                     faas_error_t *err)
{
    char path[PATH_MAX];

    if (!faas_sandbox_id_valid(id)) {
        return faas_error_set(err, EINVAL, "invalid sandbox id");
    }
    if (faas_sandbox_socket_path(host, id, path, sizeof(path)) < 0) {
        return faas_error_set(err, ENAMETOOLONG, "socket path");
    }
    return connect_nofollow(path, flags, err);
}

static int
mkdir_p(const char *path, mode_t mode, faas_error_t *err)
{
    char  tmp[PATH_MAX];
    char *p;

    if (strlen(path) >= sizeof(tmp)) {
        return faas_error_set(err, ENAMETOOLONG, "mkdir %s", path);
    }
    strcpy(tmp, path);
    for (p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
                return faas_error_set(err, errno, "mkdir %s", tmp);
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST) {
        return faas_error_set(err, errno, "mkdir %s", tmp);
    }
    return 0;
}

/*
 * Creates <run_dir>/sbx (with .root, the new roots' mount point, and .uid,
 * the uid slots), the cgroup roots and the pin. Idempotent.
 */
int
faas_sandbox_host_init(const faas_sandbox_host_t *host, faas_error_t *err)
{
    char path[PATH_MAX];
    int  ret;

    if (sbx_path(path, sizeof(path), host, ROOT_DIR, NULL) < 0) {
        return faas_error_set(err, ENAMETOOLONG, "run_dir");
    }
    if ((ret = mkdir_p(path, 0700, err)) < 0) {
        return ret;
    }
    sbx_path(path, sizeof(path), host, UID_DIR, NULL);
    if ((ret = mkdir_p(path, 0700, err)) < 0) {
        return ret;
    }
    sbx_path(path, sizeof(path), host, SBX_STEM_DIR, NULL);
    if ((ret = mkdir_p(path, 0700, err)) < 0) {
        return ret;
    }
    ret = sbx_cgroup_host_init(host, err);
    if (ret < 0) {
        return faas_error_wrap(err, "sandbox host init");
    }
    return 0;
}

/* --- uid slots: <run_dir>/sbx/.uid/<uid> is a symlink to the owning id --- */

static int
slot_stale(const faas_sandbox_host_t *host, const char *link)
{
    char        target[64], dir[PATH_MAX];
    struct stat st;
    ssize_t     n;

    n = readlink(link, target, sizeof(target) - 1);
    if (n < 0) {
        return 0;
    }
    target[n] = '\0';
    if (!faas_sandbox_id_valid(target)) {
        return 1;
    }
    sbx_path(dir, sizeof(dir), host, target, NULL);
    if (access(dir, F_OK) == 0) {
        return 0;
    }
    /* a run dir is made before its slot: an old link without one is stale */
    return lstat(link, &st) == 0 && time(NULL) - st.st_ctime > STALE_SLOT_S;
}

static int
uid_alloc(const faas_sandbox_host_t *host, const char *id, uid_t *uid,
          faas_error_t *err)
{
    char     link[PATH_MAX], dir[PATH_MAX - 64];
    unsigned start, i, slot;
    int      retried;

    sbx_path(dir, sizeof(dir), host, UID_DIR, NULL);
    start = (unsigned) (strtoull(id + 2, NULL, 16) % host->uid_count);
    for (i = 0; i < host->uid_count; i++) {
        slot = (start + i) % host->uid_count;
        snprintf(link, sizeof(link), "%s/%u", dir,
                 (unsigned) (host->uid_base + slot));
        for (retried = 0; retried < 2; retried++) {
            if (symlink(id, link) == 0) {
                *uid = host->uid_base + slot;
                return 0;
            }
            if (errno != EEXIST) {
                return faas_error_set(err, errno, "uid slot %s", link);
            }
            if (!slot_stale(host, link)) {
                break;
            }
            unlink(link);
        }
    }
    return faas_error_set(err, EAGAIN, "no free uid among %u", host->uid_count);
}

static void
uid_release(const faas_sandbox_host_t *host, const char *id, long uid)
{
    char                  dir[PATH_MAX], link[PATH_MAX + 300], target[64];
    cleanup_closedir DIR *d = NULL;
    struct dirent        *e;
    ssize_t               n;

    sbx_path(dir, sizeof(dir), host, UID_DIR, NULL);
    if (uid >= 0) {
        snprintf(link, sizeof(link), "%s/%ld", dir, uid);
        n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strcmp(target, id) == 0) {
                unlink(link);
            }
        }
        return;
    }
    d = opendir(dir);
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strcmp(target, id) == 0) {
                unlink(link);
            }
        }
    }
}

/* --- meta.json ----------------------------------------------------------- */

int
faas_sandbox_meta(const faas_sandbox_host_t *host, const char *id,
                  json_t **meta, faas_error_t *err)
{
    char         path[PATH_MAX];
    json_error_t jerr;

    if (!faas_sandbox_id_valid(id)) {
        return faas_error_set(err, EINVAL, "invalid sandbox id");
    }
    sbx_path(path, sizeof(path), host, id, META_NAME);
    *meta = json_load_file(path, 0, &jerr);
    if (*meta == NULL) {
        if (access(path, F_OK) < 0) {
            return faas_error_set(err, ENOENT, "%s", path);
        }
        return faas_error_set(err, EINVAL, "%s: %s", path, jerr.text);
    }
    return 0;
}

static int
write_meta(const faas_sandbox_host_t *host, const faas_sandbox_spec_t *spec,
           const char *id, uid_t uid, long pid, int zygote, faas_error_t *err)
{
    char                 path[PATH_MAX], tmp[PATH_MAX + 8], rid[96];
    cleanup_json json_t *m = NULL;

    if (spec->stem) {
        return sbx_write_stem_meta(host, spec, id, uid, pid, err);
    }
    snprintf(rid, sizeof(rid), "%s@%u", spec->function, spec->version);
    m = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:I,"
                  " s:s?, s:s, s:b}",
                  "id", id, "function", spec->function, "version",
                  (int) spec->version, "rid", rid, "runtime", spec->runtime,
                  "handler", spec->handler, "memory_mb", (int) spec->memory_mb,
                  "timeout_ms", (int) spec->timeout_ms, "uid", (json_int_t) uid,
                  "pid", (json_int_t) pid, "created_ms",
                  (json_int_t) faas_now_ms(),
                  "origin_request_id", spec->origin_request_id, "code_dir",
                  spec->code_dir, "zygote", zygote);
    if (m == NULL) {
        return faas_error_set(err, ENOMEM, "meta.json");
    }
    sbx_path(path, sizeof(path), host, id, META_NAME);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(m, tmp, JSON_COMPACT) < 0) {
        return faas_error_set(err, errno, "write %s", tmp);
    }
    if (rename(tmp, path) < 0) {
        return faas_error_set(err, errno, "rename %s", tmp);
    }
    return 0;
}

/* --- create -------------------------------------------------------------- */

static int
check_spec(const faas_sandbox_host_t *host, faas_sandbox_spec_t *s,
           char *bootstrap, size_t blen, faas_error_t *err)
{
    struct stat st;
    const char *p, *dot;
    size_t      n;

    if (s->function == NULL || !islower((unsigned char) s->function[0]) ||
        (n = strlen(s->function)) > 63) {
        return faas_error_set(err, EINVAL, "invalid function name");
    }
    for (p = s->function; *p != '\0'; p++) {
        if (!islower((unsigned char) *p) && !isdigit((unsigned char) *p) &&
            *p != '-') {
            return faas_error_set(err, EINVAL, "invalid function name");
        }
    }
    if (s->version == 0) {
        return faas_error_set(err, EINVAL,
                              "version must be a positive integer");
    }
    if (s->handler == NULL || (dot = strrchr(s->handler, '.')) == NULL ||
        dot == s->handler || dot[1] == '\0' || strlen(s->handler) > 200 ||
        strchr(s->handler, '=') != NULL) {
        return faas_error_set(err, EINVAL, "handler must be FILE.FUNCTION");
    }
    if (s->runtime == NULL) {
        return faas_error_set(err, EINVAL, "runtime missing");
    }
    if (strcmp(s->runtime, "python3") == 0) {
        snprintf(bootstrap, blen, "%s/python/bootstrap.py", host->runtimes_dir);
    } else if (strcmp(s->runtime, "nodejs") == 0) {
        snprintf(bootstrap, blen, "%s/node/bootstrap.js", host->runtimes_dir);
    } else {
        return faas_error_set(err, EINVAL, "unknown runtime %s", s->runtime);
    }
    if (access(bootstrap, R_OK) < 0) {
        return faas_error_set(err, errno, "runtime bootstrap %s", bootstrap);
    }
    if (s->code_dir == NULL || s->code_dir[0] != '/') {
        return faas_error_set(err, EINVAL, "code dir must be an absolute path");
    }
    if (stat(s->code_dir, &st) < 0) {
        return faas_error_set(err, errno, "code dir %s", s->code_dir);
    }
    if (!S_ISDIR(st.st_mode)) {
        return faas_error_set(err, ENOTDIR, "code dir %s", s->code_dir);
    }
    if (s->memory_mb == 0) {
        s->memory_mb = 128;
    }
    if (s->timeout_ms == 0) {
        s->timeout_ms = 3000;
    }
    if (s->pids_max == 0) {
        s->pids_max = 64;
    }
    if (s->tmp_mb == 0) {
        s->tmp_mb = 64;
    }
    if (s->cpu_shares == 0) {
        s->cpu_shares = 1024;
    }
    if (s->ready_timeout_ms == 0) {
        s->ready_timeout_ms = READY_DEFAULT;
    }
    if (s->memory_mb < 16 || s->memory_mb > 65536 || s->tmp_mb > 65536 ||
        s->pids_max < 4 || s->cpu_shares < 2) {
        return faas_error_set(err, EINVAL, "limits out of range");
    }
    if (s->env != NULL && !json_is_object(s->env)) {
        return faas_error_set(err, EINVAL, "env must be an object");
    }
    return 0;
}

typedef struct strs_s {
    char *v[SBX_ENV_MAX + SBX_ARGV_MAX + 2];
    int   n;
} strs_t;

static void
strs_free(strs_t *s)
{
    int i;

    for (i = 0; i < s->n; i++) {
        free(s->v[i]);
    }
    s->n = 0;
}

static char *strs_add(strs_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *
strs_add(strs_t *s, const char *fmt, ...)
{
    va_list ap;
    char   *p;
    int     r;

    if (s->n >= (int) (sizeof(s->v) / sizeof(s->v[0]))) {
        return NULL;
    }
    va_start(ap, fmt);
    r = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (r < 0) {
        return NULL;
    }
    s->v[s->n++] = p;
    return p;
}

static int
build_launch(const faas_sandbox_host_t *host, const faas_sandbox_spec_t *s,
             const char *id, uid_t uid, sbx_launch_t *l, strs_t *st,
             faas_error_t *err)
{
    const char *key;
    json_t     *val;
    size_t      klen;
    int         i, k, n = 0;
    char       *e;

    for (i = 0; i < SBX_HIERS; i++) {
        char dir[PATH_MAX];
        sbx_cgroup_path(dir, sizeof(dir), sbx_v1_hiers[i], host, id);
        snprintf(l->cg_tasks[i], sizeof(l->cg_tasks[i]), "%.4000s/tasks", dir);
    }
    {
        char dir[PATH_MAX];
        sbx_cgroup_path(dir, sizeof(dir), "unified", host, id);
        snprintf(l->cg2_procs, sizeof(l->cg2_procs), "%.4000s/cgroup.procs",
                 dir);
        l->cg2_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (l->cg2_fd < 0) {
            return faas_error_set(err, errno, "open %s", dir);
        }
    }
    sbx_path(l->root_mnt, sizeof(l->root_mnt), host, ROOT_DIR, NULL);
    sbx_path(l->run_dir, sizeof(l->run_dir), host, id, NULL);
    snprintf(l->code_dir, sizeof(l->code_dir), "%s", s->code_dir);
    snprintf(l->runtimes_dir, sizeof(l->runtimes_dir), "%s",
             host->runtimes_dir);
    snprintf(l->tmp_opts, sizeof(l->tmp_opts), "size=%um,mode=1777", s->tmp_mb);
    snprintf(l->passwd, sizeof(l->passwd),
             "root:x:0:0:root:/root:/usr/sbin/nologin\n"
             "sbx:x:%u:%u:sandbox:/tmp:/usr/sbin/nologin\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
             (unsigned) uid, (unsigned) uid);
    snprintf(l->group, sizeof(l->group),
             "root:x:0:\nsbx:x:%u:\nnogroup:x:65534:\n", (unsigned) uid);
    l->uid = uid;
    l->gid = (gid_t) uid;
    l->fsize = (unsigned long) s->tmp_mb << 20;

    if (strcmp(s->runtime, "python3") == 0) {
        l->argv[0] = strs_add(st, "%s", host->python);
        l->argv[1] = strs_add(st, "-I");
        l->argv[2] = strs_add(st, "-S");
        l->argv[3] = strs_add(st, "/opt/faas/runtimes/python/bootstrap.py");
        l->argv[4] = NULL;
    } else {
        l->argv[0] = strs_add(st, "%s", host->node);
        l->argv[1] = strs_add(st, "/opt/faas/runtimes/node/bootstrap.js");
        l->argv[2] = NULL;
    }

#define ENV(...)                                                               \
    do {                                                                       \
        if ((e = strs_add(st, __VA_ARGS__)) == NULL) {                         \
            return faas_error_set(err, ENOMEM, "environment");                 \
        }                                                                      \
        l->envp[n++] = e;                                                      \
    } while (0)

    ENV("FAAS_SOCKET=/run/faas/" SOCK_NAME);
    ENV("FAAS_HANDLER=%s", s->handler);
    ENV("FAAS_FUNCTION_NAME=%s", s->function);
    ENV("FAAS_FUNCTION_VERSION=%u", s->version);
    ENV("FAAS_MEMORY_MB=%u", s->memory_mb);
    ENV("FAAS_TIMEOUT_MS=%u", s->timeout_ms);
    ENV("FAAS_TASK_ROOT=/var/task");
    ENV("FAAS_LOG_MAX=65536");
    ENV("AWS_LAMBDA_FUNCTION_NAME=%s", s->function);
    ENV("AWS_LAMBDA_FUNCTION_VERSION=%u", s->version);
    ENV("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%u", s->memory_mb);
    ENV("LAMBDA_TASK_ROOT=/var/task");
    ENV("AWS_REGION=local");
    ENV("PATH=/usr/bin:/bin");
    ENV("HOME=/tmp");
    ENV("LANG=C.UTF-8");
    if (s->stem) {
        ENV("FAAS_STEM=1"); /* no handler to load: see stem.c */
    }
    if (s->env != NULL) {
        json_object_foreach((json_t *) s->env, key, val)
        {
            if (!json_is_string(val)) {
                return faas_error_set(err, EINVAL, "env %s: not a string", key);
            }
            if (key[0] == '\0' || strchr(key, '=') != NULL ||
                strncmp(key, "FAAS_", 5) == 0) {
                continue; /* may not override FAAS_* */
            }
            if (n >= SBX_ENV_MAX) {
                return faas_error_set(err, E2BIG, "too many env variables");
            }
            ENV("%s=%s", key, json_string_value(val));
            /* the function's value wins over a platform default (PATH...) */
            klen = strlen(key);
            for (k = 0; k < n - 1; k++) {
                if (strncmp(l->envp[k], key, klen) == 0 &&
                    l->envp[k][klen] == '=') {
                    l->envp[k] = l->envp[--n];
                    break;
                }
            }
        }
    }
#undef ENV
    l->envp[n] = NULL;
    for (i = 0; l->argv[i] != NULL || i == 0; i++) {
        if (l->argv[i] == NULL) {
            return faas_error_set(err, ENOMEM, "argv");
        }
    }
    return sbx_seccomp_prog(&l->seccomp, err);
}

/* The last bytes of runtime.log, on one line, for an error message. */
static void
log_tail(const faas_sandbox_host_t *host, const char *id, char *buf, size_t len)
{
    char              path[PATH_MAX];
    cleanup_close int fd = -1;
    struct stat       st;
    off_t             off;
    ssize_t           n, i;

    buf[0] = '\0';
    sbx_path(path, sizeof(path), host, id, LOG_NAME);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        return;
    }
    off = st.st_size > (off_t) len - 1 ? st.st_size - (off_t) len + 1 : 0;
    n = pread(fd, buf, len - 1, off);
    if (n < 0) {
        n = 0;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
        n--;
    }
    buf[n] = '\0';
    for (i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            buf[i] = '|';
        } else if ((unsigned char) buf[i] < 0x20) {
            buf[i] = ' ';
        }
    }
}

static int
ping(const char *sock_path, int pidfd, long long deadline, faas_error_t *err)
{
    cleanup_close int     fd = -1;
    cleanup_free uint8_t *buf = NULL;
    cleanup_json json_t  *ans = NULL;
    static const char     req[] = "{\"id\":\"ready\",\"ping\":true}";
    struct timeval        tv;
    long long             left;
    size_t                len;
    int                   ret;

    for (;;) {
        fd = connect_nofollow(sock_path, 0, err);
        if (fd >= 0) {
            break;
        }
        /* bound but not yet listening: a short window, retried while the
         * runtime lives */
        if ((-fd != ECONNREFUSED && -fd != ENOENT) ||
            (long long) faas_mono_ms() > deadline) {
            return fd;
        }
        {
            struct pollfd p = {.fd = pidfd, .events = POLLIN};
            if (poll(&p, 1, 0) == 1) {
                return faas_error_set(err, ECONNREFUSED,
                                      "runtime exited after binding");
            }
        }
        fd = -1;
        nap_us(500);
    }
    left = deadline - (long long) faas_mono_ms();
    if (left < 1) {
        left = 1;
    }
    tv.tv_sec = left / 1000;
    tv.tv_usec = (left % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if ((ret = faas_frame_write(fd, req, sizeof(req) - 1, err)) < 0) {
        return ret;
    }
    ret = faas_frame_read(fd, &buf, &len, PING_MAX, err);
    if (ret <= 0) {
        return ret == 0 ? faas_error_set(err, ECONNRESET, "ping: no answer")
                        : faas_error_wrap(err, "ping");
    }
    ans = json_loadb((const char *) buf, len, 0, NULL);
    if (ans == NULL || !json_is_true(json_object_get(ans, "ok")) ||
        !json_is_true(json_object_get(ans, "pong"))) {
        return faas_error_set(err, EPROTO, "ping: unexpected answer");
    }
    return 0;
}

static int
wait_frozen(const faas_sandbox_host_t *host, const char *id, faas_error_t *err)
{
    faas_cgroup_t *cg = NULL;
    long long      deadline = (long long) faas_mono_ms() + 5000;
    long           us = 50;
    int            ret;

    ret = faas_cgroup_open(host, id, &cg, err);
    if (ret < 0) {
        return ret;
    }
    ret = faas_cgroup_freeze(cg, err);
    while (ret == 0) {
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
            nap_us(us);
            us = us < 5000 ? us * 2 : us;
        }
    }
    faas_cgroup_close(cg);
    return ret;
}

/*
 * One inotify instance per thread, kept for the thread's life: closing an
 * inotify fd waits for an SRCU grace period (~13 ms here), which would sit
 * on every create's path. Watches are added and removed per create; stale
 * events are drained first and filtered by watch descriptor.
 */
static __thread int thread_ino = -1;

static int
ino_watch(const char *dir, int *wd, faas_error_t *err)
{
    char buf[4096] __attribute__((aligned(8)));

    if (thread_ino < 0) {
        thread_ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (thread_ino < 0) {
            return faas_error_set(err, errno, "inotify_init1");
        }
    }
    while (read(thread_ino, buf, sizeof(buf)) > 0) {
    }
    *wd = inotify_add_watch(thread_ino, dir, IN_CREATE | IN_MOVED_TO);
    if (*wd < 0) {
        return faas_error_set(err, errno, "inotify on %s", dir);
    }
    return thread_ino;
}

static void
ino_unwatchp(int *wd)
{
    if (*wd >= 0 && thread_ino >= 0) {
        inotify_rm_watch(thread_ino, *wd);
    }
}

/* Waits for the socket (inotify), a setup error, or the runtime's death. */
static int
wait_ready(const faas_sandbox_host_t *host, const char *id, int ino, int wd,
           int pidfd, int err_rd, long long deadline, faas_error_t *err)
{
    char              evbuf[4096] __attribute__((aligned(8)));
    char              sock[PATH_MAX], tail[300];
    struct pollfd     pfd[3];
    sbx_setup_error_t se;
    long long         left;
    ssize_t           n;
    int               have_sock = 0, died = 0, ret, off;

    faas_sandbox_socket_path(host, id, sock, sizeof(sock));
    if (access(sock, F_OK) == 0) {
        have_sock = 1;
    }
    pfd[0].fd = err_rd;
    pfd[0].events = POLLIN;
    pfd[1].fd = pidfd;
    pfd[1].events = POLLIN;
    pfd[2].fd = ino;
    pfd[2].events = POLLIN;
    while (!have_sock) {
        left = deadline - (long long) faas_mono_ms();
        if (left <= 0) {
            log_tail(host, id, tail, sizeof(tail));
            return faas_error_set(err, ETIMEDOUT,
                                  "runtime not ready in time; output: %s",
                                  tail[0] ? tail : "(none)");
        }
        ret = poll(pfd, 3, (int) left);
        if (ret < 0 && errno != EINTR) {
            return faas_error_set(err, errno, "poll");
        }
        if (pfd[0].fd >= 0 && pfd[0].revents != 0) {
            n = read(err_rd, &se, sizeof(se));
            if (n == (ssize_t) sizeof(se)) {
                se.step[sizeof(se.step) - 1] = '\0';
                return faas_error_set(err, se.errnum, "sandbox setup: %s",
                                      se.step);
            }
            pfd[0].fd =
                -1; /* EOF: exec'd (or died), and the first child gone */
        }
        if (pfd[1].fd >= 0 && pfd[1].revents != 0) {
            died = 1;
            pfd[1].fd = -1;
        }
        if (died && pfd[0].fd < 0) { /* the error pipe had its say first */
            log_tail(host, id, tail, sizeof(tail));
            return faas_error_set(err, 0, "runtime exited at start: %s",
                                  tail[0] ? tail : "(no output)");
        }
        if (pfd[2].revents != 0) {
            n = read(ino, evbuf, sizeof(evbuf));
            for (off = 0; n > 0 && off < n;) {
                struct inotify_event *ev =
                    (struct inotify_event *) (evbuf + off);
                if (ev->wd == wd && ev->len > 0 &&
                    strcmp(ev->name, SOCK_NAME) == 0) {
                    have_sock = 1;
                }
                off += sizeof(*ev) + ev->len;
            }
        }
    }
    ret = ping(sock, pidfd, deadline, err);
    if (ret < 0) {
        log_tail(host, id, tail, sizeof(tail));
        return faas_error_wrap(err, "runtime output: %s; readiness",
                               tail[0] ? tail : "(none)");
    }
    return 0;
}

static int
mount_run_dir(const char *dir, uid_t uid, faas_error_t *err)
{
    char opts[96];

    snprintf(opts, sizeof(opts), "size=%uk,mode=1770,uid=0,gid=%u",
             SBX_RUN_TMPFS_KB, (unsigned) uid);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) <
        0) {
        return faas_error_set(err, errno, "mount tmpfs on %s", dir);
    }
    return 0;
}

static void
launch_freep(sbx_launch_t **l)
{
    if (*l != NULL) {
        if ((*l)->cg2_fd >= 0) {
            close((*l)->cg2_fd);
        }
        free(*l);
    }
}

/* The caller's ends of the pipes to the two children. */
typedef struct {
    int info_rd; /* the runtime's host pid, from the first child */
    int go_wr;   /* lets both children go */
    int err_rd;  /* a sbx_setup_error_t, from the sandbox's process */
} launch_pipes_t;

static void
launch_pipes_closep(launch_pipes_t *pp)
{
    faas_cleanup_closep(&pp->info_rd);
    faas_cleanup_closep(&pp->go_wr);
    faas_cleanup_closep(&pp->err_rd);
}

/* Reads the sbx_setup_error_t a child wrote to fd: 1 if there was one. */
static int
setup_error_read(int fd, sbx_setup_error_t *se)
{
    if (read(fd, se, sizeof(*se)) != (ssize_t) sizeof(*se)) {
        return 0;
    }
    se->step[sizeof(se->step) - 1] = '\0';
    return 1;
}

/*
 * Allocates *lp (freed by launch_freep) and fills it; with zygote_fd open,
 * also the zygote's blob, in *blob_fd (the caller closes it).
 */
static int
launch_alloc(const faas_sandbox_host_t *host, faas_sandbox_spec_t *spec,
             const char *id, uid_t uid, int zygote_fd, sbx_launch_t **lp,
             int *blob_fd, strs_t *st, faas_error_t *err)
{
    sbx_launch_t *l;
    int           ret;

    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return faas_error_set(err, ENOMEM, "sandbox launch");
    }
    *lp = l;
    l->cg2_fd = -1;
    ret = build_launch(host, spec, id, uid, l, st, err);
    if (ret == 0 && zygote_fd >= 0) {
        *blob_fd = sbx_zygote_blob(l, err);
        ret = *blob_fd < 0 ? *blob_fd : 0;
    }
    if (ret < 0) {
        return ret;
    }
    l->zygote_fd = zygote_fd;
    l->blob_fd = *blob_fd;
    if (host->zygote == FAAS_ZYGOTE_FUNCTION) {
        /* the revision: a rid never names two codes (nor two owners) */
        snprintf(l->zygote_key, sizeof(l->zygote_key), "%s@%u", spec->function,
                 spec->version);
    }
    return 0;
}

/*
 * Opens the runtime's log (*log_fd, the caller closes it) and the pipes
 * between the caller and the children: the children's ends go into l, the
 * caller's into pp. On failure the children's ends made so far are closed.
 */
static int
launch_fds(const faas_sandbox_host_t *host, const char *id, sbx_launch_t *l,
           int *log_fd, launch_pipes_t *pp, faas_error_t *err)
{
    char path[PATH_MAX];
    int  info[2], go[2], errp[2], piv[2];

    sbx_path(path, sizeof(path), host, id, LOG_NAME);
    *log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (*log_fd < 0) {
        return faas_error_set(err, errno, "open %s", path);
    }
    if (pipe2(info, O_CLOEXEC) < 0) {
        return faas_error_set(err, errno, "pipe");
    }
    pp->info_rd = info[0];
    if (pipe2(go, O_CLOEXEC) < 0) {
        close(info[1]);
        return faas_error_set(err, errno, "pipe");
    }
    pp->go_wr = go[1];
    if (pipe2(errp, O_CLOEXEC) < 0) {
        close(info[1]);
        close(go[0]);
        return faas_error_set(err, errno, "pipe");
    }
    pp->err_rd = errp[0];
    if (pipe2(piv, O_CLOEXEC) < 0) {
        close(info[1]);
        close(go[0]);
        close(errp[1]);
        return faas_error_set(err, errno, "pipe");
    }
    l->piv_rd = piv[0];
    l->piv_wr = piv[1];
    l->log_fd = *log_fd;
    l->info_fd = info[1];
    l->go_fd = go[0];
    l->err_fd = errp[1];
    l->parent_fds[0] = pp->info_rd;
    l->parent_fds[1] = pp->go_wr;
    l->parent_fds[2] = pp->err_rd;
    return 0;
}

/*
 * Forks the first child (*a), which never returns here; then closes, in
 * the caller, the children's ends of the pipes and the cgroup fd.
 */
static int
launch_fork(sbx_launch_t *l, pid_t *a, faas_error_t *err)
{
    sigset_t all, old_mask;
    int      ret;

    /* no handler of the caller may run in the child before it resets them */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_mask);
    *a = fork();
    if (*a == 0) {
        sbx_child_main(l);
    }
    ret = *a < 0 ? faas_error_set(err, errno, "fork") : 0;
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    close(l->cg2_fd);
    l->cg2_fd = -1;
    close(l->info_fd);
    close(l->go_fd);
    close(l->err_fd);
    close(l->piv_rd);
    close(l->piv_wr);
    return ret;
}

/*
 * Reads the runtime's host pid from the first child, opens *pidfd (the
 * caller closes it), writes the meta file and lets both children go; or
 * reads why the setup failed (*zyg_failed set if the zygote did).
 */
static int
launch_start(const faas_sandbox_host_t *host, const faas_sandbox_spec_t *spec,
             const char *id, uid_t uid, const sbx_launch_t *l,
             const launch_pipes_t *pp, int *pidfd, int *zyg_failed,
             faas_error_t *err)
{
    sbx_setup_error_t se;
    long              pid = 0;
    int               ret;

    if (read(pp->info_rd, &pid, sizeof(pid)) != (ssize_t) sizeof(pid)) {
        if (!setup_error_read(pp->err_rd, &se)) {
            return faas_error_set(err, 0, "sandbox setup failed");
        }
        if (strncmp(se.step, "zygote: ", 8) == 0) {
            *zyg_failed = se.errnum > 0 ? se.errnum : EPROTO;
        }
        return faas_error_set(err, se.errnum, "sandbox setup: %s", se.step);
    }
    *pidfd = (int) syscall(SYS_pidfd_open, (pid_t) pid, 0);
    if (*pidfd < 0) {
        return faas_error_set(err, errno, "pidfd_open");
    }
    ret = write_meta(host, spec, id, uid, pid, l->zygote_fd >= 0, err);
    if (ret == 0 && write(pp->go_wr, "gg", 2) != 2) {
        ret = faas_error_set(err, errno, "start the sandbox");
    }
    return ret;
}

/*
 * Reaps the first child: last, since it detaches the old root (an RCU
 * grace period) while the runtime starts. It must have succeeded for the
 * sandbox to be sound. Returns ret, or the child's error if ret was 0.
 */
static int
launch_reap(pid_t a, int err_rd, int ret, faas_error_t *err)
{
    sbx_setup_error_t se;
    int               status;

    while (waitpid(a, &status, 0) < 0 && errno == EINTR) {
    }
    if (ret != 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        return ret;
    }
    if (setup_error_read(err_rd, &se)) {
        return faas_error_set(err, se.errnum, "sandbox setup: %s", se.step);
    }
    return faas_error_set(err, 0, "sandbox setup: first child failed");
}

/*
 * zfd >= 0: the zygote path (the first child asks the zygote for the
 * sandbox's process); launch closes zfd. *zyg_failed is set (to an errno)
 * when the zygote could not make the process (nothing ran: retry the
 * fresh way).
 */
static int
launch(const faas_sandbox_host_t *host, faas_sandbox_spec_t *spec,
       const char *id, int zfd, int *zyg_failed, faas_error_t *err)
{
    char              dir[PATH_MAX];
    sbx_launch_t     *l __attribute__((cleanup(launch_freep))) = NULL;
    cleanup_close int pidfd = -1, log_fd = -1;
    int               ino = -1;
    int               wd __attribute__((cleanup(ino_unwatchp))) = -1;
    launch_pipes_t    pp __attribute__((cleanup(launch_pipes_closep))) = {
        -1, -1, -1};
    cleanup_close int zygote_fd = zfd, blob_fd = -1;
    strs_t            st = {.n = 0};
    long long         deadline =
        (long long) faas_mono_ms() + spec->ready_timeout_ms;
    uid_t             uid = 0;
    pid_t             a = -1;
    int               ret;

    sbx_path(dir, sizeof(dir), host, id, NULL);
    if ((ret = uid_alloc(host, id, &uid, err)) < 0 ||
        (ret = mount_run_dir(dir, uid, err)) < 0 ||
        (ret = sbx_cgroup_create(host, id, spec, err)) < 0) {
        return ret;
    }
    ret = launch_alloc(host, spec, id, uid, zygote_fd, &l, &blob_fd, &st, err);
    if (ret == 0) {
        ino = ino_watch(dir, &wd, err);
        ret = ino < 0 ? ino : 0;
    }
    if (ret == 0) {
        ret = launch_fds(host, id, l, &log_fd, &pp, err);
    }
    if (ret == 0) {
        ret = launch_fork(l, &a, err);
        if (zygote_fd >= 0) {
            close(zygote_fd);
            zygote_fd = -1;
            close(blob_fd);
            blob_fd = -1;
        }
    }
    strs_free(&st);
    if (ret < 0) {
        return ret;
    }
    ret = launch_start(host, spec, id, uid, l, &pp, &pidfd, zyg_failed, err);
    close(pp.go_wr);
    pp.go_wr = -1;
    if (ret == 0) {
        ret = wait_ready(host, id, ino, wd, pidfd, pp.err_rd, deadline, err);
    }
    /* The CPU quota only once the runtime is ready: start-up (interpreter,
     * imports) keeps a whole CPU, so cold starts do not scale with it. */
    if (ret == 0) {
        ret = sbx_cgroup_limit_cpu(host, id, spec, err);
    }
    if (ret == 0) {
        ret = wait_frozen(host, id, err);
    }
    return launch_reap(a, pp.err_rd, ret, err);
}

int
faas_sandbox_freezer_config(faas_sandbox_host_t *host, const json_t *cfg,
                            faas_error_t *err)
{
    const char *fz = faas_config_string(cfg, "freezer", "v1");

    if (strcmp(fz, "v1") == 0) {
        host->freezer = FAAS_FREEZER_V1;
    } else if (strcmp(fz, "v2") == 0) {
        host->freezer = FAAS_FREEZER_V2;
    } else {
        return faas_error_set(err, 0,
                              "config: freezer must be v1 or v2, not \"%s\"",
                              fz);
    }
    return 0;
}

int
faas_sandbox_limits_config(faas_sandbox_host_t *host, const json_t *cfg,
                           faas_error_t *err)
{
    json_t   *v = json_object_get(cfg, "cpu_mb_per_vcpu");
    long long mb;

    if (v != NULL) {
        mb = json_is_integer(v) ? json_integer_value(v) : -1;
        if (mb < 1 || mb > 1048576) {
            return faas_error_set(err, 0,
                                  "config: cpu_mb_per_vcpu must be 1..1048576");
        }
        host->cpu_mb_per_vcpu = (unsigned) mb;
    }
    v = json_object_get(cfg, "require_swap_accounting");
    if (v != NULL && !json_is_boolean(v)) {
        return faas_error_set(err, 0,
                              "config: require_swap_accounting must be a "
                              "boolean");
    }
    host->allow_unaccounted_swap = v != NULL && json_is_false(v);
    return 0;
}

int
faas_sandbox_zygote_config(faas_sandbox_host_t *host, const json_t *cfg,
                           faas_error_t *err)
{
    json_t     *v = json_object_get(cfg, "zygote");
    const char *s = json_string_value(v);
    long long   idle;

    if (json_is_boolean(v)) {
        host->zygote = json_is_true(v) ? FAAS_ZYGOTE_SHARED : FAAS_ZYGOTE_OFF;
    } else if (s != NULL && strcmp(s, "off") == 0) {
        host->zygote = FAAS_ZYGOTE_OFF;
    } else if (s != NULL && strcmp(s, "shared") == 0) {
        host->zygote = FAAS_ZYGOTE_SHARED;
    } else if (s != NULL && strcmp(s, "function") == 0) {
        host->zygote = FAAS_ZYGOTE_FUNCTION;
    } else if (v != NULL) {
        return faas_error_set(err, 0,
                              "config: zygote must be \"off\", \"shared\", "
                              "\"function\" or a boolean");
    }
    if (host->zygote_idle_s == 0) {
        host->zygote_idle_s = 60;
    }
    v = json_object_get(cfg, "zygote_idle_s");
    if (v != NULL) {
        idle = json_is_integer(v) ? json_integer_value(v) : -1;
        if (idle < 1 || idle > 86400) {
            return faas_error_set(err, 0,
                                  "config: zygote_idle_s must be 1..86400");
        }
        host->zygote_idle_s = (unsigned) idle;
    }
    return 0;
}

/*
 * Whether a create that found no zygote should start one. A function's
 * zygote is started by its second create within zygote_idle_s, not its
 * first: a function that only ever gets one sandbox costs no zygote (an
 * interpreter start and ~6 MiB). A zygote that does not come up is not
 * started again more than once a second. Per process, by a hash of the key
 * (a collision only delays a start).
 */
#define ZSTART_SLOTS 256

typedef struct zstart_s {
    unsigned  hash;
    long long seen;  /* the last create that found no zygote */
    long long start; /* the last start */
} zstart_t;

static int
zygote_may_start(const faas_sandbox_host_t *host, const char *key)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static zstart_t        slots[ZSTART_SLOTS];
    unsigned               h = 5381;
    long long              now = (long long) faas_mono_ms();
    zstart_t              *z;
    int                    start = 0;
    const char            *c;

    for (c = key; c != NULL && *c; c++) {
        h = h * 33 + (unsigned char) *c;
    }
    z = &slots[h % ZSTART_SLOTS];
    pthread_mutex_lock(&lock);
    if (key != NULL && (z->hash != h || z->seen == 0 ||
                        now - z->seen > host->zygote_idle_s * 1000LL)) {
        /* the first sighting of this function (lately) */
        z->hash = h;
        z->seen = now;
        z->start = 0;
    } else if (z->start == 0 || now - z->start >= 1000) {
        z->seen = now;
        z->start = now;
        start = 1;
    } else {
        z->seen = now;
    }
    pthread_mutex_unlock(&lock);
    return start;
}

/*
 * The zygote's control socket when host->zygote is set and the zygote for
 * this sandbox (the shared one, or its function's) answers, else -1. A
 * zygote that does not answer is (re)started in the background (see
 * zygote_may_start); this create goes the fresh way.
 */
static int
zygote_socket(const faas_sandbox_host_t *host, const char *runtime,
              const char *key)
{
    faas_error_t zerr;
    int          fd;

    if (host->zygote == FAAS_ZYGOTE_OFF || strcmp(runtime, "python3") != 0) {
        return -1;
    }
    fd = sbx_zygote_connect(host, runtime, key, &zerr);
    if (fd >= 0) {
        return fd;
    }
    if (zygote_may_start(host, key)) {
        sbx_zygote_start(host, runtime, key, &zerr);
    }
    return -1;
}

/* A revision's first sandbox made from a stem cell counts as its first
 * create for the zygote of the revision (see zygote_may_start). */
void
sbx_zygote_note(const faas_sandbox_host_t *host, const char *runtime,
                const char *function, unsigned version)
{
    char key[ZYG_KEY_MAX];
    int  fd;

    if (host->zygote != FAAS_ZYGOTE_FUNCTION) {
        return;
    }
    snprintf(key, sizeof(key), "%s@%u", function, version);
    fd = zygote_socket(host, runtime, key);
    if (fd >= 0) {
        close(fd);
    }
}

/*
 * See sandbox.h. spec is not modified (defaults are applied to a copy).
 */
int
faas_sandbox_create(const faas_sandbox_host_t *host,
                    const faas_sandbox_spec_t *spec_in, const char *id,
                    faas_error_t *err)
{
    faas_sandbox_spec_t spec = *spec_in;
    char                dir[PATH_MAX], bootstrap[PATH_MAX];
    faas_error_t        derr;
    int                 ret, zfd, zyg_failed = 0;
    char                zkey_buf[ZYG_KEY_MAX];
    const char         *zkey = NULL;

    if (!faas_sandbox_id_valid(id)) {
        return faas_error_set(err, EINVAL, "invalid sandbox id");
    }
    ret = check_spec(host, &spec, bootstrap, sizeof(bootstrap), err);
    if (ret < 0) {
        return faas_error_wrap(err, "create %s", id);
    }
    if (sbx_path(dir, sizeof(dir), host, id, SOCK_NAME) < 0 ||
        strlen(dir) >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
        return faas_error_set(err, ENAMETOOLONG, "socket path under %s",
                              host->run_dir);
    }
    if (host->zygote == FAAS_ZYGOTE_FUNCTION) {
        snprintf(zkey_buf, sizeof(zkey_buf), "%s@%u", spec.function,
                 spec.version);
        zkey = zkey_buf;
    }
    /* a stem cell is its own interpreter: never forked from a zygote */
    zfd = spec.stem ? -1 : zygote_socket(host, spec.runtime, zkey);
    sbx_path(dir, sizeof(dir), host, id, NULL);
    if (mkdir(dir, 0700) < 0) {
        if (zfd >= 0) {
            close(zfd);
        }
        return faas_error_set(err, errno, "create %s: mkdir %s", id, dir);
    }
    ret = launch(host, &spec, id, zfd, &zyg_failed, err);
    if (ret < 0 && zyg_failed) {
        /* the zygote made nothing: build this one the fresh way; a zygote
         * that did not answer in time is wedged: kill it, the next create
         * starts another */
        if (zyg_failed == EAGAIN || zyg_failed == ETIMEDOUT) {
            sbx_zygote_kill(host, spec.runtime, zkey);
        }
        faas_sandbox_destroy(host, id, &derr);
        if (mkdir(dir, 0700) < 0) {
            return faas_error_set(err, errno, "create %s: mkdir %s", id, dir);
        }
        ret = launch(host, &spec, id, -1, &zyg_failed, err);
    }
    if (ret < 0) {
        faas_sandbox_destroy(host, id, &derr);
        return faas_error_wrap(err, "create %s", id);
    }
    return 0;
}

/* --- destroy, exists, list ----------------------------------------------- */

static int
is_mountpoint(const char *dir)
{
    struct stat a, b;
    char        parent[PATH_MAX + 4];

    snprintf(parent, sizeof(parent), "%s/..", dir);
    if (stat(dir, &a) < 0 || stat(parent, &b) < 0) {
        return 0;
    }
    return a.st_dev != b.st_dev;
}

static int
remove_run_dir(const char *dir, faas_error_t *err)
{
    cleanup_closedir DIR *d = NULL;
    struct dirent        *e;
    char                  path[PATH_MAX + 260];

    while (is_mountpoint(dir)) {
        if (umount2(dir, MNT_DETACH) < 0) {
            if (errno == EINVAL || errno == ENOENT) {
                break; /* a concurrent destroy got there first */
            }
            return faas_error_set(err, errno, "umount %s", dir);
        }
    }
    d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? 0 : faas_error_set(err, errno, "open %s", dir);
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) < 0 && errno != ENOENT) {
            return faas_error_set(err, errno, "unlink %s", path);
        }
    }
    if (rmdir(dir) < 0 && errno != ENOENT) {
        return faas_error_set(err, errno, "rmdir %s", dir);
    }
    return 0;
}

int
faas_sandbox_destroy(const faas_sandbox_host_t *host, const char *id,
                     faas_error_t *err)
{
    char    dir[PATH_MAX];
    json_t *meta = NULL;
    long    uid = -1;
    int     ret;

    if (!faas_sandbox_id_valid(id)) {
        return faas_error_set(err, EINVAL, "destroy: invalid sandbox id");
    }
    if (faas_sandbox_meta(host, id, &meta, NULL) == 0) {
        json_t *u = json_object_get(meta, "uid");
        if (json_is_integer(u)) {
            uid = (long) json_integer_value(u);
        }
        json_decref(meta);
    }
    ret = sbx_cgroup_remove(host, id, err);
    if (ret < 0) {
        return faas_error_wrap(err, "destroy %s", id);
    }
    sbx_path(dir, sizeof(dir), host, id, NULL);
    ret = remove_run_dir(dir, err);
    if (ret < 0) {
        return faas_error_wrap(err, "destroy %s", id);
    }
    uid_release(host, id, uid);
    sbx_stem_dir_remove(host, id);
    return 0;
}

int
faas_sandbox_exists(const faas_sandbox_host_t *host, const char *id)
{
    char path[PATH_MAX];

    if (!faas_sandbox_id_valid(id)) {
        return 0;
    }
    sbx_path(path, sizeof(path), host, id, NULL);
    if (access(path, F_OK) < 0) {
        return 0;
    }
    sbx_cgroup_path(path, sizeof(path), "freezer", host, id);
    return access(path, F_OK) == 0;
}

typedef struct idset_s {
    char (*ids)[FAAS_SANDBOX_ID_LEN + 1];
    size_t n, cap;
} idset_t;

static int
idset_add(idset_t *s, const char *id)
{
    size_t i;
    void  *p;

    for (i = 0; i < s->n; i++) {
        if (strcmp(s->ids[i], id) == 0) {
            return 0;
        }
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        p = realloc(s->ids, s->cap * sizeof(*s->ids));
        if (p == NULL) {
            return -ENOMEM;
        }
        s->ids = p;
    }
    memcpy(s->ids[s->n++], id, FAAS_SANDBOX_ID_LEN + 1);
    return 0;
}

static int
scan_dir(idset_t *s, const char *dir)
{
    cleanup_closedir DIR *d = opendir(dir);
    struct dirent        *e;

    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (faas_sandbox_id_valid(e->d_name) && idset_add(s, e->d_name) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

int
faas_sandbox_list(const faas_sandbox_host_t *host,
                  int (*fn)(const char *id, void *data), void *data,
                  faas_error_t *err)
{
    idset_t s = {NULL, 0, 0};
    char    dir[PATH_MAX];
    size_t  i;
    int     ret = 0, k;

    sbx_path(dir, sizeof(dir), host, NULL, NULL);
    ret = scan_dir(&s, dir);
    for (k = 0; ret == 0 && k <= SBX_HIERS; k++) {
        sbx_cgroup_path(dir, sizeof(dir),
                        k < SBX_HIERS ? sbx_v1_hiers[k] : "unified", host,
                        NULL);
        ret = scan_dir(&s, dir);
    }
    if (ret < 0) {
        free(s.ids);
        return faas_error_set(err, -ret, "list sandboxes");
    }
    for (i = 0; i < s.n && ret >= 0; i++) {
        ret = fn(s.ids[i], data);
    }
    free(s.ids);
    return ret < 0 ? ret : 0;
}
