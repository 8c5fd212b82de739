/*
 * The host's memory budget: what the sandboxes it manages use, counted as
 * below, plus the new sandbox's expected size, stays within
 * memory_budget_mb. A sandbox counts as the memory its cgroup was charged
 * at the last reconciliation plus memory_margin_pct, at most its limit
 * (memory_mb); one not measured yet (being created) counts as the largest
 * such figure among its revision's measured sandboxes, else as its limit;
 * idle stem cells count as their limit. Every sandbox keeps its own hard
 * limit: one growing past what it is counted for is bounded by its own
 * cgroup (OOM inside it); the margin covers growth between
 * reconciliations, and a margin high enough counts every sandbox as its
 * limit (docs/DESIGN.md section 6).
 *
 * To make room, idle stem cells go first, then the least recently used
 * idle sandboxes of OTHER revisions are taken out of their idle lists
 * (LREM) and destroyed; a sandbox that a gateway popped meanwhile (LREM
 * removed nothing) is left alone. When nothing more can be evicted the
 * request fails with "host full" (FAAS_REASON_HOST_FULL: the gateway's call
 * then waits for a returned sandbox instead).
 *
 * Before that, the host's CPUs: while max_busy sandboxes (max_busy_per_cpu x
 * the CPUs online) are busy (popped by a gateway, as last seen) or being
 * created, a request waits here, in order, instead of starting one more
 * process the CPUs cannot serve; the requests behind it stay in Redis
 * (max_pending). Its caller meanwhile takes whichever sandbox of its
 * function is returned first.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prov.h"

#define EVICT_ROUNDS 3

static void try_fit(faas_prov_t *p, faas_prov_job_t *job);


/* What s counts for once measured: its use plus the margin, within its
 * limit (at least 1 MB). */
static unsigned
measured_mb(const faas_prov_t *p, const faas_prov_sbx_t *s)
{
    unsigned long long mb;

    mb = (s->mem_bytes * (100ULL + p->memory_margin_pct) / 100 + (1 << 20)
          - 1) >> 20;
    return mb == 0 ? 1 : mb < s->memory_mb ? (unsigned) mb : s->memory_mb;
}


/* A sandbox of rid with limit memory_mb not measured yet: the largest
 * measured one of its revision, else its limit. */
static unsigned
expected_mb(const faas_prov_t *p, const char *rid, unsigned memory_mb)
{
    const faas_prov_sbx_t *s;
    unsigned               mb = 0, m;

    for (s = p->sbx; s != NULL; s = s->next) {
        if (s->mem_known && s->state != SBX_DESTROYING
            && strcmp(s->rid, rid) == 0) {
            m = measured_mb(p, s);
            mb = m > mb ? m : mb;
        }
    }
    return mb == 0 || mb > memory_mb ? memory_mb : mb;
}


static unsigned
counted_mb(const faas_prov_t *p, const faas_prov_sbx_t *s)
{
    return s->mem_known ? measured_mb(p, s)
                        : expected_mb(p, s->rid, s->memory_mb);
}


/* The budget in use: p->used_mb holds the limits of the live sandboxes and
 * of the stem cells; each sandbox's limit is replaced by what it counts. */
static unsigned long long
in_use_mb(const faas_prov_t *p)
{
    const faas_prov_sbx_t *s;
    unsigned long long     limits = 0, counted = 0;

    for (s = p->sbx; s != NULL; s = s->next) {
        if (s->state != SBX_DESTROYING) {
            limits += s->memory_mb;
            counted += counted_mb(p, s);
        }
    }
    return (p->used_mb > limits ? p->used_mb - limits : 0) + counted;
}


/* MB missing for job's sandbox (0: it fits). */
static unsigned long long
missing_mb(faas_prov_t *p, faas_prov_job_t *job)
{
    unsigned long long need;

    need = in_use_mb(p) + expected_mb(p, job->req->rid, job->memory_mb);
    return need > p->memory_budget_mb ? need - p->memory_budget_mb : 0;
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
    need = missing_mb(p, job);
    if (need == 0 || (job->memory_mb <= p->memory_budget_mb
                      && faas_prov_stem_release(p, need > UINT_MAX
                                                   ? UINT_MAX : need) > 0
                      && missing_mb(p, job) == 0)) {
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
    need = missing_mb(p, job);
    job->evict_pending = 1;
    for (i = 0; i < n && freed < need; i++) {
        freed += counted_mb(p, cand[i]);
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


/* how often waiting requests look again (busy ones are seen returned by the
 * reconciliation, created ones when they are listed) */
#define BUSY_RETRY_MS 20


static unsigned
busy_count(faas_prov_t *p)
{
    faas_prov_sbx_t *s;
    unsigned         n = 0;

    for (s = p->sbx; s != NULL; s = s->next) {
        if (s->state == SBX_CREATING || s->state == SBX_BUSY) {
            n++;
        }
    }
    return n;
}


static void
busy_retry(uv_timer_t *t)
{
    faas_prov_t     *p = t->data;
    faas_prov_job_t *job;
    unsigned         busy = busy_count(p);

    while (p->busy_wait != NULL && busy < p->max_busy) {
        job = p->busy_wait;
        p->busy_wait = job->next;
        if (p->busy_wait == NULL) {
            p->busy_wait_tail = NULL;
        }
        job->next = NULL;
        busy++;   /* its sandbox is created (or refused) from here */
        try_fit(p, job);
    }
    if (p->busy_wait == NULL) {
        uv_timer_stop(&p->busy_timer);
    }
}


static void
busy_wait(faas_prov_t *p, faas_prov_job_t *job)
{
    if (!p->busy_timer_on) {
        uv_timer_init(p->loop, &p->busy_timer);
        uv_unref((uv_handle_t *) &p->busy_timer);
        p->busy_timer.data = p;
        p->busy_timer_on = 1;
    }
    if (p->busy_wait == NULL) {
        faas_info(job->req->origin_request_id, "capacity: %u sandboxes busy "
                  "or being created, requests wait", p->max_busy);
        uv_timer_start(&p->busy_timer, busy_retry, BUSY_RETRY_MS,
                       BUSY_RETRY_MS);
    }
    job->next = NULL;
    if (p->busy_wait_tail != NULL) {
        p->busy_wait_tail->next = job;
    } else {
        p->busy_wait = job;
    }
    p->busy_wait_tail = job;
}


/* See prov.h. */
void
faas_prov_capacity_reserve(faas_prov_t *p, faas_prov_job_t *job,
                           faas_prov_cap_cb cb)
{
    job->cap_cb = cb;
    job->evict_round = 0;
    if (p->max_busy > 0
        && (p->busy_wait != NULL || busy_count(p) >= p->max_busy)) {
        busy_wait(p, job);
        return;
    }
    try_fit(p, job);
}
