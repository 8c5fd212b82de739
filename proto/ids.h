/*
 * The names and ids that cross process boundaries (docs/DESIGN.md sections
 * 3 and 4): function names, versions, revision ids, sandbox ids and request
 * ids. Every program checks them with these functions, never its own copy.
 */
#ifndef FAAS_IDS_H
#define FAAS_IDS_H

#include <stddef.h>

#define FAAS_NAME_MAX   63
#define FAAS_RID_MAX    (FAAS_NAME_MAX + 1 + 10)
#define FAAS_REQID_LEN  32
#define FAAS_SBXID_LEN  18
#define FAAS_SUBJECT_MAX 128
#define FAAS_TRACEPARENT_LEN  55    /* 00-<32 hex>-<16 hex>-<2 hex> */
#define FAAS_TRACE_ID_LEN     32

/* 1 when name matches [a-z][a-z0-9-]{0,62}, else 0. */
int faas_name_valid(const char *name, size_t len);

/* 1 when version can name a function version (1 and up), else 0. */
int faas_version_valid(unsigned long long version);

/*
 * 1 when s is a revision id "<name>@<version>": a valid name and a
 * version in 1..4294967295 written without leading zeros, else 0.
 */
int faas_rid_valid(const char *s, size_t len);

/*
 * Splits a valid revision id (faas_rid_valid) into the length of its name
 * and its version. Returns 0, or -1 when s is not a valid rid.
 */
int faas_rid_parse(const char *s, size_t len, size_t *name_len,
                   unsigned *version);

/* 1 when s is a sandbox id: "s-" + 16 lowercase hex digits. */
int faas_sbxid_valid(const char *s, size_t len);

/* 1 when s is a request id: 32 lowercase hex digits. */
int faas_request_id_valid(const char *s, size_t len);

/*
 * 1 when s can name a user (a JWT's "sub", a function's owner):
 * [A-Za-z0-9._@:-]{1,128}. No spaces (MariaDB would compare "bob " equal
 * to "bob"), no control characters (they would split the headers of the
 * request proxied to the registry).
 */
int faas_subject_valid(const char *s, size_t len);

/*
 * 1 when s is a W3C traceparent that can be continued: version 00 exactly
 * 55 bytes (a later version at least 55, its first 55 of the same form, then
 * '-' or the end), lowercase hex, version not ff, trace id and parent id not
 * all zeros.
 */
int faas_traceparent_valid(const char *s, size_t len);

#endif
