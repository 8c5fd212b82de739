/*
 * Finding the Redis master through Redis Sentinel (docs/DESIGN.md section
 * 4, "Redis Sentinel"). Synchronous hiredis with short timeouts: it runs
 * only when a link to Redis is (re)made, never per command.
 */
#ifndef FAAS_REDIS_SENTINEL_H
#define FAAS_REDIS_SENTINEL_H

#include <stddef.h>
#include "error.h"

/* Per sentinel and for the ROLE check on the node it names. */
#define FAAS_SENTINEL_TIMEOUT_MS 300

/*
 * Asks each sentinel of `sentinels` ("host:port" items separated by spaces
 * or commas) in turn for the address of master `name` (SENTINEL
 * get-master-addr-by-name) and accepts the first answer whose node says
 * ROLE master; `password`, when not NULL or empty, is the node's AUTH.
 * Fills host and port. Returns 0, or < 0 with err set to what the last
 * sentinel or node said.
 */
int faas_sentinel_master(const char *sentinels, const char *name,
                         const char *password, char *host, size_t hostsz,
                         int *port, faas_error_t *err);

#endif
