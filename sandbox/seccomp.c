/*
 * The sandbox's seccomp filter (libseccomp): allow by default, refuse with
 * EPERM what could reach outside the sandbox (mounts, namespaces, tracing,
 * kernel keys and modules, clocks, bpf...). Syscalls of another ABI (x32,
 * i386) kill the process. Compiled once per process in the caller; the
 * child only loads the BPF program.
 */
#include "cleanup.h"
#include "sandbox_int.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* clang-format off */
static const char *const refused[] = {
    "mount", "umount", "umount2", "pivot_root", "chroot", "ptrace",
    "process_vm_readv", "process_vm_writev", "bpf", "keyctl", "add_key",
    "request_key", "unshare", "setns", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "create_module",
    "reboot", "swapon", "swapoff", "perf_event_open", "userfaultfd",
    "open_by_handle_at", "name_to_handle_at", "acct", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "stime", "quotactl",
    "quotactl_fd", "lookup_dcookie", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr", "iopl", "ioperm",
    "syslog", "vhangup", "nfsservctl", "uselib", "sysfs", "_sysctl",
    "get_kernel_syms", "query_module", "kcmp",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "pidfd_getfd", "fanotify_init", "sethostname", "setdomainname",
    NULL,
};
/* clang-format on */

/* clang-format off */
static const unsigned long ns_flags[] = {
    CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
    CLONE_NEWNET, CLONE_NEWCGROUP, 0x00000080 /* CLONE_NEWTIME */,
};
/* clang-format on */

static struct sock_fprog prog_cache;
static pthread_mutex_t   prog_lock = PTHREAD_MUTEX_INITIALIZER;

static int
build(faas_error_t *err)
{
    scmp_filter_ctx   ctx;
    cleanup_close int fd = -1;
    struct stat       st;
    void             *buf;
    int               i, nr, ret;
    size_t            k;

    ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL) {
        return faas_error_set(err, ENOMEM, "seccomp_init");
    }
    ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (i = 0; ret == 0 && refused[i] != NULL; i++) {
        nr = seccomp_syscall_resolve_name(refused[i]);
        if (nr == __NR_SCMP_ERROR) {
            continue; /* unknown on this architecture */
        }
        ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    /* clone() with any namespace flag; clone3's flags are out of reach
     * (a pointer), so it answers ENOSYS and libc falls back to clone(). */
    for (k = 0; ret == 0 && k < sizeof(ns_flags) / sizeof(ns_flags[0]); k++) {
        ret = seccomp_rule_add(
            ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
            SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[k], ns_flags[k]));
    }
    if (ret == 0) {
        nr = seccomp_syscall_resolve_name("clone3");
        if (nr != __NR_SCMP_ERROR) {
            ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
        }
    }
    if (ret == 0) {
        fd = memfd_create("faas-seccomp", MFD_CLOEXEC);
        ret = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
    }
    seccomp_release(ctx);
    if (ret < 0) {
        return faas_error_set(err, -ret, "seccomp filter");
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
    prog_cache.len = (unsigned short) (st.st_size / sizeof(struct sock_filter));
    prog_cache.filter = buf;
    return 0;
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
