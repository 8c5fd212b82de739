/*
 * One line per event: "<time> <level> <component> <request-id|-> <message>",
 * to stderr or to the file given to faas_log_init(). No secrets, no payloads.
 */
#ifndef FAAS_LOG_H
#define FAAS_LOG_H

enum faas_log_level {
    FAAS_LOG_DEBUG = 0,
    FAAS_LOG_INFO,
    FAAS_LOG_WARN,
    FAAS_LOG_ERROR,
};

/* path NULL or "-" logs to stderr. Returns 0, or -errno if path can't open. */
int faas_log_init(const char *component, const char *path, const char *level);

/* Reopens the log file (after rotation; call from a SIGHUP handler's loop). */
int faas_log_reopen(void);

/* 1 when the log goes to stderr: a daemon that also prints a fatal error
 * on stderr then says it once, not twice. */
int faas_log_to_stderr(void);

void faas_log(enum faas_log_level level, const char *request_id,
              const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define faas_debug(rid, ...) faas_log(FAAS_LOG_DEBUG, rid, __VA_ARGS__)
#define faas_info(rid, ...)  faas_log(FAAS_LOG_INFO, rid, __VA_ARGS__)
#define faas_warn(rid, ...)  faas_log(FAAS_LOG_WARN, rid, __VA_ARGS__)
#define faas_err(rid, ...)   faas_log(FAAS_LOG_ERROR, rid, __VA_ARGS__)

#endif
