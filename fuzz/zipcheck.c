/*
 * An uploaded zip as the registry unpacks it (registry/zipcheck.c): the
 * archive is opened and unpacked under the limits into a fresh directory,
 * in this process (the registry runs the same faas_zip_unpack in an
 * unprivileged child, which would hide it from the fuzzer). The syntax
 * check is not run: the fuzzer tests the unpacking, not Python.
 */
#include "fuzz.h"

#include <ftw.h>
#include <stdio.h>

#include "registry.h"

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    (void) remove(path);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    faas_zip_limits_t lim = {
        .max_entries = 64,
        .max_unzipped = 1 << 20,
        .max_ratio = 100,
        .tmp_dir = getenv("FUZZ_TMPDIR"),
        .python = "/bin/true",
        .node = "/bin/true",
        .timeout_ms = 1000,
    };
    faas_error_t err;
    char         dir[4096];

    snprintf(dir, sizeof(dir), "%s/unpack-XXXXXX",
             lim.tmp_dir ? lim.tmp_dir : "/tmp");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    (void) faas_zip_unpack(data, size, dir, &lim, &err);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
