/*
 * The per-owner cap of live sandboxes on this host (owner_max_sandboxes,
 * 0 = off; DESIGN.md section 12): one owner cannot take the whole host
 * however many functions and concurrency the registry allowed it. A request
 * over the cap fails like one for a full host ("host full for owner ..."),
 * through the usual faas:err:{rid}:<request-id> answer.
 *
 * Each sandbox created by this run remembers its revision's owner
 * (faas:rev:{rid} field `owner`); sandboxes adopted from a previous run do
 * not know it and are not counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov.h"


static unsigned
owner_sandboxes(faas_prov_t *p, const char *owner)
{
    faas_prov_sbx_t *s;
    unsigned         n = 0;

    for (s = p->sbx; s != NULL; s = s->next) {
        if (s->owner != NULL && strcmp(s->owner, owner) == 0) {
            n++;
        }
    }
    return n;
}


/* See prov.h. */
const char *
faas_prov_owner_refuse(faas_prov_t *p, const faas_prov_job_t *job,
                       char *buf, size_t len)
{
    const char *owner = job->rev->owner;
    unsigned    n;

    if (p->owner_max_sandboxes == 0 || owner == NULL || owner[0] == '\0') {
        return NULL;
    }
    n = owner_sandboxes(p, owner);
    if (n < p->owner_max_sandboxes) {
        return NULL;
    }
    snprintf(buf, len, "host full for owner %.128s: %u sandboxes, the"
             " owner_max_sandboxes of this host", owner, n);
    return buf;
}


/* See prov.h. */
void
faas_prov_owner_note(faas_prov_sbx_t *s, const faas_prov_job_t *job)
{
    if (job->rev->owner != NULL) {
        s->owner = strdup(job->rev->owner);
    }
}
