# Redis killed (kill -9) and restarted EMPTY while a provisioner has idle
# sandboxes of two revisions and one in use: within 5 s of Redis being back
# every idle sandbox is listed again, once, long before the re-list grace
# period (30 s here) would do it; the one in use is not listed (its gateway
# gives it back); faas:count:{rid} is rebuilt from the sandboxes that exist;
# the host and its shard leases are registered again.
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', shards => 2, lease_ms => 1500,
                          grace_ms => 30000, reconcile_ms => 3000);
my %code = %{ put_handlers($p, 'ea', 'eb') };
my %n = (ea => 3, eb => 2);
for my $fn (sort keys %n) {
    for (1 .. $n{$fn}) {
        my ($e, $err) = provision_wait($r, $p, rid => "$fn\@1", %{ $code{$fn} },
                                       memory_mb => 32);
        ok($e, "$fn: sandbox $_ listed") or diag($err);
    }
}
sub sid { (split /\|/, $_[0])[0] }
sub freezer { '/sys/fs/cgroup/freezer/' . cgroup_root() . "/$_[0]/freezer.state" }
my %listed = map { $_ => [sort map { sid($_) } idle_entries($r, "$_\@1")] } keys %n;
is(scalar @{ $listed{ea} }, 3, 'ea: three listed');
is(scalar @{ $listed{eb} }, 2, 'eb: two listed');

# One of ea's is in use: popped by a gateway, thawed by its agent.
my $held = $r->lpop('faas:idle:{ea@1}');
write_file(freezer(sid($held)), 'THAWED');

# --- kill -9, restarted empty ------------------------------------------------
kill_proc($redis);
sleep 0.5;
$redis = redis_start_at($redis);
my $back = time;
$r = redis_client($redis);
my %want = (ea => [grep { $_ ne sid($held) } @{ $listed{ea} }], eb => $listed{eb});
ok(wait_until(sub {
    (join ',', sort map { sid($_) } idle_entries($r, 'ea@1')) eq join(',', @{ $want{ea} })
    && (join ',', sort map { sid($_) } idle_entries($r, 'eb@1')) eq join(',', @{ $want{eb} })
}, 5, 0.1), 'every idle sandbox listed again within 5 s of Redis being back')
    or diag(explain({ ea => [idle_entries($r, 'ea@1')], eb => [idle_entries($r, 'eb@1')] }));
diag(sprintf 're-listed %.1f s after Redis came back', time - $back);
ok(!(grep { sid($_) eq sid($held) } idle_entries($r, 'ea@1')), 'not the one in use');
is($r->get('faas:count:{ea@1}'), 3, 'ea: count rebuilt (3 sandboxes, one in use)');
is($r->get('faas:count:{eb@1}'), 2, 'eb: count rebuilt');
ok(defined $r->zscore('faas:prov:hosts', $p->{cfg}{host_id}), 'the host is registered again');
ok(wait_until(sub { grep { ($r->get("faas:prov:lease:$_") // '') eq $p->{cfg}{host_id} } 0, 1 }, 5),
   'and holds shard leases again');
is(prov_log_count($p, qr/redis came back empty/), 1, 'the empty Redis is logged once');

# The gateway gives the held one back; nothing is listed twice.
write_file(freezer(sid($held)), 'FROZEN');
$r->rpush('faas:idle:{ea@1}', $held);
sleep 1.5;
my @all = map { sid($_) } idle_entries($r, 'ea@1'), idle_entries($r, 'eb@1');
my %seen;
is(scalar(grep { $seen{$_}++ } @all), 0, 'no sandbox listed twice');
is(scalar @all, 5, 'all five listed');

# A reconnect to a Redis that kept its data changes no count.
kill_proc($redis);
$redis = redis_start_at($redis);
$r = redis_client($redis);
$r->zadd('faas:prov:hosts', int(time * 1000), $p->{cfg}{host_id});
$r->set('faas:count:{ea@1}', 3);
ok(wait_until(sub { prov_log_count($p, qr/redis cmd: reconnected/) >= 2 }, 10), 'reconnected again');
sleep 1;
is($r->get('faas:count:{ea@1}'), 3, 'a Redis that still knows the host: count unchanged');

prov_cleanup($p);
faas_finish();
