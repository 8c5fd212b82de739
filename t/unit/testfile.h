/* Small file helpers shared by the C unit tests. */
#ifndef FAAS_TESTFILE_H
#define FAAS_TESTFILE_H

#include <stdio.h>
#include <stdlib.h>

/* Writes len bytes of data to path. 0 or -1. */
static inline int
test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int   ok_;

    if (f == NULL) {
        return -1;
    }
    ok_ = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok_ ? 0 : -1;
}

/* Reads path whole into a malloc'd buffer (caller frees), or NULL. */
static inline char *
test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long  n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t) n + 1);
    if (buf != NULL && fread(buf, 1, (size_t) n, f) != (size_t) n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t) n;
    return buf;
}

#endif
