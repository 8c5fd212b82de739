/*
 * What the fuzz targets share: a cursor that cuts the fuzzer's input into
 * fields. Each target is one file with LLVMFuzzerTestOneInput (libFuzzer);
 * ./build.sh fuzz builds and runs them, t/fuzz/corpus.t replays the seed
 * corpus in fuzz/corpus/<target>/.
 */
#ifndef FAAS_FUZZ_H
#define FAAS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_in_s {
    const uint8_t *p, *end;
} fuzz_in_t;

/* The next field up to sep (not included; the rest when sep is absent). */
static inline const uint8_t *
fuzz_field(fuzz_in_t *in, uint8_t sep, size_t *len)
{
    const uint8_t *s = in->p, *e;

    e = memchr(s, sep, (size_t) (in->end - s));
    if (e == NULL) {
        e = in->end;
        in->p = in->end;
    } else {
        in->p = e + 1;
    }
    *len = (size_t) (e - s);
    return s;
}

/* The next byte, 0 once the input is used up. */
static inline uint8_t
fuzz_byte(fuzz_in_t *in)
{
    return in->p < in->end ? *in->p++ : 0;
}

/* A malloc'd NUL-terminated copy (exact size: ASan sees any overread). */
static inline char *
fuzz_strndup(const uint8_t *s, size_t len)
{
    char *c = malloc(len + 1);

    if (c == NULL) {
        abort();
    }
    memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

#endif
