#include "redis_addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "redis_sentinel.h"


int
faas_redis_parse_addr(const char *addr, char *host, size_t hostsz, int *port)
{
    const char *colon;

    if (strncmp(addr, "unix:", 5) == 0) {
        snprintf(host, hostsz, "%s", addr + 5);
        *port = -1;
        return 0;
    }
    colon = strrchr(addr, ':');
    if (colon == NULL || (size_t) (colon - addr) >= hostsz) {
        return -1;
    }
    memcpy(host, addr, (size_t) (colon - addr));
    host[colon - addr] = '\0';
    *port = atoi(colon + 1);
    return *port > 0 ? 0 : -1;
}


int
faas_redis_locate(const json_t *cfg, char *host, size_t hostsz, int *port,
                  faas_error_t *err)
{
    const char *sentinels = faas_config_string(cfg, "redis_sentinels", NULL);

    if (sentinels != NULL && sentinels[0] != '\0') {
        return faas_sentinel_master(sentinels,
                                    faas_config_string(cfg, "redis_master",
                                        FAAS_REDIS_DEFAULT_MASTER),
                                    faas_config_string(cfg, "redis_password",
                                                       NULL),
                                    host, hostsz, port, err);
    }
    if (faas_redis_parse_addr(faas_config_string(cfg, "redis",
                                                 "127.0.0.1:6379"),
                              host, hostsz, port) < 0) {
        return faas_error_set(err, 0, "config: redis must be host:port or"
                              " unix:/path");
    }
    return 0;
}
