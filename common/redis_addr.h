/*
 * Where a daemon's Redis is: the "redis" key of its configuration
 * (host:port or unix:/path), or, when "redis_sentinels" is set, the master
 * "redis_master" (default "faas") those sentinels name (docs/DESIGN.md
 * section 4, "Redis Sentinel"). Called before every (re)connect, so a link
 * lost to a failover reconnects to the promoted replica.
 */
#ifndef FAAS_REDIS_ADDR_H
#define FAAS_REDIS_ADDR_H

#include <jansson.h>
#include <stddef.h>
#include "error.h"

#define FAAS_REDIS_DEFAULT_MASTER "faas"

/* Fills host and port (-1 with host a socket path for unix:). */
int faas_redis_locate(const json_t *cfg, char *host, size_t hostsz, int *port,
                      faas_error_t *err);

/* host:port or unix:/path alone. */
int faas_redis_parse_addr(const char *addr, char *host, size_t hostsz,
                          int *port);

#endif
