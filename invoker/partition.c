#include "partition.h"

#include <string.h>


uint16_t
faas_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t             crc = 0;
    size_t               i;
    int                  b;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) p[i] << 8;
        for (b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }
    return crc;
}


void
faas_partition_pair(const char *rid, size_t len, unsigned *p1, unsigned *p2)
{
    static const char suffix[] = ":secondary";
    uint16_t          crc;
    const unsigned char *s = (const unsigned char *) suffix;
    size_t            i;
    int               b;

    *p1 = faas_crc16(rid, len) % FAAS_PARTITIONS;

    /* CRC of rid followed by the suffix, without a copy. */
    crc = faas_crc16(rid, len);
    for (i = 0; i < sizeof(suffix) - 1; i++) {
        crc ^= (uint16_t) s[i] << 8;
        for (b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }
    *p2 = crc % FAAS_PARTITIONS;
}


unsigned
faas_partition_shard(unsigned p, unsigned shards)
{
    if (shards == 0) {
        return 0;
    }
    return (unsigned) (((unsigned long long) (p % FAAS_PARTITIONS) * shards)
                       / FAAS_PARTITIONS);
}


int
faas_shard_choose(long long len1, long long len2)
{
    return len2 < len1 ? 1 : 0;
}
