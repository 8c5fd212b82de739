/*
 * What a sandbox of a revision is made of: the hash faas:rev:{rid} the
 * registry writes before any gateway can ask for the rid (docs/DESIGN.md
 * section 4). A rid is never reused and its hash never changes, so each one
 * read is kept for the daemon's life, up to PROV_REV_CACHE_MAX revisions
 * (the least recently used one goes first). The read is an async HGETALL on
 * the command connection: the loop never waits for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "keys.h"
#include "log.h"
#include "prov.h"

#define PROV_REV_CACHE_MAX  4096


static void
rev_free(faas_prov_rev_t *rev)
{
    free(rev->rid);
    free(rev->function);
    free(rev->runtime);
    free(rev->handler);
    free(rev->code_key);
    free(rev->code_sha256);
    free(rev->owner);
    json_decref(rev->env);
    free(rev);
}


static int
is_lower_hex(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return s[n] == '\0';
}


/* The reason rev cannot be built, or NULL. */
static const char *
rev_invalid(const faas_prov_rev_t *rev)
{
    if (rev->runtime == NULL
        || (strcmp(rev->runtime, "python3") != 0
            && strcmp(rev->runtime, "nodejs") != 0)) {
        return "unknown runtime";
    }
    if (rev->handler == NULL || strchr(rev->handler, '.') == NULL) {
        return "invalid handler";
    }
    if (rev->code_key == NULL || rev->code_key[0] == '\0') {
        return "no code key";
    }
    if (rev->code_sha256 == NULL || !is_lower_hex(rev->code_sha256, 64)) {
        return "invalid code sha256";
    }
    if (rev->env == NULL) {
        return "env is not a JSON object";
    }
    return NULL;
}


/*
 * env as the sandbox takes it: an object of strings (a value that is not a
 * string is passed JSON-encoded). NULL when s is not a JSON object.
 */
static json_t *
env_parse(const char *s)
{
    json_t     *in, *out, *v;
    const char *k;
    char       *dumped;

    in = json_loads(s, 0, NULL);
    if (in == NULL || !json_is_object(in)) {
        json_decref(in);
        return NULL;
    }
    out = json_object();
    json_object_foreach(in, k, v) {
        if (json_is_string(v)) {
            json_object_set(out, k, v);
            continue;
        }
        dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_object_set_new(out, k, json_string(dumped ? dumped : ""));
        free(dumped);
    }
    json_decref(in);
    return out;
}


static unsigned
num_or(const char *s, unsigned dflt)
{
    unsigned long v = strtoul(s, NULL, 10);

    return v > 0 && v <= 0xffffffffUL ? (unsigned) v : dflt;
}


/* Where the string field k of the hash goes in rev, or NULL. */
static char **
rev_str_field(faas_prov_rev_t *rev, const char *k)
{
    if (strcmp(k, "runtime") == 0) {
        return &rev->runtime;
    }
    if (strcmp(k, "handler") == 0) {
        return &rev->handler;
    }
    if (strcmp(k, "code_key") == 0) {
        return &rev->code_key;
    }
    if (strcmp(k, "code_sha256") == 0) {
        return &rev->code_sha256;
    }
    if (strcmp(k, "owner") == 0) {
        return &rev->owner;
    }
    return NULL;
}


/* One field of the hash into rev (unknown fields are ignored). */
static void
rev_field(faas_prov_rev_t *rev, const char *k, const char *v)
{
    char **dst = rev_str_field(rev, k);

    if (dst != NULL) {
        free(*dst);
        *dst = strdup(v);
    } else if (strcmp(k, "memory_mb") == 0) {
        rev->memory_mb = num_or(v, rev->memory_mb);
    } else if (strcmp(k, "timeout_ms") == 0) {
        rev->timeout_ms = num_or(v, rev->timeout_ms);
    } else if (strcmp(k, "keep_alive_s") == 0) {
        rev->keep_alive_s = num_or(v, rev->keep_alive_s);
    } else if (strcmp(k, "env") == 0) {
        json_decref(rev->env);
        rev->env = env_parse(v);
    }
}


/*
 * A revision from an HGETALL reply (non-empty). *reason says why it is
 * unusable when NULL is returned.
 */
static faas_prov_rev_t *
rev_from_reply(faas_prov_t *p, const char *rid, const redisReply *r,
               const char **reason)
{
    faas_prov_rev_t *rev;
    size_t           i, name_len;

    rev = calloc(1, sizeof(*rev));
    if (rev == NULL) {
        *reason = "out of memory";
        return NULL;
    }
    rev->memory_mb = 128;
    rev->timeout_ms = 3000;
    rev->keep_alive_s = p->keep_alive_s;
    rev->env = json_object();
    for (i = 0; i + 1 < r->elements; i += 2) {
        if (r->element[i]->type == REDIS_REPLY_STRING
            && r->element[i + 1]->type == REDIS_REPLY_STRING) {
            rev_field(rev, r->element[i]->str, r->element[i + 1]->str);
        }
    }
    rev->rid = strdup(rid);
    faas_rid_parse(rid, strlen(rid), &name_len, &rev->version);
    rev->function = strndup(rid, name_len);
    *reason = rev_invalid(rev);
    if (*reason == NULL && (rev->rid == NULL || rev->function == NULL)) {
        *reason = "out of memory";
    }
    if (*reason != NULL) {
        rev_free(rev);
        return NULL;
    }
    return rev;
}


static faas_prov_rev_t *
rev_find(faas_prov_t *p, const char *rid)
{
    faas_prov_rev_t **pp, *rev;

    for (pp = &p->revs; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->rid, rid) == 0) {
            rev = *pp;
            *pp = rev->next;       /* to the front: most recently used */
            rev->next = p->revs;
            p->revs = rev;
            return rev;
        }
    }
    return NULL;
}


/* Caches rev at the front; past the bound the last one leaves the cache
 * (freed at once, or by its last job). */
static void
rev_insert(faas_prov_t *p, faas_prov_rev_t *rev)
{
    faas_prov_rev_t **pp;

    rev->cached = 1;
    rev->next = p->revs;
    p->revs = rev;
    if (++p->n_revs <= PROV_REV_CACHE_MAX) {
        return;
    }
    for (pp = &p->revs; (*pp)->next != NULL; pp = &(*pp)->next) {
        /* to the last one */
    }
    rev = *pp;
    *pp = NULL;
    p->n_revs--;
    rev->cached = 0;
    if (rev->refs == 0) {
        rev_free(rev);
    }
}


static void
hgetall_cb(redisAsyncContext *ac, void *reply, void *data)
{
    faas_prov_job_t *job = data;
    faas_prov_t     *p = job->prov;
    redisReply      *r = reply;
    faas_prov_rev_t *rev;
    const char      *reason;
    char             msg[PROV_REASON_MAX];

    (void) ac;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        snprintf(msg, sizeof(msg), "function revision %s could not be read: "
                 "%s", job->req->rid,
                 r != NULL && r->type == REDIS_REPLY_ERROR ? r->str
                                                           : "Redis is down");
        job->rev_cb(p, job, msg);
        return;
    }
    if (r->elements == 0) {
        snprintf(msg, sizeof(msg), "function revision %s is unknown",
                 job->req->rid);
        job->rev_cb(p, job, msg);
        return;
    }
    /* another job of the same rid may have read it meanwhile */
    rev = rev_find(p, job->req->rid);
    if (rev == NULL) {
        rev = rev_from_reply(p, job->req->rid, r, &reason);
        if (rev == NULL) {
            snprintf(msg, sizeof(msg), "bad revision %s: %s", job->req->rid,
                     reason);
            job->rev_cb(p, job, msg);
            return;
        }
        rev_insert(p, rev);
    }
    rev->refs++;
    job->rev = rev;
    job->rev_cb(p, job, NULL);
}


void
faas_prov_rev_acquire(faas_prov_t *p, faas_prov_job_t *job,
                      faas_prov_rev_cb cb)
{
    faas_prov_rev_t *rev;
    char             key[FAAS_KEY_MAX], msg[PROV_REASON_MAX];

    job->rev_cb = cb;
    rev = rev_find(p, job->req->rid);
    if (rev != NULL) {
        rev->refs++;
        job->rev = rev;
        cb(p, job, NULL);
        return;
    }
    faas_key_rev(key, sizeof(key), job->req->rid, strlen(job->req->rid));
    if (faas_prov_redis_cmd(&p->cmd, hgetall_cb, job, "HGETALL %s", key) < 0) {
        snprintf(msg, sizeof(msg), "function revision %s could not be read: "
                 "Redis is down", job->req->rid);
        cb(p, job, msg);
    }
}


void
faas_prov_rev_release(faas_prov_t *p, faas_prov_rev_t *rev)
{
    (void) p;
    if (rev != NULL && --rev->refs == 0 && !rev->cached) {
        rev_free(rev);
    }
}


void
faas_prov_rev_free_all(faas_prov_t *p)
{
    faas_prov_rev_t *rev;

    while ((rev = p->revs) != NULL) {
        p->revs = rev->next;
        rev->cached = 0;
        if (rev->refs == 0) {
            rev_free(rev);
        }
    }
    p->n_revs = 0;
}
