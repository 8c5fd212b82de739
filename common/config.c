#include "config.h"

#include <errno.h>
#include <string.h>


json_t *
faas_config_load(const char *path, faas_error_t *err)
{
    json_error_t jerr;
    json_t      *cfg;

    cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (cfg == NULL && jerr.line < 1) {
        /* not read at all: jansson's text says why (unable to open ...) */
        faas_error_set(err, 0, "config %s: %s", path, jerr.text);
        return NULL;
    }
    if (cfg == NULL) {
        faas_error_set(err, 0, "config %s:%d: %s", path, jerr.line, jerr.text);
        return NULL;
    }
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        faas_error_set(err, 0, "config %s: top level must be an object", path);
        return NULL;
    }
    return cfg;
}


const char *
faas_config_string(const json_t *cfg, const char *key, const char *def)
{
    json_t *v = json_object_get(cfg, key);

    return json_is_string(v) ? json_string_value(v) : def;
}


long long
faas_config_int(const json_t *cfg, const char *key, long long def)
{
    json_t *v = json_object_get(cfg, key);

    return json_is_integer(v) ? (long long) json_integer_value(v) : def;
}


int
faas_config_bool(const json_t *cfg, const char *key, int def)
{
    json_t *v = json_object_get(cfg, key);

    return json_is_boolean(v) ? json_is_true(v) : def;
}


int
faas_config_require_string(const json_t *cfg, const char *key,
                           const char **out, faas_error_t *err)
{
    json_t *v = json_object_get(cfg, key);

    if (v == NULL) {
        return faas_error_set(err, 0, "config: %s is required", key);
    }
    if (!json_is_string(v)) {
        return faas_error_set(err, 0, "config: %s must be a string", key);
    }
    *out = json_string_value(v);
    return 0;
}


int
faas_config_check_types(const json_t *cfg, const char *const *string_keys,
                        const char *const *int_keys, faas_error_t *err)
{
    json_t *v;

    for (; string_keys != NULL && *string_keys != NULL; string_keys++) {
        v = json_object_get(cfg, *string_keys);
        if (v != NULL && !json_is_string(v)) {
            return faas_error_set(err, 0, "config: %s must be a string",
                                  *string_keys);
        }
    }
    for (; int_keys != NULL && *int_keys != NULL; int_keys++) {
        v = json_object_get(cfg, *int_keys);
        if (v != NULL && !json_is_integer(v)) {
            return faas_error_set(err, 0, "config: %s must be an integer",
                                  *int_keys);
        }
    }
    return 0;
}


static int
key_listed(const char *key, const char *const *const *lists)
{
    const char *const *k;

    for (; *lists != NULL; lists++) {
        for (k = *lists; *k != NULL; k++) {
            if (strcmp(*k, key) == 0) {
                return 1;
            }
        }
    }
    return 0;
}


int
faas_config_check_known(const json_t *cfg, const char *const *const *lists,
                        faas_error_t *err)
{
    const char *key;
    json_t     *v;
    char        shown[65];
    size_t      i;

    json_object_foreach((json_t *) cfg, key, v) {
        if (key_listed(key, lists)) {
            continue;
        }
        /* the key as one printable line */
        for (i = 0; key[i] != '\0' && i + 1 < sizeof(shown); i++) {
            shown[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
        }
        shown[i] = '\0';
        return faas_error_set(err, 0, "config: unknown key \"%s\"", shown);
    }
    return 0;
}
