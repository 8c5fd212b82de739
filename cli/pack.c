/*
 * Code packing: a directory (recursively) or a single file into a zip held
 * in memory, the form the registry's upload endpoints take. Entries get
 * Unix attributes of plain files (0644, or 0755 when executable), so the
 * registry's checks see regular files; anything that is neither a regular
 * file nor a directory (after following symlinks) is refused with its name.
 */
#include "faasctl.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "cleanup.h"


#define PACK_MAX_DEPTH 32


static int
add_file(zip_t *z, const char *path, const char *name, mode_t mode,
         faas_error_t *err)
{
    zip_source_t *src;
    zip_int64_t   idx;

    src = zip_source_file(z, path, 0, -1);
    if (src == NULL) {
        return faas_error_set(err, 0, "%s: %s", path, zip_strerror(z));
    }
    idx = zip_file_add(z, name, src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
        zip_source_free(src);
        return faas_error_set(err, 0, "%s: %s", path, zip_strerror(z));
    }
    zip_file_set_external_attributes(z, (zip_uint64_t) idx, 0,
                                     ZIP_OPSYS_UNIX,
                                     (zip_uint32_t) (S_IFREG
                                         | ((mode & 0111) ? 0755 : 0644))
                                     << 16);
    return 0;
}


static int
add_dir(zip_t *z, const char *dir, const char *prefix, int depth,
        size_t *count, faas_error_t *err)
{
    cleanup_closedir DIR *d = NULL;
    struct dirent        *e;
    struct stat           st;
    char                  path[PATH_MAX], name[PATH_MAX];

    if (depth > PACK_MAX_DEPTH) {
        return faas_error_set(err, 0, "%s: nested too deep", dir);
    }
    d = opendir(dir);
    if (d == NULL) {
        return faas_error_set(err, errno, "%s", dir);
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0
            || strcmp(e->d_name, ".git") == 0) {
            continue;
        }
        if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, e->d_name)
                >= sizeof(path)
            || (size_t) snprintf(name, sizeof(name), "%s%s", prefix,
                                 e->d_name) >= sizeof(name)) {
            return faas_error_set(err, 0, "%s: path too long", dir);
        }
        if (stat(path, &st) < 0) {
            return faas_error_set(err, errno, "%s", path);
        }
        if (S_ISDIR(st.st_mode)) {
            if (strlen(name) + 2 > sizeof(name)) {
                return faas_error_set(err, 0, "%s: path too long", path);
            }
            strcat(name, "/");
            if (add_dir(z, path, name, depth + 1, count, err) < 0) {
                return -1;
            }
        } else if (S_ISREG(st.st_mode)) {
            if (add_file(z, path, name, st.st_mode, err) < 0) {
                return -1;
            }
            (*count)++;
        } else {
            return faas_error_set(err, 0, "%s: not a regular file", path);
        }
    }
    return 0;
}


/* See faasctl.h. */
int
fctl_pack(const char *path, unsigned char **out, size_t *outlen,
          faas_error_t *err)
{
    char                tmp[] = "/tmp/faasctl-XXXXXX";
    cleanup_close int   fd = -1;
    struct stat         st;
    zip_t              *z;
    int                 zerr;
    size_t              count = 0;
    const char         *base;
    unsigned char      *data;
    ssize_t             n;
    size_t              off;

    if (stat(path, &st) < 0) {
        return faas_error_set(err, errno, "%s", path);
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        return faas_error_set(err, 0, "%s: not a directory or a file", path);
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        return faas_error_set(err, errno, "mkstemp");
    }
    z = zip_open(tmp, ZIP_TRUNCATE, &zerr);
    if (z == NULL) {
        unlink(tmp);
        return faas_error_set(err, 0, "zip_open %s failed (%d)", tmp, zerr);
    }
    if (S_ISDIR(st.st_mode)) {
        if (add_dir(z, path, "", 0, &count, err) < 0) {
            goto fail;
        }
        if (count == 0) {
            faas_error_set(err, 0, "%s: no file to deploy", path);
            goto fail;
        }
    } else {
        base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (add_file(z, path, base, st.st_mode, err) < 0) {
            goto fail;
        }
    }
    if (zip_close(z) < 0) {
        faas_error_set(err, 0, "zip: %s", zip_strerror(z));
        goto fail;
    }
    /* zip_close() renamed a new file over tmp: read that one */
    close(fd);
    fd = open(tmp, O_RDONLY | O_CLOEXEC);
    unlink(tmp);
    if (fd < 0 || fstat(fd, &st) < 0) {
        return faas_error_set(err, errno, "reading the zip");
    }
    data = malloc((size_t) st.st_size + 1);
    if (data == NULL) {
        return faas_error_set(err, ENOMEM, "zip buffer");
    }
    for (off = 0; off < (size_t) st.st_size; off += (size_t) n) {
        n = read(fd, data + off, (size_t) st.st_size - off);
        if (n <= 0) {
            free(data);
            return faas_error_set(err, n < 0 ? errno : 0, "reading the zip");
        }
    }
    *out = data;
    *outlen = off;
    return 0;

fail:
    zip_discard(z);
    unlink(tmp);
    return -1;
}
