# Reconciliation. kill -9 of the provisioner with idle sandboxes: after the
# restart all are still listed and invocable, none duplicated, none leaked.
# A sandbox destroyed or killed behind its back disappears from the idle
# list (count decremented), also while the provisioner is down; a duplicate
# or stale entry is removed; a frozen sandbox that nobody lists (a gateway
# died holding it) is listed again after the grace period.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
my $w = work_dir();
my %o = (name => 'p1', grace_ms => 2000);
my $p = start_provisioner($redis, %o);
my ($key, $sha) = put_code($p, 'echo', 1, make_zip('handler.py' => "def handler(e, c):\n    return {'statusCode': 200, 'body': 'echo ' + str(e.get('n'))}\n"));
my $rid = 'echo@1';
my $idle = "faas:idle:{$rid}";
my $sbxcfg = "$w/sbx.json";
write_json($sbxcfg, { run_dir => $p->{cfg}{run_dir}, cgroup_root => cgroup_root(),
                      runtimes_dir => $p->{cfg}{runtimes_dir} });

my @ids = map { push_request($r, $p, rid => $rid, code_key => $key,
                             code_sha256 => $sha, memory_mb => 32) } 1 .. 5;
ok(wait_until(sub { $r->llen($idle) == 5 }, 60), 'five sandboxes listed');
my @before = sort(idle_entries($r, $rid));
sub sid { (split /\|/, $_[0])[0] }
sub exists_sbx { -d "$p->{cfg}{run_dir}/sbx/$_[0]" }
sub count { $r->get("faas:count:{$rid}") // 0 }
is(count(), 5, 'count 5');

# Two sandboxes are out of the list when the provisioner dies: A is in use
# (popped by a gateway, thawed by the agent), B was popped by a gateway that
# died holding it (still frozen).
my $ea = $r->lpop($idle);
my $eb = $r->lpop($idle);
sub freezer { '/sys/fs/cgroup/freezer/' . cgroup_root() . "/$_[0]/freezer.state" }
write_file(freezer(sid($ea)), 'THAWED');

# --- kill -9, restart -----------------------------------------------------
kill_proc($p);
$p = start_provisioner($redis, %o);
ok(wait_until(sub { prov_log_count($p, qr/reconcile: found sandbox/) == 5 }, 15),
   'the restarted provisioner finds its five sandboxes');
ok(wait_until(sub { grep { sid($_) eq sid($eb) } idle_entries($r, $rid) }, 15),
   'the frozen one nobody holds is listed again after the grace period');
ok(!(grep { sid($_) eq sid($ea) } idle_entries($r, $rid)), 'the one in use is not');
is($r->llen($idle), 4, 'four listed');
write_file(freezer(sid($ea)), 'FROZEN');
$r->rpush($idle, $ea);                       # the gateway gives it back
my %was = map { sid($_) => 1 } @before;
is_deeply([sort map { sid($_) } idle_entries($r, $rid)], [sort keys %was],
          'all five listed again');
@before = sort(idle_entries($r, $rid));
# Let a few scans run (a scan logs nothing when all is well: wait for two
# more heartbeats of the reconciliation by checking a duplicate is removed).
$r->rpush($idle, $before[0]);
ok(wait_until(sub { $r->llen($idle) == 5 }, 15), 'a duplicated entry is removed');
is_deeply([sort(idle_entries($r, $rid))], \@before, 'the same five entries, once each');
is_deeply([prov_sandboxes($p)], [sort map { sid($_) } @before], 'and no other sandbox on the host');
is(count(), 5, 'count unchanged');

my $agent = start_agent_for($p);
my $n = 0;
for my $e (@before) {
    my $resp = invoke_once($agent, sandbox_id => sid($e), function => 'echo',
                           version => 1, event => '{"n":' . (++$n) . '}',
                           deadline_ms => int(time * 1000) + 10000,
                           timeout_ms => 10000, memory_mb => 32);
    is("$resp->{status} $resp->{body}", "OK echo $n", "sandbox $n invocable after the restart");
}
stop_proc($agent);

# --- behind its back --------------------------------------------------------
my $gone = sid($before[1]);
system(objs_dir() . '/faas-sandbox', '-c', $sbxcfg, 'destroy', $gone) == 0
    or die 'faas-sandbox destroy failed';
ok(wait_until(sub { !grep { sid($_) eq $gone } idle_entries($r, $rid) }, 15),
   'a sandbox destroyed behind its back disappears from the idle list');
ok(wait_until(sub { count() == 4 }, 10), 'count decremented');

my $killed = sid($before[2]);
my @pids = split /\s+/, (read_file('/sys/fs/cgroup/pids/' . cgroup_root() . "/$killed/cgroup.procs") // '');
kill 'KILL', grep { /\d/ } @pids;
write_file('/sys/fs/cgroup/freezer/' . cgroup_root() . "/$killed/freezer.state", 'THAWED');
ok(wait_until(sub { !exists_sbx($killed) && !grep { sid($_) eq $killed } idle_entries($r, $rid) }, 15),
   'a sandbox killed behind its back is unlisted and cleaned up');
ok(wait_until(sub { count() == 3 }, 10), 'count decremented');

# While the provisioner is down.
kill_proc($p);
my $gone2 = sid($before[3]);
system(objs_dir() . '/faas-sandbox', '-c', $sbxcfg, 'destroy', $gone2) == 0
    or die 'faas-sandbox destroy failed';
$r->rpush($idle, "s-00000000deadbeef|$p->{cfg}{agent_endpoint}|-");
$r->rpush($idle, 's-00000000cafebabe|unix:/elsewhere.sock|-');
$p = start_provisioner($redis, %o);
ok(wait_until(sub { !grep { sid($_) eq $gone2 || sid($_) eq 's-00000000deadbeef' } idle_entries($r, $rid) }, 15),
   'entries of sandboxes that vanished while it was down are removed');
ok(wait_until(sub { count() == 2 }, 10), 'count decremented for the vanished one');
ok((grep { sid($_) eq 's-00000000cafebabe' } idle_entries($r, $rid)),
   'another host\'s entry is left alone');
$r->lrem($idle, 0, 's-00000000cafebabe|unix:/elsewhere.sock|-');

# --- a gateway died holding a sandbox: listed again after the grace period
my $held = $r->lpop($idle);
ok(wait_until(sub { grep { sid($_) eq sid($held) } idle_entries($r, $rid) }, 15),
   'a frozen sandbox nobody lists is listed again after the grace period');
is(count(), 2, 'count unchanged');
is(scalar(my @l = idle_entries($r, $rid)), 2, 'two listed, none twice');
is(scalar(my @s = prov_sandboxes($p)), 2, 'two on the host, none leaked');

# --- thawed and unlisted far beyond its timeout (3 s) + grace: destroyed
my $lost = $r->lpop($idle);
write_file(freezer(sid($lost)), 'THAWED');
ok(wait_until(sub { !exists_sbx(sid($lost)) }, 30),
   'a sandbox in use far beyond its timeout is destroyed');
ok(wait_until(sub { count() == 1 }, 10), 'count decremented');
like(read_file($p->{log}), qr/\Q@{[sid($lost)]}\E \(echo\@1\) destroyed: in use beyond its timeout/,
     'with the reason logged');

prov_cleanup($p);
faas_finish();
