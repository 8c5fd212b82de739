/*
 * sd_notify(3) behind three calls (notify.h). The message is built here so
 * that a status text can never add a line of its own (a newline in it
 * would be read as another assignment).
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"

static void
notify(const char *state, const char *fmt, va_list ap)
{
    char  status[512], *nl;
    int   rc;

    vsnprintf(status, sizeof(status), fmt, ap);
    while ((nl = strchr(status, '\n')) != NULL) {
        *nl = ' ';
    }
    /* 0 when NOTIFY_SOCKET is not set: nothing was sent */
    rc = sd_notifyf(0, "%s%sSTATUS=%s", state != NULL ? state : "",
                    state != NULL ? "\n" : "", status);
    if (rc < 0) {
        faas_warn(NULL, "sd_notify %s: %s", state != NULL ? state : "STATUS",
                  strerror(-rc));
    }
}


void
faas_notify_ready(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    notify("READY=1", fmt, ap);
    va_end(ap);
}


void
faas_notify_stopping(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    notify("STOPPING=1", fmt, ap);
    va_end(ap);
}


void
faas_notify_status(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    notify(NULL, fmt, ap);
    va_end(ap);
}
