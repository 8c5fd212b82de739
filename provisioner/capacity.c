/*
 * The host's memory budget: the sum of the memory limits of the sandboxes it
 * manages (being created included) stays within memory_budget_mb. To make
 * room, the least recently used idle sandboxes of OTHER revisions are taken
 * out of their idle lists (LREM) and destroyed; a sandbox that a gateway
 * popped meanwhile (LREM removed nothing) is left alone. When nothing more
 * can be evicted the request fails with "host full".
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prov.h"

#define EVICT_ROUNDS 3

static void try_fit(faas_prov_t *p, faas_prov_job_t *job);


static int
fits(faas_prov_t *p, faas_prov_job_t *job)
{
    return (unsigned long long) p->used_mb + job->memory_mb
           <= p->memory_budget_mb;
}


static void
evicted(faas_prov_t *p, faas_prov_sbx_t *s, int removed, void *data)
{
    faas_prov_job_t *job = data;

    (void) s;
    (void) removed;
    if (--job->evict_pending == 0) {
        try_fit(p, job);
    }
}


static int
by_lru(const void *a, const void *b)
{
    const faas_prov_sbx_t *x = *(faas_prov_sbx_t *const *) a;
    const faas_prov_sbx_t *y = *(faas_prov_sbx_t *const *) b;

    return x->last_used_ms < y->last_used_ms ? -1
           : x->last_used_ms > y->last_used_ms ? 1 : 0;
}


static void
try_fit(faas_prov_t *p, faas_prov_job_t *job)
{
    faas_prov_sbx_t **cand, *s;
    size_t       n = 0, i;
    unsigned long long need, freed = 0;

    /* idle stem cells are the first to go (stem.c) */
    if (fits(p, job) || (job->memory_mb <= p->memory_budget_mb
                         && faas_prov_stem_release(p, p->used_mb
                                                      + job->memory_mb
                                                      - p->memory_budget_mb)
                                > 0
                         && fits(p, job))) {
        job->cap_cb(p, job, 1);
        return;
    }
    if (job->memory_mb > p->memory_budget_mb
        || job->evict_round++ >= EVICT_ROUNDS) {
        job->cap_cb(p, job, 0);
        return;
    }
    for (s = p->sbx; s != NULL; s = s->next) {
        n++;
    }
    cand = calloc(n + 1, sizeof(*cand));
    if (cand == NULL) {
        job->cap_cb(p, job, 0);
        return;
    }
    n = 0;
    for (s = p->sbx; s != NULL; s = s->next) {
        if (s->state == SBX_IDLE && !s->lrem_pending && s->entry != NULL
            && strcmp(s->rid, job->req->rid) != 0) {
            cand[n++] = s;
        }
    }
    qsort(cand, n, sizeof(*cand), by_lru);
    need = (unsigned long long) p->used_mb + job->memory_mb
           - p->memory_budget_mb;
    job->evict_pending = 1;
    for (i = 0; i < n && freed < need; i++) {
        freed += cand[i]->memory_mb;
        job->evict_pending++;
        faas_info(job->req->origin_request_id, "capacity: evicting %s (%s)",
                  cand[i]->id, cand[i]->rid);
        faas_prov_reaper_take(p, cand[i], "evicted for capacity", evicted, job);
    }
    free(cand);
    if (n == 0) {
        job->evict_round = EVICT_ROUNDS;
    }
    if (--job->evict_pending == 0) {
        try_fit(p, job);
    }
}


/* See prov.h. */
void
faas_prov_capacity_reserve(faas_prov_t *p, faas_prov_job_t *job,
                           faas_prov_cap_cb cb)
{
    job->cap_cb = cb;
    job->evict_round = 0;
    try_fit(p, job);
}
