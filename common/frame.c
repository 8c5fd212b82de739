#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>


int
faas_frame_write(int fd, const void *buf, size_t len, faas_error_t *err)
{
    uint8_t      hdr[FAAS_FRAME_HDR];
    struct iovec iov[2];
    ssize_t      n;
    int          cnt = 2;

    if (len > UINT32_MAX) {
        return faas_error_set(err, EMSGSIZE, "frame of %zu bytes", len);
    }
    faas_frame_put_len(hdr, (uint32_t) len);
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    iov[1].iov_base = (void *) buf;
    iov[1].iov_len = len;

    while (cnt > 0) {
        n = writev(fd, iov + (2 - cnt), cnt);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return faas_error_set(err, errno, "frame write");
        }
        while (cnt > 0 && (size_t) n >= iov[2 - cnt].iov_len) {
            n -= iov[2 - cnt].iov_len;
            cnt--;
        }
        if (cnt > 0) {
            iov[2 - cnt].iov_base = (uint8_t *) iov[2 - cnt].iov_base + n;
            iov[2 - cnt].iov_len -= n;
        }
    }
    return 0;
}


static int
read_full(int fd, uint8_t *p, size_t len, size_t *got)
{
    ssize_t n;

    *got = 0;
    while (*got < len) {
        n = read(fd, p + *got, len - *got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return 0;
        }
        *got += n;
    }
    return 1;
}


int
faas_frame_read(int fd, uint8_t **buf, size_t *len, size_t max,
                faas_error_t *err)
{
    uint8_t  hdr[FAAS_FRAME_HDR];
    uint8_t *p;
    uint32_t n;
    size_t   got;
    int      ret;

    *buf = NULL;
    *len = 0;
    ret = read_full(fd, hdr, sizeof(hdr), &got);
    if (ret < 0) {
        return faas_error_set(err, -ret, "frame read");
    }
    if (ret == 0) {
        if (got == 0) {
            return 0;
        }
        return faas_error_set(err, ECONNRESET, "frame read: EOF in header");
    }
    n = faas_frame_get_len(hdr);
    if (n > max) {
        return faas_error_set(err, EMSGSIZE, "frame of %u bytes over limit %zu",
                              n, max);
    }
    p = malloc((size_t) n + 1);
    if (p == NULL) {
        return faas_error_set(err, ENOMEM, "frame read");
    }
    ret = read_full(fd, p, n, &got);
    if (ret <= 0) {
        free(p);
        if (ret == 0) {
            return faas_error_set(err, ECONNRESET, "frame read: EOF after %zu "
                                  "of %u bytes", got, n);
        }
        return faas_error_set(err, -ret, "frame read");
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
    return 1;
}


void
faas_frame_buf_init(faas_frame_buf_t *fb, size_t max)
{
    memset(fb, 0, sizeof(*fb));
    fb->max = max;
}


void
faas_frame_buf_free(faas_frame_buf_t *fb)
{
    free(fb->data);
    memset(fb, 0, sizeof(*fb));
}


static void
compact(faas_frame_buf_t *fb)
{
    if (fb->consumed > 0) {
        memmove(fb->data, fb->data + fb->consumed, fb->len - fb->consumed);
        fb->len -= fb->consumed;
        fb->consumed = 0;
    }
}


int
faas_frame_buf_append(faas_frame_buf_t *fb, const void *data, size_t n,
                      faas_error_t *err)
{
    size_t   cap;
    uint8_t *p;

    if (n == 0) {
        return 0; /* fb->data may still be NULL: no memcpy to it */
    }
    compact(fb);
    if (fb->len + n > fb->cap) {
        cap = fb->cap ? fb->cap : 4096;
        while (cap < fb->len + n) {
            cap *= 2;
        }
        p = realloc(fb->data, cap);
        if (p == NULL) {
            return faas_error_set(err, ENOMEM, "frame buffer");
        }
        fb->data = p;
        fb->cap = cap;
    }
    memcpy(fb->data + fb->len, data, n);
    fb->len += n;
    return 0;
}


int
faas_frame_buf_next(faas_frame_buf_t *fb, const uint8_t **frame, size_t *len,
                    faas_error_t *err)
{
    uint32_t n;

    compact(fb);
    if (fb->len < FAAS_FRAME_HDR) {
        return 0;
    }
    n = faas_frame_get_len(fb->data);
    if (n > fb->max) {
        return faas_error_set(err, EMSGSIZE, "frame of %u bytes over limit %zu",
                              n, fb->max);
    }
    if (fb->len - FAAS_FRAME_HDR < n) {
        return 0;
    }
    *frame = fb->data + FAAS_FRAME_HDR;
    *len = n;
    fb->consumed = FAAS_FRAME_HDR + (size_t) n;
    return 1;
}

