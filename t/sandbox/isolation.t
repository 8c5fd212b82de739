# Hostile handlers, invoked through faas-sandbox: each assertion is
# something a function must not be able to do. Runs with the test runtime
# and, when runtimes/python exists, with the real one.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

my $HOSTILE = <<'PY';
import os, errno, socket, ctypes, signal
libc = ctypes.CDLL(None, use_errno=True)

def err_of(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def cerr(ret):
    return 'ok' if ret == 0 else errno.errorcode.get(ctypes.get_errno(), '?')

def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        return 'connected'
    except socket.timeout:
        return 'timeout'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()

def write(path):
    with open(path, 'w') as f:
        f.write('x')

def masked_size(path):
    # what a masked (or absent) /proc entry shows: 0 bytes, 0 entries
    if not os.path.exists(path):
        return 0
    if os.path.isdir(path):
        return len(os.listdir(path))
    try:
        return len(open(path, 'rb').read())
    except OSError:
        return 0

def status():
    out = {}
    for line in open('/proc/self/status'):
        k, _, v = line.partition(':')
        out[k] = v.strip()
    return out

def fds():
    out = []
    for f in os.listdir('/proc/self/fd'):
        try:
            out.append(os.readlink('/proc/self/fd/' + f))
        except OSError:
            pass
    return out

def handler(event, context):
    what = event['check']
    if what == 'net':
        return {'ifaces': sorted(n for _, n in socket.if_nameindex()),
                'host_lo': connect('127.0.0.1', event['port']),
                'host_ip': connect(event['ip'], event['port']) if event.get('ip') else None,
                'own_lo': err_of(lambda: socket.create_server(('127.0.0.1', 0)).close())}
    if what == 'fs':
        return {'task': err_of(lambda: write('/var/task/new.txt')),
                'root': err_of(lambda: write('/new.txt')),
                'etc': err_of(lambda: write('/etc/passwd')),
                'usr': err_of(lambda: write('/usr/new.txt')),
                'runtimes': err_of(lambda: write('/opt/faas/runtimes/x')),
                'tmp': err_of(lambda: write('/tmp/ok.txt')),
                'shadow': os.path.exists('/etc/shadow'),
                'task_files': sorted(os.listdir('/var/task')),
                'other': os.path.exists(event['other']),
                'host_work': os.path.exists(event['work']),
                'sys': os.path.exists('/sys/fs/cgroup'),
                'kcore': os.stat('/proc/kcore').st_size if os.path.exists('/proc/kcore') else 0,
                'timer_list': len(open('/proc/timer_list').read()),
                'keys': len(open('/proc/keys').read()),
                'masked': {p: masked_size('/proc/' + p)
                           for p in ('key-users', 'interrupts', 'kmsg',
                                     'pagetypeinfo', 'asound', 'scsi', 'acpi')},
                'sysrq': err_of(lambda: write('/proc/sysrq-trigger')),
                'proc_sys': err_of(lambda: write('/proc/sys/kernel/hostname')),
                'dev': sorted(os.listdir('/dev')),
                'mounts': [l.split()[4] for l in open('/proc/self/mountinfo')],
                'oldroot': err_of(lambda: os.listdir('/.oldroot')),
                'fds': fds()}
    if what == 'procs':
        pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
        child = os.fork()
        if child == 0:
            try:
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        killed = err_of(lambda: os.kill(-1, signal.SIGKILL))
        return {'pids': pids, 'me': os.getpid(), 'killed': killed}
    if what == 'privs':
        st = status()
        CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000
        return {'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(),
                'groups': os.getgroups(),
                'capeff': st['CapEff'], 'capprm': st['CapPrm'],
                'capbnd': st['CapBnd'], 'capamb': st['CapAmb'],
                'nnp': st['NoNewPrivs'], 'seccomp': st['Seccomp'],
                'sigign': int(st['SigIgn'], 16), 'sigblk': int(st['SigBlk'], 16),
                'hostname': socket.gethostname(),
                'mount': cerr(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),
                'umount': cerr(libc.umount2(b'/tmp', 2)),
                'ptrace': cerr(libc.ptrace(0, 0, None, None)),
                'unshare_ns': cerr(libc.unshare(CLONE_NEWNS)),
                'unshare_user': cerr(libc.unshare(CLONE_NEWUSER)),
                'unshare_net': cerr(libc.unshare(CLONE_NEWNET)),
                'bpf': cerr(libc.syscall(321, 0, None, 0)),
                'keyctl': cerr(libc.syscall(250, 0, 0, 0, 0, 0)),
                'setuid0': err_of(lambda: os.setuid(0)),
                'chown': err_of(lambda: os.chown('/tmp', 0, 0)),
                'nofile': __import__('resource').getrlimit(__import__('resource').RLIMIT_NOFILE)[0],
                'core': __import__('resource').getrlimit(__import__('resource').RLIMIT_CORE)[1]}
    if what == 'sockswap':
        os.unlink('/run/faas/function.sock')
        os.symlink(event['target'], '/run/faas/function.sock')
        return {'swapped': True}
    raise ValueError('unknown check')
PY

my ($host_ip) = `ip -4 -o addr show scope global 2>/dev/null` =~ /inet (\d+\.\d+\.\d+\.\d+)/;
my $listener = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => 0,
                                     Listen => 5, ReuseAddr => 1) or die $!;
my $port = $listener->sockport;

for_each_runtime($HOSTILE, sub {
    my ($rt, $cfg, $code) = @_;
    my $other = write_handler(work_dir() . "/other-$rt", "def handler(e, c):\n    return 1\n");
    write_file("$other/secret.txt", "other sandbox's code\n");
    my $id;
    {
        # a creator that ignores signals must not hand that to the runtime
        local $SIG{HUP} = 'IGNORE';
        local $SIG{USR1} = 'IGNORE';
        $id = sbx_create($cfg, code => $code);
    }
    my $id2 = sbx_create($cfg, code => $other);
    like($id, qr/^s-/, "[$rt] hostile sandbox created");
    like($id2, qr/^s-/, "[$rt] a second sandbox created");
    my $meta = json_decode(read_file("$cfg->{run_dir}/sbx/$id/meta.json"));

    # network
    my ($a, $e) = sbx_invoke($cfg, $id, { check => 'net', port => $port, ip => $host_ip });
    my $r = sbx_result($a) or diag($e, json_encode($a));
    is_deeply($r->{ifaces}, ['lo'], "[$rt] only the loopback interface exists");
    isnt($r->{host_lo}, 'connected', "[$rt] the host's 127.0.0.1 listener is unreachable ($r->{host_lo})");
    SKIP: {
        skip 'no global IPv4 address on this host', 1 unless $host_ip;
        isnt($r->{host_ip}, 'connected', "[$rt] the host's $host_ip is unreachable ($r->{host_ip})");
    }
    is($r->{own_lo}, 'ok', "[$rt] lo is up inside the sandbox");

    # file systems
    ($a, $e) = sbx_invoke($cfg, $id, { check => 'fs', other => $other, work => work_dir() });
    $r = sbx_result($a) or diag($e, json_encode($a));
    is($r->{task}, 'EROFS', "[$rt] /var/task is read-only");
    is($r->{root}, 'EROFS', "[$rt] / is read-only");
    is($r->{etc}, 'EROFS', "[$rt] /etc is read-only");
    is($r->{usr}, 'EROFS', "[$rt] /usr is read-only");
    is($r->{runtimes}, 'EROFS', "[$rt] /opt/faas/runtimes is read-only");
    is($r->{tmp}, 'ok', "[$rt] /tmp is writable");
    ok(!$r->{shadow}, "[$rt] /etc/shadow is not there");
    is_deeply($r->{task_files}, ['handler.py'], "[$rt] /var/task holds only this function's code");
    ok(!$r->{other}, "[$rt] another sandbox's code dir is invisible");
    ok(!$r->{host_work}, "[$rt] the host's work dir is invisible");
    ok(!$r->{sys}, "[$rt] no /sys");
    is($r->{kcore}, 0, "[$rt] /proc/kcore is masked (or absent)");
    is($r->{timer_list}, 0, "[$rt] /proc/timer_list is masked");
    is($r->{keys}, 0, "[$rt] /proc/keys is masked");
    is($r->{masked}{$_}, 0, "[$rt] /proc/$_ is masked (or absent)")
        for sort keys %{ $r->{masked} || { missing => 1 } };
    like($r->{sysrq}, qr/^E(ROFS|ACCES|PERM|NOENT)$/, "[$rt] /proc/sysrq-trigger not writable ($r->{sysrq})");
    like($r->{proc_sys}, qr/^E(ROFS|ACCES|PERM)$/, "[$rt] /proc/sys is read-only ($r->{proc_sys})");
    is_deeply($r->{dev}, [sort qw(full null random tty urandom zero shm pts fd stdin stdout stderr)],
              "[$rt] minimal /dev");
    ok(!-e "$code/new.txt", "[$rt] nothing was written to the code dir");
    my @host_mounts = grep { m{^/(\.oldroot|sys|work|root|home)} || $_ eq '/run/faas/..' } @{ $r->{mounts} };
    is_deeply(\@host_mounts, [], "[$rt] no host mount is left in the sandbox (old root detached)");
    ok((grep { $_ eq '/var/task' } @{ $r->{mounts} }), "[$rt] mountinfo lists the sandbox's own mounts");
    my $work = work_dir();
    is_deeply([grep { index($_, $work) >= 0 || m{^/(work|root|home)/} } @{ $r->{fds} }], [],
              "[$rt] no open fd of the runtime names a host path (@{$r->{fds}})");
    is($r->{oldroot}, 'EACCES', "[$rt] the old root's mount point cannot be entered");

    # processes
    my $victim = spawn("victim-$rt", ['sleep', '60']);
    ($a, $e) = sbx_invoke($cfg, $id, { check => 'procs' });
    $r = sbx_result($a) or diag($e, json_encode($a));
    ok(@{ $r->{pids} } >= 1 && @{ $r->{pids} } <= 2, "[$rt] only the sandbox's processes are in /proc (@{$r->{pids}})");
    is($r->{me}, 1, "[$rt] the runtime is pid 1 of its own pid namespace");
    ok(!(grep { $_ == $victim->{pid} || $_ == $$ } @{ $r->{pids} }) || $victim->{pid} <= 2,
       "[$rt] host processes are invisible");
    ok(proc_alive($victim), "[$rt] kill(-1, SIGKILL) in the sandbox did not reach a host process");
    my $meta2 = json_decode(read_file("$cfg->{run_dir}/sbx/$id2/meta.json"));
    ok(kill(0, $meta2->{pid}), "[$rt] nor the other sandbox");
    stop_proc($victim);

    # privileges
    ($a, $e) = sbx_invoke($cfg, $id, { check => 'privs' });
    $r = sbx_result($a) or diag($e, json_encode($a));
    is($r->{uid}, $meta->{uid}, "[$rt] runs as the sandbox's uid");
    isnt($r->{uid}, $meta2->{uid}, "[$rt] two sandboxes have different uids");
    is($r->{euid}, $meta->{uid}, "[$rt] effective uid too");
    is($r->{gid}, $meta->{uid}, "[$rt] gid = uid");
    is_deeply($r->{groups}, [], "[$rt] no supplementary groups");
    is($r->{capeff}, '0000000000000000', "[$rt] CapEff is zero");
    is($r->{capprm}, '0000000000000000', "[$rt] CapPrm is zero");
    is($r->{capbnd}, '0000000000000000', "[$rt] bounding set is empty");
    is($r->{capamb}, '0000000000000000', "[$rt] ambient set is empty");
    is($r->{nnp}, '1', "[$rt] no_new_privs is set");
    is($r->{seccomp}, '2', "[$rt] a seccomp filter is loaded");
    is($r->{sigign} & ((1 << 0) | (1 << 9)), 0, "[$rt] SIGHUP and SIGUSR1 are not inherited as ignored");
    is($r->{sigblk}, 0, "[$rt] no signal is blocked");
    is($r->{hostname}, 'faas', "[$rt] own hostname (uts namespace)");
    is($r->{$_}, 'EPERM', "[$rt] $_ refused with EPERM")
        for qw(mount umount ptrace unshare_ns unshare_user unshare_net bpf keyctl setuid0 chown);
    is($r->{nofile}, 1024, "[$rt] RLIMIT_NOFILE 1024");
    is($r->{core}, 0, "[$rt] RLIMIT_CORE 0");

    # the sandbox owns its socket file: a symlink in its place must not make
    # the host connect to a host socket
    my $hs_path = work_dir() . "/host-$rt.sock";
    my $hs = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $hs_path, Listen => 5)
        or die "listen $hs_path: $!";
    ($a, $e) = sbx_invoke($cfg, $id, { check => 'sockswap', target => $hs_path });
    ok(sbx_result($a) && sbx_result($a)->{swapped}, "[$rt] the handler replaced its socket by a symlink");
    ok(-l "$cfg->{run_dir}/sbx/$id/function.sock", "[$rt] (it is a symlink now)");
    ($a, $e) = sbx_invoke($cfg, $id, { check => 'procs' }, '--timeout-ms', 3000);
    ok(!defined $a, "[$rt] the next invoke fails");
    like($e, qr/Socket operation on non-socket/, "[$rt] because the socket is not a socket ($e)");
    $hs->blocking(0);
    ok(!$hs->accept, "[$rt] the host socket got no connection");
    close $hs;

    for my $x ($id, $id2) {
        my ($rc, $err) = sbx_destroy($cfg, $x);
        is($rc, 0, "[$rt] destroyed") or diag($err);
    }
});

faas_finish();
