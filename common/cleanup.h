/*
 * __attribute__((cleanup)) helpers, so early returns do not leak:
 *
 *     cleanup_free char *buf = malloc(n);
 *     cleanup_close int fd = open(path, O_RDONLY);
 *     cleanup_json json_t *doc = json_loads(...);
 *
 * Set the variable to NULL / -1 (or use steal_pointer/steal_fd) to hand
 * ownership on.
 */
#ifndef FAAS_CLEANUP_H
#define FAAS_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>
#include <jansson.h>

static inline void
faas_cleanup_freep(void *p)
{
    free(*(void **) p);
}

static inline void
faas_cleanup_closep(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
    }
}

static inline void
faas_cleanup_fclosep(FILE **f)
{
    if (*f != NULL) {
        fclose(*f);
    }
}

static inline void
faas_cleanup_closedirp(DIR **d)
{
    if (*d != NULL) {
        closedir(*d);
    }
}

static inline void
faas_cleanup_jsonp(json_t **j)
{
    if (*j != NULL) {
        json_decref(*j);
    }
}

#define cleanup_free     __attribute__((cleanup(faas_cleanup_freep)))
#define cleanup_close    __attribute__((cleanup(faas_cleanup_closep)))
#define cleanup_fclose   __attribute__((cleanup(faas_cleanup_fclosep)))
#define cleanup_closedir __attribute__((cleanup(faas_cleanup_closedirp)))
#define cleanup_json     __attribute__((cleanup(faas_cleanup_jsonp)))

/* redisReply * and bson_t * wrappers, only where those headers are used. */
#ifdef __HIREDIS_H
static inline void
faas_cleanup_replyp(redisReply **r)
{
    if (*r != NULL) {
        freeReplyObject(*r);
    }
}
#define cleanup_reply __attribute__((cleanup(faas_cleanup_replyp)))
#endif

#ifdef BSON_H
static inline void
faas_cleanup_bsonp(bson_t **b)
{
    if (*b != NULL) {
        bson_destroy(*b);
    }
}
#define cleanup_bson __attribute__((cleanup(faas_cleanup_bsonp)))
#endif

static inline void *
faas_steal_pointer(void *pp)
{
    void **p = (void **) pp, *v = *p;
    *p = NULL;
    return v;
}

static inline int
faas_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#define steal_pointer(pp) faas_steal_pointer(pp)
#define steal_fd(fdp)     faas_steal_fd(fdp)

#endif
