/*
 * The one base64 decoder (common/base64.c), fed bodies a function marks
 * isBase64Encoded and uploaded code: what decodes re-encodes (url-safe)
 * and decodes again to the same bytes.
 */
#include "fuzz.h"

#include "base64.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *out, *again;
    char    *enc;
    size_t   n, m, elen;

    if (faas_base64_decode((const char *) data, size, &out, &n) < 0) {
        return 0;
    }
    enc = malloc(FAAS_BASE64_LEN(n) + 1);
    if (enc == NULL) {
        abort();
    }
    elen = faas_base64url_encode(enc, out, n);
    if (elen > FAAS_BASE64_LEN(n)
        || faas_base64_decode(enc, elen, &again, &m) < 0 || m != n
        || memcmp(again, out, n) != 0) {
        abort();
    }
    free(again);
    free(enc);
    free(out);
    return 0;
}
