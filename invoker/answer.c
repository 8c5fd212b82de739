/*
 * What a function may send back: status range, header names and values,
 * the headers that belong to the gateway's own connection (answer.h).
 */
#include "answer.h"

#include <string.h>
#include <strings.h>


int
faas_answer_status_ok(uint32_t status)
{
    return status >= 200 && status <= 599;
}


/* RFC 9110 tchar */
static int
tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9')
           || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}


int
faas_answer_header_valid(const char *name, const char *value)
{
    const unsigned char *p;

    if (name == NULL || name[0] == '\0' || value == NULL) {
        return 0;
    }
    for (p = (const unsigned char *) name; *p; p++) {
        if (!tchar(*p)) {
            return 0;
        }
    }
    for (p = (const unsigned char *) value; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            return 0;
        }
    }
    return 1;
}


/* 1 when name is one of the comma-separated tokens of list. */
static int
listed(const char *name, const char *list)
{
    size_t      len = strlen(name);
    const char *p = list, *end;

    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        end = p + strcspn(p, ", \t");
        if ((size_t) (end - p) == len && strncasecmp(p, name, len) == 0) {
            return 1;
        }
        p = end;
    }
    return 0;
}


int
faas_answer_header_own(const char *name, const char *connection)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "upgrade", "te", "trailer",
        "transfer-encoding", "content-length", NULL
    };
    size_t i;

    for (i = 0; hop[i]; i++) {
        if (strcasecmp(name, hop[i]) == 0) {
            return 1;
        }
    }
    return strncasecmp(name, "proxy-", 6) == 0
           || strncasecmp(name, "x-faas-", 7) == 0
           || (connection && listed(name, connection));
}
