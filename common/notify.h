/*
 * Readiness and state for a service manager (systemd units with
 * Type=notify, conf/systemd/), through sd_notify(3) from libsystemd.
 *
 * Each call sends one datagram to $NOTIFY_SOCKET: the state (READY=1,
 * STOPPING=1 or none) and a STATUS= line made from fmt, which
 * `systemctl status` shows. Without NOTIFY_SOCKET (started by hand, by
 * conf/platform.sh, by the tests) nothing is sent. A failure to send is
 * logged and otherwise ignored: the daemon's work does not depend on it.
 */
#ifndef FAAS_NOTIFY_H
#define FAAS_NOTIFY_H

/* The daemon serves: its socket accepts, or it holds what it needs. */
void faas_notify_ready(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* The daemon has begun its shutdown (a stop or restart is under way). */
void faas_notify_stopping(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* A new STATUS= line, the state unchanged. */
void faas_notify_status(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
