/*
 * The id validators and key builders (proto/ids.c, proto/keys.c) on names
 * from requests, Redis and the registry: a key is built only from a valid
 * id, fits the buffer it is given (every size tried), and is what strlen
 * says.
 */
#include "fuzz.h"

#include <stdio.h>

#include "keys.h"

static void
check_key(int n, const char *buf, size_t size)
{
    if (n >= 0 && ((size_t) n >= size || strlen(buf) != (size_t) n)) {
        abort();
    }
}

static void
keys_for(const char *s, size_t len, const char *reqid, size_t size)
{
    char *buf = malloc(size);

    if (buf == NULL) {
        abort();
    }
    check_key(faas_key_fn(buf, size, s, len), buf, size);
    check_key(faas_key_idle(buf, size, s, len), buf, size);
    check_key(faas_key_count(buf, size, s, len), buf, size);
    check_key(faas_key_err(buf, size, s, len, reqid), buf, size);
    check_key(faas_rid_format(buf, size, s, len, (unsigned) len), buf, size);
    check_key(faas_key_prov_work(buf, size, s), buf, size);
    check_key(faas_key_prov_queue(buf, size, (unsigned) len), buf, size);
    check_key(faas_key_prov_lease(buf, size, (unsigned) len), buf, size);
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char  *s = fuzz_strndup(data, size);
    int    name, rid, subject;
    size_t bs;

    name = faas_name_valid(s, size);
    rid = faas_rid_valid(s, size);
    (void) faas_sbxid_valid(s, size);
    (void) faas_request_id_valid(s, size);
    (void) faas_version_valid(size);
    subject = faas_subject_valid(s, size);
    /* a subject becomes a header value and a database owner */
    if (subject && (size > 128 || strpbrk(s, " \t\r\n") != NULL)) {
        abort();
    }
    if (name && (size > FAAS_NAME_MAX || memchr(s, '@', size) != NULL)) {
        abort();
    }
    if (rid && (size > FAAS_RID_MAX || memchr(s, '@', size) == NULL)) {
        abort();
    }
    if (name || rid) {
        for (bs = 1; bs <= FAAS_KEY_MAX; bs += 7) {
            keys_for(s, size, "0123456789abcdef0123456789abcdef", bs);
        }
    }
    free(s);
    return 0;
}
