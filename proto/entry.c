#include "entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int
parse_endpoint(const char *s, size_t len, faas_entry_t *e, faas_error_t *err)
{
    const char   *colon;
    char         *end;
    unsigned long port;
    char          num[8];
    size_t        hlen, plen;

    if (len > FAAS_ENDPOINT_MAX) {
        return faas_error_set(err, 0, "endpoint too long");
    }
    memcpy(e->endpoint, s, len);
    e->endpoint[len] = '\0';

    if (len > 5 && memcmp(s, "unix:", 5) == 0) {
        if (s[5] != '/' || len - 5 >= 108) {
            return faas_error_set(err, 0, "bad unix endpoint \"%s\"",
                                  e->endpoint);
        }
        if (memchr(s, '\0', len) != NULL) {
            return faas_error_set(err, 0, "bad unix endpoint");
        }
        memcpy(e->path, s + 5, len - 5);
        e->path[len - 5] = '\0';
        e->type = FAAS_ENDPOINT_UNIX;
        return 0;
    }

    if (len > 4 && memcmp(s, "tcp:", 4) == 0) {
        s += 4;
        len -= 4;
        colon = NULL;
        for (size_t i = len; i > 0; i--) {
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        }
        if (colon == NULL || colon == s) {
            return faas_error_set(err, 0, "bad tcp endpoint \"%s\"",
                                  e->endpoint);
        }
        hlen = (size_t) (colon - s);
        plen = len - hlen - 1;
        if (plen == 0 || plen > 5) {
            return faas_error_set(err, 0, "bad port in \"%s\"", e->endpoint);
        }
        memcpy(num, colon + 1, plen);
        num[plen] = '\0';
        for (size_t i = 0; i < plen; i++) {
            if (num[i] < '0' || num[i] > '9') {
                return faas_error_set(err, 0, "bad port in \"%s\"",
                                      e->endpoint);
            }
        }
        port = strtoul(num, &end, 10);
        if (port == 0 || port > 65535) {
            return faas_error_set(err, 0, "bad port in \"%s\"", e->endpoint);
        }
        /* [v6]:port */
        if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
            s++;
            hlen -= 2;
        }
        if (hlen == 0 || memchr(s, '\0', hlen) != NULL) {
            return faas_error_set(err, 0, "bad host in \"%s\"", e->endpoint);
        }
        memcpy(e->host, s, hlen);
        e->host[hlen] = '\0';
        e->port = (unsigned) port;
        e->type = FAAS_ENDPOINT_TCP;
        return 0;
    }

    return faas_error_set(err, 0, "unknown endpoint type \"%s\"",
                          e->endpoint);
}


int
faas_entry_parse(const char *s, size_t len, faas_entry_t *e,
                 faas_error_t *err)
{
    const char *bar1, *bar2, *end = s + len;
    size_t      olen;

    memset(e, 0, sizeof(*e));

    bar1 = memchr(s, '|', len);
    if (bar1 == NULL) {
        return faas_error_set(err, 0, "entry without '|'");
    }
    bar2 = NULL;
    for (const char *p = end; p > bar1 + 1; p--) {
        if (p[-1] == '|') {
            bar2 = p - 1;
            break;
        }
    }
    if (bar2 == NULL) {
        return faas_error_set(err, 0, "entry without origin");
    }
    if (!faas_sbxid_valid(s, (size_t) (bar1 - s))) {
        return faas_error_set(err, 0, "bad sandbox id in entry");
    }
    memcpy(e->sandbox_id, s, FAAS_SBXID_LEN);
    e->sandbox_id[FAAS_SBXID_LEN] = '\0';

    if (parse_endpoint(bar1 + 1, (size_t) (bar2 - bar1 - 1), e, err) < 0) {
        return faas_error_wrap(err, "bad entry");
    }

    olen = (size_t) (end - bar2 - 1);
    if (olen == 1 && bar2[1] == '-') {
        e->origin[0] = '\0';
    } else if (faas_request_id_valid(bar2 + 1, olen)) {
        memcpy(e->origin, bar2 + 1, olen);
        e->origin[olen] = '\0';
    } else {
        return faas_error_set(err, 0, "bad origin in entry");
    }
    return 0;
}


int
faas_entry_format(char *buf, size_t size, const char *sandbox_id,
                  const char *endpoint, const char *origin)
{
    int n;

    n = snprintf(buf, size, "%s|%s|%s", sandbox_id, endpoint,
                 (origin != NULL && origin[0] != '\0') ? origin : "-");
    return (n < 0 || (size_t) n >= size) ? -1 : n;
}


int
faas_entry_start_type(const faas_entry_t *e, int from_blpop)
{
    if (!from_blpop) {
        return FAAS_START_WARM;
    }
    return e->origin[0] != '\0' ? FAAS_START_COLD : FAAS_START_STOLEN;
}


const char *
faas_start_type_name(int type)
{
    switch (type) {
    case FAAS_START_COLD:
        return "cold";
    case FAAS_START_WARM:
        return "warm";
    case FAAS_START_STOLEN:
        return "stolen";
    default:
        return "-";
    }
}


size_t
faas_reason_clean(const char *s, size_t len, char *out)
{
    static const char dflt[] = "cold start failed";
    size_t            i, n = 0;

    for (i = 0; i < len && n < FAAS_REASON_MAX - 1; i++) {
        unsigned char c = (unsigned char) s[i];
        out[n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char) c;
    }
    while (n > 0 && out[n - 1] == ' ') {
        n--;
    }
    if (n == 0) {
        memcpy(out, dflt, sizeof(dflt));
        return sizeof(dflt) - 1;
    }
    out[n] = '\0';
    return n;
}
