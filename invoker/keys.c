#include "keys.h"

#include <stdio.h>


static int
is_lhex(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}


int
faas_name_valid(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || len > FAAS_NAME_MAX || name[0] < 'a' || name[0] > 'z') {
        return 0;
    }
    for (i = 1; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return 0;
        }
    }
    return 1;
}


int
faas_invoker_sandbox_id_valid(const char *s, size_t len)
{
    size_t i;

    if (len != FAAS_SBXID_LEN || s[0] != 's' || s[1] != '-') {
        return 0;
    }
    for (i = 2; i < len; i++) {
        if (!is_lhex((unsigned char) s[i])) {
            return 0;
        }
    }
    return 1;
}


int
faas_request_id_valid(const char *s, size_t len)
{
    size_t i;

    if (len != FAAS_REQID_LEN) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!is_lhex((unsigned char) s[i])) {
            return 0;
        }
    }
    return 1;
}


static int
fit(int n, size_t size)
{
    return (n < 0 || (size_t) n >= size) ? -1 : n;
}


int
faas_rid_format(char *buf, size_t size, const char *name, size_t len,
                unsigned version)
{
    return fit(snprintf(buf, size, "%.*s@%u", (int) len, name, version),
               size);
}


int
faas_key_fn(char *buf, size_t size, const char *name, size_t len)
{
    return fit(snprintf(buf, size, "faas:fn:%.*s", (int) len, name), size);
}


int
faas_key_idle(char *buf, size_t size, const char *rid, size_t len)
{
    return fit(snprintf(buf, size, "faas:idle:{%.*s}", (int) len, rid), size);
}


int
faas_key_count(char *buf, size_t size, const char *rid, size_t len)
{
    return fit(snprintf(buf, size, "faas:count:{%.*s}", (int) len, rid),
               size);
}


int
faas_key_err(char *buf, size_t size, const char *rid, size_t len,
             const char *request_id)
{
    return fit(snprintf(buf, size, "faas:err:{%.*s}:%s", (int) len, rid,
                        request_id),
               size);
}


int
faas_key_prov_queue(char *buf, size_t size, unsigned shard)
{
    return fit(snprintf(buf, size, "faas:prov:q:%u", shard), size);
}
