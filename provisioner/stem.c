/*
 * Stem cells (docs/DESIGN.md section 6): per runtime and memory size in use,
 * a small pool of generic sandboxes, started and frozen with no function
 * (sandbox.h faas_sandbox_stem_create). The first sandbox of a revision on
 * this host takes one when there is one: the create queue specialises it
 * (faas_sandbox_specialise: the code mounted at /var/task, the handler
 * imported) instead of building a sandbox. A cell serves one revision for
 * its whole life.
 *
 * Size: config "stem_cells", a number per pool or "auto" (the default):
 * the first sandboxes the pool was asked for in the last minute, between 1
 * and "stem_cells_max" (4). A pool no first sandbox asked for during
 * keep_alive_s shrinks to nothing. Refills are built one at a time, only
 * while no request is in progress (low priority), and only into free
 * memory budget: a cell never evicts anything, and idle cells are the first
 * to go when a create needs room (capacity.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "prov.h"

#define STEM_TICK_MS      250
#define STEM_WINDOW_MS    60000
#define STEM_DEMAND_RING  64

typedef struct stem_cell_s stem_cell_t;
typedef struct stem_pool_s stem_pool_t;

struct stem_cell_s {
    stem_cell_t *next;
    stem_pool_t *pool;
    faas_prov_t *prov;
    char         id[FAAS_SANDBOX_ID_LEN + 1];
    int          ready;            /* built and frozen: may be taken */
    int          rc;
    faas_error_t err;
    uv_work_t    work;
};

struct stem_pool_s {
    stem_pool_t *next;
    char        *runtime;
    unsigned     memory_mb;
    stem_cell_t *cells;
    uint64_t     demand[STEM_DEMAND_RING]; /* when first sandboxes were asked */
    unsigned     demand_next;
    uint64_t     failed_ms;        /* the last failed build: back off */
};

struct faas_prov_stem_s {
    stem_pool_t *pools;
    unsigned     fixed;            /* cells per pool; 0 with auto */
    unsigned     max;              /* auto's upper bound; 0: off */
    unsigned     building;         /* cells being built (at most one) */
    uv_timer_t   timer;
};

static void stem_refill(faas_prov_t *p);


static stem_pool_t *
pool_get(faas_prov_t *p, const char *runtime, unsigned memory_mb)
{
    stem_pool_t *pl;

    for (pl = p->stem->pools; pl != NULL; pl = pl->next) {
        if (pl->memory_mb == memory_mb && strcmp(pl->runtime, runtime) == 0) {
            return pl;
        }
    }
    pl = calloc(1, sizeof(*pl));
    if (pl == NULL || (pl->runtime = strdup(runtime)) == NULL) {
        free(pl);
        return NULL;
    }
    pl->memory_mb = memory_mb;
    pl->next = p->stem->pools;
    p->stem->pools = pl;
    return pl;
}


/* How many cells pl should hold now. */
static unsigned
pool_target(faas_prov_t *p, const stem_pool_t *pl, uint64_t now)
{
    unsigned i, recent = 0;
    uint64_t last = 0;

    for (i = 0; i < STEM_DEMAND_RING; i++) {
        if (pl->demand[i] > last) {
            last = pl->demand[i];
        }
        if (pl->demand[i] != 0 && now - pl->demand[i] < STEM_WINDOW_MS) {
            recent++;
        }
    }
    if (last == 0 || now - last > (uint64_t) p->keep_alive_s * 1000) {
        return 0;   /* not in use */
    }
    if (p->stem->fixed > 0) {
        return p->stem->fixed;
    }
    return recent < 1 ? 1 : recent > p->stem->max ? p->stem->max : recent;
}


static unsigned
pool_count(const stem_pool_t *pl)
{
    const stem_cell_t *c;
    unsigned           n = 0;

    for (c = pl->cells; c != NULL; c = c->next) {
        n++;
    }
    return n;
}


static void
cell_unlink(stem_cell_t *cell)
{
    stem_cell_t **pp;

    for (pp = &cell->pool->cells; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == cell) {
            *pp = cell->next;
            return;
        }
    }
}


static void
destroy_work(uv_work_t *w)
{
    stem_cell_t *cell = w->data;

    cell->rc = faas_sandbox_destroy(&cell->prov->host, cell->id, &cell->err);
}


static void
destroy_done(uv_work_t *w, int status)
{
    stem_cell_t *cell = w->data;
    faas_prov_t *p = cell->prov;

    (void) status;
    if (cell->rc < 0) {
        faas_err(NULL, "stem cell %s: %s", cell->id, cell->err.msg);
    }
    p->destroying--;
    free(cell);
}


/* Unlinks an idle cell, gives its memory back and destroys it. */
static void
cell_destroy(faas_prov_t *p, stem_cell_t *cell, const char *why)
{
    faas_info(NULL, "stem cell %s (%s, %u MB): destroying it, %s", cell->id,
              cell->pool->runtime, cell->pool->memory_mb, why);
    cell_unlink(cell);
    p->used_mb -= cell->pool->memory_mb;
    p->destroying++;
    cell->work.data = cell;
    uv_queue_work(p->loop, &cell->work, destroy_work, destroy_done);
}


static void
build_work(uv_work_t *w)
{
    stem_cell_t        *cell = w->data;
    faas_sandbox_spec_t limits;

    memset(&limits, 0, sizeof(limits));
    limits.runtime = cell->pool->runtime;
    limits.memory_mb = cell->pool->memory_mb;
    cell->rc = faas_sandbox_stem_create(&cell->prov->host, &limits, cell->id,
                                        &cell->err);
}


static void
build_done(uv_work_t *w, int status)
{
    stem_cell_t *cell = w->data;
    faas_prov_t *p = cell->prov;

    (void) status;
    p->stem->building--;
    if (cell->rc < 0) {
        faas_err(NULL, "stem cell %s (%s, %u MB): %s", cell->id,
                 cell->pool->runtime, cell->pool->memory_mb, cell->err.msg);
        cell->pool->failed_ms = faas_now_ms();
        cell_unlink(cell);
        p->used_mb -= cell->pool->memory_mb;
        free(cell);
        return;
    }
    cell->ready = 1;
    faas_info(NULL, "stem cell %s (%s, %u MB) ready", cell->id,
              cell->pool->runtime, cell->pool->memory_mb);
    if (p->stopping) {
        cell_destroy(p, cell, "the provisioner stops");
    }
}


static int
build_one(faas_prov_t *p, stem_pool_t *pl)
{
    stem_cell_t *cell;
    faas_error_t err;

    cell = calloc(1, sizeof(*cell));
    if (cell == NULL) {
        return -1;
    }
    if (faas_sandbox_id_new(cell->id, &err) < 0) {
        free(cell);
        return -1;
    }
    cell->pool = pl;
    cell->prov = p;
    cell->next = pl->cells;
    pl->cells = cell;
    p->used_mb += pl->memory_mb;
    p->stem->building++;
    cell->work.data = cell;
    uv_queue_work(p->loop, &cell->work, build_work, build_done);
    return 0;
}


/* Builds at most one missing cell, only while no request is in progress and
 * the memory budget has room; drops cells beyond a pool's target. */
static void
stem_refill(faas_prov_t *p)
{
    stem_pool_t *pl;
    stem_cell_t *c, *next;
    uint64_t     now = faas_now_ms();
    unsigned     target, n;

    for (pl = p->stem->pools; pl != NULL; pl = pl->next) {
        target = p->stopping ? 0 : pool_target(p, pl, now);
        n = pool_count(pl);
        for (c = pl->cells; c != NULL && n > target; c = next) {
            next = c->next;
            if (c->ready) {
                cell_destroy(p, c, p->stopping ? "the provisioner stops"
                                                : "not needed any more");
                n--;
            }
        }
        if (n >= target || p->stem->building > 0 || p->stopping
            || p->jobs > 0
            || now - pl->failed_ms < 5000
            || (unsigned long long) p->used_mb + pl->memory_mb
                   > p->memory_budget_mb) {
            continue;
        }
        build_one(p, pl);
    }
}


static void
stem_tick(uv_timer_t *t)
{
    stem_refill(t->data);
}


/* See prov.h. */
int
faas_prov_stem_init(faas_prov_t *p, faas_error_t *err)
{
    const json_t *v = json_object_get(p->cfg, "stem_cells");
    long long     max = faas_config_int(p->cfg, "stem_cells_max", 4);

    p->stem = calloc(1, sizeof(*p->stem));
    if (p->stem == NULL) {
        return faas_error_set(err, ENOMEM, "stem cells");
    }
    if (max < 0 || max > 64) {
        return faas_error_set(err, 0, "config: stem_cells_max must be in "
                              "[0, 64]");
    }
    p->stem->max = (unsigned) max;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > 64) {
            return faas_error_set(err, 0, "config: stem_cells must be "
                                  "\"auto\" or in [0, 64]");
        }
        p->stem->fixed = (unsigned) json_integer_value(v);
        if (p->stem->fixed == 0) {
            p->stem->max = 0;   /* off */
        }
    } else if (v != NULL && (!json_is_string(v)
                             || strcmp(json_string_value(v), "auto") != 0)) {
        return faas_error_set(err, 0, "config: stem_cells must be \"auto\" "
                              "or in [0, 64]");
    }
    uv_timer_init(p->loop, &p->stem->timer);
    p->stem->timer.data = p;
    if (p->stem->max > 0 || p->stem->fixed > 0) {
        uv_timer_start(&p->stem->timer, stem_tick, STEM_TICK_MS, STEM_TICK_MS);
    }
    return 0;
}


/* See prov.h. */
void
faas_prov_stem_take(faas_prov_t *p, faas_prov_job_t *job)
{
    const faas_prov_sbx_t *s;
    stem_pool_t           *pl;
    stem_cell_t           *c;

    job->stem_id[0] = '\0';
    if (p->stem == NULL || (p->stem->fixed == 0 && p->stem->max == 0)) {
        return;
    }
    for (s = p->sbx; s != NULL; s = s->next) {
        if (strcmp(s->rid, job->req->rid) == 0) {
            return;   /* not its first sandbox: a zygote may serve it */
        }
    }
    pl = pool_get(p, job->rev->runtime, job->memory_mb);
    if (pl == NULL) {
        return;
    }
    pl->demand[pl->demand_next++ % STEM_DEMAND_RING] = faas_now_ms();
    for (c = pl->cells; c != NULL && !c->ready; c = c->next) {
    }
    if (c != NULL) {
        /* its memory moves to the job, which reserves it again */
        memcpy(job->stem_id, c->id, sizeof(job->stem_id));
        cell_unlink(c);
        p->used_mb -= pl->memory_mb;
        free(c);
    }
}


/* See prov.h. */
unsigned
faas_prov_stem_release(faas_prov_t *p, unsigned need_mb)
{
    stem_pool_t *pl;
    stem_cell_t *c, *next;
    unsigned     freed = 0;

    for (pl = p->stem != NULL ? p->stem->pools : NULL;
         pl != NULL && freed < need_mb; pl = pl->next) {
        for (c = pl->cells; c != NULL && freed < need_mb; c = next) {
            next = c->next;
            if (c->ready) {
                freed += pl->memory_mb;
                cell_destroy(p, c, "the host is full");
            }
        }
    }
    return freed;
}


/* See prov.h. */
void
faas_prov_stem_discard(faas_prov_t *p, faas_prov_job_t *job)
{
    stem_cell_t *cell;

    if (job->stem_id[0] == '\0' || (cell = calloc(1, sizeof(*cell))) == NULL) {
        return;   /* (out of memory: the next start destroys it) */
    }
    memcpy(cell->id, job->stem_id, sizeof(cell->id));
    job->stem_id[0] = '\0';
    cell->prov = p;
    faas_info(NULL, "stem cell %s: destroying it, unused", cell->id);
    p->destroying++;
    cell->work.data = cell;
    uv_queue_work(p->loop, &cell->work, destroy_work, destroy_done);
}


/* See prov.h. */
void
faas_prov_stem_stop(faas_prov_t *p)
{
    if (p->stem != NULL) {
        uv_timer_stop(&p->stem->timer);
        stem_refill(p);   /* stopping: every pool's target is 0 */
    }
}
