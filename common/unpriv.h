/*
 * Work on untrusted bytes (unpacking an uploaded zip) in a forked child
 * that has dropped every privilege: the uid and gid given, no
 * supplementary groups, no_new_privs, bounded address space and file size,
 * no core dump. docs/DESIGN.md section 8.
 */
#ifndef FAAS_UNPRIV_H
#define FAAS_UNPRIV_H

#include <sys/types.h>

#include "error.h"

typedef struct faas_unpriv_s {
    uid_t              uid;         /* the child's uid and gid; when the */
    gid_t              gid;         /* caller is not root, its own */
    unsigned long long max_as;      /* RLIMIT_AS: bytes the child may map
                                       beyond the caller's (0: unlimited) */
    unsigned long long max_fsize;   /* RLIMIT_FSIZE, bytes (0: unchanged) */
} faas_unpriv_t;

typedef int (*faas_unpriv_fn)(void *arg, faas_error_t *err);

/*
 * Runs fn(arg, err) in a child with the privileges and limits of u and
 * waits for it. Returns what fn returned, with fn's error in err (sent
 * back through a pipe), or < 0 when the child could not drop its
 * privileges or died (a limit reached: "killed by signal N"). The child
 * shares nothing with the caller afterwards: fn's effects are only on the
 * file system. Safe to call from a worker thread (glibc's malloc works in
 * the child of a threaded process); fn must not take locks other threads
 * may hold.
 */
int faas_unpriv_run(const faas_unpriv_t *u, faas_unpriv_fn fn, void *arg,
                    faas_error_t *err);

/*
 * The uid and gid of user name into u (getpwnam_r). Returns 0, or < 0
 * with err set when there is no such user.
 */
int faas_unpriv_user(const char *name, faas_unpriv_t *u, faas_error_t *err);

/*
 * Gives path (a Unix socket) to group, so the processes of that group may
 * connect (the socket is mode 0660). NULL or "" group: nothing to do.
 * Returns 0, or < 0 with err set (no such group, chown failed).
 */
int faas_unpriv_socket_group(const char *path, const char *group,
                             faas_error_t *err);

#endif
