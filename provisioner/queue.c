/*
 * Consuming the queues of the shards this host leads, and the life of one
 * ProvisionRequest: code -> capacity -> create (thread pool, at most
 * create_concurrency at once) -> RPUSH faas:idle:{rid}. A failure DECRs
 * faas:count:{rid} and RPUSHes the reason to faas:err:{rid}:<request-id>.
 *
 * One BLPOP (1 s timeout, re-issued) is outstanding at a time, on the
 * dedicated `blk` connection, and only while fewer than max_pending jobs are
 * in progress, so requests stay in Redis while this host is saturated.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prov.h"

static void job_create_next(faas_prov_t *p);


/* DECR the count and hand the reason to the waiting gateway. */
void
faas_prov_queue_fail(faas_prov_t *p, const char *rid, const char *origin,
                const char *reason)
{
    char key[512];

    faas_warn(origin, "provision %s failed: %s", rid, reason);
    snprintf(key, sizeof(key), "faas:count:{%s}", rid);
    faas_prov_redis_cmd(&p->cmd, NULL, NULL, "DECR %s", key);
    if (origin == NULL || *origin == '\0') {
        return;
    }
    snprintf(key, sizeof(key), "faas:err:{%s}:%s", rid, origin);
    faas_prov_redis_cmd(&p->cmd, NULL, NULL, "RPUSH %s %s", key, reason);
    faas_prov_redis_cmd(&p->cmd, NULL, NULL, "EXPIRE %s %u", key, p->err_ttl_s);
}


static void
job_done(faas_prov_t *p, faas_prov_job_t *job)
{
    faas__provision_request__free_unpacked(job->req, NULL);
    free(job);
    p->jobs--;
    faas_prov_queue_kick(p);
}


static void
job_fail(faas_prov_t *p, faas_prov_job_t *job, const char *reason)
{
    faas_prov_queue_fail(p, job->req->rid, job->req->origin_request_id, reason);
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


static void
create_work(uv_work_t *w)
{
    faas_prov_job_t            *job = w->data;
    faas_prov_t                *p = job->prov;
    Faas__ProvisionRequest *req = job->req;
    faas_sandbox_spec_t    spec;
    json_t                *env = NULL;
    size_t                 i;

    memset(&spec, 0, sizeof(spec));
    spec.function = req->function;
    spec.version = req->version;
    spec.runtime = req->runtime;
    spec.handler = req->handler;
    spec.code_dir = job->code->dir;
    spec.memory_mb = job->memory_mb;
    spec.timeout_ms = req->timeout_ms;
    spec.origin_request_id = *req->origin_request_id ? req->origin_request_id
                                                      : NULL;
    if (req->n_env > 0) {
        env = json_object();
        for (i = 0; env != NULL && i < req->n_env; i++) {
            json_object_set_new(env, req->env[i]->key,
                                json_string(req->env[i]->value));
        }
        spec.env = env;
    }
    job->create_ms = faas_prov_now_ms();
    job->rc = faas_sandbox_create(&p->host, &spec, job->sbx->id, &job->err);
    job->create_ms = faas_prov_now_ms() - job->create_ms;
    json_decref(env);
    if (job->rc == 0) {
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
    char        key[512], reason[PROV_REASON_MAX];

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
    s->state = SBX_IDLE;
    s->last_used_ms = faas_prov_now_ms();
    snprintf(key, sizeof(key), "faas:idle:{%s}", s->rid);
    if (s->entry == NULL
        || faas_prov_redis_cmd(&p->cmd, NULL, NULL, "RPUSH %s %s", key,
                               s->entry)
               != 0) {
        /* Listed by the reconciliation once Redis is back. */
        faas_err(job->req->origin_request_id, "sandbox %s: cannot list it",
                 s->id);
        s->state = SBX_BUSY;
        s->unlisted_ms = 0;
    }
    faas_info(job->req->origin_request_id,
              "sandbox %s (%s) idle in %llu ms (create %llu ms)", s->id, s->rid,
              (unsigned long long) (faas_prov_now_ms() - job->popped_ms),
              (unsigned long long) job->create_ms);
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
    char id[FAAS_SANDBOX_ID_LEN + 1];
    faas_error_t err;

    if (!ok) {
        job_fail(p, job, "host full");
        return;
    }
    if (faas_sandbox_id_new(id, &err) < 0) {
        job_fail(p, job, err.msg);
        return;
    }
    job->sbx = faas_prov_sbx_add(p, id, job->req->rid, job->memory_mb,
                            job->keep_alive_s);
    if (job->sbx == NULL) {
        job_fail(p, job, "out of memory");
        return;
    }
    job->sbx->code = job->code;   /* the job's reference moves to it */
    job->sbx->timeout_ms = job->req->timeout_ms ? job->req->timeout_ms : 3000;
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
    faas_prov_capacity_reserve(p, job, cap_cb);
}


static int
is_hex(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!isxdigit((unsigned char) s[i]) || isupper((unsigned char) s[i])) {
            return 0;
        }
    }
    return s[n] == '\0';
}


static int
name_valid(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > 63 || !(s[0] >= 'a' && s[0] <= 'z')) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
              || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}


/* The reason a request cannot be served, or NULL. */
static const char *
req_invalid(const Faas__ProvisionRequest *req)
{
    char rid[128];

    if (!name_valid(req->function) || req->version == 0) {
        return "bad request: invalid function name or version";
    }
    snprintf(rid, sizeof(rid), "%s@%u", req->function, req->version);
    if (strcmp(rid, req->rid) != 0) {
        return "bad request: rid does not match function and version";
    }
    if (*req->origin_request_id != '\0'
        && !is_hex(req->origin_request_id, 32)) {
        return "bad request: invalid origin request id";
    }
    if (strcmp(req->runtime, "python3") != 0
        && strcmp(req->runtime, "nodejs") != 0) {
        return "bad request: unknown runtime";
    }
    if (*req->handler == '\0' || strchr(req->handler, '.') == NULL) {
        return "bad request: invalid handler";
    }
    if (*req->code_key == '\0') {
        return "bad request: no code key";
    }
    if (!is_hex(req->code_sha256, 64)) {
        return "bad request: invalid code sha256";
    }
    return NULL;
}


static void
job_start(faas_prov_t *p, const char *queue, const redisReply *val)
{
    Faas__ProvisionRequest *req;
    faas_prov_job_t *job;
    const char *bad;

    req = faas__provision_request__unpack(NULL, val->len,
                                          (const uint8_t *) val->str);
    if (req == NULL) {
        faas_err(NULL, "%s: dropped an undecodable ProvisionRequest (%zu "
                 "bytes)", queue, (size_t) val->len);
        return;
    }
    bad = req_invalid(req);
    if (bad != NULL) {
        if (name_valid(req->function) && req->version > 0
            && strlen(req->rid) < 100 && strchr(req->rid, '}') == NULL) {
            faas_prov_queue_fail(p, req->rid,
                            is_hex(req->origin_request_id, 32)
                                ? req->origin_request_id
                                : NULL,
                            bad);
        } else {
            faas_err(NULL, "%s: dropped a request: %s", queue, bad);
        }
        faas__provision_request__free_unpacked(req, NULL);
        return;
    }
    job = calloc(1, sizeof(*job));
    if (job == NULL) {
        faas_prov_queue_fail(p, req->rid, req->origin_request_id,
                             "out of memory");
        faas__provision_request__free_unpacked(req, NULL);
        return;
    }
    job->prov = p;
    job->req = req;
    job->popped_ms = faas_prov_now_ms();
    job->memory_mb = req->memory_mb ? req->memory_mb : 128;
    job->keep_alive_s = req->keep_alive_s ? req->keep_alive_s
                                          : p->keep_alive_s;
    p->jobs++;
    faas_debug(req->origin_request_id, "%s: provisioning %s", queue, req->rid);
    faas_prov_code_acquire(p, job, code_cb);
}


static void
blpop_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_t     *p = data;
    redisReply *r = reply;

    (void) ac;
    p->blpop_pending = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[1]->type == REDIS_REPLY_STRING) {
        job_start(p, r->element[0]->str, r->element[1]);
    } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        faas_err(NULL, "BLPOP: %s", r->str);
    }
    faas_prov_leases_flush(p);
    faas_prov_queue_kick(p);
}


/* Issues the next BLPOP if none is outstanding and there is room. */
void
faas_prov_queue_kick(faas_prov_t *p)
{
    char       **keys;
    const char **argv;
    int          n, i;

    if (p->stopping || p->blpop_pending || !p->blk.ready
        || p->jobs >= p->max_pending) {
        return;
    }
    keys = calloc(p->shards, sizeof(*keys));
    argv = calloc(p->shards + 2, sizeof(*argv));
    n = keys && argv ? faas_prov_leases_keys(p, keys, (int) p->shards) : 0;
    if (n == 0) {
        free(keys);
        free(argv);
        return;
    }
    argv[0] = "BLPOP";
    for (i = 0; i < n; i++) {
        argv[i + 1] = keys[i];
    }
    argv[n + 1] = "1";
    if (faas_prov_redis_cmdargv(&p->blk, blpop_cb, p, n + 2, argv, NULL) == 0) {
        p->blpop_pending = 1;
    }
    for (i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
    free(argv);
}
