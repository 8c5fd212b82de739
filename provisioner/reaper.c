/*
 * Keep-alive: an idle sandbox unused for longer than its keep-alive is
 * removed from its idle list and destroyed, but only if LREM removed it; a
 * sandbox that a gateway popped in the meantime is left alone (it is in use
 * and will come back to the list, or be destroyed by the agent).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "prov.h"

typedef struct take_s {
    faas_prov_t     *prov;
    faas_prov_sbx_t *sbx;
    char       *why;
    void      (*done)(faas_prov_t *p, faas_prov_sbx_t *s, int removed,
                      void *data);
    void       *data;
} take_t;


static void
lrem_cb(redisAsyncContext *ac, void *reply, void *data)
{
    take_t     *t = data;
    redisReply *r = reply;
    faas_prov_sbx_t *s = t->sbx;
    int         removed = 0;

    (void) ac;
    s->lrem_pending = 0;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        removed = 1;
        faas_prov_sbx_destroy(t->prov, s, t->why);
    } else if (r != NULL && r->type == REDIS_REPLY_INTEGER
               && s->state == SBX_IDLE) {
        /* Popped by a gateway meanwhile: in use, not ours to destroy. */
        s->state = SBX_BUSY;
        s->unlisted_ms = faas_now_ms();
    }
    if (t->done != NULL) {
        t->done(t->prov, s, removed, t->data);
    }
    free(t->why);
    free(t);
}


/* See prov.h. done (may be NULL) is always called, maybe synchronously. */
void
faas_prov_reaper_take(faas_prov_t *p, faas_prov_sbx_t *s, const char *why,
                 void (*done)(faas_prov_t *p, faas_prov_sbx_t *s, int removed,
                              void *data),
                 void *data)
{
    take_t *t = calloc(1, sizeof(*t));
    char    key[512];

    if (t == NULL || s->entry == NULL || s->lrem_pending) {
        free(t);
        if (done != NULL) {
            done(p, s, 0, data);
        }
        return;
    }
    t->prov = p;
    t->sbx = s;
    t->why = strdup(why);
    t->done = done;
    t->data = data;
    faas_key_idle(key, sizeof(key), s->rid, strlen(s->rid));
    if (faas_prov_redis_cmd(&p->cmd, lrem_cb, t, "LREM %s 1 %s", key, s->entry)
        != 0) {
        free(t->why);
        free(t);
        if (done != NULL) {
            done(p, s, 0, data);
        }
        return;
    }
    s->lrem_pending = 1;
}


/* See prov.h. */
void
faas_prov_reaper_check(faas_prov_t *p, faas_prov_sbx_t *s, const char *key,
                       uint64_t now)
{
    (void) key;
    if (s->state != SBX_IDLE || s->lrem_pending) {
        return;
    }
    if (now - s->last_used_ms > (uint64_t) s->keep_alive_s * 1000) {
        faas_info(NULL, "sandbox %s (%s): idle for %llu s, reaping", s->id,
                  s->rid,
                  (unsigned long long) ((now - s->last_used_ms) / 1000));
        faas_prov_reaper_take(p, s, "keep-alive expired", NULL, NULL);
    }
}
