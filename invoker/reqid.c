#include "reqid.h"

#include <errno.h>
#include <sys/random.h>

#define BATCH 1024

static unsigned char pool[BATCH];
static size_t        avail;


int
faas_request_id_new(char *out, faas_error_t *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char    *p;
    ssize_t           n;
    size_t            i;

    if (avail < 16) {
        n = getrandom(pool, sizeof(pool), 0);
        if (n < 0) {
            return faas_error_set(err, errno, "getrandom");
        }
        if ((size_t) n < 16) {
            return faas_error_set(err, EIO, "getrandom: short read");
        }
        avail = (size_t) n;
    }
    p = pool + avail - 16;
    for (i = 0; i < 16; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
        p[i] = 0;
    }
    avail -= 16;
    out[32] = '\0';
    return 0;
}
