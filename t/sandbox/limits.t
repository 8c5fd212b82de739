# Resource limits: a fork bomb stops at pids.max, a memory bomb is
# OOM-killed inside its own cgroup, filling /tmp stops at its size. The host
# is unaffected and every sandbox can still be destroyed.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;

my $HANDLER = <<'PY';
import os, errno, time

def forkbomb():
    n = 0
    while True:
        try:
            pid = os.fork()
        except OSError as e:
            return {'forked': n, 'error': errno.errorcode.get(e.errno)}
        if pid == 0:
            try:
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.005)
            finally:
                os._exit(0)
        n += 1

def membomb():
    hog = []
    while True:
        hog.append(b'x' * (8 << 20))

def tmpfill():
    total = 0
    i = 0
    while True:
        try:
            with open('/tmp/fill.%d' % i, 'wb') as f:
                for _ in range(8):
                    f.write(b'\0' * (128 << 10))
                    f.flush()
                    total += 128 << 10
        except OSError as e:
            return {'written': total, 'error': errno.errorcode.get(e.errno)}
        i += 1

def x32():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return {'ret': libc.syscall(0x40000000 + 39)}   # x32 getpid

def logflood():
    total = 0
    chunk = b'x' * (256 << 10)
    while total < (64 << 20):
        try:
            total += os.write(2, chunk)
        except OSError as e:
            return {'written': total, 'error': errno.errorcode.get(e.errno)}
    return {'written': total, 'error': None}

def handler(event, context):
    return {'forkbomb': forkbomb, 'membomb': membomb, 'tmpfill': tmpfill,
            'x32': x32, 'logflood': logflood}[event['do']]()
PY

for_each_runtime($HANDLER, sub {
my ($rt, $cfg, $code) = @_;

# fork bomb
{
    my $id = sbx_create($cfg, code => $code, pids => 24);
    like($id, qr/^s-/, 'fork bomb sandbox created');
    my ($a, $e) = sbx_invoke($cfg, $id, { do => 'forkbomb' }, '--timeout-ms', 20000);
    my $r = sbx_result($a) or diag($e);
    is($r->{error}, 'EAGAIN', 'fork fails with EAGAIN at pids.max');
    my $cur = read_file(cg_file($cfg, 'pids', $id, 'pids.current'));
    chomp $cur;
    cmp_ok($cur, '<=', 24, "the sandbox holds at most pids.max processes ($cur)");
    cmp_ok($cur, '>=', 20, 'the bomb filled its pids budget');
    is(system('/bin/true'), 0, 'the host can still start processes');
    my ($rc, $err) = sbx_destroy($cfg, $id);
    is($rc, 0, 'a sandbox full of forking processes is destroyed') or diag($err);
    ok(!-d cg_file($cfg, 'pids', $id, ''), 'its pids cgroup is gone');
}

# memory bomb
{
    my $id = sbx_create($cfg, code => $code, memory => 48);
    like($id, qr/^s-/, 'memory bomb sandbox created');
    my $meta = json_decode(read_file("$cfg->{run_dir}/sbx/$id/meta.json"));
    my $bystander = spawn("bystander-$rt", ['sleep', '60']);
    my ($a, $e) = sbx_invoke($cfg, $id, { do => 'membomb' }, '--timeout-ms', 20000);
    ok(!defined $a, 'the invoke fails');
    like($e, qr/connection lost/, "the caller sees the connection lost ($e)");
    my $oom = read_file(cg_file($cfg, 'memory', $id, 'memory.oom_control'));
    like($oom, qr/oom_kill [1-9]/, 'the OOM kill is counted in the sandbox cgroup');
    ok(wait_until(sub { !kill(0, $meta->{pid}) }, 10), 'the runtime was killed');
    ok(proc_alive($bystander), 'a host process is unaffected');
    stop_proc($bystander);
    my ($rc, $err) = sbx_destroy($cfg, $id);
    is($rc, 0, 'the OOM-killed sandbox is destroyed') or diag($err);
}

# a syscall of another ABI (x32) kills the process
{
    my $id = sbx_create($cfg, code => $code);
    like($id, qr/^s-/, 'x32 sandbox created');
    my $meta = json_decode(read_file("$cfg->{run_dir}/sbx/$id/meta.json"));
    my ($a, $e) = sbx_invoke($cfg, $id, { do => 'x32' });
    ok(!defined $a, 'an x32 syscall does not return') or diag(json_encode($a));
    like($e, qr/connection lost/, 'the runtime was killed by the seccomp filter');
    ok(wait_until(sub { !kill(0, $meta->{pid}) }, 10), 'the runtime is gone');
    my ($rc, $err) = sbx_destroy($cfg, $id);
    is($rc, 0, 'destroyed') or diag($err);
}

# the runtime's own stdout/stderr (runtime.log on the host) is capped; the
# real runtime captures a handler's output itself, so only the test runtime
if ($rt eq 'test') {
    my $id = sbx_create($cfg, code => $code);
    my ($a, $e) = sbx_invoke($cfg, $id, { do => 'logflood' });
    my $r = sbx_result($a) or diag($e);
    like($r->{error} // 'none', qr/^(ENOSPC|EFBIG)$/, "flooding stderr ends with an error ($r->{error})");
    my $size = -s "$cfg->{run_dir}/sbx/$id/runtime.log";
    cmp_ok($size, '<=', 4 << 20, "runtime.log stays capped on the host ($size bytes)");
    my ($rc, $err) = sbx_destroy($cfg, $id);
    is($rc, 0, 'destroyed') or diag($err);
}

# /tmp fill
{
    my $id = sbx_create($cfg, code => $code, tmp => 8);
    like($id, qr/^s-/, 'tmp fill sandbox created');
    my ($a, $e) = sbx_invoke($cfg, $id, { do => 'tmpfill' }, '--timeout-ms', 20000);
    my $r = sbx_result($a) or diag($e);
    is($r->{error}, 'ENOSPC', 'filling /tmp ends with ENOSPC');
    cmp_ok($r->{written}, '<=', 8 << 20, "no more than the tmp size was written ($r->{written})");
    cmp_ok($r->{written}, '>=', 6 << 20, 'close to the tmp size was written');
    my ($rc, $err) = sbx_destroy($cfg, $id);
    is($rc, 0, 'destroyed') or diag($err);
}
});

faas_finish();
