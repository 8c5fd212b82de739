/*
 * Consuming the queues of the shards this host leads, and the life of one
 * ProvisionRequest: revision -> code -> capacity -> create (thread pool, at
 * most create_concurrency at once) -> listed in faas:idle:{rid}. A failure
 * DECRs faas:count:{rid} and RPUSHes the reason to
 * faas:err:{rid}:<request-id>.
 *
 * Reliable consumption (nothing queued is lost by a kill -9): each held
 * shard has its own blocking connection issuing
 *   BLMOVE faas:prov:q:<shard> faas:prov:work:<host-id> LEFT RIGHT 1
 * so a request leaves its queue only by landing, atomically, in this host's
 * processing list. It leaves that list only together with its outcome: one
 * Lua script LREMs it and RPUSHes the idle entry, or LREMs it and DECRs the
 * count and pushes the error. A script that finds it gone (another host took
 * it over, see leases.c) changes nothing, so every request gets exactly one
 * sandbox or one error. At start the requests left in this host's list by
 * its previous run are served first (a sandbox that run finished building
 * for one of them is listed instead of building another).
 *
 * BLMOVEs are issued only while fewer than max_pending jobs are in progress
 * (each held shard may add one more), so requests stay in Redis while this
 * host is saturated.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "entry.h"
#include "keys.h"
#include "log.h"
#include "prov.h"

static void job_create_next(faas_prov_t *p);
static void job_start(faas_prov_t *p, const char *queue, const char *raw,
                      size_t raw_len, int recovered);

/* The request's outcome "listed", atomically with leaving the processing
 * list and with noting the sandbox in this host's faas:prov:sbx:<host>:
 * KEYS work, idle, sbx; ARGV request, entry, sandbox id, rid. 0: not in the
 * list (taken over by another host: nothing is pushed). */
static const char *FIN_OK_LUA =
    "if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
    "redis.call('rpush', KEYS[2], ARGV[2]) "
    "redis.call('hset', KEYS[3], ARGV[3], ARGV[4]) return 1";
/* The outcome "failed": KEYS work, count [, err]; ARGV request, reason,
 * ttl. 0: not in the list (served elsewhere: nothing is changed). */
static const char *FIN_ERR_LUA =
    "if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 0 then return 0 end "
    "redis.call('decr', KEYS[2]) "
    "if KEYS[3] then redis.call('rpush', KEYS[3], ARGV[2]) "
    "redis.call('expire', KEYS[3], ARGV[3]) end return 1";

enum { FIN_OK = 1, FIN_ERR, FIN_DROP };

/* One outcome script, kept until Redis has answered it. */
typedef struct faas_prov_fin_s {
    struct faas_prov_fin_s *next;
    faas_prov_t *prov;
    int          kind;
    int          retry;   /* an earlier attempt may have run */
    char         sid[FAAS_SANDBOX_ID_LEN + 1];
    int          argc;
    int          raw_idx;   /* argv index of the request */
    char        *argv[10];
    size_t       len[10];
} fin_t;

static faas_prov_t *q_prov;

static void fin_send(fin_t *f);


static void
fin_free(fin_t *f)
{
    int i;

    for (i = 0; i < f->argc; i++) {
        free(f->argv[i]);
    }
    free(f);
}


static void
fin_arg(fin_t *f, const char *s, size_t len)
{
    if (f->argc >= (int) (sizeof(f->argv) / sizeof(f->argv[0]))) {
        abort();   /* a programming error: more arguments than slots */
    }
    f->argv[f->argc] = malloc(len + 1);
    if (f->argv[f->argc] != NULL) {
        memcpy(f->argv[f->argc], s, len);
        f->argv[f->argc][len] = '\0';
    }
    f->len[f->argc++] = len;
}


static fin_t *
fin_new(faas_prov_t *p, int kind)
{
    fin_t *f = calloc(1, sizeof(*f));

    if (f != NULL) {
        f->prov = p;
        f->kind = kind;
    }
    return f;
}


static void
fin_later(fin_t *f)
{
    f->next = f->prov->fin_retry;
    f->prov->fin_retry = f;
}


static void
fin_cb(redisAsyncContext *ac, void *reply, void *data)
{
    fin_t           *f = data;
    faas_prov_t     *p = f->prov;
    redisReply      *r = reply;
    faas_prov_sbx_t *s;

    (void) ac;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        /* Unknown whether it ran: send it again (reconciliation tick). */
        faas_warn(NULL, "processing list: outcome not confirmed (%s), will "
                  "retry", r ? r->str : "no reply");
        f->retry = 1;
        fin_later(f);
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 0 && !f->retry) {
        if (f->kind == FIN_OK && (s = faas_prov_sbx_find(p, f->sid)) != NULL) {
            /* Another host took the request over (this one looked dead):
             * its copy is served there; this sandbox was never counted. */
            faas_warn(NULL, "sandbox %s (%s): its request was taken over by "
                      "another host", s->id, s->rid);
            s->nocount = 1;
            faas_prov_sbx_destroy(p, s, "request taken over elsewhere");
        } else if (f->kind == FIN_ERR) {
            faas_warn(NULL, "a failed request was taken over by another "
                      "host: its outcome is left to that host");
        }
    }
    fin_free(f);
}


static void
fin_send(fin_t *f)
{
    int i;

    for (i = 0; i < f->argc; i++) {
        if (f->argv[i] == NULL) {
            faas_err(NULL, "processing list: out of memory, outcome lost");
            fin_free(f);
            return;
        }
    }
    if (faas_prov_redis_cmdargv(&f->prov->cmd, fin_cb, f, f->argc,
                                (const char **) f->argv, f->len)
        != 0) {
        fin_later(f);   /* Redis is down: the script did not run */
    }
}


/* See prov.h. */
void
faas_prov_queue_retry(faas_prov_t *p)
{
    fin_t *f = p->fin_retry, *next;

    p->fin_retry = NULL;
    for (; f != NULL; f = next) {
        next = f->next;
        f->next = NULL;
        fin_send(f);
    }
}


/* Drops raw from the processing list (an undecodable request). */
static void
fin_drop(faas_prov_t *p, const char *raw, size_t raw_len)
{
    fin_t *f = fin_new(p, FIN_DROP);

    if (f == NULL) {
        return;
    }
    fin_arg(f, "LREM", 4);
    fin_arg(f, p->work_key, strlen(p->work_key));
    fin_arg(f, "1", 1);
    f->raw_idx = f->argc;
    fin_arg(f, raw, raw_len);
    fin_send(f);
}


/* Lists s (entry already set) for request raw, atomically. */
static void
fin_listed(faas_prov_t *p, faas_prov_sbx_t *s, const char *raw,
           size_t raw_len)
{
    fin_t *f = fin_new(p, FIN_OK);
    char   key[512], sbx_key[512];

    if (f == NULL) {
        return;
    }
    snprintf(f->sid, sizeof(f->sid), "%s", s->id);
    faas_key_idle(key, sizeof(key), s->rid, strlen(s->rid));
    faas_key_prov_sbx(sbx_key, sizeof(sbx_key), p->host_id);
    fin_arg(f, "EVAL", 4);
    fin_arg(f, FIN_OK_LUA, strlen(FIN_OK_LUA));
    fin_arg(f, "3", 1);
    fin_arg(f, p->work_key, strlen(p->work_key));
    fin_arg(f, key, strlen(key));
    fin_arg(f, sbx_key, strlen(sbx_key));
    f->raw_idx = f->argc;
    fin_arg(f, raw, raw_len);
    fin_arg(f, s->entry, strlen(s->entry));
    fin_arg(f, s->id, strlen(s->id));
    fin_arg(f, s->rid, strlen(s->rid));
    fin_send(f);
}


/*
 * The outcome "failed" of the request raw (its processing-list entry; NULL:
 * none): atomically takes it out of this host's processing list, DECRs the
 * count and pushes reason to faas:err:{rid}:<origin>.
 */
static void
request_fail(faas_prov_t *p, const char *rid, const char *origin,
             const char *reason, const char *raw, size_t raw_len)
{
    char   key[512], ttl[32];
    fin_t *f;
    int    has_err = origin != NULL && *origin != '\0';

    faas_warn(origin, "provision %s failed: %s", rid, reason);
    f = fin_new(p, FIN_ERR);
    if (f == NULL) {
        return;
    }
    fin_arg(f, "EVAL", 4);
    fin_arg(f, FIN_ERR_LUA, strlen(FIN_ERR_LUA));
    fin_arg(f, has_err ? "3" : "2", 1);
    fin_arg(f, p->work_key, strlen(p->work_key));
    faas_key_count(key, sizeof(key), rid, strlen(rid));
    fin_arg(f, key, strlen(key));
    if (has_err) {
        faas_key_err(key, sizeof(key), rid, strlen(rid), origin);
        fin_arg(f, key, strlen(key));
    }
    f->raw_idx = f->argc;
    fin_arg(f, raw != NULL ? raw : "", raw != NULL ? raw_len : 0);
    fin_arg(f, reason, strlen(reason));
    snprintf(ttl, sizeof(ttl), "%u", p->err_ttl_s);
    fin_arg(f, ttl, strlen(ttl));
    fin_send(f);
}


static void
job_done(faas_prov_t *p, faas_prov_job_t *job)
{
    faas_prov_rev_release(p, job->rev);
    faas__provision_request__free_unpacked(job->req, NULL);
    *job->all_prev = job->all_next;
    if (job->all_next != NULL) {
        job->all_next->all_prev = job->all_prev;
    }
    free(job->raw);
    free(job);
    p->jobs--;
    faas_prov_queue_kick(p);
}


static void
job_fail(faas_prov_t *p, faas_prov_job_t *job, const char *reason)
{
    if (job->sbx == NULL) {
        faas_prov_stem_discard(p, job);   /* a cell it took and never used */
    }
    faas_metric_add(faas_prov_m.create_failures, 1);
    request_fail(p, job->req->rid, job->req->origin_request_id, reason,
                         job->raw, job->raw_len);
    if (job->sbx != NULL) {
        faas_prov_sbx_free(p, job->sbx);   /* drops the code reference too */
        job->sbx = NULL;
        job->code = NULL;
    }
    if (job->code != NULL) {
        faas_prov_code_release(p, job->code);
    }
    job_done(p, job);
}


/*
 * The host pid of sandbox id's init (meta.json), 0 if unknown; *child set
 * when it is a child of this process (re-parented to this subreaper once the
 * create's intermediate process exited).
 */
static pid_t
sbx_pid(faas_prov_t *p, const char *id, int *child)
{
    json_t      *meta = NULL;
    faas_error_t err;
    pid_t        pid = 0;
    char         path[64], buf[512], *rp;
    FILE        *f;
    long         ppid;

    *child = 0;
    if (faas_sandbox_meta(&p->host, id, &meta, &err) == 0) {
        pid = (pid_t) json_integer_value(json_object_get(meta, "pid"));
        json_decref(meta);
    }
    if (pid <= 0) {
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
    f = fopen(path, "re");
    if (f != NULL) {
        if (fgets(buf, sizeof(buf), f) != NULL
            && (rp = strrchr(buf, ')')) != NULL
            && sscanf(rp + 1, " %*c %ld", &ppid) == 1) {
            *child = ppid == (long) getpid();
        }
        fclose(f);
    }
    return pid;
}


static void
create_work(uv_work_t *w)
{
    faas_prov_job_t            *job = w->data;
    faas_prov_t                *p = job->prov;
    Faas__ProvisionRequest *req = job->req;
    const faas_prov_rev_t  *rev = job->rev;
    faas_sandbox_spec_t    spec;

    /* rev is shared with the loop thread, which only reads it too */
    memset(&spec, 0, sizeof(spec));
    spec.function = rev->function;
    spec.version = rev->version;
    spec.runtime = rev->runtime;
    spec.handler = rev->handler;
    spec.code_dir = job->code->dir;
    spec.memory_mb = job->memory_mb;
    spec.timeout_ms = rev->timeout_ms;
    spec.origin_request_id = *req->origin_request_id ? req->origin_request_id
                                                      : NULL;
    spec.env = json_object_size(rev->env) > 0 ? rev->env : NULL;
    job->create_ms = faas_now_ms();
    job->rc = -1;
    if (job->stem_id[0] != '\0') {
        job->rc = faas_sandbox_specialise(&p->host, &spec, job->sbx->id,
                                          &job->import_ms, &job->err);
        if (job->rc < 0) {   /* this sandbox the fresh way, then */
            faas_warn(spec.origin_request_id, "%s", job->err.msg);
            faas_sandbox_destroy(&p->host, job->sbx->id, &job->err);
            job->stem_id[0] = '\0';
        }
    }
    if (job->rc < 0) {
        job->rc = faas_sandbox_create(&p->host, &spec, job->sbx->id,
                                      &job->err);
    }
    job->create_ms = faas_now_ms() - job->create_ms;
    if (job->rc == 0) {
        /* What it used to start: any growth later is an invocation. */
        job->sbx->cpu_known =
            faas_prov_sbx_cpu_usec(p, job->sbx, &job->sbx->cpu_usec) == 0;
        job->sbx->pid = sbx_pid(p, job->sbx->id, &job->sbx->child);
        job->rc = faas_prov_sbx_save(p, job->sbx, &job->err);
        if (job->rc < 0) {
            faas_error_t derr;

            faas_sandbox_destroy(&p->host, job->sbx->id, &derr);
        }
    }
}


static void
create_done(uv_work_t *w, int status)
{
    faas_prov_job_t *job = w->data;
    faas_prov_t     *p = job->prov;
    faas_prov_sbx_t *s = job->sbx;
    char        reason[PROV_REASON_MAX];

    (void) status;
    p->creating--;
    job_create_next(p);
    if (job->rc < 0) {
        snprintf(reason, sizeof(reason), "runtime failed to start: %s",
                 job->err.msg);
        job_fail(p, job, reason);
        return;
    }
    s->entry = faas_prov_sbx_entry(p, s->id, job->req->origin_request_id);
    if (s->entry == NULL) {
        s->nocount = 1;   /* job_fail DECRs */
        faas_prov_sbx_destroy(p, s, "out of memory");
        job->sbx = NULL;
        job->code = NULL;
        job_fail(p, job, "out of memory");
        return;
    }
    s->state = SBX_IDLE;
    s->last_used_ms = faas_now_ms();
    faas_metric_add(faas_prov_m.creates, 1);
    faas_metric_observe_us(faas_prov_m.create_seconds, job->create_ms * 1000);
    /* Listed and out of the processing list in one step; if the reply is
     * lost the script is sent again (the reconciliation re-lists it too). */
    fin_listed(p, s, job->raw, job->raw_len);
    if (job->stem_id[0] != '\0') {
        faas_info(job->req->origin_request_id, "sandbox %s (%s) idle in "
                  "%llu ms (specialised stem cell in %llu ms, import %.3f ms)",
                  s->id, s->rid,
                  (unsigned long long) (faas_now_ms() - job->popped_ms),
                  (unsigned long long) job->create_ms, job->import_ms);
    } else {
        faas_info(job->req->origin_request_id,
                  "sandbox %s (%s) idle in %llu ms (create %llu ms)", s->id,
                  s->rid, (unsigned long long) (faas_now_ms() - job->popped_ms),
                  (unsigned long long) job->create_ms);
    }
    job->sbx = NULL;
    job->code = NULL;   /* the sandbox holds the reference now */
    job_done(p, job);
}


static void
job_create_next(faas_prov_t *p)
{
    faas_prov_job_t *job;

    while (p->creating < p->create_concurrency && p->create_q != NULL) {
        job = p->create_q;
        p->create_q = job->next;
        if (p->create_q == NULL) {
            p->create_q_tail = NULL;
        }
        job->next = NULL;
        job->work.data = job;
        p->creating++;
        uv_queue_work(p->loop, &job->work, create_work, create_done);
    }
}


static void
cap_cb(faas_prov_t *p, faas_prov_job_t *job, int ok)
{
    char id[FAAS_SANDBOX_ID_LEN + 1], why[256];
    faas_error_t err;
    const char  *refused;

    if (!ok) {
        job_fail(p, job, FAAS_REASON_HOST_FULL);
        return;
    }
    refused = faas_prov_owner_refuse(p, job, why, sizeof(why));
    if (refused != NULL) {
        job_fail(p, job, refused);
        return;
    }
    if (job->stem_id[0] != '\0') {
        memcpy(id, job->stem_id, sizeof(id));
    } else if (faas_sandbox_id_new(id, &err) < 0) {
        job_fail(p, job, err.msg);
        return;
    }
    job->sbx = faas_prov_sbx_add(p, id, job->req->rid, job->memory_mb,
                            job->keep_alive_s);
    if (job->sbx == NULL) {
        job_fail(p, job, "out of memory");
        return;
    }
    faas_prov_owner_note(job->sbx, job);
    job->sbx->code = job->code;   /* the job's reference moves to it */
    job->sbx->timeout_ms = job->rev->timeout_ms;
    if (p->create_q_tail != NULL) {
        p->create_q_tail->next = job;
    } else {
        p->create_q = job;
    }
    p->create_q_tail = job;
    job_create_next(p);
}


static void
code_cb(faas_prov_t *p, faas_prov_job_t *job, faas_prov_code_t *code,
        const char *reason)
{
    if (code == NULL) {
        job_fail(p, job, reason);
        return;
    }
    job->code = code;
    faas_prov_stem_take(p, job);
    faas_prov_capacity_reserve(p, job, cap_cb);
}


static void
rev_cb(faas_prov_t *p, faas_prov_job_t *job, const char *reason)
{
    if (reason != NULL) {
        job_fail(p, job, reason);
        return;
    }
    job->memory_mb = job->rev->memory_mb;
    job->keep_alive_s = job->rev->keep_alive_s;
    faas_prov_code_acquire(p, job, code_cb);
}


static int
origin_valid(const char *s)
{
    return faas_request_id_valid(s, strlen(s));
}


/* The reason a request cannot be served, or NULL. */
static const char *
req_invalid(const Faas__ProvisionRequest *req)
{
    if (!faas_rid_valid(req->rid, strlen(req->rid))) {
        return "bad request: invalid revision id";
    }
    if (*req->origin_request_id != '\0'
        && !origin_valid(req->origin_request_id)) {
        return "bad request: invalid origin request id";
    }
    return NULL;
}


/*
 * A request left in the processing list by this host's previous run: if
 * that run finished building its sandbox (state file written, still frozen
 * and alive), list that one; one it did not finish is destroyed (never
 * counted) and the request is served afresh. Returns 1 when done with it.
 */
static int
recover_adopted(faas_prov_t *p, const Faas__ProvisionRequest *req,
                const char *raw, size_t raw_len)
{
    faas_prov_sbx_t *s;
    int              frozen;

    if (*req->origin_request_id == '\0') {
        return 0;
    }
    for (s = p->sbx; s != NULL; s = s->next) {
        if (s->origin != NULL && !s->claimed && s->state == SBX_BUSY
            && strcmp(s->origin, req->origin_request_id) == 0
            && strcmp(s->rid, req->rid) == 0) {
            break;
        }
    }
    if (s == NULL) {
        return 0;
    }
    s->claimed = 1;
    if (s->had_state && faas_prov_sbx_alive(p, s, &frozen) && frozen) {
        free(s->entry);
        s->entry = faas_prov_sbx_entry(p, s->id, req->origin_request_id);
        if (s->entry != NULL) {
            faas_info(req->origin_request_id, "sandbox %s (%s): built before "
                      "the restart, listing it", s->id, s->rid);
            s->state = SBX_IDLE;
            s->last_used_ms = faas_now_ms();
            fin_listed(p, s, raw, raw_len);
            return 1;
        }
    }
    s->nocount = 1;
    faas_prov_sbx_destroy(p, s, "its create did not finish before the "
                          "restart");
    return 0;
}


/*
 * Starts serving one request, raw as it sits in this host's processing list
 * (moved there by BLMOVE, or left there by the previous run: recovered).
 */
static void
job_start(faas_prov_t *p, const char *queue, const char *raw, size_t raw_len,
          int recovered)
{
    Faas__ProvisionRequest *req;
    faas_prov_job_t *job;
    const char *bad;

    req = faas__provision_request__unpack(NULL, raw_len,
                                          (const uint8_t *) raw);
    if (req == NULL) {
        faas_err(NULL, "%s: dropped an undecodable ProvisionRequest (%zu "
                 "bytes)", queue, raw_len);
        fin_drop(p, raw, raw_len);
        return;
    }
    bad = req_invalid(req);
    if (bad != NULL) {
        if (faas_rid_valid(req->rid, strlen(req->rid))) {
            request_fail(p, req->rid,
                                 origin_valid(req->origin_request_id)
                                     ? req->origin_request_id
                                     : NULL,
                                 bad, raw, raw_len);
        } else {
            faas_err(NULL, "%s: dropped a request: %s", queue, bad);
            fin_drop(p, raw, raw_len);
        }
        faas__provision_request__free_unpacked(req, NULL);
        return;
    }
    if (recovered && recover_adopted(p, req, raw, raw_len)) {
        faas__provision_request__free_unpacked(req, NULL);
        return;
    }
    job = calloc(1, sizeof(*job));
    if (job == NULL || (job->raw = malloc(raw_len + 1)) == NULL) {
        free(job);
        request_fail(p, req->rid, req->origin_request_id,
                             "out of memory", raw, raw_len);
        faas__provision_request__free_unpacked(req, NULL);
        return;
    }
    memcpy(job->raw, raw, raw_len);
    job->raw_len = raw_len;
    job->prov = p;
    job->req = req;
    job->popped_ms = faas_now_ms();
    job->all_next = p->all_jobs;
    if (p->all_jobs != NULL) {
        p->all_jobs->all_prev = &job->all_next;
    }
    job->all_prev = &p->all_jobs;
    p->all_jobs = job;
    p->jobs++;
    faas_debug(req->origin_request_id, "%s: provisioning %s%s", queue,
               req->rid, recovered ? " (left by the previous run)" : "");
    faas_prov_rev_acquire(p, job, rev_cb);
}


static void
blmove_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t *p = q_prov;
    redisReply  *r = reply;
    unsigned     shard = (unsigned) (uintptr_t) data;
    char         queue[64];

    (void) ac;
    p->q_pending[shard] = 0;
    p->q_outstanding--;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        faas_key_prov_queue(queue, sizeof(queue), shard);
        job_start(p, queue, r->str, r->len, 0);
    } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        faas_err(NULL, "BLMOVE: %s", r->str);
    } else if (r == NULL && !p->stopping) {
        /* The connection broke: Redis may have moved a request whose
         * reply we lost. Stop taking more, and once no BLMOVE is out,
         * serve what is in the list that no job serves. */
        faas_warn(NULL, "%u: BLMOVE reply lost, checking %s", shard,
                  p->work_key);
        p->recovered = 0;
    }
    faas_prov_leases_flush(p);
    faas_prov_queue_kick(p);
}


/* 1 when a job in progress, or an outcome waiting to be sent again,
 * serves the request raw (same bytes: each request carries its own origin
 * id and enqueue time). */
static int
job_serves(faas_prov_t *p, const char *raw, size_t raw_len)
{
    faas_prov_job_t *job;
    fin_t           *f;

    for (job = p->all_jobs; job != NULL; job = job->all_next) {
        if (job->raw_len == raw_len && memcmp(job->raw, raw, raw_len) == 0) {
            return 1;
        }
    }
    /* Served, but the outcome's reply was lost (to be sent again). */
    for (f = p->fin_retry; f != NULL; f = f->next) {
        if (f->len[f->raw_idx] == raw_len
            && memcmp(f->argv[f->raw_idx], raw, raw_len) == 0) {
            return 1;
        }
    }
    return 0;
}


static void
recover_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t     *p = data;
    redisReply      *r = reply;
    faas_prov_sbx_t *s, *next;
    size_t           i;

    (void) ac;
    p->recover_pending = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return;   /* tried again at the next kick */
    }
    p->recovered = 1;
    if (p->recovered_once) {
        /* After a lost BLMOVE reply: what no job in progress serves. */
        for (i = 0; i < r->elements; i++) {
            if (r->element[i]->type == REDIS_REPLY_STRING
                && !job_serves(p, r->element[i]->str, r->element[i]->len)) {
                faas_warn(NULL, "%s: serving a request whose BLMOVE reply "
                          "was lost", p->work_key);
                job_start(p, p->work_key, r->element[i]->str,
                          r->element[i]->len, 0);
            }
        }
        faas_prov_queue_kick(p);
        return;
    }
    p->recovered_once = 1;
    if (r->elements > 0) {
        faas_info(NULL, "%s: %zu requests left by the previous run",
                  p->work_key, r->elements);
    }
    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            job_start(p, p->work_key, r->element[i]->str, r->element[i]->len,
                      1);
        }
    }
    /* Sandboxes whose create never finished and whose request is no longer
     * ours (served, failed, or taken over by another host): never listed,
     * never counted. */
    for (s = p->sbx; s != NULL; s = next) {
        next = s->next;
        if (!s->had_state && !s->claimed && s->state == SBX_BUSY) {
            s->nocount = 1;
            faas_prov_sbx_destroy(p, s, "its create never finished");
        }
    }
    faas_prov_queue_kick(p);
}


/*
 * Takes up the previous run's requests first (once), then issues a BLMOVE
 * on each held shard that has none outstanding, while there is room.
 */
void
faas_prov_queue_kick(faas_prov_t *p)
{
    faas_prov_redis_t *c;
    unsigned           i;
    char               queue[64], *name;

    q_prov = p;
    if (p->stopping || !p->cmd.ready) {
        return;
    }
    if (!p->recovered) {
        /* Not while a BLMOVE is out: its request would look unserved. */
        if (!p->recover_pending && p->q_outstanding == 0
            && faas_prov_redis_cmd(&p->cmd, recover_cb, p, "LRANGE %s 0 -1",
                                   p->work_key)
                   == 0) {
            p->recover_pending = 1;
        }
        return;
    }
    for (i = 0; i < p->shards && p->jobs < p->max_pending; i++) {
        if (p->q_pending[i] || !faas_prov_leases_consumable(p, i)) {
            continue;
        }
        c = &p->qc[i];
        if (c->prov == NULL) {
            /* First time this host leads the shard: its own connection
             * (a BLMOVE blocks it); kicks again once connected. */
            if (asprintf(&name, "q%u", i) < 0) {
                continue;
            }
            faas_prov_redis_start(p, c, name, faas_prov_queue_kick);
            continue;
        }
        if (!c->ready) {
            continue;
        }
        faas_key_prov_queue(queue, sizeof(queue), i);
        if (faas_prov_redis_cmd(c, blmove_cb, (void *) (uintptr_t) i,
                                "BLMOVE %s %s LEFT RIGHT 1", queue,
                                p->work_key)
            == 0) {
            p->q_pending[i] = 1;
            p->q_sent_ms[i] = faas_now_ms();
            p->q_outstanding++;
        }
    }
}


/* See prov.h. */
void
faas_prov_queue_watchdog(faas_prov_t *p)
{
    uint64_t now = faas_now_ms();
    unsigned i;

    for (i = 0; i < p->shards; i++) {
        if (p->q_pending[i] && now - p->q_sent_ms[i] > 5000) {
            faas_prov_redis_reset(&p->qc[i], "BLMOVE (1 s) unanswered for 5 s");
        }
    }
}


/* See prov.h. */
void
faas_prov_queue_stop(faas_prov_t *p)
{
    unsigned i;

    for (i = 0; i < p->shards; i++) {
        if (p->qc[i].prov != NULL) {
            faas_prov_redis_stop(&p->qc[i]);
        }
    }
}
