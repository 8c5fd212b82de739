/*
 * The freeze guard: with freeze_after_idle_ms, a sandbox stays thawed for
 * a moment after its call, so an agent killed in that moment would leave
 * it thawed for good (docs/DESIGN.md section 6, "Rules"). The guard is a
 * small child process forked at start, before any thread exists: the agent
 * sends it each sandbox id once, the first time it serves that sandbox, and
 * the guard sleeps in read(). When the pipe ends without the agent's clean
 * goodbye (killed, crashed), the guard freezes every sandbox it was told
 * of and exits. A clean exit froze them already and says so with a ".".
 *
 * Costs nothing per call: one short write per sandbox the agent opens.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"

#define GUARD_BYE "."

typedef struct guard_ids_s {
    char (*id)[FAAS_SANDBOX_ID_LEN + 1];
    size_t n, cap;
} guard_ids_t;

static void
ids_add(guard_ids_t *ids, const char *id, size_t len)
{
    void *p;

    if (len == 0 || len > FAAS_SANDBOX_ID_LEN) {
        return;
    }
    if (ids->n == ids->cap) {
        p = realloc(ids->id, (ids->cap ? ids->cap * 2 : 64) * sizeof(*ids->id));
        if (p == NULL) {
            return;
        }
        ids->id = p;
        ids->cap = ids->cap ? ids->cap * 2 : 64;
    }
    memcpy(ids->id[ids->n], id, len);
    ids->id[ids->n][len] = '\0';
    ids->n++;
}

/* Freezes every sandbox of ids that still exists; returns how many. */
static size_t
freeze_all(const faas_sandbox_host_t *host, guard_ids_t *ids)
{
    faas_cgroup_t *cg;
    faas_error_t   err;
    size_t         i, frozen = 0;

    for (i = 0; i < ids->n; i++) {
        if (faas_cgroup_open(host, ids->id[i], &cg, &err) < 0) {
            continue; /* destroyed meanwhile */
        }
        if (faas_cgroup_freeze(cg, &err) == 0) {
            frozen++;
        }
        faas_cgroup_close(cg);
    }
    return frozen;
}

/* The guard process: collects ids until the pipe ends. */
static void __attribute__((noreturn))
guard_main(const faas_sandbox_host_t *host, int fd)
{
    guard_ids_t ids = {0};
    char        buf[4096];
    size_t      have = 0, start, i;
    ssize_t     n;
    int         bye = 0;

    prctl(PR_SET_NAME, "faas-agent-grd");
    /* The agent handles these; the guard waits for its end instead. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    for (;;) {
        n = read(fd, buf + have, sizeof(buf) - have);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        have += (size_t) n;
        start = 0;
        for (i = 0; i < have; i++) {
            if (buf[i] == '\n') {
                bye = i - start == 1 && buf[start] == GUARD_BYE[0];
                if (!bye) {
                    ids_add(&ids, buf + start, i - start);
                }
                start = i + 1;
            }
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == sizeof(buf)) {
            have = 0; /* no line is this long: drop it */
        }
    }
    if (!bye && ids.n > 0) {
        faas_warn(NULL, "agent gone: guard froze %zu of %zu sandboxes",
                  freeze_all(host, &ids), ids.n);
    }
    _exit(0);
}

/*
 * Forks the guard. Call before any thread is started (the child uses
 * malloc). 0 or <0 with err.
 */
int
faas_guard_start(faas_agent_t *a, faas_error_t *err)
{
    int   fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        return faas_error_set(err, errno, "guard pipe");
    }
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return faas_error_set(err, errno, "fork the freeze guard");
    }
    if (pid == 0) {
        close(fds[1]);
        guard_main(&a->host, fds[0]);
    }
    close(fds[0]);
    a->guard_fd = fds[1];
    return 0;
}

static void
guard_write(faas_agent_t *a, const char *line)
{
    char    buf[FAAS_SANDBOX_ID_LEN + 2];
    int     len;
    ssize_t n;

    if (a->guard_fd < 0) {
        return;
    }
    len = snprintf(buf, sizeof(buf), "%s\n", line);
    do {
        n = write(a->guard_fd, buf, (size_t) len); /* < PIPE_BUF: atomic */
    } while (n < 0 && errno == EINTR);
    if (n != len) {
        faas_warn(NULL, "freeze guard gone (%s): a sandbox kept thawed may "
                  "stay thawed if the agent dies",
                  n < 0 ? strerror(errno) : "short write");
        close(a->guard_fd);
        a->guard_fd = -1;
    }
}

/* Tells the guard of a sandbox the agent serves (once per sandbox). */
void
faas_guard_add(faas_agent_t *a, const char *id)
{
    guard_write(a, id);
}

/* The agent froze its sandboxes itself and exits: the guard need not. */
void
faas_guard_bye(faas_agent_t *a)
{
    guard_write(a, GUARD_BYE);
    if (a->guard_fd >= 0) {
        close(a->guard_fd);
        a->guard_fd = -1;
    }
}
