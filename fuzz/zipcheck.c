/*
 * An uploaded zip as the registry checks it (registry/zipcheck.c): the
 * archive is opened and unpacked under the limits into a temporary
 * directory. The syntax check runs /bin/true: the fuzzer tests the
 * unpacking, not Python.
 */
#include "fuzz.h"

#include "registry.h"

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

    (void) faas_zip_check(data, size, size & 1 ? "nodejs" : "python3",
                          "app.handler", &lim, &err);
    return 0;
}
