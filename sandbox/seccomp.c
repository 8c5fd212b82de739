/*
 * The sandbox's seccomp filter (libseccomp): an allowlist. Every syscall
 * not named below answers EPERM; syscall numbers above the highest one the
 * filter knows answer ENOSYS, so a syscall newer than this list (or than
 * libseccomp) is refused the way an old kernel refuses it, and libc falls
 * back. Syscalls of another ABI (x32, i386) kill the process. The list
 * starts from Docker's default profile without capabilities; where it
 * differs, and why, is in sandbox/README.md ("The seccomp allowlist").
 * Compiled once per process in the caller; the child only loads the BPF.
 */
#include "cleanup.h"
#include "sandbox_int.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Allowed with any arguments: Docker's default list minus what is refused
 * here on purpose (see the README). Names this architecture or libseccomp
 * does not know are skipped. */
/* clang-format off */
static const char *const allowed[] = {
    "accept", "accept4", "access", "alarm", "bind", "brk", "cachestat",
    "capget", "capset", "chdir", "chmod", "chown", "chown32",
    "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close",
    "close_range", "connect", "copy_file_range", "creat", "dup", "dup2",
    "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd",
    "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
    "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark",
    "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
    "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64",
    "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait",
    "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "getegid32", "geteuid",
    "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
    "getsockname", "getsockopt", "get_thread_area", "gettid",
    "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
    "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
    "io_submit", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr",
    "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
    "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create",
    "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
    "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync",
    "munlock", "munlockall", "munmap", "nanosleep", "newfstatat",
    "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64",
    "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom",
    "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
    "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
    "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
    "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
    "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
    "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketpair",
    "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
    "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
    "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice",
    "wait4", "waitid", "waitpid", "write", "writev", "arch_prctl",
    NULL,
};
/* clang-format on */

/* socket(): loopback networking, Unix sockets and netlink (getifaddrs);
 * AF_VSOCK, AF_ALG, AF_PACKET and every other family are refused. */
static const int socket_families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};

/* personality(): the values Docker allows (PER_LINUX, PER_LINUX32,
 * UNAME26, PER_LINUX32|UNAME26, and the 0xffffffff query). */
static const unsigned long personalities[] = {0x0, 0x8, 0x20000, 0x20008,
                                              0xffffffffUL};

/* clone() with any namespace flag is refused (CLONE_NEWTIME included). */
#define CLONE_NS_MASK                                                          \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |               \
     CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP | 0x00000080UL)

#define X32_SYSCALL_BIT 0x40000000U

static struct sock_fprog prog_cache;
static pthread_mutex_t   prog_lock = PTHREAD_MUTEX_INITIALIZER;

static int
allow_named(scmp_filter_ctx ctx, int *highest)
{
    int i, nr, ret;

    for (i = 0; allowed[i] != NULL; i++) {
        nr = seccomp_syscall_resolve_name(allowed[i]);
        if (nr < 0) {
            continue; /* not on this architecture, or unknown to libseccomp */
        }
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (ret < 0) {
            return ret;
        }
        if (nr > *highest) {
            *highest = nr;
        }
    }
    return 0;
}

static int
allow_with_args(scmp_filter_ctx ctx)
{
    size_t k;
    int    ret = 0;

    for (k = 0; ret == 0 && k < sizeof(socket_families) / sizeof(int); k++) {
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                               SCMP_A0(SCMP_CMP_EQ, socket_families[k]));
    }
    for (k = 0; ret == 0 && k < sizeof(personalities) / sizeof(long); k++) {
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                               SCMP_A0(SCMP_CMP_EQ, personalities[k]));
    }
    if (ret == 0) {
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_MASK, 0));
    }
    /* clone3's flags are out of reach (a pointer): ENOSYS makes libc fall
     * back to clone(), whose flags the rule above checks. */
    if (ret == 0) {
        ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3),
                               0);
    }
    return ret;
}

/*
 * libseccomp cannot compare the syscall number to a bound, so the program
 * starts with one: on the native architecture, a number above `highest`
 * (and below the x32 range, which libseccomp's own arch check kills)
 * answers ENOSYS; everything else goes on to libseccomp's program.
 */
static int
prepend_enosys(const struct sock_filter *body, size_t n, int highest)
{
    struct sock_filter head[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, seccomp_arch_native(), 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (unsigned) highest, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    };
    size_t              nh = sizeof(head) / sizeof(head[0]);
    struct sock_filter *all;

    if (n + nh > BPF_MAXINSNS) {
        return -E2BIG;
    }
    all = malloc((n + nh) * sizeof(*all));
    if (all == NULL) {
        return -ENOMEM;
    }
    memcpy(all, head, sizeof(head));
    memcpy(all + nh, body, n * sizeof(*all));
    prog_cache.len = (unsigned short) (n + nh);
    prog_cache.filter = all;
    return 0;
}

static int
export(scmp_filter_ctx ctx, int highest, faas_error_t *err)
{
    cleanup_close int fd = -1;
    struct stat       st;
    void             *buf;
    int               ret;

    fd = memfd_create("faas-seccomp", MFD_CLOEXEC);
    ret = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
    if (ret < 0) {
        return faas_error_set(err, -ret, "seccomp filter export");
    }
    if (fstat(fd, &st) < 0 || st.st_size == 0 ||
        st.st_size % sizeof(struct sock_filter) != 0) {
        return faas_error_set(err, EINVAL, "seccomp filter export");
    }
    buf = malloc(st.st_size);
    if (buf == NULL) {
        return faas_error_set(err, ENOMEM, "seccomp filter");
    }
    if (pread(fd, buf, st.st_size, 0) != st.st_size) {
        free(buf);
        return faas_error_set(err, EIO, "seccomp filter read");
    }
    ret = prepend_enosys(buf, st.st_size / sizeof(struct sock_filter),
                         highest);
    free(buf);
    if (ret < 0) {
        return faas_error_set(err, -ret, "seccomp filter");
    }
    return 0;
}

static int
build(faas_error_t *err)
{
    scmp_filter_ctx ctx;
    int             highest = 0, ret;

    ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (ctx == NULL) {
        return faas_error_set(err, ENOMEM, "seccomp_init");
    }
    ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (ret == 0) {
        ret = allow_named(ctx, &highest);
    }
    if (ret == 0) {
        ret = allow_with_args(ctx);
    }
    if (ret == 0) {
        ret = export(ctx, highest, err);
    } else {
        faas_error_set(err, -ret, "seccomp filter");
    }
    seccomp_release(ctx);
    return ret < 0 ? -1 : 0;
}

int
sbx_seccomp_prog(struct sock_fprog **prog, faas_error_t *err)
{
    int ret = 0;

    pthread_mutex_lock(&prog_lock);
    if (prog_cache.filter == NULL) {
        ret = build(err);
    }
    pthread_mutex_unlock(&prog_lock);
    if (ret == 0) {
        *prog = &prog_cache;
    }
    return ret;
}
