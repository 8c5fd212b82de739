/*
 * hiredis on the libuv loop: hiredis 0.14's libuv adapter, except that a
 * poll error (a refused connect, a connection reset by a killed server) is
 * handed to hiredis as readiness, as later hiredis releases do, so that its
 * read or write fails and the connect or disconnect callback runs. The 0.14
 * adapter drops the error and the link hangs with no callback ever called.
 */
#include <hiredis/adapters/libuv.h>

#include "prov.h"


static void
poll_cb(uv_poll_t *handle, int status, int events)
{
    redisLibuvEvents *p = handle->data;
    int               ev = status != 0 ? p->events : events;

    if (p->context != NULL && (ev & UV_READABLE)) {
        redisAsyncHandleRead(p->context);
    }
    if (p->context != NULL && (ev & UV_WRITABLE)) {
        redisAsyncHandleWrite(p->context);
    }
}


static void
poll_update(redisLibuvEvents *p)
{
    if (p->events) {
        uv_poll_start(&p->handle, p->events, poll_cb);
    } else {
        uv_poll_stop(&p->handle);
    }
}


static void
add_read(void *data)
{
    redisLibuvEvents *p = data;

    p->events |= UV_READABLE;
    poll_update(p);
}


static void
del_read(void *data)
{
    redisLibuvEvents *p = data;

    p->events &= ~UV_READABLE;
    poll_update(p);
}


static void
add_write(void *data)
{
    redisLibuvEvents *p = data;

    p->events |= UV_WRITABLE;
    poll_update(p);
}


static void
del_write(void *data)
{
    redisLibuvEvents *p = data;

    p->events &= ~UV_WRITABLE;
    poll_update(p);
}


/* See prov.h. */
int
faas_prov_redis_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (redisLibuvAttach(ac, loop) != REDIS_OK) {
        return -1;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    return 0;
}
