/*
 * Idle-list entries (proto/entry.c) as read from Redis: parse; a parsed
 * entry formats back to the same bytes. Provisioner failure reasons are
 * cleaned for HTTP and logs: no control byte may survive.
 */
#include "fuzz.h"

#include "entry.h"

static void
check_reason(const uint8_t *data, size_t size)
{
    char   out[FAAS_REASON_MAX];
    size_t n, i;

    n = faas_reason_clean((const char *) data, size, out);
    if (n >= FAAS_REASON_MAX || out[n] != '\0') {
        abort();
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char) out[i] < 0x20 || out[i] == 0x7f) {
            abort();
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    faas_entry_t e, again;
    faas_error_t err;
    char        *s = fuzz_strndup(data, size);
    char         buf[FAAS_ENTRY_MAX + 1];
    int          n;

    if (faas_entry_parse(s, size, &e, &err) == 0) {
        n = faas_entry_format(buf, sizeof(buf), e.sandbox_id, e.endpoint,
                              e.origin);
        if (n < 0 || (size_t) n != size || memcmp(buf, s, size) != 0) {
            abort();
        }
        if (faas_entry_parse(buf, (size_t) n, &again, &err) != 0
            || again.type != e.type || again.port != e.port) {
            abort();
        }
        (void) faas_start_type_name(faas_entry_start_type(&e, size & 1));
    }
    check_reason(data, size);
    free(s);
    return 0;
}
