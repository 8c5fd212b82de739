/*
 * file:// blob backend: a key is a path under the store's directory. Writes
 * go to a unique temporary file in the same directory, are fsync'd, renamed
 * over the target and the directory is fsync'd, so a reader sees the old
 * object or the new one, never a part, and a crash loses at most the write
 * in progress. Directories are created as needed.
 */
#include "blob_internal.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


typedef struct {
    faas_blob_store_t base;
    char             *root;   /* absolute, no trailing slash */
} file_store_t;

typedef struct {
    const char *data;
    size_t      len;
} mem_src_t;

typedef struct {
    int         fd;
    const char *name;   /* for errors */
} fd_src_t;


static unsigned long tmp_counter;


static int
mkdir_p(char *path, faas_error_t *err)
{
    char        *p;
    struct stat  st;

    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            return 0;
        }
        return faas_error_set(err, ENOTDIR, "mkdir %s", path);
    }
    for (p = path + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            *p = '/';
            return faas_error_set(err, e, "mkdir %s", path);
        }
        *p = '/';
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        return faas_error_set(err, errno, "mkdir %s", path);
    }
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        return faas_error_set(err, ENOTDIR, "mkdir %s", path);
    }
    return 0;
}


/* mkdir -p of the directory part of path (not path itself). */
static int
mkdir_parent(const char *path, faas_error_t *err)
{
    cleanup_free char *dir = strdup(path);
    char              *slash;

    if (dir == NULL) {
        return faas_error_set(err, ENOMEM, "mkdir for %s", path);
    }
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        return 0;
    }
    *slash = '\0';
    return mkdir_p(dir, err);
}


static int
fsync_parent(const char *path, faas_error_t *err)
{
    cleanup_free char *dir = strdup(path);
    cleanup_close int  fd = -1;
    char              *slash;

    if (dir == NULL) {
        return faas_error_set(err, ENOMEM, "fsync dir of %s", path);
    }
    slash = strrchr(dir, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        return faas_error_set(err, errno, "fsync %s", dir);
    }
    return 0;
}


int
faas_blob_write_atomic(const char *path,
                       int (*fill)(int fd, void *arg, faas_error_t *err),
                       void *arg, faas_error_t *err)
{
    cleanup_free char *tmp = NULL;
    const char        *base;
    int                fd, ret, dirlen;

    /*
     * "<dir>/.<name>.tmp.<pid>.<n>": hidden, unique per process and call,
     * and the name is cut to 100 bytes so it stays under NAME_MAX.
     */
    base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    dirlen = (int) (base - path);
    if (asprintf(&tmp, "%.*s.%.100s.tmp.%d.%lu", dirlen, path, base,
                 (int) getpid(),
                 __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED)) < 0)
    {
        tmp = NULL;
        return faas_error_set(err, ENOMEM, "write %s", path);
    }
    ret = mkdir_parent(path, err);
    if (ret < 0) {
        return ret;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return faas_error_set(err, errno, "create %s", tmp);
    }
    ret = fill(fd, arg, err);
    if (ret == 0 && fsync(fd) < 0) {
        ret = faas_error_set(err, errno, "fsync %s", tmp);
    }
    if (close(fd) < 0 && ret == 0) {
        ret = faas_error_set(err, errno, "close %s", tmp);
    }
    if (ret == 0 && rename(tmp, path) < 0) {
        ret = faas_error_set(err, errno, "rename %s to %s", tmp, path);
    }
    if (ret < 0) {
        unlink(tmp);
        return ret;
    }
    return fsync_parent(path, err);
}


static int
write_all(int fd, const void *buf, size_t len, faas_error_t *err)
{
    const char *p = buf;
    ssize_t     n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return faas_error_set(err, errno, "write");
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}


static int
fill_mem(int fd, void *arg, faas_error_t *err)
{
    mem_src_t *m = arg;

    return write_all(fd, m->data, m->len, err);
}


static int
fill_fd(int fd, void *arg, faas_error_t *err)
{
    fd_src_t *src = arg;
    char      buf[65536];
    ssize_t   n;
    int       ret;

    for (;;) {
        n = read(src->fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return faas_error_set(err, errno, "read %s", src->name);
        }
        if (n == 0) {
            return 0;
        }
        ret = write_all(fd, buf, (size_t) n, err);
        if (ret < 0) {
            return ret;
        }
    }
}


static char *
key_path(file_store_t *fs, const char *key, faas_error_t *err)
{
    char *path;

    if (asprintf(&path, "%s/%s", fs->root, key) < 0) {
        faas_error_set(err, ENOMEM, "blob %s", key);
        return NULL;
    }
    return path;
}


/*
 * Opens the object for reading. A missing object, or a path that is a
 * directory (a prefix of other keys, as in S3), is -ENOENT.
 */
static int
open_object(const char *path, const char *key, struct stat *st,
            faas_error_t *err)
{
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return faas_error_set(err, ENOENT, "blob %s", key);
        }
        return faas_error_set(err, errno, "open %s", path);
    }
    if (fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return faas_error_set(err, e, "stat %s", path);
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return faas_error_set(err, ENOENT, "blob %s (not a regular file)",
                              key);
    }
    return fd;
}


static int
file_put(faas_blob_store_t *s, const char *key, const void *data, size_t len,
         faas_error_t *err)
{
    cleanup_free char *path = key_path((file_store_t *) s, key, err);
    mem_src_t          m = { data, len };

    if (path == NULL) {
        return -ENOMEM;
    }
    if (faas_blob_write_atomic(path, fill_mem, &m, err) < 0) {
        return faas_error_wrap(err, "blob put %s", key);
    }
    return 0;
}


static int
file_put_file(faas_blob_store_t *s, const char *key, const char *src,
              faas_error_t *err)
{
    cleanup_free char *path = key_path((file_store_t *) s, key, err);
    cleanup_close int  fd = -1;
    fd_src_t           f;
    struct stat        st;

    if (path == NULL) {
        return -ENOMEM;
    }
    fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return faas_error_set(err, errno, "blob put %s: open %s", key, src);
    }
    if (fstat(fd, &st) < 0) {
        return faas_error_set(err, errno, "blob put %s: stat %s", key, src);
    }
    if (!S_ISREG(st.st_mode)) {
        return faas_error_set(err, S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
                              "blob put %s: %s is not a regular file", key,
                              src);
    }
    f.fd = fd;
    f.name = src;
    if (faas_blob_write_atomic(path, fill_fd, &f, err) < 0) {
        return faas_error_wrap(err, "blob put %s", key);
    }
    return 0;
}


static int
file_get(faas_blob_store_t *s, const char *key, void **data, size_t *len,
         size_t max, faas_error_t *err)
{
    cleanup_free char *path = key_path((file_store_t *) s, key, err);
    cleanup_free char *buf = NULL;
    cleanup_close int  fd = -1;
    struct stat        st;
    size_t             have = 0, cap;
    ssize_t            n;

    if (path == NULL) {
        return -ENOMEM;
    }
    fd = open_object(path, key, &st, err);
    if (fd < 0) {
        return fd;
    }
    if ((unsigned long long) st.st_size > max) {
        return faas_error_set(err, EFBIG, "blob %s is %lld bytes (limit %zu)",
                              key, (long long) st.st_size, max);
    }
    /* One byte more than expected, to notice a file that grew meanwhile. */
    cap = (size_t) st.st_size + 1;
    buf = malloc(cap + 1);
    if (buf == NULL) {
        return faas_error_set(err, ENOMEM, "blob %s", key);
    }
    for (;;) {
        n = read(fd, buf + have, cap - have);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return faas_error_set(err, errno, "blob %s: read %s", key, path);
        }
        if (n == 0) {
            break;
        }
        have += (size_t) n;
        if (have == cap) {
            return faas_error_set(err, EAGAIN,
                                  "blob %s changed while being read", key);
        }
    }
    buf[have] = '\0';
    *data = steal_pointer(&buf);
    if (len != NULL) {
        *len = have;
    }
    return 0;
}


static int
file_get_file(faas_blob_store_t *s, const char *key, const char *dest,
              faas_error_t *err)
{
    cleanup_free char *path = key_path((file_store_t *) s, key, err);
    cleanup_close int  fd = -1;
    struct stat        st;
    fd_src_t           f;

    if (path == NULL) {
        return -ENOMEM;
    }
    fd = open_object(path, key, &st, err);
    if (fd < 0) {
        return fd;
    }
    f.fd = fd;
    f.name = path;
    if (faas_blob_write_atomic(dest, fill_fd, &f, err) < 0) {
        return faas_error_wrap(err, "blob get %s into %s", key, dest);
    }
    return 0;
}


static int
file_del(faas_blob_store_t *s, const char *key, faas_error_t *err)
{
    cleanup_free char *path = key_path((file_store_t *) s, key, err);

    if (path == NULL) {
        return -ENOMEM;
    }
    if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR
        && errno != EISDIR)
    {
        return faas_error_set(err, errno, "blob delete %s: unlink %s", key,
                              path);
    }
    return 0;
}


static int
file_stat(faas_blob_store_t *s, const char *key, size_t *len,
          faas_error_t *err)
{
    cleanup_free char *path = key_path((file_store_t *) s, key, err);
    struct stat        st;

    if (path == NULL) {
        return -ENOMEM;
    }
    if (stat(path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return faas_error_set(err, ENOENT, "blob %s", key);
        }
        return faas_error_set(err, errno, "blob stat %s: %s", key, path);
    }
    if (!S_ISREG(st.st_mode)) {
        return faas_error_set(err, ENOENT, "blob %s (not a regular file)",
                              key);
    }
    if (len != NULL) {
        *len = (size_t) st.st_size;
    }
    return 0;
}


static void
file_close(faas_blob_store_t *s)
{
    file_store_t *fs = (file_store_t *) s;

    free(fs->root);
    free(fs);
}


faas_blob_store_t *
faas_blob_file_open(const char *rest, const json_t *opts, faas_error_t *err)
{
    file_store_t *fs;
    size_t        n;

    (void) opts;
    if (strncmp(rest, "localhost/", 10) == 0) {
        rest += 9;
    }
    if (rest[0] != '/') {
        faas_error_set(err, EINVAL,
                       "file:// URL needs an absolute path (file:///dir)");
        return NULL;
    }
    fs = calloc(1, sizeof(*fs));
    if (fs == NULL || (fs->root = strdup(rest)) == NULL) {
        free(fs);
        faas_error_set(err, ENOMEM, "open");
        return NULL;
    }
    n = strlen(fs->root);
    while (n > 1 && fs->root[n - 1] == '/') {
        fs->root[--n] = '\0';
    }
    if (mkdir_p(fs->root, err) < 0) {
        file_close(&fs->base);
        return NULL;
    }
    if (access(fs->root, W_OK | X_OK) < 0) {
        faas_error_set(err, errno, "directory %s", fs->root);
        file_close(&fs->base);
        return NULL;
    }
    return &fs->base;
}


const faas_blob_ops_t faas_blob_file_ops = {
    .scheme = "file",
    .put = file_put,
    .put_file = file_put_file,
    .get = file_get,
    .get_file = file_get_file,
    .del = file_del,
    .stat = file_stat,
    .close = file_close,
};
