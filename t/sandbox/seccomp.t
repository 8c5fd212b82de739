# The seccomp allowlist, from a handler: what Docker's default profile
# refuses is refused here too (EPERM), syscall numbers newer than the
# filter answer ENOSYS, socket() only opens the families a function needs,
# and what the runtimes do every day (threads, fork, exec, netlink) still
# works. Runs with the test runtime and, when present, the real one;
# zygote_seccomp.t runs it again through zygote-made sandboxes.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;

my $HANDLER = <<'PY';
import os, errno, socket, ctypes, threading, subprocess
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def sys(nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if ret >= 0:
        return 'ok'
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

def sock(family, kind=socket.SOCK_STREAM):
    try:
        socket.socket(family, kind).close()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def thread():
    out = []
    t = threading.Thread(target=lambda: out.append(1))
    t.start()
    t.join()
    return 'ok' if out == [1] else 'no'

def handler(event, context):
    buf = ctypes.create_string_buffer(64)
    addr = ctypes.addressof(buf)
    r = {
        # refused: EPERM
        'personality_addr_no_randomize': sys(135, 0x0040000),
        'personality_read_implies_exec': sys(135, 0x0400000),
        'mbind': sys(237, addr, 4096, 0, 0, 0, 0),
        'set_mempolicy': sys(238, 0, 0, 0),
        'move_pages': sys(279, 0, 1, addr, 0, addr, 0),
        'modify_ldt': sys(154, 0, addr, 16),
        'io_uring_setup': sys(425, 8, addr),
        'userfaultfd': sys(323, 0),
        'kcmp': sys(312, 1, 1, 0, 0, 0),
        'pidfd_getfd': sys(438, 0, 0, 0),
        'perf_event_open': sys(298, addr, 0, -1, -1, 0),
        'add_key': sys(248, 0, 0, 0, 0, 0),
        'clock_adjtime': sys(305, 0, addr),
        'name_to_handle_at': sys(303, -100, addr, addr, addr, 0),
        'syslog': sys(103, 3, addr, 16),
        'swapon': sys(167, addr, 0),
        'unshare_cgroup': sys(272, 0x02000000),
        'clone_newpid': sys(56, 0x20000000 | 17, 0, 0, 0, 0),
        # newer than the filter: ENOSYS
        'statmount': sys(457, 0, 0, 0, 0),
        'listmount': sys(458, 0, 0, 0, 0),
        'nr_1000': sys(1000),
        'clone3': sys(435, 0, 0),
        # socket families
        'af_unix': sock(socket.AF_UNIX),
        'af_inet': sock(socket.AF_INET),
        'af_inet6': sock(socket.AF_INET6),
        'af_netlink': sock(socket.AF_NETLINK, socket.SOCK_RAW),
        'af_vsock': sock(40),
        'af_alg': sock(38, socket.SOCK_SEQPACKET),
        'af_packet': sock(17, socket.SOCK_RAW),
        'af_bluetooth': sock(31, socket.SOCK_STREAM),
        'af_key': sock(15, socket.SOCK_RAW),
        'af_tipc': sock(30, socket.SOCK_STREAM),
        # still allowed
        'personality_query': 'ok' if libc.personality(ctypes.c_ulong(0xffffffff)) >= 0 else 'no',
        'personality_linux': 'ok' if libc.personality(0) >= 0 else 'no',
        'thread': thread(),
        'getifaddrs': 'ok' if 'lo' in [n for _, n in socket.if_nameindex()] else 'no',
        'exec': subprocess.run(['/bin/sh', '-c', 'exit 7']).returncode,
        'getrandom': 'ok' if len(os.urandom(8)) == 8 else 'no',
    }
    return r
PY

for_each_runtime($HANDLER, sub {
    my ($rt, $cfg, $code) = @_;
    my $id = sbx_create($cfg, code => $code);
    like($id, qr/^s-/, "[$rt] sandbox created");
    my ($a, $e) = sbx_invoke($cfg, $id, {});
    my $r = sbx_result($a) or diag($e, json_encode($a));

    is($r->{$_}, 'EPERM', "[$rt] $_ refused with EPERM")
        for qw(personality_addr_no_randomize personality_read_implies_exec
               mbind set_mempolicy move_pages modify_ldt io_uring_setup
               userfaultfd kcmp pidfd_getfd perf_event_open add_key
               clock_adjtime name_to_handle_at syslog swapon unshare_cgroup
               clone_newpid);
    is($r->{$_}, 'ENOSYS', "[$rt] $_ answers ENOSYS")
        for qw(statmount listmount nr_1000 clone3);
    is($r->{$_}, 'ok', "[$rt] socket $_ opens")
        for qw(af_unix af_inet af_inet6 af_netlink);
    is($r->{$_}, 'EPERM', "[$rt] socket $_ refused with EPERM")
        for qw(af_vsock af_alg af_packet af_bluetooth af_key af_tipc);
    is($r->{$_}, 'ok', "[$rt] $_ still works")
        for qw(personality_query personality_linux thread getifaddrs getrandom);
    is($r->{exec}, 7, "[$rt] fork and exec still work");

    my ($rc, $err) = sbx_destroy($cfg, $id);
    is($rc, 0, "[$rt] destroyed") or diag($err);
});

faas_finish();
