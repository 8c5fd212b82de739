/*
 * A forked child without privileges for work on untrusted bytes
 * (unpriv.h).
 */
#include "unpriv.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The bytes of address space this process maps now (/proc/self/statm). */
static unsigned long long
mapped_now(void)
{
    unsigned long long pages = 0;
    FILE              *f = fopen("/proc/self/statm", "re");

    if (f != NULL) {
        if (fscanf(f, "%llu", &pages) != 1) {
            pages = 0;
        }
        fclose(f);
    }
    return pages * (unsigned long long) sysconf(_SC_PAGESIZE);
}


/* What the child sends back: fn's result and error. */
typedef struct answer_s {
    int          rc;
    faas_error_t err;
} answer_t;


static int
limit(int resource, unsigned long long value)
{
    struct rlimit rl;

    if (value == 0) {
        return 0;
    }
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer's shadow already takes terabytes of address space */
    if (resource == RLIMIT_AS) {
        return 0;
    }
#endif
    if (resource == RLIMIT_AS) {
        /* the copy of the caller's mappings is not the child's to pay for */
        value += mapped_now();
    }
    rl.rlim_cur = rl.rlim_max = (rlim_t) value;
    return setrlimit(resource, &rl);
}


/* In the child: privileges and limits down, then fn. Never returns. */
static void
child(int fd, const faas_unpriv_t *u, faas_unpriv_fn fn, void *arg)
{
    answer_t      a;
    struct rlimit no_core = { 0, 0 };

    memset(&a, 0, sizeof(a));
    /* past RLIMIT_FSIZE a write fails with EFBIG instead of a signal */
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_CORE, &no_core) < 0
        || limit(RLIMIT_AS, u->max_as) < 0 || limit(RLIMIT_FSIZE, u->max_fsize) < 0
        || (geteuid() == 0
            && (setgroups(0, NULL) < 0 || setgid(u->gid) < 0
                || setuid(u->uid) < 0))
        || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        a.rc = faas_error_set(&a.err, errno, "dropping privileges");
    } else {
        a.rc = fn(arg, &a.err);
    }
    if (write(fd, &a, sizeof(a)) != (ssize_t) sizeof(a)) {
        _exit(2);
    }
    _exit(0);
}


int
faas_unpriv_run(const faas_unpriv_t *u, faas_unpriv_fn fn, void *arg,
                faas_error_t *err)
{
    int      pfd[2], status = 0;
    pid_t    pid;
    answer_t a;
    ssize_t  n;

    if (pipe2(pfd, O_CLOEXEC) < 0) {
        return faas_error_set(err, errno, "pipe");
    }
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return faas_error_set(err, errno, "fork");
    }
    if (pid == 0) {
        close(pfd[0]);
        child(pfd[1], u, fn, arg);
    }
    close(pfd[1]);
    do {
        n = read(pfd[0], &a, sizeof(a));
    } while (n < 0 && errno == EINTR);
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        return faas_error_set(err, 0, "unprivileged child killed by "
                              "signal %d", WTERMSIG(status));
    }
    if (n != (ssize_t) sizeof(a)) {
        return faas_error_set(err, 0, "unprivileged child exited (%d) "
                              "without an answer", WEXITSTATUS(status));
    }
    a.err.msg[FAAS_ERROR_MAX - 1] = '\0';
    if (err != NULL) {
        *err = a.err;
    }
    return a.rc;
}


int
faas_unpriv_socket_group(const char *path, const char *group,
                         faas_error_t *err)
{
    struct group gr, *res = NULL;
    char         buf[4096];
    int          rc;

    if (group == NULL || group[0] == '\0') {
        return 0;
    }
    rc = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
    if (res == NULL) {
        return faas_error_set(err, rc, "no group \"%s\"", group);
    }
    if (chown(path, (uid_t) -1, gr.gr_gid) < 0) {
        return faas_error_set(err, errno, "chgrp %s %s", group, path);
    }
    return 0;
}


int
faas_unpriv_user(const char *name, faas_unpriv_t *u, faas_error_t *err)
{
    struct passwd pw, *res = NULL;
    char          buf[4096];
    int           rc;

    rc = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    if (res == NULL) {
        return faas_error_set(err, rc, "no user \"%s\"", name);
    }
    if (pw.pw_uid == 0) {
        return faas_error_set(err, 0, "user \"%s\" is root", name);
    }
    u->uid = pw.pw_uid;
    u->gid = pw.pw_gid;
    return 0;
}
