# A sandbox's life: create (socket, FROZEN, runtime inside its cgroups,
# meta.json), invoke through faas-sandbox, destroy (nothing left), plus the
# list/state/cleanup commands.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Sandbox;

my $cfg = sandbox_config();
my $code = write_handler(work_dir() . '/code', <<'PY');
import os
def handler(event, context):
    return {'echo': event, 'uid': os.getuid(), 'cwd': os.getcwd(),
            'fn': os.environ.get('FAAS_FUNCTION_NAME'),
            'mine': os.environ.get('MY_VAR'),
            'faas_handler': os.environ.get('FAAS_HANDLER'),
            'path': os.environ.get('PATH'), 'home': os.environ.get('HOME'),
            'env_count_path': sum(1 for k in os.environ if k == 'PATH'),
            'ctx_fn': (context or {}).get('function_name')}
PY

my ($rc, $id, $err) = sbx_create($cfg, function => 'life', version => 3,
    code => $code, memory => 96, pids => 32,
    env => ['MY_VAR=hello', 'FAAS_HANDLER=evil.x', 'PATH=/opt/bin:/usr/bin']);
is($rc, 0, 'create succeeds') or diag($err);
like($id, qr/^s-[0-9a-f]{16}$/, 'create prints a sandbox id');

my $run = "$cfg->{run_dir}/sbx/$id";
ok(-S "$run/function.sock", 'the runtime socket exists when create returns');
is(read_file(cg_file($cfg, 'freezer', $id, 'freezer.state')), "FROZEN\n",
   'the sandbox is FROZEN after create (freezer.state)');
my (undef, $state) = sbx($cfg, 'state', $id);
is($state, "frozen\n", 'faas-sandbox state says frozen');

my $meta = json_decode(read_file("$run/meta.json"));
is($meta->{id}, $id, 'meta.json: id');
is($meta->{function}, 'life', 'meta.json: function');
is($meta->{version}, 3, 'meta.json: version');
is($meta->{rid}, 'life@3', 'meta.json: rid');
is($meta->{runtime}, 'python3', 'meta.json: runtime');
is($meta->{handler}, 'handler.handler', 'meta.json: handler');
is($meta->{memory_mb}, 96, 'meta.json: memory_mb');
is($meta->{code_dir}, $code, 'meta.json: code_dir');
cmp_ok($meta->{uid}, '>=', 200000, 'meta.json: uid from uid_base');
cmp_ok($meta->{uid}, '<', 201000, 'meta.json: uid within uid_count');
ok($meta->{pid} > 1 && kill(0, $meta->{pid}), 'meta.json: pid of a live process');
cmp_ok(abs($meta->{created_ms} / 1000 - time), '<', 120, 'meta.json: created_ms');

for my $h (qw(memory pids cpu freezer unified)) {
    my $procs = read_file("/sys/fs/cgroup/$h/$cfg->{cgroup_root}/$id/cgroup.procs") // '';
    ok((grep { $_ == $meta->{pid} } split /\s+/, $procs),
       "runtime process is in the sandbox's $h cgroup");
}
is(read_file(cg_file($cfg, 'memory', $id, 'memory.limit_in_bytes')),
   (96 << 20) . "\n", 'memory limit = memory_mb');
is(read_file(cg_file($cfg, 'pids', $id, 'pids.max')), "32\n", 'pids.max');
my $ppid = (split /\s+/, (read_file("/proc/$meta->{pid}/stat") =~ s/.*\)//sr))[2];
isnt($ppid, $$, 'the sandbox is not a child of its creator');

my ($ans, $ierr) = sbx_invoke($cfg, $id, { hello => 'world' });
ok($ans && $ans->{ok}, 'invoke answers ok') or diag($ierr);
is_deeply($ans->{response}{echo}, { hello => 'world' }, 'the handler got the event');
is($ans->{response}{uid}, $meta->{uid}, 'the handler runs as the sandbox uid');
is($ans->{response}{cwd}, '/var/task', 'cwd is /var/task');
is($ans->{response}{fn}, 'life', 'FAAS_FUNCTION_NAME set');
is($ans->{response}{mine}, 'hello', 'the function env is passed');
is($ans->{response}{faas_handler}, 'handler.handler', 'the function env cannot override FAAS_*');
is($ans->{response}{path}, '/opt/bin:/usr/bin', 'the function env overrides a platform default');
is($ans->{response}{home}, '/tmp', 'platform defaults stay otherwise (HOME)');
is($ans->{response}{ctx_fn}, 'life', 'invoke sends the context');
is(read_file(cg_file($cfg, 'freezer', $id, 'freezer.state')), "FROZEN\n",
   'frozen again after the invoke');

my (undef, $list) = sbx($cfg, 'list');
is($list, "$id\n", 'list shows the sandbox');

($rc, $err) = sbx_destroy($cfg, $id);
is($rc, 0, 'destroy succeeds') or diag($err);
ok(!-e $run, 'run dir removed');
ok(!-d "/sys/fs/cgroup/$_/$cfg->{cgroup_root}/$id", "$_ cgroup removed")
    for qw(memory pids cpu freezer unified);
ok(wait_until(sub { !kill(0, $meta->{pid}) }, 10), 'runtime process gone');
($rc, $err) = sbx_destroy($cfg, $id);
is($rc, 0, 'destroying it again succeeds (idempotent)') or diag($err);
(undef, $list) = sbx($cfg, 'list');
is($list, '', 'list is empty');

# cleanup destroys everything of this cgroup root
my @ids = map { scalar sbx_create($cfg, code => $code) } 1 .. 2;
like($_, qr/^s-/, 'created for cleanup') for @ids;
my ($crc, undef, $cerr) = sbx($cfg, 'cleanup');

is($crc, 0, 'cleanup succeeds') or diag($cerr);
(undef, $list) = sbx($cfg, 'list');
is($list, '', 'cleanup removed every sandbox');
ok(!-e "$cfg->{run_dir}/sbx/$_", 'cleanup removed the run dir') for @ids;

faas_finish();
