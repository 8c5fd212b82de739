/*
 * Daemon configuration: one JSON object per daemon (see the conf/ folder).
 * Getters return the default when the key is absent; a key of the wrong type
 * is an error reported by faas_config_check_*().
 */
#ifndef FAAS_CONFIG_H
#define FAAS_CONFIG_H

#include <jansson.h>
#include "error.h"

/* Loads and parses path. Returns a new reference (json_decref it) or NULL. */
json_t *faas_config_load(const char *path, faas_error_t *err);

const char *faas_config_string(const json_t *cfg, const char *key,
                               const char *def);
long long faas_config_int(const json_t *cfg, const char *key, long long def);
int faas_config_bool(const json_t *cfg, const char *key, int def);

/* Fails with "config: <key> is required" / "... must be a string". */
int faas_config_require_string(const json_t *cfg, const char *key,
                               const char **out, faas_error_t *err);

/* Each key in keys (NULL-terminated) must be absent or of the given type. */
int faas_config_check_types(const json_t *cfg, const char *const *string_keys,
                            const char *const *int_keys, faas_error_t *err);

/* Each key of cfg must be in one of lists (NULL-terminated lists, the array
 * ends with NULL); else fails with "config: unknown key "<key>"". */
int faas_config_check_known(const json_t *cfg, const char *const *const *lists,
                            faas_error_t *err);

#endif
