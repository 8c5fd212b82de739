/*
 * Length-prefixed frames: a 4-byte big-endian length, then the payload.
 * Used on every socket of the platform (gateway <-> agent: protobuf;
 * agent <-> runtime: JSON). Every reader has a size limit; a larger frame is
 * an error (-EMSGSIZE) and the connection must be closed.
 */
#ifndef FAAS_FRAME_H
#define FAAS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

#define FAAS_FRAME_HDR 4

static inline void
faas_frame_put_len(uint8_t hdr[FAAS_FRAME_HDR], uint32_t len)
{
    hdr[0] = (uint8_t) (len >> 24);
    hdr[1] = (uint8_t) (len >> 16);
    hdr[2] = (uint8_t) (len >> 8);
    hdr[3] = (uint8_t) len;
}

static inline uint32_t
faas_frame_get_len(const uint8_t hdr[FAAS_FRAME_HDR])
{
    return ((uint32_t) hdr[0] << 24) | ((uint32_t) hdr[1] << 16)
           | ((uint32_t) hdr[2] << 8) | hdr[3];
}

/* Blocking: writes header and payload in full (one writev). 0 or <0. */
int faas_frame_write(int fd, const void *buf, size_t len, faas_error_t *err);

/*
 * Blocking: reads one frame into a malloc'd *buf (caller frees; NUL-terminated
 * for convenience, not counted in *len). Returns 1 for a frame, 0 for a clean
 * EOF before any byte, -EMSGSIZE when the announced length exceeds max, other
 * negative values on I/O errors or EOF inside a frame.
 */
int faas_frame_read(int fd, uint8_t **buf, size_t *len, size_t max,
                    faas_error_t *err);

/*
 * Incremental decoder for event loops: append what the socket gave, then call
 * faas_frame_buf_next() until it returns 0. The returned frame pointer is
 * valid until the next append/next call.
 */
typedef struct faas_frame_buf_s {
    uint8_t *data;
    size_t   len;      /* bytes held */
    size_t   cap;
    size_t   max;      /* frame size limit */
    size_t   consumed; /* bytes of the frame last returned, dropped lazily */
} faas_frame_buf_t;

void faas_frame_buf_init(faas_frame_buf_t *fb, size_t max);
void faas_frame_buf_free(faas_frame_buf_t *fb);
int faas_frame_buf_append(faas_frame_buf_t *fb, const void *data, size_t n,
                          faas_error_t *err);
/* 1: frame and len set; 0: need more bytes; -EMSGSIZE: oversized frame. */
int faas_frame_buf_next(faas_frame_buf_t *fb, const uint8_t **frame,
                        size_t *len, faas_error_t *err);

#endif
