#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "faas";
static char        log_path[4096];
static int         log_fd = STDERR_FILENO;
static int         log_min = FAAS_LOG_INFO;

static const char *level_names[] = { "debug", "info", "warn", "error" };


int
faas_log_init(const char *component, const char *path, const char *level)
{
    size_t i;

    log_component = component;
    if (level != NULL) {
        for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
            if (strcmp(level, level_names[i]) == 0) {
                log_min = (int) i;
            }
        }
    }
    if (path == NULL || strcmp(path, "-") == 0) {
        log_path[0] = '\0';
        return 0;
    }
    snprintf(log_path, sizeof(log_path), "%s", path);
    return faas_log_reopen();
}


int
faas_log_reopen(void)
{
    int fd;

    if (log_path[0] == '\0') {
        return 0;
    }
    fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        return -errno;
    }
    if (log_fd != STDERR_FILENO) {
        close(log_fd);
    }
    log_fd = fd;
    return 0;
}



int
faas_log_to_stderr(void)
{
    return log_fd == STDERR_FILENO;
}

void
faas_log(enum faas_log_level level, const char *request_id, const char *fmt,
         ...)
{
    char           line[2048];
    struct timeval tv;
    struct tm      tm;
    va_list        ap;
    int            n, m;
    ssize_t        w;

    if ((int) level < log_min) {
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (long) tv.tv_usec / 1000,
                 level_names[level], log_component,
                 request_id != NULL && request_id[0] ? request_id : "-");
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        m = 0;
    }
    n += m;
    if (n > (int) sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    /* One write per line keeps lines whole when several processes share a file. */
    w = write(log_fd, line, n);
    (void) w;
}
