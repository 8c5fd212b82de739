/*
 * The sandbox's root file system, built in its own mount namespace by the
 * sandbox's first process (system calls only: it runs after fork()).
 *
 *   /                tmpfs, read-only once built
 *   /usr /bin ...    read-only binds of the host's (symlinks on merged-/usr)
 *   /etc             a few files: passwd, group, hosts, nsswitch.conf,
 *                    hostname; ld.so.cache, ssl, alternatives bound read-only
 *   /var/task        code_dir, read-only
 *   /opt/faas/runtimes  runtimes_dir, read-only
 *   /tmp, /dev/shm   size-limited tmpfs
 *   /run/faas        the sandbox run dir: the only host-writable bind
 *   /proc            fresh, with sensitive entries masked or read-only
 *   /dev             null zero full random urandom tty (host nodes), fd links
 */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RO_FLAGS (MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)

#define TRY(expr, step)                                                        \
    do {                                                                       \
        if ((expr) < 0) {                                                      \
            *what = (step);                                                    \
            return -1;                                                         \
        }                                                                      \
    } while (0)

/* clang-format off */
static const char *const host_dirs[] = {
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", NULL,
};
/* clang-format on */

/* clang-format off */
static const char *const dev_nodes[] = {
    "null", "zero", "full", "random", "urandom", "tty", NULL,
};
/* clang-format on */

/* Docker's masked and read-only /proc paths, and more: what tells about
 * the host's kernel, keys, devices and other tenants' activity. */
/* clang-format off */
static const char *const proc_masked_files[] = {
    "kcore", "sysrq-trigger", "keys", "key-users", "timer_list",
    "sched_debug", "latency_stats", "timer_stats", "kallsyms", "kpagecount",
    "kpageflags", "kpagecgroup", "config.gz", "interrupts", "kmsg",
    "pagetypeinfo", NULL,
};
/* clang-format on */

static const char *const proc_masked_dirs[] = {"scsi", "acpi", "driver",
                                               "asound", NULL};

static const char *const proc_ro[] = {"sys", "irq", "bus", "fs", NULL};

static int
bind_ro(const char *src, const char *dst, unsigned long extra)
{
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0) {
        return -1;
    }
    return mount(NULL, dst, NULL, RO_FLAGS | extra, NULL);
}

static int
put_file(const char *path, const char *content)
{
    int    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(content);
    int    ret = 0;

    if (fd < 0) {
        return -1;
    }
    if (write(fd, content, len) != (ssize_t) len) {
        ret = -1;
    }
    close(fd);
    return ret;
}

/* An empty file to bind a host file onto. */
static int
touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        return -1;
    }
    close(fd);
    return 0;
}

/* Copies host entry /<name> as a symlink if it is one, else binds it. */
static int
mirror(const char *host, const char *name, int is_file)
{
    struct stat st;
    char        target[PATH_MAX];
    ssize_t     n;

    if (lstat(host, &st) < 0) {
        return 0; /* absent on this host */
    }
    if (S_ISLNK(st.st_mode)) {
        n = readlink(host, target, sizeof(target) - 1);
        if (n < 0) {
            return -1;
        }
        target[n] = '\0';
        return symlink(target, name);
    }
    if (is_file || !S_ISDIR(st.st_mode)) {
        if (touch(name) < 0) {
            return -1;
        }
    } else if (mkdir(name, 0755) < 0) {
        return -1;
    }
    return bind_ro(host, name, 0);
}

static int
setup_proc(const char **what)
{
    char        path[64];
    struct stat st;
    int         i;

    TRY(mkdir("proc", 0555), "mkdir /proc");
    TRY(mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "hidepid=0"),
        "mount /proc");
    for (i = 0; proc_masked_files[i] != NULL; i++) {
        strcpy(path, "proc/");
        strcat(path, proc_masked_files[i]);
        if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
            TRY(mount("/dev/null", path, NULL, MS_BIND, NULL),
                "mask /proc file");
        }
    }
    for (i = 0; proc_masked_dirs[i] != NULL; i++) {
        strcpy(path, "proc/");
        strcat(path, proc_masked_dirs[i]);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            TRY(mount("tmpfs", path, "tmpfs",
                      MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=4k,mode=555"),
                "mask /proc dir");
        }
    }
    for (i = 0; proc_ro[i] != NULL; i++) {
        strcpy(path, "proc/");
        strcat(path, proc_ro[i]);
        if (stat(path, &st) == 0) {
            TRY(bind_ro(path, path, MS_NOEXEC), "read-only /proc entry");
        }
    }
    return 0;
}

static int
setup_dev(const sbx_launch_t *l, const char **what)
{
    char path[64], host[64];
    int  i;

    TRY(mkdir("dev", 0755), "mkdir /dev");
    TRY(mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
              "size=64k,mode=755"),
        "mount /dev");
    for (i = 0; dev_nodes[i] != NULL; i++) {
        strcpy(path, "dev/");
        strcat(path, dev_nodes[i]);
        strcpy(host, "/dev/");
        strcat(host, dev_nodes[i]);
        if (access(host, F_OK) < 0) {
            continue;
        }
        TRY(touch(path), "create /dev node");
        /* not read-only: writing /dev/null must work */
        TRY(mount(host, path, NULL, MS_BIND, NULL), "bind /dev node");
    }
    TRY(mkdir("dev/shm", 01777), "mkdir /dev/shm");
    TRY(mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              l->tmp_opts),
        "mount /dev/shm");
    TRY(mkdir("dev/pts", 0755), "mkdir /dev/pts");
    TRY(symlink("/proc/self/fd", "dev/fd"), "symlink /dev/fd");
    TRY(symlink("/proc/self/fd/0", "dev/stdin"), "symlink /dev/stdin");
    TRY(symlink("/proc/self/fd/1", "dev/stdout"), "symlink /dev/stdout");
    TRY(symlink("/proc/self/fd/2", "dev/stderr"), "symlink /dev/stderr");
    TRY(mount(NULL, "dev", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
              "size=64k,mode=755"),
        "remount /dev read-only");
    return 0;
}

int
sbx_rootfs_setup(const sbx_launch_t *l, const char **what)
{
    char path[32];
    int  i;

    TRY(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
    TRY(mount("tmpfs", l->root_mnt, "tmpfs", MS_NOSUID | MS_NODEV,
              "size=1m,mode=755"),
        "mount the root tmpfs");
    TRY(chdir(l->root_mnt), "chdir to the new root");

    for (i = 0; host_dirs[i] != NULL; i++) {
        strcpy(path, "/");
        strcat(path, host_dirs[i]);
        TRY(mirror(path, host_dirs[i], 0), "bind a host system dir");
    }

    TRY(mkdir("etc", 0755), "mkdir /etc");
    TRY(put_file("etc/passwd", l->passwd), "write /etc/passwd");
    TRY(put_file("etc/group", l->group), "write /etc/group");
    TRY(put_file("etc/hosts", "127.0.0.1\tlocalhost faas\n::1\tlocalhost\n"),
        "write /etc/hosts");
    TRY(put_file("etc/hostname", "faas\n"), "write /etc/hostname");
    TRY(put_file("etc/nsswitch.conf",
                 "passwd: files\ngroup: files\nshadow: files\n"
                 "hosts: files dns\nnetworks: files\nprotocols: files\n"
                 "services: files\n"),
        "write /etc/nsswitch.conf");
    TRY(mirror("/etc/ld.so.cache", "etc/ld.so.cache", 1), "bind ld.so.cache");
    TRY(mirror("/etc/localtime", "etc/localtime", 1), "bind /etc/localtime");
    TRY(mirror("/etc/ssl", "etc/ssl", 0), "bind /etc/ssl");
    TRY(mirror("/etc/ca-certificates", "etc/ca-certificates", 0),
        "bind /etc/ca-certificates");
    TRY(mirror("/etc/alternatives", "etc/alternatives", 0),
        "bind /etc/alternatives");

    TRY(mkdir("var", 0755), "mkdir /var");
    TRY(mkdir("var/task", 0755), "mkdir /var/task");
    TRY(bind_ro(l->code_dir, "var/task", 0), "bind the code dir");
    TRY(mkdir("opt", 0755), "mkdir /opt");
    TRY(mkdir("opt/faas", 0755), "mkdir /opt/faas");
    TRY(mkdir("opt/faas/runtimes", 0755), "mkdir /opt/faas/runtimes");
    TRY(bind_ro(l->runtimes_dir, "opt/faas/runtimes", 0),
        "bind the runtimes dir");

    TRY(mkdir("tmp", 01777), "mkdir /tmp");
    TRY(mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, l->tmp_opts),
        "mount /tmp");
    TRY(mkdir("run", 0755), "mkdir /run");
    TRY(mkdir("run/faas", 0755), "mkdir /run/faas");
    TRY(mount(l->run_dir, "run/faas", NULL, MS_BIND, NULL), "bind /run/faas");
    TRY(mount(NULL, "run/faas", NULL,
              MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
        "remount /run/faas");

    if (setup_proc(what) < 0 || setup_dev(l, what) < 0) {
        return -1;
    }

    /* The old root goes to a dir only root may enter; the first child
     * detaches it concurrently with the runtime's start. */
    TRY(mkdir(SBX_OLD_ROOT + 1, 0700), "mkdir the old root's mount point");
    TRY(syscall(SYS_pivot_root, ".", SBX_OLD_ROOT + 1), "pivot_root");
    TRY(chdir("/"), "chdir /");
    TRY(mount(NULL, "/", NULL,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
        "remount / read-only");
    TRY(chdir("/var/task"), "chdir /var/task");
    return 0;
}
