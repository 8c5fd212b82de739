/*
 * Names and Redis key names (DESIGN.md sections 3 and 4). Every builder
 * writes a NUL-terminated name into the caller's buffer and returns its
 * length, or -1 when the buffer is too small.
 */
#ifndef FAAS_KEYS_H
#define FAAS_KEYS_H

#include <stddef.h>

#define FAAS_NAME_MAX   63
#define FAAS_RID_MAX    (FAAS_NAME_MAX + 1 + 10)
#define FAAS_REQID_LEN  32
#define FAAS_SBXID_LEN  18
#define FAAS_KEY_MAX    160

/* 1 when name matches [a-z][a-z0-9-]{0,62}, else 0. */
int faas_name_valid(const char *name, size_t len);

/* 1 when s is a sandbox id: "s-" + 16 lowercase hex digits. */
int faas_invoker_sandbox_id_valid(const char *s, size_t len);

/* 1 when s is a request id: 32 lowercase hex digits. */
int faas_request_id_valid(const char *s, size_t len);

/* "<name>@<version>" */
int faas_rid_format(char *buf, size_t size, const char *name, size_t len,
                    unsigned version);

/* "faas:fn:<name>" */
int faas_key_fn(char *buf, size_t size, const char *name, size_t len);

/* "faas:idle:{<rid>}" */
int faas_key_idle(char *buf, size_t size, const char *rid, size_t len);

/* "faas:count:{<rid>}" */
int faas_key_count(char *buf, size_t size, const char *rid, size_t len);

/* "faas:err:{<rid>}:<request-id>" */
int faas_key_err(char *buf, size_t size, const char *rid, size_t len,
                 const char *request_id);

/* "faas:prov:q:<shard>" */
int faas_key_prov_queue(char *buf, size_t size, unsigned shard);

#define FAAS_KEY_RECORDS "faas:records"
#define FAAS_CHAN_INVAL  "faas:inval"

#endif
