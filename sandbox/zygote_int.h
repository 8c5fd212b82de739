/*
 * The wire format between the sandbox library and a runtime's zygote
 * (zygote.c: the library side; zygote_ext.c: the zygote's C side, loaded by
 * runtimes/python/zygote.py).
 *
 * Control socket (<run_dir>/sbx/.zygote/python.sock for the shared zygote,
 * fn-<FNV-1a 64 of the revision, hex>.sock for a revision's; stream, root
 * only; a zygote refuses requests whose key is not its own, so a hash
 * collision only sends that function the fresh way):
 *   request  zyg_req_t; for ZYG_OP_SPAWN with five fds (SCM_RIGHTS):
 *            blob, err (B -> caller), go (caller -> B), piv (B -> A), cg2
 *            (the sandbox's v2 cgroup directory, for CLONE_INTO_CGROUP)
 *   answer   zyg_ans_t: the new sandbox process's host pid, or an error.
 * One request per connection.
 *
 * The blob (a memfd, read only by the new sandbox process B, never by the
 * zygote): zyg_blob_t, the sbx_launch_t (its pointers and fd numbers are
 * meaningless in B and rebuilt), nargv then nenv NUL-terminated strings,
 * then the seccomp BPF program (bpf_len bytes of struct sock_filter).
 */
#ifndef FAAS_ZYGOTE_INT_H
#define FAAS_ZYGOTE_INT_H

#include <limits.h>
#include <stdint.h>

#define ZYG_MAGIC 0x595a4146u /* "FAZY" */
#define ZYG_OP_PING 1
#define ZYG_OP_SPAWN 2
#define ZYG_NFDS 5
#define ZYG_KEY_MAX 80 /* a revision, <function>@<version> */

typedef struct zyg_req_s {
    uint32_t magic;
    uint32_t op;
    char     runtimes_dir[PATH_MAX]; /* must be the zygote's own */
    char     key[ZYG_KEY_MAX];       /* must be the zygote's own: its
                                        revision, "" for the shared one */
} zyg_req_t;

typedef struct zyg_ans_s {
    int64_t pid; /* > 0: B's host pid; PING: the zygote's pid */
    int32_t errnum;
    char    msg[196];
} zyg_ans_t;

typedef struct zyg_blob_s {
    uint32_t magic;
    uint32_t launch_size; /* sizeof(sbx_launch_t), checked by B */
    uint32_t nargv, nenv;
    uint32_t str_len, bpf_len;
} zyg_blob_t;

#endif
