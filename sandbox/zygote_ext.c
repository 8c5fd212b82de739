/*
 * _faas_zygote: the C side of the Python zygote (a CPython extension loaded
 * by runtimes/python/zygote.py). It links the sandbox library's
 * child side (sandbox_init.c, rootfs.c), so a zygote-made sandbox goes
 * through exactly the steps of a fresh one: sbx_clone_sandbox() (the same
 * namespaces, born in the sandbox's v2 cgroup) and sbx_sandbox_enter()
 * (cgroups, root, hostname, lo, fds, rlimits, privileges, seccomp).
 *
 *   init()       in the zygote: children are reaped by the kernel.
 *   spawn(fds)   in the zygote: clones B (fork-like: 0 in B, its pid in the
 *                zygote); fds = (blob, err, go, piv, cg2), see zygote_int.h.
 *   enter()      in B: reads the launch from the blob, isolates B, returns
 *                (argv, env) with the process's environ already replaced.
 * Built without sanitizers: it is loaded into /usr/bin/python3.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "sandbox_int.h"
#include "zygote_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

static sbx_launch_t      zl;
static struct sock_fprog zprog;
static int               zfds[ZYG_NFDS] = {-1, -1, -1, -1, -1};
static char             *zargs, *zenv; /* the new cmdline and environ */
static size_t            zargs_len, zenv_len;
/* the zygote's own argv and environ areas (mm->arg_start...), and how much
 * of the environ area holds its real variables (the rest is a NUL pad) */
static unsigned long zarg_start, zarg_end, zenv_start, zenv_end;
static size_t        zenv_used;

static void zfail(const char *step) __attribute__((noreturn));
static int  read_areas(void);

/* As sandbox_init.c's fail(): report on the error pipe, exit. */
static void
zfail(const char *step)
{
    sbx_report_failure(zfds[1], step);
}

static PyObject *
zyg_init(PyObject *self, PyObject *args)
{
    struct sigaction sa;

    (void) self;
    (void) args;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = SA_NOCLDWAIT;
    if (sigaction(SIGCHLD, &sa, NULL) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (read_areas() < 0) {
        return PyErr_Format(PyExc_OSError, "cannot read /proc/self/stat");
    }
    /* how the provisioner (a subreaper) tells an exited zygote from its
     * other children, to reap it */
    prctl(PR_SET_NAME, "faas-zygote", 0, 0, 0);
    Py_RETURN_NONE;
}

static PyObject *
zyg_spawn(PyObject *self, PyObject *args)
{
    long pid;
    int  i, saved;

    (void) self;
    if (!PyArg_ParseTuple(args, "(iiiii)", &zfds[0], &zfds[1], &zfds[2],
                          &zfds[3], &zfds[4])) {
        return NULL;
    }
    for (i = 0; i < ZYG_NFDS; i++) {
        if (zfds[i] < 0) {
            PyErr_SetString(PyExc_ValueError, "bad fd");
            return NULL;
        }
    }
    zl.cg2_fd = zfds[4];
    PyOS_BeforeFork();
    pid = sbx_clone_sandbox(&zl, 0);
    saved = errno;
    if (pid == 0) {
        PyOS_AfterFork_Child();
        return PyLong_FromLong(0);
    }
    PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(pid);
}

/* Reads the blob into memory that B keeps for its life. */
static void
read_blob(void)
{
    struct stat st;
    zyg_blob_t  h;
    char       *buf, *p, *end;
    uint32_t    i, k;
    size_t      need;

    if (fstat(zfds[0], &st) < 0 || st.st_size < (off_t) sizeof(h)) {
        zfail("zygote: read the launch");
    }
    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        zfail("zygote: read the launch");
    }
    if (pread(zfds[0], buf, (size_t) st.st_size, 0) != st.st_size) {
        zfail("zygote: read the launch");
    }
    close(zfds[0]);
    memcpy(&h, buf, sizeof(h));
    need = sizeof(h) + (size_t) h.launch_size + h.str_len + h.bpf_len;
    errno = EPROTO;
    if (h.magic != ZYG_MAGIC || h.launch_size != sizeof(sbx_launch_t) ||
        need != (size_t) st.st_size || h.nargv < 1 || h.nargv >= SBX_ARGV_MAX ||
        h.nenv > SBX_ENV_MAX || h.str_len == 0 || h.bpf_len == 0 ||
        h.bpf_len % sizeof(struct sock_filter) != 0) {
        zfail("zygote: malformed launch");
    }
    memcpy(&zl, buf + sizeof(h), sizeof(zl));
    p = buf + sizeof(h) + sizeof(zl);
    end = p + h.str_len;
    if (end[-1] != '\0') {
        zfail("zygote: malformed launch");
    }
    zargs = p;
    for (i = 0, k = 0; i < h.nargv + h.nenv; i++) {
        if (p >= end) {
            zfail("zygote: malformed launch");
        }
        if (i < h.nargv) {
            zl.argv[i] = p;
        } else {
            if (i == h.nargv) {
                zargs_len = (size_t) (p - zargs);
                zenv = p;
            }
            zl.envp[k++] = p;
        }
        p += strlen(p) + 1;
    }
    zl.argv[h.nargv] = NULL;
    zl.envp[k] = NULL;
    if (h.nenv == 0) {
        zfail("zygote: malformed launch");
    }
    zenv_len = (size_t) (p - zenv);
    zprog.len = (unsigned short) (h.bpf_len / sizeof(struct sock_filter));
    zprog.filter = (struct sock_filter *) (void *) end;
    if (((uintptr_t) end) % sizeof(uint32_t) != 0) {
        void *a = malloc(h.bpf_len);
        if (a == NULL) {
            zfail("zygote: read the launch");
        }
        memcpy(a, end, h.bpf_len);
        zprog.filter = a;
    }
    zl.seccomp = &zprog;
    /* the fds B was given; the caller's numbers mean nothing here */
    zl.err_fd = zfds[1];
    zl.go_fd = zfds[2];
    zl.piv_wr = zfds[3];
    zl.cg2_fd = -1;
    zl.log_fd = zl.info_fd = zl.piv_rd = zl.zygote_fd = zl.blob_fd = -1;
    zl.parent_fds[0] = zl.parent_fds[1] = zl.parent_fds[2] = -1;
    close(zfds[4]);
}

/* Fields 48-51 of /proc/self/stat: where argv and environ live. */
static int
read_areas(void)
{
    char    buf[4096], *p;
    ssize_t n;
    int     fd, field;

    fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* comm may hold spaces */
    if (p == NULL) {
        return -1;
    }
    for (field = 2; field < 48 && p != NULL; field++) {
        p = strchr(p + 1, ' ');
    }
    if (p == NULL ||
        sscanf(p, " %lu %lu %lu %lu", &zarg_start, &zarg_end, &zenv_start,
               &zenv_end) != 4 ||
        zarg_start >= zarg_end || zenv_start > zenv_end) {
        return -1;
    }
    for (zenv_used = 0; zenv_start + zenv_used + 1 < zenv_end; zenv_used++) {
        const char *e = (const char *) zenv_start;
        if (e[zenv_used] == '\0' && e[zenv_used + 1] == '\0') {
            zenv_used++;
            break;
        }
    }
    return 0;
}

/* Copies whole strings of src (len bytes of NUL-terminated strings) into
 * [start, end), then NULs up to `dirty` bytes from start. */
static void
fill_area(unsigned long start, unsigned long end, const char *src, size_t len,
          size_t dirty)
{
    char  *dst = (char *) start;
    size_t room = end - start, k = 0, n;

    while (k < len) {
        n = strlen(src + k) + 1;
        if (k + n > room) {
            break;
        }
        k += n;
    }
    memcpy(dst, src, k);
    if (dirty > room) {
        dirty = room;
    }
    if (dirty > k) {
        memset(dst + k, 0, dirty - k);
    }
}

/* /proc/self/cmdline and /proc/self/environ are the process's original
 * argv and environ areas: put the sandbox's own there, as exec would have
 * (no privilege needed: it is our own memory). The environ shown is cut to
 * the zygote's pad (32 KiB) if longer; the real environment is whole. */
static int
fix_proc_self(sbx_launch_t *l)
{
    (void) l;
    fill_area(zarg_start, zarg_end, zargs, zargs_len, zarg_end - zarg_start);
    fill_area(zenv_start, zenv_end, zenv, zenv_len, zenv_used);
    return 0;
}

static PyObject *
zyg_enter(PyObject *self, PyObject *args)
{
    struct sigaction sa;
    PyObject        *argv, *env, *s;
    int              i;

    (void) self;
    (void) args;
    /* its own process group (the zygote's may be signalled whole); not a
     * session leader, as a fresh one is not (its session's leader, the
     * first child, is outside its pid namespace in both cases) */
    if (setpgid(0, 0) < 0) {
        zfail("zygote: setpgid");
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    if (sigaction(SIGCHLD, &sa, NULL) < 0) {
        zfail("zygote: reset SIGCHLD");
    }
    prctl(PR_SET_NAME, "python3", 0, 0, 0); /* as a fresh one's */
    read_blob();
    sbx_sandbox_enter(&zl, fix_proc_self);
    /* exec would have made the process dumpable again after the uid
     * change (it owns its /proc/self); do the same */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) {
        zfail("zygote: set dumpable");
    }
    close(zl.err_fd); /* CLOEXEC: an exec'd runtime would not have it */
    if (clearenv() != 0) {
        zfail("zygote: clearenv");
    }
    for (i = 0; zl.envp[i] != NULL; i++) {
        putenv(zl.envp[i]); /* the strings live as long as B */
    }
    argv = PyList_New(0);
    env = PyList_New(0);
    if (argv == NULL || env == NULL) {
        return NULL;
    }
    for (i = 0; zl.argv[i] != NULL; i++) {
        s = PyUnicode_DecodeFSDefault(zl.argv[i]);
        if (s == NULL || PyList_Append(argv, s) < 0) {
            return NULL;
        }
        Py_DECREF(s);
    }
    for (i = 0; zl.envp[i] != NULL; i++) {
        s = PyBytes_FromString(zl.envp[i]);
        if (s == NULL || PyList_Append(env, s) < 0) {
            return NULL;
        }
        Py_DECREF(s);
    }
    return Py_BuildValue("(NN)", argv, env);
}

static PyMethodDef zyg_methods[] = {
    {"init", zyg_init, METH_NOARGS, "reap children automatically"},
    {"spawn", zyg_spawn, METH_VARARGS, "clone a sandbox process"},
    {"enter", zyg_enter, METH_NOARGS, "isolate this sandbox process"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef zyg_module = {
    PyModuleDef_HEAD_INIT,
    "_faas_zygote",
    NULL,
    -1,
    zyg_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__faas_zygote(void);

PyMODINIT_FUNC
PyInit__faas_zygote(void)
{
    return PyModule_Create(&zyg_module);
}
