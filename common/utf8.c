#include "utf8.h"


size_t
faas_utf8_char_len(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *) str;
    unsigned             c, k, i, cp, min;

    if (n == 0) {
        return 0;
    }
    c = s[0];
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        k = 1, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 2, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n <= k) {
        return 0;
    }
    for (i = 1; i <= k; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return k + 1;
}


int
faas_utf8_valid(const char *s, size_t n)
{
    size_t k;

    while (n > 0) {
        if ((unsigned char) *s < 0x80) {   /* the common case, inline */
            s++;
            n--;
            continue;
        }
        k = faas_utf8_char_len(s, n);
        if (k == 0) {
            return 0;
        }
        s += k;
        n -= k;
    }
    return 1;
}
