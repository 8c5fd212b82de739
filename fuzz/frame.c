/*
 * The incremental frame decoder (common/frame.c) fed a peer's bytes in
 * pieces: the first byte picks the frame limit, each chunk is prefixed by
 * its length byte. Every frame returned must lie inside what was appended.
 */
#include "fuzz.h"

#include "frame.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t        in = { data, data + size };
    faas_frame_buf_t fb;
    faas_error_t     err;
    const uint8_t   *frame;
    uint8_t         *copy;
    size_t           flen, n, fed = 0, taken = 0;
    int              rc;

    faas_frame_buf_init(&fb, (size_t) fuzz_byte(&in) * 16);
    while (in.p < in.end) {
        n = fuzz_byte(&in);
        if (n > (size_t) (in.end - in.p)) {
            n = (size_t) (in.end - in.p);
        }
        if (faas_frame_buf_append(&fb, in.p, n, &err) < 0) {
            break;
        }
        in.p += n;
        fed += n;
        while ((rc = faas_frame_buf_next(&fb, &frame, &flen, &err)) == 1) {
            if (flen > fb.max) {
                abort();
            }
            /* ASan checks that the whole frame is in the buffer */
            copy = malloc(flen + 1);
            if (copy == NULL) {
                abort();
            }
            memcpy(copy, frame, flen);
            free(copy);
            taken += FAAS_FRAME_HDR + flen;
        }
        if (taken > fed) {
            abort();
        }
        if (rc < 0) {
            break;
        }
    }
    faas_frame_buf_free(&fb);
    return 0;
}
