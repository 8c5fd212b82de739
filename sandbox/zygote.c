/*
 * The library side of the runtime zygotes (docs/DESIGN.md section 6,
 * "Zygotes": one per function revision by default). Python only: Node.js
 * cannot fork once started (libuv threads, V8 platform threads), so nodejs stays on the
 * fresh path.
 *
 * A zygote is `/usr/bin/python3 -I -S <runtimes_dir>/python/zygote.py`
 * that has started the interpreter, loaded the _faas_zygote extension
 * (zygote_ext.c) and imported the runtime's modules, then waits on
 * <run_dir>/sbx/.zygote/python.sock. It holds an exclusive flock on
 * python.lock (with its pid in it) for its whole life: whoever gets that
 * lock knows no zygote runs. Zygotes are started on demand by
 * faas_sandbox_create (in the background, while that create takes the fresh
 * path) or in the foreground by `faas-sandbox zygote run`.
 */
#include "cleanup.h"
#include "clock.h"
#include "sandbox_int.h"
#include "zygote_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ZDIR ".zygote"
/* empty strings after the zygote's environment: room in its environ area
 * for a sandbox's own (see zygote_ext.c, fix_proc_self) */
#define ZYG_ENV_PAD 32768
#define ZYG_IO_TIMEOUT_S 5

typedef struct zpaths_s {
    char key[ZYG_KEY_MAX]; /* "" for the shared zygote */
    char dir[PATH_MAX];
    char sock[PATH_MAX];
    char lock[PATH_MAX];
    char log[PATH_MAX];
    char script[PATH_MAX];
    char ext[PATH_MAX];
} zpaths_t;

/* The file name of a zygote: "python" (shared) or "fn-<hash of key>". */
static void
zname(const char *key, char *buf, size_t len)
{
    uint64_t    h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
    const char *c;

    if (key == NULL || key[0] == '\0') {
        snprintf(buf, len, "python");
        return;
    }
    for (c = key; *c; c++) {
        h = (h ^ (unsigned char) *c) * 0x100000001b3ULL;
    }
    snprintf(buf, len, "fn-%016llx", (unsigned long long) h);
}

static int
zpaths(const faas_sandbox_host_t *host, const char *runtime, const char *key,
       zpaths_t *p, faas_error_t *err)
{
    char   exe[PATH_MAX], *slash, name[32];
    size_t n;

    if (runtime == NULL || strcmp(runtime, "python3") != 0) {
        return faas_error_set(err, ENOTSUP,
                              "no zygote for runtime %s (python3 only)",
                              runtime ? runtime : "(none)");
    }
    if (key != NULL && strlen(key) >= sizeof(p->key)) {
        return faas_error_set(err, ENAMETOOLONG, "zygote key");
    }
    snprintf(p->key, sizeof(p->key), "%s", key != NULL ? key : "");
    zname(key, name, sizeof(name));
    if (snprintf(p->dir, sizeof(p->dir), "%s/sbx/" ZDIR, host->run_dir) >=
            (int) sizeof(p->dir) ||
        snprintf(p->sock, sizeof(p->sock), "%s/%s.sock", p->dir, name) >=
            (int) sizeof(((struct sockaddr_un *) 0)->sun_path)) {
        return faas_error_set(err, ENAMETOOLONG, "zygote socket path");
    }
    snprintf(p->lock, sizeof(p->lock), "%.4000s/%s.lock", p->dir, name);
    snprintf(p->log, sizeof(p->log), "%.4000s/%s.log", p->dir, name);
    snprintf(p->script, sizeof(p->script), "%.4000s/python/zygote.py",
             host->runtimes_dir);
    if (host->zygote_lib != NULL) {
        snprintf(p->ext, sizeof(p->ext), "%s", host->zygote_lib);
    } else {
        n = (size_t) readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n == (size_t) -1) {
            return faas_error_set(err, errno, "readlink /proc/self/exe");
        }
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        snprintf(p->ext, sizeof(p->ext), "%.4000s/_faas_zygote.so", exe);
    }
    return 0;
}

static int
zconnect(const zpaths_t *p, faas_error_t *err)
{
    struct sockaddr_un sa;
    struct timeval     tv = {ZYG_IO_TIMEOUT_S, 0};
    cleanup_close int  fd = -1;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, p->sock,
           strnlen(p->sock, sizeof(sa.sun_path) - 1)); /* length checked */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return faas_error_set(err, errno, "socket");
    }
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
        return faas_error_set(err, errno, "zygote: connect %s", p->sock);
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return steal_fd(&fd);
}

int
sbx_zygote_connect(const faas_sandbox_host_t *host, const char *runtime,
                   const char *key, faas_error_t *err)
{
    zpaths_t p;
    int      ret;

    if ((ret = zpaths(host, runtime, key, &p, err)) < 0) {
        return ret;
    }
    return zconnect(&p, err);
}

int
faas_sandbox_zygote_ping(const faas_sandbox_host_t *host, const char *runtime,
                         pid_t *pid, faas_error_t *err)
{
    static zyg_req_t  req;
    zyg_ans_t         ans;
    cleanup_close int fd = -1;
    size_t            got = 0;
    ssize_t           n;

    fd = sbx_zygote_connect(host, runtime, NULL, err);
    if (fd < 0) {
        return fd;
    }
    memset(&req, 0, sizeof(req));
    req.magic = ZYG_MAGIC;
    req.op = ZYG_OP_PING;
    snprintf(req.runtimes_dir, sizeof(req.runtimes_dir), "%s",
             host->runtimes_dir);
    if (send(fd, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t) sizeof(req)) {
        return faas_error_set(err, errno, "zygote: send");
    }
    while (got < sizeof(ans)) {
        n = read(fd, (char *) &ans + got, sizeof(ans) - got);
        if (n <= 0) {
            return faas_error_set(err, n == 0 ? ECONNRESET : errno,
                                  "zygote: no answer");
        }
        got += (size_t) n;
    }
    if (ans.pid <= 0) {
        ans.msg[sizeof(ans.msg) - 1] = '\0';
        return faas_error_set(err, ans.errnum > 0 ? ans.errnum : EPROTO,
                              "zygote: %s", ans.msg);
    }
    if (pid != NULL) {
        *pid = (pid_t) ans.pid;
    }
    return 0;
}

static void
xwrite(int fd, const void *buf, size_t len, int *ok)
{
    const char *p = buf;
    ssize_t     n;

    while (*ok && len > 0) {
        n = write(fd, p, len);
        if (n <= 0) {
            *ok = 0;
            return;
        }
        p += n;
        len -= (size_t) n;
    }
}

int
sbx_zygote_blob(const sbx_launch_t *l, faas_error_t *err)
{
    cleanup_close int fd = -1;
    zyg_blob_t        h;
    sbx_launch_t      copy;
    int               i, ok = 1;

    memset(&h, 0, sizeof(h));
    h.magic = ZYG_MAGIC;
    h.launch_size = sizeof(sbx_launch_t);
    for (i = 0; l->argv[i] != NULL; i++) {
        h.nargv++;
        h.str_len += (uint32_t) strlen(l->argv[i]) + 1;
    }
    for (i = 0; l->envp[i] != NULL; i++) {
        h.nenv++;
        h.str_len += (uint32_t) strlen(l->envp[i]) + 1;
    }
    h.bpf_len = (uint32_t) (l->seccomp->len * sizeof(struct sock_filter));
    copy = *l;
    memset(copy.argv, 0, sizeof(copy.argv));
    memset(copy.envp, 0, sizeof(copy.envp));
    copy.seccomp = NULL;
    fd = memfd_create("faas-launch", MFD_CLOEXEC);
    if (fd < 0) {
        return faas_error_set(err, errno, "memfd_create");
    }
    xwrite(fd, &h, sizeof(h), &ok);
    xwrite(fd, &copy, sizeof(copy), &ok);
    for (i = 0; l->argv[i] != NULL; i++) {
        xwrite(fd, l->argv[i], strlen(l->argv[i]) + 1, &ok);
    }
    for (i = 0; l->envp[i] != NULL; i++) {
        xwrite(fd, l->envp[i], strlen(l->envp[i]) + 1, &ok);
    }
    xwrite(fd, l->seccomp->filter, h.bpf_len, &ok);
    if (!ok) {
        return faas_error_set(err, errno ? errno : EIO, "write the launch");
    }
    return steal_fd(&fd);
}

/* In the (grand)child: stdio, fds, exec the zygote. Never returns. */
static void
exec_zygote(const faas_sandbox_host_t *host, const zpaths_t *p, int lock_fd,
            int to_log)
{
    char         fdnum[16];
    char         idle[16];
    char        *argv[] = {(char *) host->python,
                           "-I",
                           "-S",
                           (char *) p->script,
                           (char *) p->sock,
                           (char *) host->runtimes_dir,
                           (char *) p->ext,
                           fdnum,
                           p->key[0] ? (char *) p->key : "-",
                           idle,
                           NULL};
    static char *envp[ZYG_ENV_PAD + 4];
    int          fd, i;

    envp[0] = "PATH=/usr/bin:/bin";
    envp[1] = "HOME=/tmp";
    envp[2] = "LANG=C.UTF-8";
    for (i = 3; i < ZYG_ENV_PAD + 3; i++) {
        envp[i] = "";
    }
    envp[i] = NULL;
    sbx_reset_signals();
    if (to_log) {
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 0);
        }
        fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
    }
    /* the lock fd is the only one kept open across exec */
    fd = fcntl(lock_fd, F_DUPFD, 3);
    if (fd < 0) {
        _exit(127);
    }
    syscall(SYS_close_range, 3U, (unsigned) fd - 1, 0U);
    syscall(SYS_close_range, (unsigned) fd + 1, ~0U, 0U);
    snprintf(fdnum, sizeof(fdnum), "%d", fd);
    /* the shared zygote stays; a function's goes when no longer used */
    snprintf(idle, sizeof(idle), "%u", p->key[0] ? host->zygote_idle_s : 0);
    if (chdir("/") < 0) {
        _exit(127);
    }
    execve(host->python, argv, envp);
    dprintf(2, "faas zygote: exec %s: %s\n", host->python, strerror(errno));
    _exit(127);
}

static int
zygote_start(const faas_sandbox_host_t *host, const char *runtime,
             const char *key, int foreground, faas_error_t *err)
{
    zpaths_t          p;
    cleanup_close int lock_fd = -1;
    sigset_t          all, old_mask;
    pid_t             pid;
    int               ret, status, saved;

    if ((ret = zpaths(host, runtime, key, &p, err)) < 0) {
        return ret;
    }
    if (access(p.script, R_OK) < 0) {
        return faas_error_set(err, errno, "zygote script %s", p.script);
    }
    if (access(p.ext, R_OK) < 0) {
        return faas_error_set(err, errno, "zygote extension %s", p.ext);
    }
    if (mkdir(p.dir, 0700) < 0 && errno != EEXIST) {
        return faas_error_set(err, errno, "mkdir %s", p.dir);
    }
    lock_fd = open(p.lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) {
        return faas_error_set(err, errno, "open %s", p.lock);
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            return faas_error_set(err, EEXIST, "a zygote already runs");
        }
        return faas_error_set(err, errno, "flock %s", p.lock);
    }
    if (ftruncate(lock_fd, 0) < 0) {
        return faas_error_set(err, errno, "truncate %s", p.lock);
    }
    if (foreground) {
        exec_zygote(host, &p, lock_fd, 0);
    }
    /* no handler of a (threaded) caller may run in the child */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_mask);
    pid = fork();
    saved = errno;
    if (pid != 0) {
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    }
    if (pid < 0) {
        return faas_error_set(err, saved, "fork");
    }
    if (pid == 0) {
        /* not a child of the caller, not in its session */
        if (setsid() < 0) {
            _exit(127);
        }
        pid = fork();
        if (pid != 0) {
            _exit(pid < 0 ? 127 : 0);
        }
        exec_zygote(host, &p, lock_fd, 1);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    /* closing our copy keeps the lock: the zygote holds the same file */
    return 0;
}

int
faas_sandbox_zygote_start(const faas_sandbox_host_t *host, const char *runtime,
                          int foreground, faas_error_t *err)
{
    return zygote_start(host, runtime, NULL, foreground, err);
}

int
sbx_zygote_start(const faas_sandbox_host_t *host, const char *runtime,
                 const char *key, faas_error_t *err)
{
    return zygote_start(host, runtime, key, 0, err);
}

static int
lock_free(int fd)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
        return 1;
    }
    return 0;
}

/* The pid in the lock file, or 0. */
static long
lock_pid(int fd)
{
    char    buf[32];
    ssize_t n;

    n = pread(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return strtol(buf, NULL, 10);
}

void
sbx_zygote_kill(const faas_sandbox_host_t *host, const char *runtime,
                const char *key)
{
    zpaths_t          p;
    cleanup_close int fd = -1;
    long              pid;

    if (zpaths(host, runtime, key, &p, NULL) < 0) {
        return;
    }
    fd = open(p.lock, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || lock_free(fd)) {
        return;
    }
    pid = lock_pid(fd);
    if (pid > 1) {
        kill((pid_t) pid, SIGKILL);
    }
}

/* Stops the zygote of p (SIGTERM, then SIGKILL): 1 if one ran, 0 if not. */
static int
stop_paths(const zpaths_t *p, faas_error_t *err)
{
    cleanup_close int fd = -1;
    long long         deadline;
    long              pid = 0;
    int               sig = SIGTERM, ran = 0;

    fd = open(p->lock, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0
                               : faas_error_set(err, errno, "open %s", p->lock);
    }
    deadline = (long long) faas_mono_ms() + 10000;
    while (!lock_free(fd)) {
        ran = 1;
        if (pid <= 0) {
            pid = lock_pid(fd); /* the zygote writes it once started */
        }
        if (pid > 1) {
            kill((pid_t) pid, sig);
        }
        if ((long long) faas_mono_ms() > deadline - 5000) {
            sig = SIGKILL;
        }
        if ((long long) faas_mono_ms() > deadline) {
            return faas_error_set(err, ETIMEDOUT, "zygote %ld does not exit",
                                  pid);
        }
        {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
    }
    unlink(p->sock);
    unlink(p->lock);
    unlink(p->log);
    rmdir(p->dir); /* fails while other zygotes' files are there */
    return ran;
}

int
faas_sandbox_zygote_stop(const faas_sandbox_host_t *host, const char *runtime,
                         faas_error_t *err)
{
    zpaths_t p;
    int      ret;

    if ((ret = zpaths(host, runtime, NULL, &p, err)) < 0) {
        return ret;
    }
    ret = stop_paths(&p, err);
    return ret < 0 ? ret : 0;
}

int
faas_sandbox_zygote_stop_all(const faas_sandbox_host_t *host,
                             faas_error_t *err)
{
    cleanup_closedir DIR *d = NULL;
    struct dirent        *e;
    zpaths_t              p;
    size_t                n;
    int                   ret, count = 0;

    if (zpaths(host, "python3", NULL, &p, err) < 0) {
        return -1;
    }
    d = opendir(p.dir);
    if (d == NULL) {
        return errno == ENOENT ? 0 : faas_error_set(err, errno, "%s", p.dir);
    }
    while ((e = readdir(d)) != NULL) {
        n = strlen(e->d_name);
        if (n < 6 || n > 40 || strcmp(e->d_name + n - 5, ".lock") != 0) {
            continue;
        }
        snprintf(p.lock, sizeof(p.lock), "%.4000s/%s", p.dir, e->d_name);
        snprintf(p.sock, sizeof(p.sock), "%.*s.sock",
                 (int) (strlen(p.lock) - 5), p.lock);
        snprintf(p.log, sizeof(p.log), "%.*s.log", (int) (strlen(p.lock) - 5),
                 p.lock);
        ret = stop_paths(&p, err);
        if (ret < 0) {
            return -1;
        }
        count += ret;
    }
    rmdir(p.dir);
    return count;
}
