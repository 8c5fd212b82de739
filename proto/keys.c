#include "keys.h"

#include <stdio.h>


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
faas_key_rev(char *buf, size_t size, const char *rid, size_t len)
{
    return fit(snprintf(buf, size, "faas:rev:{%.*s}", (int) len, rid), size);
}


int
faas_key_rev_match(char *buf, size_t size, const char *name, size_t len)
{
    /* a valid name has no glob characters */
    return fit(snprintf(buf, size, "faas:rev:{%.*s@*}", (int) len, name),
               size);
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
faas_key_gone(char *buf, size_t size, const char *rid, size_t len)
{
    return fit(snprintf(buf, size, "faas:gone:{%.*s}", (int) len, rid), size);
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


int
faas_key_prov_lease(char *buf, size_t size, unsigned shard)
{
    return fit(snprintf(buf, size, "faas:prov:lease:%u", shard), size);
}


int
faas_key_prov_work(char *buf, size_t size, const char *host_id)
{
    return fit(snprintf(buf, size, "faas:prov:work:%s", host_id), size);
}


int
faas_key_prov_sbx(char *buf, size_t size, const char *host_id)
{
    return fit(snprintf(buf, size, "faas:prov:sbx:%s", host_id), size);
}
