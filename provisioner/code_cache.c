/*
 * The local code cache: <cache_dir>/<rid>.<sha256>/ holds one revision's
 * unpacked code. A revision is fetched once however many requests want it
 * (single-flight: later requests wait on the entry), verified against its
 * sha256, unpacked with libzip refusing unsafe entries (absolute paths, "..",
 * symlinks, duplicates, oversize) in a child that runs as the unzip user
 * with no_new_privs and file size and memory limits, given back to the
 * daemon's uid, and published by renaming the staging
 * directory into place, so a directory with the final name is always
 * complete. Entries unused for code_gc_s and referenced by no sandbox are
 * deleted.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <zip.h>

#include "cleanup.h"
#include "log.h"
#include "prov.h"

#define UNZIP_MAX_BYTES   (512ULL << 20)
#define UNZIP_MAX_ENTRIES 65536

typedef struct fetch_s {
    uv_work_t    work;
    faas_prov_t      *prov;
    faas_prov_code_t *code;
    char        *tmpdir;
    int          rc;
    char         reason[PROV_REASON_MAX];
} fetch_t;


/* rm -rf path (no symlink following). 0 or -errno. */
static int
rm_rf(const char *path)
{
    struct stat st;
    DIR        *d;
    struct dirent *e;
    char       *sub;
    int         rc = 0;

    if (lstat(path, &st) < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlink(path) < 0 ? -errno : 0;
    }
    d = opendir(path);
    if (d == NULL) {
        return -errno;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (asprintf(&sub, "%s/%s", path, e->d_name) < 0) {
            rc = -ENOMEM;
            break;
        }
        if (rm_rf(sub) < 0) {
            rc = -errno;
        }
        free(sub);
    }
    closedir(d);
    if (rmdir(path) < 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}


/* sha256 of a file as 64 lowercase hex digits. */
static int
sha256_file(const char *path, char hex[65], faas_error_t *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char     buf[65536], md[EVP_MAX_MD_SIZE];
    unsigned int      mdlen = 0, i;
    EVP_MD_CTX       *ctx;
    ssize_t           n;

    if (fd < 0) {
        return faas_error_set(err, errno, "open %s", path);
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return faas_error_set(err, ENOMEM, "sha256");
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t) n);
    }
    if (n < 0) {
        EVP_MD_CTX_free(ctx);
        return faas_error_set(err, errno, "read %s", path);
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (i = 0; i < mdlen; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    hex[2 * mdlen] = '\0';
    return 0;
}


static int
name_safe(const char *name)
{
    const char *c = name, *slash;
    size_t      n;

    if (*name == '\0' || *name == '/') {
        return 0;
    }
    while (*c != '\0') {
        slash = strchr(c, '/');
        n = slash ? (size_t) (slash - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            return 0;
        }
        if (slash == NULL) {
            break;
        }
        c = slash + 1;
    }
    return 1;
}


static int
mkdir_p(char *path, mode_t mode)
{
    char *s;

    for (s = path + 1; *s != '\0'; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(path, mode) < 0 && errno != EEXIST) {
                *s = '/';
                return -errno;
            }
            *s = '/';
        }
    }
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}


/*
 * In the unprivileged child: the archive's entries into dir. Refuses
 * absolute names, "..", symlinks, special files, duplicates, more than
 * 64 Ki entries or 512 MiB. Files are 0644 (0755 when any execute bit is
 * set), directories 0755.
 */
static int
unpack(zip_t *za, const char *dir, faas_error_t *err)
{
    zip_int64_t       n, i;
    zip_stat_t        st;
    zip_uint8_t       opsys;
    zip_uint32_t      attr;
    zip_file_t       *zf;
    unsigned long long total = 0;
    char              buf[65536], *path, *slash;
    const char       *name;
    mode_t            mode, type;
    zip_int64_t       got, sum;
    int               fd, rc = 0;

    n = zip_get_num_entries(za, 0);
    if (n < 0 || n > UNZIP_MAX_ENTRIES) {
        return faas_error_set(err, 0, "too many entries (%lld)", (long long) n);
    }
    for (i = 0; i < n && rc == 0; i++) {
        if (zip_stat_index(za, (zip_uint64_t) i, 0, &st) < 0
            || !(st.valid & ZIP_STAT_NAME)) {
            rc = faas_error_set(err, 0, "entry %lld: %s", (long long) i,
                                zip_strerror(za));
            break;
        }
        name = st.name;
        if (!name_safe(name)) {
            rc = faas_error_set(err, 0, "unsafe entry name \"%.100s\"", name);
            break;
        }
        mode = 0644;
        if (zip_file_get_external_attributes(za, (zip_uint64_t) i, 0, &opsys,
                                             &attr)
                == 0
            && opsys == ZIP_OPSYS_UNIX && (attr >> 16) != 0) {
            type = (attr >> 16) & S_IFMT;
            if (type != 0 && type != S_IFREG && type != S_IFDIR) {
                rc = faas_error_set(err, 0,
                                    "entry \"%.100s\" is a symlink or special "
                                    "file",
                                    name);
                break;
            }
            if ((attr >> 16) & 0111) {
                mode = 0755;
            }
        }
        total += st.size;
        if (total > UNZIP_MAX_BYTES) {
            rc = faas_error_set(err, 0, "archive unpacks to more than %llu "
                                "bytes", UNZIP_MAX_BYTES);
            break;
        }
        if (asprintf(&path, "%s/%s", dir, name) < 0) {
            rc = faas_error_set(err, ENOMEM, "unzip");
            break;
        }
        if (name[strlen(name) - 1] == '/') {
            path[strlen(path) - 1] = '\0';
            if (mkdir_p(path, 0755) < 0) {
                rc = faas_error_set(err, errno, "mkdir %.100s", name);
            }
            free(path);
            continue;
        }
        slash = strrchr(path, '/');
        *slash = '\0';
        if (mkdir_p(path, 0755) < 0) {
            rc = faas_error_set(err, errno, "mkdir for %.100s", name);
            free(path);
            break;
        }
        *slash = '/';
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  mode);
        if (fd < 0) {
            rc = faas_error_set(err, errno, "entry \"%.100s\"", name);
            free(path);
            break;
        }
        fchmod(fd, mode);
        zf = zip_fopen_index(za, (zip_uint64_t) i, 0);
        if (zf == NULL) {
            rc = faas_error_set(err, 0, "entry \"%.100s\": %s", name,
                                zip_strerror(za));
            close(fd);
            free(path);
            break;
        }
        sum = 0;
        while ((got = zip_fread(zf, buf, sizeof(buf))) > 0) {
            if (write(fd, buf, (size_t) got) != got) {
                rc = errno == EFBIG
                     ? faas_error_set(err, 0, "entry \"%.100s\" is larger "
                                      "than the file size limit", name)
                     : faas_error_set(err, errno, "write %.100s", name);
                break;
            }
            sum += got;
        }
        if (rc == 0 && (got < 0 || (zip_uint64_t) sum != st.size)) {
            rc = faas_error_set(err, 0, "entry \"%.100s\" is corrupt: %s",
                                name, zip_file_strerror(zf));
        }
        zip_fclose(zf);
        close(fd);
        free(path);
    }
    return rc;
}

typedef struct unzip_s {
    int         fd;        /* the archive, opened by the parent */
    int         dirfd;     /* where to unpack: the unzip user may not be */
    const char *dir;       /* allowed to reach it by its path */
} unzip_t;


static int
unzip_child(void *arg, faas_error_t *err)
{
    unzip_t *u = arg;
    zip_t   *za;
    int      zerr = 0, rc;

    faas_info(NULL, "code: unpacking into %s as uid %d", u->dir,
              (int) getuid());
    if (fchdir(u->dirfd) < 0) {
        return faas_error_set(err, errno, "chdir %s", u->dir);
    }
    za = zip_fdopen(u->fd, ZIP_CHECKCONS, &zerr);
    if (za == NULL) {
        zip_error_t ze;

        zip_error_init_with_code(&ze, zerr);
        faas_error_set(err, 0, "not a valid zip archive (%s)",
                       zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -EINVAL;
    }
    rc = unpack(za, ".", err);
    zip_discard(za);
    return rc;
}


/*
 * After the child: everything under dir back to the daemon's uid and gid.
 * Only what the child may have made is accepted (a directory, or a regular
 * file with one link), in case another process of the unzip user got in.
 */
static int
own_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) ftw;
    if (flag == FTW_SL || flag == FTW_SLN
        || !(S_ISDIR(st->st_mode) || (S_ISREG(st->st_mode)
                                      && st->st_nlink == 1))) {
        return EPERM;
    }
    if (lchown(path, geteuid(), getegid()) < 0) {
        return errno;
    }
    return 0;
}


/*
 * Unpacks zip into dir (created) in a child that runs as who (uid, gid,
 * limits; common/unpriv.h), in dir owned by who.uid; then gives the tree
 * back to the daemon. The refusals are unpack()'s.
 */
int
faas_prov_code_unzip(const char *zip, const char *dir,
                     const faas_unpriv_t *who, faas_error_t *err)
{
    unzip_t       u;
    faas_unpriv_t limits = *who;
    int           rc;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        return faas_error_set(err, errno, "mkdir %s", dir);
    }
    if (geteuid() == 0 && chown(dir, who->uid, who->gid) < 0) {
        return faas_error_set(err, errno, "chown %s", dir);
    }
    u.dir = dir;
    u.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u.dirfd < 0) {
        return faas_error_set(err, errno, "open %s", dir);
    }
    u.fd = open(zip, O_RDONLY | O_CLOEXEC);
    if (u.fd < 0) {
        close(u.dirfd);
        return faas_error_set(err, errno, "open %s", zip);
    }
    limits.max_fsize = who->max_fsize ? who->max_fsize : UNZIP_MAX_BYTES;
    rc = faas_unpriv_run(&limits, unzip_child, &u, err);
    close(u.fd);
    close(u.dirfd);
    if (rc < 0) {
        return rc;
    }
    rc = nftw(dir, own_entry, 16, FTW_PHYS);
    if (rc != 0) {
        return faas_error_set(err, rc > 0 ? rc : errno, "taking back %s",
                              dir);
    }
    if (chmod(dir, 0755) < 0) {
        return faas_error_set(err, errno, "chmod %s", dir);
    }
    return 0;
}


static faas_prov_code_t *
code_find(faas_prov_t *p, const char *name)
{
    faas_prov_code_t *c;

    for (c = p->codes; c != NULL; c = c->next) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}


static void
code_unlink(faas_prov_t *p, faas_prov_code_t *c)
{
    faas_prov_code_t **pp;

    for (pp = &p->codes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            return;
        }
    }
}


static void
code_free(faas_prov_code_t *c)
{
    free(c->name);
    free(c->dir);
    free(c->key);
    free(c);
}


static faas_prov_code_t *
code_new(faas_prov_t *p, const char *name)
{
    faas_prov_code_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->name = strdup(name);
    if (c->name == NULL || asprintf(&c->dir, "%s/%s", p->cache_dir, name) < 0) {
        free(c->name);
        free(c);
        return NULL;
    }
    c->last_used_ms = faas_now_ms();
    c->next = p->codes;
    p->codes = c;
    return c;
}


static void
fetch_work(uv_work_t *w)
{
    fetch_t     *f = w->data;
    faas_prov_t      *p = f->prov;
    faas_error_t err = { 0 };
    char         hex[65];
    cleanup_free char *zip = NULL, *stage = NULL;
    static unsigned seq;
    unsigned     me = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    int          rc;

    if (asprintf(&zip, "%s/.tmp-%s-%d-%u.zip", p->cache_dir, f->code->name,
                 (int) getpid(), me) < 0
        || asprintf(&stage, "%s/.tmp-%s-%d-%u", p->cache_dir, f->code->name,
                    (int) getpid(), me) < 0) {
        f->rc = -ENOMEM;
        snprintf(f->reason, sizeof(f->reason), "out of memory");
        return;
    }
    pthread_mutex_lock(&p->store_lock);
    rc = faas_blob_get_file(p->store, f->code->key, zip, &err);
    pthread_mutex_unlock(&p->store_lock);
    if (rc == -ENOENT) {
        f->rc = rc;
        snprintf(f->reason, sizeof(f->reason), "code missing: %s is not in "
                 "the store", f->code->key);
        return;
    }
    if (rc < 0) {
        f->rc = rc;
        snprintf(f->reason, sizeof(f->reason), "code download failed: %s",
                 err.msg);
        unlink(zip);
        return;
    }
    faas_info(NULL, "code: fetched %s", f->code->key);
    rc = sha256_file(zip, hex, &err);
    if (rc == 0 && strcmp(hex, f->code->sha256) != 0) {
        f->rc = -EBADMSG;
        snprintf(f->reason, sizeof(f->reason), "code sha256 mismatch: "
                 "expected %s, got %s", f->code->sha256, hex);
        unlink(zip);
        return;
    }
    if (rc == 0) {
        rc = faas_prov_code_unzip(zip, stage, &p->unzip, &err);
        if (rc < 0) {
            faas_error_wrap(&err, "bad code archive");
        }
    }
    unlink(zip);
    if (rc == 0 && rename(stage, f->code->dir) < 0) {
        rc = faas_error_set(&err, errno, "rename into %s", f->code->dir);
    }
    if (rc < 0) {
        rm_rf(stage);
        f->rc = rc;
        snprintf(f->reason, sizeof(f->reason), "%s", err.msg);
    }
}


static void
fetch_done(uv_work_t *w, int status)
{
    fetch_t     *f = w->data;
    faas_prov_t      *p = f->prov;
    faas_prov_code_t *c = f->code;
    faas_prov_job_t  *job, *next;

    (void) status;
    job = c->waiters;
    c->waiters = NULL;
    if (f->rc == 0) {
        c->state = CODE_READY;
        c->last_used_ms = faas_now_ms();
        faas_info(NULL, "code: %s ready", c->name);
        for (; job != NULL; job = next) {
            next = job->next;
            job->next = NULL;
            c->refs++;
            job->code_cb(p, job, c, NULL);
        }
    } else {
        faas_warn(NULL, "code: %s failed: %s", c->name, f->reason);
        code_unlink(p, c);
        for (; job != NULL; job = next) {
            next = job->next;
            job->next = NULL;
            job->code_cb(p, job, NULL, f->reason);
        }
        code_free(c);
    }
    free(f);
}


/*
 * Makes job's revision available. cb gets a READY entry with one reference
 * for the job (faas_prov_code_release it), or NULL and the reason.
 */
void
faas_prov_code_acquire(faas_prov_t *p, faas_prov_job_t *job,
                       faas_prov_code_cb cb)
{
    Faas__ProvisionRequest *req = job->req;
    faas_prov_rev_t  *rev = job->rev;
    faas_prov_code_t *c;
    fetch_t     *f;
    char        *name;

    job->code_cb = cb;
    if (asprintf(&name, "%s.%s", rev->rid, rev->code_sha256) < 0) {
        cb(p, job, NULL, "out of memory");
        return;
    }
    c = code_find(p, name);
    faas_metric_add(c != NULL ? faas_prov_m.code_hits : faas_prov_m.code_misses,
                    1);
    if (c != NULL && c->state == CODE_READY) {
        free(name);
        c->refs++;
        c->last_used_ms = faas_now_ms();
        cb(p, job, c, NULL);
        return;
    }
    if (c != NULL) {
        faas_debug(req->origin_request_id, "code: waiting for %s", name);
        free(name);
        job->next = c->waiters;
        c->waiters = job;
        return;
    }
    c = code_new(p, name);
    free(name);
    f = calloc(1, sizeof(*f));
    if (c == NULL || f == NULL || (c->key = strdup(rev->code_key)) == NULL) {
        if (c != NULL) {
            code_unlink(p, c);
            code_free(c);
        }
        free(f);
        cb(p, job, NULL, "out of memory");
        return;
    }
    snprintf(c->sha256, sizeof(c->sha256), "%s", rev->code_sha256);
    c->state = CODE_LOADING;
    c->waiters = job;
    f->prov = p;
    f->code = c;
    f->work.data = f;
    faas_info(req->origin_request_id, "code: fetching %s", c->key);
    uv_queue_work(p->loop, &f->work, fetch_work, fetch_done);
}


/* Drops one reference (a job that failed, a sandbox destroyed). */
void
faas_prov_code_release(faas_prov_t *p, faas_prov_code_t *c)
{
    (void) p;
    if (c == NULL) {
        return;
    }
    if (c->refs > 0) {
        c->refs--;
    }
    c->last_used_ms = faas_now_ms();
}


/* The READY entry whose directory is dir, with a new reference, or NULL. */
faas_prov_code_t *
faas_prov_code_by_dir(faas_prov_t *p, const char *dir)
{
    faas_prov_code_t *c;

    for (c = p->codes; c != NULL; c = c->next) {
        if (c->state == CODE_READY && strcmp(c->dir, dir) == 0) {
            c->refs++;
            return c;
        }
    }
    return NULL;
}


static void
rm_work(uv_work_t *w)
{
    rm_rf(w->data);
}


static void
rm_done(uv_work_t *w, int status)
{
    (void) status;
    free(w->data);
    free(w);
}


static void
rm_async(faas_prov_t *p, char *path)
{
    uv_work_t *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        free(path);
        return;
    }
    w->data = path;
    uv_queue_work(p->loop, w, rm_work, rm_done);
}


/* Deletes READY entries with no reference unused for code_gc_s. */
void
faas_prov_code_gc(faas_prov_t *p)
{
    faas_prov_code_t *c, *next;
    uint64_t     now = faas_now_ms();
    static unsigned seq;
    char        *trash;

    for (c = p->codes; c != NULL; c = next) {
        next = c->next;
        if (c->state != CODE_READY || c->refs > 0
            || now - c->last_used_ms < (uint64_t) p->code_gc_s * 1000) {
            continue;
        }
        if (asprintf(&trash, "%s/.tmp-gc-%d-%u", p->cache_dir, (int) getpid(),
                     ++seq) < 0) {
            continue;
        }
        if (rename(c->dir, trash) < 0) {
            faas_warn(NULL, "code gc: rename %s: %s", c->dir, strerror(errno));
            free(trash);
            continue;
        }
        faas_info(NULL, "code gc: removed %s", c->name);
        code_unlink(p, c);
        code_free(c);
        rm_async(p, trash);
    }
}


/*
 * Creates cache_dir, removes leftovers of interrupted fetches and loads the
 * entries already there as READY (last used = now).
 */
int
faas_prov_code_init(faas_prov_t *p, faas_error_t *err)
{
    cleanup_closedir DIR *d = NULL;
    struct dirent *e;
    char          *path, *dot;
    struct stat    st;
    faas_prov_code_t   *c;

    if (mkdir(p->cache_dir, 0755) < 0 && errno != EEXIST) {
        return faas_error_set(err, errno, "mkdir %s", p->cache_dir);
    }
    chmod(p->cache_dir, 0755);
    d = opendir(p->cache_dir);
    if (d == NULL) {
        return faas_error_set(err, errno, "opendir %s", p->cache_dir);
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0
            && strcmp(e->d_name, "..") != 0) {
            if (asprintf(&path, "%s/%s", p->cache_dir, e->d_name) >= 0) {
                rm_rf(path);
                free(path);
            }
            continue;
        }
        dot = strrchr(e->d_name, '.');
        if (e->d_name[0] == '.' || dot == NULL || strlen(dot + 1) != 64) {
            continue;
        }
        if (asprintf(&path, "%s/%s", p->cache_dir, e->d_name) < 0) {
            continue;
        }
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            c = code_new(p, e->d_name);
            if (c != NULL) {
                c->state = CODE_READY;
                snprintf(c->sha256, sizeof(c->sha256), "%s", dot + 1);
            }
        }
        free(path);
    }
    return 0;
}
