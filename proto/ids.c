#include "ids.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


static int
is_lhex(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}


static int
all_lhex(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (!is_lhex((unsigned char) s[i])) {
            return 0;
        }
    }
    return 1;
}


int
faas_name_valid(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || len > FAAS_NAME_MAX || name[0] < 'a' || name[0] > 'z') {
        return 0;
    }
    for (i = 1; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return 0;
        }
    }
    return 1;
}


int
faas_version_valid(unsigned long long version)
{
    return version >= 1 && version <= UINT32_MAX;
}


int
faas_rid_valid(const char *s, size_t len)
{
    const char         *at = memchr(s, '@', len);
    unsigned long long  v = 0;
    size_t              i, vlen;

    if (at == NULL || !faas_name_valid(s, (size_t) (at - s))) {
        return 0;
    }
    vlen = len - (size_t) (at - s) - 1;
    if (vlen == 0 || vlen > 10 || at[1] == '0') {
        return 0;
    }
    for (i = 1; i <= vlen; i++) {
        if (at[i] < '0' || at[i] > '9') {
            return 0;
        }
        v = v * 10 + (unsigned) (at[i] - '0');
    }
    return faas_version_valid(v);
}


int
faas_rid_parse(const char *s, size_t len, size_t *name_len, unsigned *version)
{
    const char *at;

    if (!faas_rid_valid(s, len)) {
        return -1;
    }
    at = memchr(s, '@', len);
    *name_len = (size_t) (at - s);
    *version = (unsigned) strtoul(at + 1, NULL, 10);
    return 0;
}


int
faas_sbxid_valid(const char *s, size_t len)
{
    return len == FAAS_SBXID_LEN && s[0] == 's' && s[1] == '-'
           && all_lhex(s + 2, len - 2);
}


int
faas_request_id_valid(const char *s, size_t len)
{
    return len == FAAS_REQID_LEN && all_lhex(s, len);
}


int
faas_subject_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > FAAS_SUBJECT_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@'
              || c == ':' || c == '-'))
        {
            return 0;
        }
    }
    return 1;
}


static int
all_zeros(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] != '0') {
            return 0;
        }
    }
    return 1;
}


int
faas_traceparent_valid(const char *s, size_t len)
{
    if (s == NULL || len < FAAS_TRACEPARENT_LEN) {
        return 0;
    }
    if (!all_lhex(s, 2) || memcmp(s, "ff", 2) == 0) {
        return 0;
    }
    /* version 00 has exactly four fields; a later one may add more */
    if (len != FAAS_TRACEPARENT_LEN
        && (memcmp(s, "00", 2) == 0 || s[FAAS_TRACEPARENT_LEN] != '-'))
    {
        return 0;
    }
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') {
        return 0;
    }
    return all_lhex(s + 3, 32) && !all_zeros(s + 3, 32)
           && all_lhex(s + 36, 16) && !all_zeros(s + 36, 16)
           && all_lhex(s + 53, 2);
}
