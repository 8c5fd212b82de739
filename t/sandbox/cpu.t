# CPU scales with memory: a sandbox's CFS quota is memory_mb /
# cpu_mb_per_vcpu of a CPU (default 1769, Lambda's ratio), so a busy loop in
# a 128 MB function gets about 7 % of a CPU, not the whole host. The swap
# and limit settings are checked in the config.
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Faas::Test;
use Faas::Sandbox;

my $HANDLER = <<'PY';
import time

def handler(event, context):
    end = time.monotonic() + event['spin_s']
    n = 0
    while time.monotonic() < end:
        n += 1
    return {'loops': n, 'cpu_s': time.process_time()}
PY

my $TICK = `getconf CLK_TCK` || 100;

# CPU seconds the sandbox's processes used so far (utime + stime), read on
# the host from every pid of its cpu cgroup.
sub cg_cpu_s {
    my ($cfg, $id) = @_;
    my $ticks = 0;
    for my $pid (split /\n/, read_file(cg_file($cfg, 'cpu', $id, 'cgroup.procs')) // '') {
        my $stat = read_file("/proc/$pid/stat") // next;
        $stat =~ s/.*\) //s;
        my @f = split / /, $stat;
        $ticks += $f[11] + $f[12];    # utime, stime (fields 14, 15)
    }
    return $ticks / $TICK;
}

sub cg_value {
    my ($cfg, $hier, $id, $file) = @_;
    my $v = read_file(cg_file($cfg, $hier, $id, $file)) // '';
    chomp $v;
    return $v;
}

my $cfg = sandbox_config(name => 'cpu');
my $code = write_handler(work_dir() . '/code', $HANDLER);

# a 128 MB sandbox: 100000 * 128 / 1769 = 7235 us per 100 ms period
{
    my $id = sbx_create($cfg, code => $code, memory => 128);
    like($id, qr/^s-/, 'a 128 MB sandbox created');
    is(cg_value($cfg, 'cpu', $id, 'cpu.cfs_period_us'), 100000, 'CFS period 100 ms');
    is(cg_value($cfg, 'cpu', $id, 'cpu.cfs_quota_us'), 7235, 'CFS quota 128/1769 of it');

    my $before = cg_cpu_s($cfg, $id);
    my $t0 = time;
    my ($a, $e) = sbx_invoke($cfg, $id, { spin_s => 1.2 }, '--timeout-ms', 10000);
    my $wall = time - $t0;
    my $used = cg_cpu_s($cfg, $id) - $before;
    ok($a && $a->{ok}, 'the busy loop ran') or diag($e);
    my $share = $used / $wall;
    note(sprintf('busy loop: %.3f CPU s over %.3f s wall (%.1f %% of a CPU)',
                 $used, $wall, 100 * $share));
    cmp_ok($share, '<', 0.25, 'well below one CPU');
    cmp_ok($used, '>', 0, 'but above zero');
    like(cg_value($cfg, 'cpu', $id, 'cpu.stat'), qr/^nr_throttled [1-9]/m,
         'the cgroup was throttled');
    my ($rc, $err) = sbx_destroy($cfg, $id);
    is($rc, 0, 'destroyed') or diag($err);
}

# the ratio is a setting
{
    my $c2 = sandbox_config(name => 'cpu-ratio', extra => { cpu_mb_per_vcpu => 256 });
    my $id = sbx_create($c2, code => $code, memory => 128);
    like($id, qr/^s-/, 'created with cpu_mb_per_vcpu 256');
    is(cg_value($c2, 'cpu', $id, 'cpu.cfs_quota_us'), 50000, 'half a CPU for 128 MB');
    my $id2 = sbx_create($c2, code => $code, memory => 512);
    is(cg_value($c2, 'cpu', $id2, 'cpu.cfs_quota_us'), 200000, 'two CPUs for 512 MB');
    is((sbx_destroy($c2, $_))[0], 0, 'destroyed') for $id, $id2;
}

# swap: no more than the memory limit where the host accounts it
{
    my $id = sbx_create($cfg, code => $code, memory => 64);
    my $memsw = cg_file($cfg, 'memory', $id, 'memory.memsw.limit_in_bytes');
    SKIP: {
        skip 'this host does not account swap in cgroup v1', 1 unless -e $memsw;
        is(cg_value($cfg, 'memory', $id, 'memory.memsw.limit_in_bytes'), 64 << 20,
           'memory + swap limited to the memory limit');
    }
    is((sbx_destroy($cfg, $id))[0], 0, 'destroyed');
}

# bad settings are refused with a clear error
for my $case ([{ cpu_mb_per_vcpu => 0 }, qr/cpu_mb_per_vcpu must be 1\.\.1048576/],
              [{ cpu_mb_per_vcpu => 'lots' }, qr/cpu_mb_per_vcpu/],
              [{ require_swap_accounting => 'yes' }, qr/require_swap_accounting must be a boolean/]) {
    my ($extra, $re) = @$case;
    my $c = sandbox_config(name => "bad", extra => $extra, zygote => 0);
    my ($rc, undef, $err) = sbx($c, 'init');
    isnt($rc, 0, "faas-sandbox refuses " . join(",", %$extra));
    chomp $err;
    like($err, $re, "with a clear error ($err)");
}
my $ok = sandbox_config(name => 'noswap', extra => { require_swap_accounting => JSON::PP::false() }, zygote => 0);
my ($rc, undef, $err) = sbx($ok, 'init');
is($rc, 0, 'require_swap_accounting false is accepted') or diag($err);

faas_finish();
