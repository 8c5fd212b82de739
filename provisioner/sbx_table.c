/*
 * The sandboxes this provisioner manages: an in-memory list, mirrored in
 * <run_dir>/prov/<id>.json (what meta.json does not say: keep-alive), and
 * the one place where a sandbox is destroyed and faas:count:{rid} is DECRed
 * (and the sandbox leaves faas:prov:sbx:<host-id>).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "entry.h"
#include "log.h"
#include "prov.h"

typedef struct destroy_s {
    uv_work_t   work;
    faas_prov_t     *prov;
    faas_prov_sbx_t *sbx;
    char       *why;
    int         rc;
    faas_error_t err;
} destroy_t;

/* A destroyed sandbox leaves faas:prov:sbx:<host> and gives its count slot
 * back, unless a survivor already did while this host was taken for dead
 * (value "~<rid>", docs/DESIGN.md section 4): KEYS sbx, count; ARGV id. */
static const char *FORGET_LUA =
    "local v = redis.call('hget', KEYS[1], ARGV[1]) "
    "redis.call('hdel', KEYS[1], ARGV[1]) "
    "if v and string.sub(v, 1, 1) == '~' then return 0 end "
    "redis.call('decr', KEYS[2]) return 1";


/* The sandbox with this id, or NULL. */
faas_prov_sbx_t *
faas_prov_sbx_find(faas_prov_t *p, const char *id)
{
    faas_prov_sbx_t *s;

    for (s = p->sbx; s != NULL; s = s->next) {
        if (strcmp(s->id, id) == 0) {
            return s;
        }
    }
    return NULL;
}


/*
 * Adds a sandbox in state SBX_CREATING and counts its memory against the
 * budget. Returns NULL when out of memory.
 */
faas_prov_sbx_t *
faas_prov_sbx_add(faas_prov_t *p, const char *id, const char *rid,
                  unsigned memory_mb,
             unsigned keep_alive_s)
{
    faas_prov_sbx_t *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->rid = strdup(rid)) == NULL) {
        free(s);
        return NULL;
    }
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->memory_mb = memory_mb;
    s->keep_alive_s = keep_alive_s;
    s->state = SBX_CREATING;
    s->last_used_ms = faas_now_ms();
    s->next = p->sbx;
    p->sbx = s;
    p->used_mb += memory_mb;
    return s;
}


/* Unlinks s, gives its memory and code reference back, frees it. */
void
faas_prov_sbx_free(faas_prov_t *p, faas_prov_sbx_t *s)
{
    faas_prov_sbx_t **pp;

    for (pp = &p->sbx; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (s->state != SBX_DESTROYING) {
        p->used_mb -= s->memory_mb;
    }
    faas_prov_code_release(p, s->code);
    free(s->rid);
    free(s->entry);
    free(s->origin);
    free(s->owner);
    free(s);
}


/* See prov.h. */
int
faas_prov_sbx_alive(faas_prov_t *p, faas_prov_sbx_t *s, int *frozen)
{
    faas_cgroup_t *cg = NULL;
    faas_error_t   err;
    int            n, f;

    *frozen = 0;
    if (!faas_sandbox_exists(&p->host, s->id)) {
        return 0;
    }
    if (faas_cgroup_open(&p->host, s->id, &cg, &err) < 0) {
        return 0;
    }
    n = faas_cgroup_nprocs(cg);
    f = faas_cgroup_frozen(cg, &err);
    faas_cgroup_close(cg);
    *frozen = f == 1;
    return n > 0;
}


/* The idle-list entry of sandbox id (docs/DESIGN.md section 4), malloc'd. */
char *
faas_prov_sbx_entry(faas_prov_t *p, const char *id, const char *origin)
{
    char e[FAAS_ENTRY_MAX];

    if (faas_entry_format(e, sizeof(e), id, p->endpoint, origin) < 0) {
        return NULL;
    }
    return strdup(e);
}


/* Writes the state file of s atomically. */
int
faas_prov_sbx_save(faas_prov_t *p, faas_prov_sbx_t *s, faas_error_t *err)
{
    cleanup_json json_t *j = NULL;
    cleanup_free char *path = NULL, *tmp = NULL;

    j = json_pack("{s:s, s:s, s:i, s:i, s:s?}", "id", s->id, "rid", s->rid,
                  "memory_mb", (json_int_t) s->memory_mb, "keep_alive_s",
                  (json_int_t) s->keep_alive_s, "code_dir",
                  s->code ? s->code->dir : NULL);
    if (j == NULL || asprintf(&path, "%s/%s.json", p->state_dir, s->id) < 0
        || asprintf(&tmp, "%s/.%s.json.tmp", p->state_dir, s->id) < 0) {
        return faas_error_set(err, ENOMEM, "state file");
    }
    if (json_dump_file(j, tmp, JSON_COMPACT) < 0) {
        return faas_error_set(err, errno, "write %s", tmp);
    }
    if (rename(tmp, path) < 0) {
        return faas_error_set(err, errno, "rename %s", tmp);
    }
    return 0;
}


/*
 * CPU time used by the sandbox's processes so far (usage_usec of its cgroup
 * v2 cpu.stat, present without any v2 controller; the layout is the one
 * sandbox.h documents). 0, or -1 when it cannot be read.
 */
int
faas_prov_sbx_cpu_usec(faas_prov_t *p, const faas_prov_sbx_t *s, uint64_t *usec)
{
    char                 path[4096];
    cleanup_fclose FILE *f = NULL;
    unsigned long long   v;

    snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/%s/%s/cpu.stat",
             p->host.cgroup_root, s->id);
    f = fopen(path, "re");
    if (f == NULL || fscanf(f, "usage_usec %llu", &v) != 1) {
        return -1;
    }
    *usec = v;
    return 0;
}


/* Adds the voluntary_ctxt_switches of process pid to *n; -1 if unread. */
static int
add_switches(long pid, uint64_t *n)
{
    char                 path[64], line[256];
    cleanup_fclose FILE *f = NULL;
    unsigned long long   v;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1) {
            *n += v;
            return 0;
        }
    }
    return -1;
}


/* See prov.h. */
void
faas_prov_sbx_note_memory(faas_prov_t *p, faas_prov_sbx_t *s)
{
    static const char   *const files[] = {
        "/sys/fs/cgroup/memory/%s/%s/memory.usage_in_bytes",
        "/sys/fs/cgroup/unified/%s/%s/memory.current",
    };
    char                 path[4096];
    unsigned long long   v;
    size_t               i;
    FILE                *f;
    int                  ok;

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), files[i], p->host.cgroup_root, s->id);
        f = fopen(path, "re");
        if (f == NULL) {
            continue;
        }
        ok = fscanf(f, "%llu", &v) == 1;
        fclose(f);
        if (ok) {
            s->mem_bytes = v;
            s->mem_known = 1;
            return;
        }
    }
}


/* See prov.h. */
int
faas_prov_sbx_switches(faas_prov_t *p, const faas_prov_sbx_t *s, uint64_t *n)
{
    char                 path[4096];
    cleanup_fclose FILE *f = NULL;
    long                 pid;

    snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/%s/%s/cgroup.procs",
             p->host.cgroup_root, s->id);
    f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    *n = 0;
    while (fscanf(f, "%ld", &pid) == 1) {
        if (add_switches(pid, n) != 0) {
            return -1;
        }
    }
    return 0;
}


/* 1 when pid is a zombie that lived in a nested pid namespace (NSpid has
 * more than one entry): a sandbox init, never a create's helper process.
 * Or an exited zygote (named faas-zygote, see zygote_ext.c): double-forked
 * by the sandbox library, it is re-parented to this subreaper. */
static int
sandbox_zombie(long pid)
{
    char                 path[64], line[256];
    cleanup_fclose FILE *f = NULL;
    int                  zombie = 0, nested = 0, zygote = 0;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "State:", 6) == 0) {
            zombie = strchr(line, 'Z') != NULL;
        } else if (strncmp(line, "NSpid:", 6) == 0) {
            nested = strchr(line + 6, '\t') != strrchr(line + 6, '\t');
        } else if (strcmp(line, "Name:\tfaas-zygote\n") == 0) {
            zygote = 1;
        }
    }
    return zombie && (nested || zygote);
}


/*
 * Reaps the sandboxes of this host that were our children and are gone
 * (this daemon is a child subreaper, so a sandbox it creates is re-parented
 * to it when the create's intermediate process exits). Never waitpid(-1):
 * the sandbox library waits for its own helper process in a worker thread.
 * Besides the pids in the table, zombie children that lived in a nested pid
 * namespace (sandbox inits whose create failed, or made by a zygote that
 * died) are reaped too.
 */
void
faas_prov_sbx_reap(faas_prov_t *p)
{
    faas_prov_sbx_t *s;
    cleanup_closedir DIR *d = NULL;
    struct dirent   *e;
    char             path[320];
    FILE            *f;
    long             pid;
    int              st;

    for (s = p->sbx; s != NULL; s = s->next) {
        if (s->child && s->pid > 0
            && waitpid(s->pid, &st, WNOHANG) == s->pid) {
            faas_debug(NULL, "sandbox %s: reaped its init (pid %ld)", s->id,
                       (long) s->pid);
            s->child = 0;
        }
    }
    d = opendir("/proc/self/task");
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/task/%s/children", e->d_name);
        f = fopen(path, "re");
        if (f == NULL) {
            continue;
        }
        while (fscanf(f, "%ld", &pid) == 1) {
            if (sandbox_zombie(pid)
                && waitpid((pid_t) pid, &st, WNOHANG) == (pid_t) pid) {
                faas_debug(NULL, "reaped sandbox init pid %ld", pid);
            }
        }
        fclose(f);
    }
}


static void
destroy_work(uv_work_t *w)
{
    destroy_t *d = w->data;
    char       path[4096];

    d->rc = faas_sandbox_destroy(&d->prov->host, d->sbx->id, &d->err);
    snprintf(path, sizeof(path), "%s/%s.json", d->prov->state_dir, d->sbx->id);
    unlink(path);
}


static void
destroy_done(uv_work_t *w, int status)
{
    destroy_t *d = w->data;
    faas_prov_t    *p = d->prov;
    char       key[512], sbx_key[512];

    (void) status;
    if (d->rc < 0) {
        faas_err(NULL, "sandbox %s: destroy: %s", d->sbx->id, d->err.msg);
    } else {
        faas_info(NULL, "sandbox %s (%s) destroyed: %s", d->sbx->id,
                  d->sbx->rid, d->why);
    }
    if (!d->sbx->nocount) {
        faas_key_count(key, sizeof(key), d->sbx->rid, strlen(d->sbx->rid));
        faas_key_prov_sbx(sbx_key, sizeof(sbx_key), p->host_id);
        faas_prov_redis_cmd(&p->cmd, NULL, NULL, "EVAL %s 2 %s %s %s",
                            FORGET_LUA, sbx_key, key, d->sbx->id);
    }
    /* Its init, if our child, is a zombie now. */
    faas_prov_sbx_reap(p);
    p->destroying--;
    faas_prov_sbx_free(p, d->sbx);
    free(d->why);
    free(d);
}


/* See prov.h. */
void
faas_prov_sbx_destroy(faas_prov_t *p, faas_prov_sbx_t *s, const char *why)
{
    destroy_t *d;

    if (s->state == SBX_DESTROYING) {
        return;
    }
    p->used_mb -= s->memory_mb;
    s->state = SBX_DESTROYING;
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        faas_err(NULL, "sandbox %s: destroy: out of memory", s->id);
        return;
    }
    d->prov = p;
    d->sbx = s;
    d->why = strdup(why);
    d->work.data = d;
    p->destroying++;
    uv_queue_work(p->loop, &d->work, destroy_work, destroy_done);
}
