/*
 * Upload validation (libzip). An archive is accepted only if:
 *   - libzip opens it with ZIP_CHECKCONS (central directory consistent);
 *   - it has at most max_entries entries;
 *   - no name is absolute ("/x", "C:x"), has a ".." component, a backslash,
 *     a control character, or repeats another entry;
 *   - no entry is a symlink or other special file (mode from the Unix
 *     external attributes) or encrypted;
 *   - the bytes actually read (never the sizes in the headers) stay under
 *     max_unzipped in total, and no entry expands more than max_ratio times
 *     its compressed size once past 1 MiB (a zip bomb);
 *   - every entry's CRC matches (libzip checks while reading);
 *   - the handler's file exists and compiles: "python3 -m py_compile" or
 *     "node --check", with a timeout.
 *
 * Unpacking runs in a forked child (common/unpriv.h) and the syntax check
 * in an exec'd one, both as the check user (nobody by default) with
 * no_new_privs, RLIMIT_AS (syntax_check_memory_mb) and RLIMIT_FSIZE
 * (max_unzipped_bytes), in a private directory that user owns; libzip
 * never parses an upload with the registry's privileges. At most
 * syntax_check_concurrency checks run at once; the others wait for a slot
 * up to twice syntax_check_timeout_ms, then fail as unavailable (503).
 */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "unpriv.h"

#define RATIO_FLOOR   (1024 * 1024)
#define NODE_AS_EXTRA (512ULL << 20)

/* Who unpacks and checks uploads, and how many at once (faas_zip_setup). */
static faas_unpriv_t check_user = {
    .uid = 65534, .gid = 65534, .max_as = 512ULL << 20,
};
static sem_t check_slots;
static int   check_slots_on;


static int
bad(faas_error_t *err, const char *fmt, const char *a)
{
    faas_error_set(err, 0, fmt, a);
    err->code = FAAS_E_INVALID;
    return -1;
}


static int
name_problem(const char *name, faas_error_t *err)
{
    const char *p;
    size_t      n = strlen(name);

    if (n == 0) {
        return bad(err, "zip: an entry has an empty name%s", "");
    }
    if (name[0] == '/' || (n >= 2 && name[1] == ':')) {
        return bad(err, "zip: absolute path not allowed: %.200s", name);
    }
    if (strchr(name, '\\') != NULL) {
        return bad(err, "zip: backslash in entry name not allowed: %.200s",
                   name);
    }
    for (p = name; *p; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            return bad(err, "zip: control character in entry name%s", "");
        }
    }
    for (p = name; p != NULL; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL) {
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0')) {
            return bad(err, "zip: \"..\" in entry name not allowed: %.200s",
                       name);
        }
    }
    if (n > 255) {
        return bad(err, "zip: entry name too long: %.64s...", name);
    }
    return 0;
}


/* Creates the parent directories of rel under root. */
static int
make_parents(const char *root, const char *rel, faas_error_t *err)
{
    char  path[4096];
    char *p;

    if (snprintf(path, sizeof(path), "%s/%s", root, rel)
        >= (int) sizeof(path)) {
        return bad(err, "zip: path too long%s", "");
    }
    for (p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            return faas_error_set(err, errno, "mkdir %s", path);
        }
        *p = '/';
    }
    return 0;
}


static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    remove(path);
    return 0;
}


/* Extracts and checks every entry into dir. */
static int
extract(zip_t *za, const char *dir, const faas_zip_limits_t *lim,
        faas_error_t *err)
{
    zip_int64_t   n, i;
    zip_stat_t    st;
    zip_uint8_t   opsys;
    zip_uint32_t  attr;
    size_t        total = 0, entry;
    zip_int64_t   got;
    char          buf[65536], path[4096];
    const char   *name;
    unsigned      mode;

    n = zip_get_num_entries(za, 0);
    if (n < 0 || n > lim->max_entries) {
        faas_error_set(err, 0, "zip: too many entries (%lld, at most %ld)",
                       (long long) n, lim->max_entries);
        err->code = FAAS_E_INVALID;
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (zip_stat_index(za, (zip_uint64_t) i, ZIP_FL_ENC_RAW, &st) < 0
            || !(st.valid & ZIP_STAT_NAME)) {
            return bad(err, "zip: unreadable entry%s", "");
        }
        name = st.name;
        if (name_problem(name, err) < 0) {
            return -1;
        }
        if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD)
            && st.encryption_method != ZIP_EM_NONE) {
            return bad(err, "zip: encrypted entry not allowed: %.200s", name);
        }
        if (zip_file_get_external_attributes(za, (zip_uint64_t) i, 0, &opsys,
                                             &attr) == 0
            && opsys == ZIP_OPSYS_UNIX) {
            mode = (attr >> 16) & S_IFMT;
            if (mode == S_IFLNK) {
                return bad(err, "zip: symbolic link not allowed: %.200s",
                           name);
            }
            if (mode != 0 && mode != S_IFREG && mode != S_IFDIR) {
                return bad(err, "zip: special file not allowed: %.200s",
                           name);
            }
        }
        if (make_parents(dir, name, err) < 0) {
            return -1;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (name[strlen(name) - 1] == '/') {
            if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                return faas_error_set(err, errno, "mkdir %s", path);
            }
            continue;
        }
        cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_EXCL
                                    | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
            if (errno == EEXIST || errno == EISDIR || errno == ENOTDIR
                || errno == ELOOP) {
                return bad(err, "zip: duplicate or conflicting entry: %.200s",
                           name);
            }
            return faas_error_set(err, errno, "create %s", path);
        }
        zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t) i, 0);
        if (zf == NULL) {
            faas_error_set(err, 0, "zip: cannot read %.200s: %s", name,
                           zip_strerror(za));
            err->code = FAAS_E_INVALID;
            return -1;
        }
        entry = 0;
        while ((got = zip_fread(zf, buf, sizeof(buf))) > 0) {
            entry += (size_t) got;
            total += (size_t) got;
            if (total > lim->max_unzipped) {
                zip_fclose(zf);
                faas_error_set(err, 0, "zip: uncompressed size exceeds %zu"
                               " bytes", lim->max_unzipped);
                err->code = FAAS_E_INVALID;
                return -1;
            }
            if (entry > RATIO_FLOOR
                && entry / (st.comp_size ? st.comp_size : 1)
                       > (size_t) lim->max_ratio) {
                zip_fclose(zf);
                faas_error_set(err, 0, "zip: %.200s expands more than %ld"
                               " times (compression bomb)", name,
                               lim->max_ratio);
                err->code = FAAS_E_INVALID;
                return -1;
            }
            if (write(fd, buf, (size_t) got) != got) {
                zip_fclose(zf);
                if (errno == EFBIG) {
                    return bad(err, "zip: %.200s is larger than the file "
                               "size limit", name);
                }
                return faas_error_set(err, errno, "write %s", path);
            }
        }
        if (got < 0) {
            faas_error_set(err, 0, "zip: corrupt entry %.200s: %s", name,
                           zip_file_strerror(zf));
            err->code = FAAS_E_INVALID;
            zip_fclose(zf);
            return -1;
        }
        zip_fclose(zf);
    }
    return 0;
}


/* Finds the handler's file under dir; rel gets its relative path. */
static int
find_handler(const char *dir, const char *runtime, const char *handler,
             char *rel, size_t relsz)
{
    static const char *const py[] = { ".py", NULL };
    static const char *const js[] = { ".js", ".mjs", ".cjs", NULL };
    const char *const *ext = strcmp(runtime, "python3") == 0 ? py : js;
    const char *dot = strrchr(handler, '.');
    char        module[256], path[8192];
    struct stat st;
    size_t      n = (size_t) (dot - handler);
    int         pass;

    if (dot == NULL || n >= sizeof(module)) {
        return -1;
    }
    for (pass = 0; pass < 2; pass++) {
        memcpy(module, handler, n);
        module[n] = '\0';
        if (pass == 1) {
            /* Python's dotted form: pkg.mod.handler -> pkg/mod.py */
            if (ext != py || strchr(module, '.') == NULL) {
                break;
            }
            for (char *p = module; *p; p++) {
                if (*p == '.') {
                    *p = '/';
                }
            }
        }
        for (size_t i = 0; ext[i] != NULL; i++) {
            snprintf(rel, relsz, "%s%s", module, ext[i]);
            snprintf(path, sizeof(path), "%s/%s", dir, rel);
            if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                return 0;
            }
        }
    }
    return -1;
}


/* Runs the syntax checker as nobody with a timeout. */
static int
syntax_check(const char *dir, const char *runtime, const char *rel,
             const faas_zip_limits_t *lim, faas_error_t *err)
{
    int             pfd[2], status = 0, timed_out = 0;
    pid_t           pid;
    char            out[2048];
    size_t          olen = 0;
    struct pollfd   p;
    uint64_t        t0;
    long            left;
    ssize_t         r;

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
        struct rlimit rl;
        int devnull = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        dup2(devnull, 0);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        rl.rlim_cur = rl.rlim_max = (rlim_t) (lim->timeout_ms / 1000 + 2);
        setrlimit(RLIMIT_CPU, &rl);
        rl.rlim_cur = rl.rlim_max = 0;
        setrlimit(RLIMIT_CORE, &rl);
        rl.rlim_cur = rl.rlim_max = 64;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (lim->max_unzipped) {
            rl.rlim_cur = rl.rlim_max = (rlim_t) lim->max_unzipped;
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        if (chdir(dir) < 0
            || (geteuid() == 0
                && (setgroups(0, NULL) < 0 || setgid(check_user.gid) < 0
                    || setuid(check_user.uid) < 0))
            || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
            _exit(126);
        }
        /*
         * last: the address space of the checker, not of the registry.
         * V8 reserves about 600 MiB it never touches before it reads a
         * byte, so node gets NODE_AS_EXTRA on top.
         */
        rl.rlim_cur = rl.rlim_max = (rlim_t) check_user.max_as
                                    + (strcmp(runtime, "python3") == 0
                                       ? 0 : NODE_AS_EXTRA);
        if (check_user.max_as && setrlimit(RLIMIT_AS, &rl) < 0) {
            _exit(126);
        }
        char *envp[] = { "PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8",
                         NULL };
        if (strcmp(runtime, "python3") == 0) {
            execle(lim->python, lim->python, "-I", "-m", "py_compile", rel,
                   (char *) NULL, envp);
        } else {
            execle(lim->node, lim->node, "--check", rel, (char *) NULL, envp);
        }
        _exit(127);
    }
    close(pfd[1]);
    t0 = faas_mono_ms();
    p.fd = pfd[0];
    p.events = POLLIN;
    for (;;) {
        left = lim->timeout_ms - (long) (faas_mono_ms() - t0);
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        if (poll(&p, 1, (int) left) <= 0) {
            if (errno == EINTR) {
                continue;
            }
            timed_out = 1;
            break;
        }
        r = read(pfd[0], out + olen, sizeof(out) - 1 - olen);
        if (r <= 0) {
            break;
        }
        olen += (size_t) r;
        if (olen == sizeof(out) - 1) {
            /* Enough to explain; keep draining so the child never blocks. */
            char sink[4096];
            while (poll(&p, 1, 0) > 0 && read(pfd[0], sink, sizeof(sink)) > 0) {
            }
        }
    }
    close(pfd[0]);
    if (timed_out) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    out[olen] = '\0';
    if (timed_out) {
        faas_error_set(err, 0, "syntax check of %s timed out after %ld ms",
                       rel, lim->timeout_ms);
        err->code = FAAS_E_INVALID;
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) >= 126) {
        return faas_error_set(err, 0, "syntax checker could not run (%d)",
                              WEXITSTATUS(status));
    }
    if (strstr(out, "MemoryError") != NULL
        || strstr(out, "out of memory") != NULL
        || strstr(out, "heap out of memory") != NULL) {
        faas_error_set(err, 0, "syntax check of %s ran out of memory (limit"
                       " %llu MiB): the file is too large to compile", rel,
                       check_user.max_as >> 20);
        err->code = FAAS_E_INVALID;
        return -1;
    }
    /* Keep the message to its last lines, without the temp directory. */
    for (char *q = out; (q = strstr(q, dir)) != NULL;) {
        memmove(q, q + strlen(dir), strlen(q + strlen(dir)) + 1);
    }
    olen = strlen(out);
    while (olen > 0 && (out[olen - 1] == '\n' || out[olen - 1] == ' ')) {
        out[--olen] = '\0';
    }
    faas_error_set(err, 0, "syntax error in %s: %s", rel,
                   olen > 400 ? out + olen - 400 : out);
    err->code = FAAS_E_INVALID;
    return -1;
}


int
faas_zip_unpack(const void *data, size_t len, const char *dir,
                const faas_zip_limits_t *lim, faas_error_t *err)
{
    zip_error_t   zerr;
    zip_source_t *src;
    zip_t        *za;
    int           rc;

    zip_error_init(&zerr);
    src = zip_source_buffer_create(data, len, 0, &zerr);
    if (src == NULL) {
        zip_error_fini(&zerr);
        return faas_error_set(err, ENOMEM, "zip source");
    }
    za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (za == NULL) {
        zip_source_free(src);
        if (zip_error_code_zip(&zerr) == ZIP_ER_EXISTS) {
            faas_error_set(err, 0, "zip: duplicate entry name");
        } else {
            faas_error_set(err, 0, "zip: not a valid zip archive (%s)",
                           zip_error_strerror(&zerr));
        }
        zip_error_fini(&zerr);
        err->code = FAAS_E_INVALID;
        return -1;
    }
    zip_error_fini(&zerr);
    rc = extract(za, dir, lim, err);
    zip_discard(za);
    return rc;
}


typedef struct unpack_s {
    const void              *data;
    size_t                   len;
    int                      dirfd;    /* the check user may not be */
    const char              *dir;      /* allowed to reach it by path */
    const faas_zip_limits_t *lim;
} unpack_t;


static int
unpack_child(void *arg, faas_error_t *err)
{
    unpack_t *u = arg;

    if (fchdir(u->dirfd) < 0) {
        return faas_error_set(err, errno, "chdir %s", u->dir);
    }
    return faas_zip_unpack(u->data, u->len, ".", u->lim, err);
}


/*
 * A check slot, waited for at most twice as long as a check may take (the
 * check ahead, its unpacking and its clean-up).
 */
static int
slot_take(const faas_zip_limits_t *lim, faas_error_t *err)
{
    struct timespec until;
    long            wait_ms = 2 * lim->timeout_ms;

    if (!check_slots_on) {
        return 0;
    }
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(&check_slots, &until) < 0) {
        if (errno != EINTR) {
            faas_error_set(err, 0, "every syntax check slot stayed busy "
                           "for %ld ms", wait_ms);
            err->code = FAAS_E_UNAVAILABLE;
            return -1;
        }
    }
    return 0;
}


static void
slot_give(void)
{
    if (check_slots_on) {
        sem_post(&check_slots);
    }
}


/* Unpacked by the check user in a directory it owns, then the check. */
static int
check_in(const char *dir, const void *data, size_t len, const char *runtime,
         const char *handler, const faas_zip_limits_t *lim, faas_error_t *err)
{
    unpack_t      u = { data, len, -1, dir, lim };
    faas_unpriv_t who = check_user;
    char          rel[512];
    int           rc;

    if (chmod(dir, 0700) < 0
        || (geteuid() == 0 && chown(dir, who.uid, who.gid) < 0)) {
        return faas_error_set(err, errno, "prepare %s", dir);
    }
    u.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u.dirfd < 0) {
        return faas_error_set(err, errno, "open %s", dir);
    }
    who.max_fsize = lim->max_unzipped;
    rc = faas_unpriv_run(&who, unpack_child, &u, err);
    close(u.dirfd);
    if (rc < 0) {
        return -1;
    }
    if (find_handler(dir, runtime, handler, rel, sizeof(rel)) < 0) {
        faas_error_set(err, 0, "handler %s: its file is not in the"
                       " archive", handler);
        err->code = FAAS_E_INVALID;
        return -1;
    }
    return syntax_check(dir, runtime, rel, lim, err);
}


int
faas_zip_check(const void *data, size_t len, const char *runtime,
               const char *handler, const faas_zip_limits_t *lim,
               faas_error_t *err)
{
    char dir[4096];
    int  rc;

    if (slot_take(lim, err) < 0) {
        faas_warn(NULL, "upload check refused: %s", err->msg);
        return -1;
    }
    snprintf(dir, sizeof(dir), "%s/faas-registry-XXXXXX",
             lim->tmp_dir ? lim->tmp_dir : "/tmp");
    if (mkdtemp(dir) == NULL) {
        rc = faas_error_set(err, errno, "mkdtemp %s", dir);
    } else {
        rc = check_in(dir, data, len, runtime, handler, lim, err);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    slot_give();
    return rc;
}


int
faas_zip_setup(const char *user, long memory_mb, int concurrency,
               faas_error_t *err)
{
    if (user != NULL && geteuid() == 0
        && faas_unpriv_user(user, &check_user, err) < 0) {
        return faas_error_wrap(err, "syntax_check_user");
    }
    check_user.max_as = (unsigned long long) memory_mb << 20;
    if (concurrency > 0) {
        if (sem_init(&check_slots, 0, (unsigned) concurrency) < 0) {
            return faas_error_set(err, errno, "sem_init");
        }
        check_slots_on = 1;
    }
    return 0;
}


int
faas_zip_wrap(const char *filename, const void *data, size_t len, void **out,
              size_t *out_len, faas_error_t *err)
{
    zip_error_t   zerr;
    zip_source_t *buf, *file;
    zip_t        *za;
    zip_stat_t    st;
    void         *mem;

    zip_error_init(&zerr);
    buf = zip_source_buffer_create(NULL, 0, 0, &zerr);
    if (buf == NULL) {
        zip_error_fini(&zerr);
        return faas_error_set(err, ENOMEM, "zip buffer");
    }
    zip_source_keep(buf);
    za = zip_open_from_source(buf, ZIP_TRUNCATE, &zerr);
    zip_error_fini(&zerr);
    if (za == NULL) {
        zip_source_free(buf);
        return faas_error_set(err, 0, "zip: cannot create an archive");
    }
    file = zip_source_buffer(za, data, len, 0);
    if (file == NULL
        || zip_file_add(za, filename, file, ZIP_FL_ENC_UTF_8) < 0) {
        zip_source_free(file);
        zip_discard(za);
        zip_source_free(buf);
        return faas_error_set(err, 0, "zip: cannot add %s", filename);
    }
    if (zip_close(za) < 0) {
        zip_discard(za);
        zip_source_free(buf);
        return faas_error_set(err, 0, "zip: cannot write the archive");
    }
    if (zip_source_stat(buf, &st) < 0 || zip_source_open(buf) < 0) {
        zip_source_free(buf);
        return faas_error_set(err, 0, "zip: cannot read the archive back");
    }
    mem = malloc(st.size ? st.size : 1);
    if (mem == NULL
        || zip_source_read(buf, mem, st.size) != (zip_int64_t) st.size) {
        free(mem);
        zip_source_close(buf);
        zip_source_free(buf);
        return faas_error_set(err, 0, "zip: cannot read the archive back");
    }
    zip_source_close(buf);
    zip_source_free(buf);
    *out = mem;
    *out_len = st.size;
    return 0;
}
