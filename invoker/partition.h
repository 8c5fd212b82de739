/*
 * Partitions and shard choice (docs/DESIGN.md section 4): a revision id hashes to
 * two partitions with the CRC16 Redis Cluster uses (CCITT/XMODEM), each
 * partition maps to one of S provisioner shards, and the gateway pushes a
 * ProvisionRequest to the shorter of the two candidate shard queues.
 */
#ifndef FAAS_PARTITION_H
#define FAAS_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#define FAAS_PARTITIONS 16384

/* CRC16-CCITT (XMODEM), as in Redis Cluster: crc16("123456789") = 0x31C3. */
uint16_t faas_crc16(const void *buf, size_t len);

/*
 * The two partitions of a revision id: p1 = crc16(rid) mod 16384,
 * p2 = crc16(rid ":secondary") mod 16384.
 */
void faas_partition_pair(const char *rid, size_t len, unsigned *p1,
                         unsigned *p2);

/* The shard (0 .. shards-1) that owns partition p; shards must be >= 1. */
unsigned faas_partition_shard(unsigned p, unsigned shards);

/*
 * Power of two choices: returns 0 to push to the first candidate queue (of
 * length len1), 1 for the second. Ties go to the first.
 */
int faas_shard_choose(long long len1, long long len2);

#endif
