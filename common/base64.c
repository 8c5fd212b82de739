#include "base64.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>


char *
faas_base64_encode(const void *in, size_t len, size_t *olen)
{
    char *out = malloc(FAAS_BASE64_LEN(len) + 1);
    int   n;

    if (out == NULL) {
        return NULL;
    }
    n = EVP_EncodeBlock((unsigned char *) out, in, (int) len);
    if (olen != NULL) {
        *olen = (size_t) n;
    }
    return out;
}


size_t
faas_base64url_encode(char *out, const void *in, size_t len)
{
    size_t n = (size_t) EVP_EncodeBlock((unsigned char *) out, in, (int) len);
    size_t i;

    while (n > 0 && out[n - 1] == '=') {
        n--;
    }
    out[n] = '\0';
    for (i = 0; i < n; i++) {
        if (out[i] == '+') {
            out[i] = '-';
        } else if (out[i] == '/') {
            out[i] = '_';
        }
    }
    return n;
}


static int
sextet(int ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if (ch == '+' || ch == '-') {
        return 62;
    }
    if (ch == '/' || ch == '_') {
        return 63;
    }
    return -1;
}


/*
 * Hand-written rather than EVP_DecodeBlock: that one knows neither the
 * url-safe alphabet nor input without padding, and pads its output with
 * zero bytes.
 */
int
faas_base64_decode(const char *in, size_t len, uint8_t **out, size_t *olen)
{
    uint8_t *p = malloc(len / 4 * 3 + 3);
    uint32_t acc = 0;
    int      bits = 0, v, pad = 0;
    size_t   i, n = 0;

    if (p == NULL) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        int ch = (unsigned char) in[i];

        if (ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t') {
            continue;
        }
        if (ch == '=') {
            pad++;
            continue;
        }
        v = sextet(ch);
        if (v < 0 || pad > 0) {
            free(p);
            return -1;
        }
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            p[n++] = (uint8_t) (acc >> bits);
        }
    }
    if (bits >= 6 || pad > 2) {
        free(p);
        return -1;
    }
    *out = p;
    *olen = n;
    return 0;
}
