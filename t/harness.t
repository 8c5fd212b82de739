# The harness itself: servers start on free ports and are stopped, a leaked
# cgroup is reported.
use lib 't/lib';
use Test::More;
use Faas::Test;

my $redis = start_redis();
my $r = redis_client($redis);
is($r->ping, 'PONG', 'redis answers on its free port');
$r->rpush('faas:idle:{f@1}', 's-0123456789abcdef|unix:/x|-');
is($r->llen('faas:idle:{f@1}'), 1, 'list written');

my $sleeper = spawn('sleeper', ['sleep', '30']);
ok(proc_alive($sleeper), 'spawned process alive');
stop_proc($sleeper);
ok(!proc_alive($sleeper), 'stopped');

my $cg = '/sys/fs/cgroup/pids/' . cgroup_root() . '/leak';
system('mkdir', '-p', $cg);
my @leaks = sandbox_leaks();
ok((grep { /cgroup .*leak/ } @leaks), 'a leftover cgroup is reported as a leak');
rmdir $cg;
is_deeply([sandbox_leaks()], [], 'no leak once removed');
rmdir '/sys/fs/cgroup/pids/' . cgroup_root();

faas_finish();
