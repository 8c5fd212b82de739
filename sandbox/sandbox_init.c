/*
 * The child side of faas_sandbox_create. System calls only (no malloc, no
 * stdio): the caller may be multi-threaded.
 *
 *   caller --fork--> A: setsid, enter the cgroups, unshare the namespaces,
 *                       clone B, report B's host pid, wait for "go", exit.
 *   A --clone--> B (pid 1 of the new pid namespace): build and enter the
 *                       root, bring lo up, fds, rlimits, drop every
 *                       privilege, wait for "go", seccomp, exec the runtime.
 * A exits at once, so the sandbox is not a child of the caller.
 *
 * Zygote path (zygote.c): A asks the runtime's zygote for B instead of
 * cloning it; the zygote clones B the same way (sbx_clone_sandbox) and B
 * runs the same sbx_sandbox_enter(), then goes on in the already started
 * interpreter instead of exec'ing one.
 */
#include "sandbox_int.h"
#include "zygote_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define NS_FLAGS                                                               \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID)

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* struct clone_args of <linux/sched.h>, which clashes with <sched.h>. */
struct sbx_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack,
        stack_size, tls, set_tid, set_tid_size, cgroup;
};

void
sbx_report_failure(int err_fd, const char *step)
{
    sbx_setup_error_t e;
    size_t            n = strlen(step);

    memset(&e, 0, sizeof(e));
    e.errnum = errno;
    if (n >= sizeof(e.step)) {
        n = sizeof(e.step) - 1;
    }
    memcpy(e.step, step, n);
    if (err_fd >= 0 && write(err_fd, &e, sizeof(e)) < 0) {
        /* nothing more to do */
    }
    _exit(127);
}

static void fail(const sbx_launch_t *l, const char *step)
    __attribute__((noreturn));

static void
fail(const sbx_launch_t *l, const char *step)
{
    sbx_report_failure(l->err_fd, step);
}

static int
write_zero(const char *path)
{
    int fd, ret;

    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ret = write(fd, "0", 1) == 1 ? 0 : -1;
    close(fd);
    return ret;
}

static int
enter_v1_cgroups(const sbx_launch_t *l)
{
    int i;

    for (i = 0; i < SBX_HIERS; i++) {
        if (write_zero(l->cg_tasks[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Set in the first child when the sandbox process must enter v2 itself. */
static int v2_pending;

/* The sandbox's first process, born in the v2 cgroup and the namespaces. */
long
sbx_clone_sandbox(const sbx_launch_t *l, unsigned long long extra)
{
    struct sbx_clone_args args;
    long                  pid;

    memset(&args, 0, sizeof(args));
    args.flags = NS_FLAGS | CLONE_INTO_CGROUP | extra;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t) l->cg2_fd;
    pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL)) {
        return pid;
    }
    /* no clone3 or no CLONE_INTO_CGROUP: the child moves itself */
    v2_pending = 1;
    return syscall(SYS_clone, NS_FLAGS | extra | SIGCHLD, 0, 0, 0, 0);
}

static int
loopback_up(void)
{
    struct ifreq ifr;
    int          fd, ret;

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    ret = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (ret == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        ret = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return ret;
}

/* Moves fd to a number >= 16 so the dup2()s onto 0-4 cannot clobber it. */
static int
lift(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 16);
}

static int
setup_fds(sbx_launch_t *l)
{
    int nul, log, errfd, go;

    /* reopened through /run/faas so the sandbox sees no host path */
    log = open("/run/faas/runtime.log", O_WRONLY | O_APPEND | O_CLOEXEC);
    if (log >= 0) {
        log = lift(log);
    }
    errfd = lift(l->err_fd);
    go = lift(l->go_fd);
    if (log < 0 || errfd < 0 || go < 0) {
        return -1;
    }
    l->err_fd = errfd;
    nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 ||
        dup2(errfd, 3) < 0 || dup2(go, 4) < 0) {
        return -1;
    }
    l->err_fd = 3;
    l->go_fd = 4;
    if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(4, F_SETFD, FD_CLOEXEC) < 0) {
        return -1;
    }
    return (int) syscall(SYS_close_range, 5U, ~0U, 0U);
}

static int
drop_privileges(const sbx_launch_t *l)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct   data[2];
    int                             cap;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        return -1;
    }
    for (cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
            return -1;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
        errno != EINVAL) {
        return -1;
    }
    /* raw: glibc's set*id wrappers broadcast to threads it believes exist */
    if (syscall(SYS_setgroups, 0, NULL) < 0 ||
        syscall(SYS_setresgid, l->gid, l->gid, l->gid) < 0 ||
        syscall(SYS_setresuid, l->uid, l->uid, l->uid) < 0) {
        return -1;
    }
    memset(data, 0, sizeof(data));
    return (int) syscall(SYS_capset, &hdr, data);
}

static int
set_rlimits(const sbx_launch_t *l)
{
    struct rlimit nofile = {1024, 1024};
    struct rlimit fsize = {l->fsize, l->fsize};
    struct rlimit core = {0, 0};

    if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 ||
        setrlimit(RLIMIT_FSIZE, &fsize) < 0 ||
        setrlimit(RLIMIT_CORE, &core) < 0) {
        return -1;
    }
    return 0;
}

static int
detach_old_root(long pid)
{
    char path[64];
    int  fd, ret;

    strcpy(path, "/proc/");
    {
        char num[24];
        int  n = 0;
        long v = pid;
        do {
            num[n++] = (char) ('0' + v % 10);
            v /= 10;
        } while (v > 0);
        while (n > 0) {
            size_t len = strlen(path);
            path[len] = num[--n];
            path[len + 1] = '\0';
        }
    }
    strcat(path, "/ns/mnt");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ret = setns(fd, CLONE_NEWNS);
    close(fd);
    if (ret < 0) {
        return -1;
    }
    return umount2(SBX_OLD_ROOT, MNT_DETACH);
}

void
sbx_sandbox_enter(sbx_launch_t *l, int (*pre_drop)(sbx_launch_t *l))
{
    const char *what = NULL;
    char        c;

    close(l->info_fd);
    /* B joins the v1 cgroups itself (born in the v2 one): the first child
     * must stay out of the freezer, or a freeze could catch it before it
     * exits. Then they become the cgroup namespace's root. */
    if (enter_v1_cgroups(l) < 0 ||
        (v2_pending && write_zero(l->cg2_procs) < 0)) {
        fail(l, "enter the cgroups");
    }
    if (unshare(CLONE_NEWCGROUP) < 0) {
        fail(l, "unshare the cgroup namespace");
    }
    close(l->piv_rd);
    if (sbx_rootfs_setup(l, &what) < 0) {
        fail(l, what);
    }
    if (write(l->piv_wr, "p", 1) != 1) {
        fail(l, "signal the pivot");
    }
    close(l->piv_wr);
    if (sethostname("faas", 4) < 0) {
        fail(l, "sethostname");
    }
    if (loopback_up() < 0) {
        fail(l, "bring lo up");
    }
    if (setup_fds(l) < 0) {
        fail(l, "set up fds");
    }
    if (set_rlimits(l) < 0) {
        fail(l, "setrlimit");
    }
    if (pre_drop != NULL && pre_drop(l) < 0) {
        fail(l, "prepare the zygote's process");
    }
    if (drop_privileges(l) < 0) {
        fail(l, "drop privileges");
    }
    /* The caller writes meta.json, then lets us run. */
    if (read(l->go_fd, &c, 1) != 1) {
        errno = ECANCELED;
        fail(l, "wait for the caller");
    }
    close(l->go_fd);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, l->seccomp, 0, 0) < 0) {
        fail(l, "load the seccomp filter");
    }
}

static void sandbox_main(sbx_launch_t *l) __attribute__((noreturn));

static void
sandbox_main(sbx_launch_t *l)
{
    sbx_sandbox_enter(l, NULL);
    execve(l->argv[0], l->argv, l->envp);
    fail(l, "exec the runtime");
}

/* A, zygote path: one request; the zygote clones B and answers its pid. */
static long
zygote_spawn(sbx_launch_t *l)
{
    union {
        char           buf[CMSG_SPACE(sizeof(int) * ZYG_NFDS)];
        struct cmsghdr align;
    } u;
    int fds[ZYG_NFDS] = {l->blob_fd, l->err_fd, l->go_fd, l->piv_wr, l->cg2_fd};
    static zyg_req_t req; /* static: 4 KiB off a child's small stack */
    zyg_ans_t        ans;
    struct iovec     iov = {&req, sizeof(req)};
    struct msghdr    msg;
    struct cmsghdr  *cm;
    size_t           got = 0, i;
    ssize_t          n;

    memset(&req, 0, sizeof(req));
    req.magic = ZYG_MAGIC;
    req.op = ZYG_OP_SPAWN;
    for (i = 0; i + 1 < sizeof(req.runtimes_dir) && l->runtimes_dir[i]; i++) {
        req.runtimes_dir[i] = l->runtimes_dir[i];
    }
    for (i = 0; i + 1 < sizeof(req.key) && l->zygote_key[i]; i++) {
        req.key[i] = l->zygote_key[i];
    }
    memset(&msg, 0, sizeof(msg));
    memset(&u, 0, sizeof(u));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    if (sendmsg(l->zygote_fd, &msg, MSG_NOSIGNAL) != (ssize_t) sizeof(req)) {
        fail(l, "zygote: send the request");
    }
    while (got < sizeof(ans)) {
        n = read(l->zygote_fd, (char *) &ans + got, sizeof(ans) - got);
        if (n <= 0) {
            if (n == 0) {
                errno = ECONNRESET;
            }
            fail(l, "zygote: no answer");
        }
        got += (size_t) n;
    }
    if (ans.pid <= 0) {
        ans.msg[sizeof(ans.msg) - 1] = '\0';
        errno = ans.errnum > 0 ? ans.errnum : EPROTO;
        {
            char   step[124] = "zygote: ";
            size_t k = strlen(step);
            for (i = 0; k + 1 < sizeof(step) && ans.msg[i]; i++) {
                step[k++] = ans.msg[i];
            }
            step[k] = '\0';
            fail(l, step);
        }
    }
    close(l->zygote_fd);
    close(l->blob_fd);
    return (long) ans.pid;
}

/* Closes every fd above 2 but the launch's own: the caller's sockets and
 * files must not live on in the children. */
static int
close_others(const sbx_launch_t *l)
{
    int keep[] = {l->log_fd, l->info_fd, l->go_fd,     l->err_fd, l->piv_rd,
                  l->piv_wr, l->cg2_fd,  l->zygote_fd, l->blob_fd};
    int n = (int) (sizeof(keep) / sizeof(keep[0])), i, j, t;
    unsigned from = 3;

    for (i = 1; i < n; i++) { /* insertion sort, no libc */
        for (j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    }
    for (i = 0; i < n; i++) {
        if (keep[i] < (int) from) {
            continue;
        }
        if ((unsigned) keep[i] > from &&
            syscall(SYS_close_range, from, (unsigned) keep[i] - 1, 0U) < 0) {
            return -1;
        }
        from = (unsigned) keep[i] + 1;
    }
    return (int) syscall(SYS_close_range, from, ~0U, 0U);
}

void
sbx_reset_signals(void)
{
    struct sigaction sa;
    sigset_t         none;
    int              sig;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (sig = 1; sig < _NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &sa, NULL); /* EINVAL for libc-reserved ones */
        }
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void
sbx_child_main(sbx_launch_t *l)
{
    long pid;
    char c;
    int  i;

    for (i = 0; i < 3; i++) {
        close(l->parent_fds[i]);
    }
    /* The caller blocked every signal around fork(): reset the handlers it
     * may have (they would run the daemon's code here), then unblock. */
    sbx_reset_signals();
    if (close_others(l) < 0) {
        fail(l, "close the caller's fds");
    }
    if (setsid() < 0) {
        fail(l, "setsid");
    }
    if (l->zygote_fd >= 0) {
        pid = zygote_spawn(l);
    } else {
        /* Raw clone: no atfork handlers in a child of a threaded daemon */
        pid = sbx_clone_sandbox(l, 0);
        if (pid < 0) {
            fail(l, "clone the sandbox with its namespaces");
        }
        if (pid == 0) {
            sandbox_main(l);
        }
    }
    close(l->piv_wr);
    if (write(l->info_fd, &pid, sizeof(pid)) != sizeof(pid)) {
        _exit(1);
    }
    /* B pivoted: detach the old root from inside its mount namespace */
    if (read(l->piv_rd, &c, 1) == 1 && detach_old_root(pid) < 0) {
        int e = errno;
        kill((pid_t) pid, SIGKILL);
        errno = e;
        fail(l, "detach the old root");
    }
    /* Holding B's pid until the caller has its pidfd: no pid reuse race. */
    if (read(l->go_fd, &c, 1) < 0) {
        _exit(1);
    }
    _exit(0);
}
