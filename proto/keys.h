/*
 * Redis key names (docs/DESIGN.md section 4). No program types a key
 * itself: every key is built here. Every builder writes a NUL-terminated
 * name into the caller's buffer and returns its length, or -1 when the
 * buffer is too small.
 */
#ifndef FAAS_KEYS_H
#define FAAS_KEYS_H

#include <stddef.h>

#include "ids.h"

#define FAAS_KEY_MAX    160

/* "<name>@<version>" */
int faas_rid_format(char *buf, size_t size, const char *name, size_t len,
                    unsigned version);

/* "faas:fn:<name>" */
int faas_key_fn(char *buf, size_t size, const char *name, size_t len);

/* "faas:rev:{<rid>}": the revision's immutable hash. */
int faas_key_rev(char *buf, size_t size, const char *rid, size_t len);

/* "faas:rev:{<name>@*}": SCAN MATCH pattern of every revision of name. */
int faas_key_rev_match(char *buf, size_t size, const char *name, size_t len);

/* "faas:idle:{<rid>}" */
int faas_key_idle(char *buf, size_t size, const char *rid, size_t len);

/* "faas:count:{<rid>}" */
int faas_key_count(char *buf, size_t size, const char *rid, size_t len);

/* "faas:gone:{<rid>}": ids of the revision's sandboxes whose host died and
 * whose count slot a survivor gave back; a gateway drops such an entry. */
int faas_key_gone(char *buf, size_t size, const char *rid, size_t len);

/* "faas:err:{<rid>}:<request-id>" */
int faas_key_err(char *buf, size_t size, const char *rid, size_t len,
                 const char *request_id);

/* "faas:prov:q:<shard>" */
int faas_key_prov_queue(char *buf, size_t size, unsigned shard);

/* "faas:prov:lease:<shard>" */
int faas_key_prov_lease(char *buf, size_t size, unsigned shard);

/* "faas:prov:work:<host-id>": a provisioner's processing list. */
int faas_key_prov_work(char *buf, size_t size, const char *host_id);

/* "faas:prov:sbx:<host-id>": hash of a host's counted sandboxes, sandbox id
 * -> rid ("~<rid>" once a survivor gave its count slot back). */
int faas_key_prov_sbx(char *buf, size_t size, const char *host_id);

/* The keys and channels whose names take no argument. */
#define FAAS_KEY_PROV_HOSTS     "faas:prov:hosts"
#define FAAS_KEY_RECORDS        "faas:records"
#define FAAS_KEY_RECORDS_LOCK   "faas:records:lock"
#define FAAS_CHAN_INVAL         "faas:inval"

/* The prefix of faas:fn:<name>, and SCAN MATCH patterns. */
#define FAAS_KEY_FN_PREFIX      "faas:fn:"
#define FAAS_KEY_FN_MATCH       FAAS_KEY_FN_PREFIX "*"
#define FAAS_KEY_IDLE_MATCH     "faas:idle:*"

#endif
