/* Frame I/O: round trips, split reads, size limits, EOF handling. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "tap.h"


/* Header + payload in a malloc'd buffer. */
static uint8_t *
encode(const void *payload, size_t len, size_t *out_len)
{
    uint8_t *p = malloc(len + FAAS_FRAME_HDR);

    if (p != NULL) {
        faas_frame_put_len(p, (uint32_t) len);
        memcpy(p + FAAS_FRAME_HDR, payload, len);
        *out_len = len + FAAS_FRAME_HDR;
    }
    return p;
}


int
main(void)
{
    faas_error_t     err;
    faas_frame_buf_t fb;
    const uint8_t   *f;
    uint8_t         *buf, *enc;
    size_t           len, enc_len, i;
    int              sv[2], ret;
    uint8_t          big[4] = { 0x7f, 0xff, 0xff, 0xff };

    ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    is_int(faas_frame_write(sv[0], "hello", 5, &err), 0, "write frame");
    is_int(faas_frame_write(sv[0], "", 0, &err), 0, "write empty frame");
    is_int(faas_frame_read(sv[1], &buf, &len, 16, &err), 1, "read frame");
    ok(len == 5 && memcmp(buf, "hello", 5) == 0 && buf[5] == '\0',
       "payload intact and NUL-terminated");
    free(buf);
    is_int(faas_frame_read(sv[1], &buf, &len, 16, &err), 1, "read empty");
    is_int(len, 0, "empty frame has length 0");
    free(buf);

    is_int(faas_frame_write(sv[0], "0123456789abcdefXYZ", 19, &err), 0,
           "write oversized");
    ret = faas_frame_read(sv[1], &buf, &len, 16, &err);
    is_int(ret, -EMSGSIZE, "oversized frame refused");
    ok(strstr(err.msg, "over limit") != NULL, "error says why: %s", err.msg);

    close(sv[0]);
    close(sv[1]);
    ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    is_int(write(sv[0], "\0\0", 2), 2, "half a header");
    close(sv[0]);
    ret = faas_frame_read(sv[1], &buf, &len, 16, &err);
    ok(ret < 0 && ret != -EMSGSIZE, "EOF inside a header is an error");
    close(sv[1]);

    ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    close(sv[0]);
    is_int(faas_frame_read(sv[1], &buf, &len, 16, &err), 0, "clean EOF");
    close(sv[1]);

    /* Incremental decoder: two frames fed one byte at a time. */
    faas_frame_buf_init(&fb, 64);
    enc = encode("abc", 3, &enc_len);
    ok(enc != NULL && enc_len == 7, "encode");
    for (i = 0; i < enc_len - 1; i++) {
        faas_frame_buf_append(&fb, enc + i, 1, &err);
        ok(faas_frame_buf_next(&fb, &f, &len, &err) == 0, "partial %zu", i);
    }
    faas_frame_buf_append(&fb, enc + i, 1, &err);
    faas_frame_buf_append(&fb, enc, enc_len, &err);
    ok(faas_frame_buf_next(&fb, &f, &len, &err) == 1 && len == 3
       && memcmp(f, "abc", 3) == 0, "first frame decoded");
    ok(faas_frame_buf_next(&fb, &f, &len, &err) == 1 && len == 3,
       "second frame from the same buffer");
    is_int(faas_frame_buf_next(&fb, &f, &len, &err), 0, "then nothing");
    faas_frame_buf_append(&fb, big, 4, &err);
    is_int(faas_frame_buf_next(&fb, &f, &len, &err), -EMSGSIZE,
           "decoder refuses an oversized length");
    free(enc);
    faas_frame_buf_free(&fb);
    return done_testing();
}
