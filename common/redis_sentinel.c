/*
 * The master lookup through Redis Sentinel. A sentinel that is down or does
 * not know the master is skipped; a node that is not (or no longer) the
 * master is refused, so a stale sentinel answer during a failover makes the
 * caller retry instead of writing to a replica.
 */
#include "redis_sentinel.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static redisContext *
connect_short(const char *host, int port, faas_error_t *err)
{
    struct timeval tv = { 0, FAAS_SENTINEL_TIMEOUT_MS * 1000 };
    redisContext  *rc;

    rc = redisConnectWithTimeout(host, port, tv);
    if (rc == NULL || rc->err) {
        faas_error_set(err, 0, "%s:%d: %s", host, port,
                       rc ? rc->errstr : "out of memory");
        if (rc != NULL) {
            redisFree(rc);
        }
        return NULL;
    }
    redisSetTimeout(rc, tv);
    return rc;
}


/* Splits "host:port" (len bytes) into host and port. */
static int
split_addr(const char *s, size_t len, char *host, size_t hostsz, int *port)
{
    size_t colon = len;

    while (colon > 0 && s[colon - 1] != ':') {
        colon--;
    }
    if (colon < 2 || colon - 1 >= hostsz) {
        return -1;
    }
    memcpy(host, s, colon - 1);
    host[colon - 1] = '\0';
    *port = atoi(s + colon);
    return *port > 0 && *port < 65536 ? 0 : -1;
}


/* One sentinel's answer for master `name`. */
static int
ask_sentinel(const char *shost, int sport, const char *name, char *host,
             size_t hostsz, int *port, faas_error_t *err)
{
    redisContext *rc = connect_short(shost, sport, err);
    redisReply   *r;
    int           rv = -1;

    if (rc == NULL) {
        return -1;
    }
    r = redisCommand(rc, "SENTINEL get-master-addr-by-name %s", name);
    if (r == NULL) {
        faas_error_set(err, 0, "sentinel %s:%d: %s", shost, sport,
                       rc->errstr);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
               || r->element[0]->type != REDIS_REPLY_STRING
               || r->element[1]->type != REDIS_REPLY_STRING
               || r->element[0]->len >= hostsz) {
        faas_error_set(err, 0, "sentinel %s:%d does not know master %s",
                       shost, sport, name);
    } else {
        snprintf(host, hostsz, "%s", r->element[0]->str);
        *port = atoi(r->element[1]->str);
        rv = 0;
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    redisFree(rc);
    return rv;
}


/* The node at host:port answers ROLE with "master". */
static int
check_master(const char *host, int port, const char *password,
             faas_error_t *err)
{
    redisContext *rc = connect_short(host, port, err);
    redisReply   *r = NULL;
    int           rv = -1;

    if (rc == NULL) {
        return -1;
    }
    if (password != NULL && password[0] != '\0') {
        r = redisCommand(rc, "AUTH %s", password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            faas_error_set(err, 0, "%s:%d: AUTH failed", host, port);
            goto done;
        }
        freeReplyObject(r);
    }
    r = redisCommand(rc, "ROLE");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0
        && r->element[0]->type == REDIS_REPLY_STRING
        && strcmp(r->element[0]->str, "master") == 0) {
        rv = 0;
    } else {
        faas_error_set(err, 0, "%s:%d is not a master", host, port);
    }
done:
    if (r != NULL) {
        freeReplyObject(r);
    }
    redisFree(rc);
    return rv;
}


int
faas_sentinel_master(const char *sentinels, const char *name,
                     const char *password, char *host, size_t hostsz,
                     int *port, faas_error_t *err)
{
    const char *s = sentinels;
    char        shost[256];
    int         sport;
    size_t      len;

    faas_error_set(err, 0, "no sentinel given");
    while (*s != '\0') {
        s += strspn(s, " ,");
        len = strcspn(s, " ,");
        if (len == 0) {
            break;
        }
        if (split_addr(s, len, shost, sizeof(shost), &sport) < 0) {
            return faas_error_set(err, 0, "bad sentinel address \"%.*s\"",
                                  (int) len, s);
        }
        s += len;
        if (ask_sentinel(shost, sport, name, host, hostsz, port, err) == 0
            && check_master(host, *port, password, err) == 0) {
            return 0;
        }
    }
    return -1;
}
