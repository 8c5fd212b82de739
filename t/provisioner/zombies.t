# The provisioner is a child subreaper: the sandboxes it creates are
# re-parented to it (not to pid 1, which may never reap) and it reaps them
# once they are gone, however they were destroyed: keep-alive, by the agent
# (deadline passed), behind its back, or a create that failed. When it dies
# they live on and the next run adopts them.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;
use Time::HiRes qw(time);

need_programs('faas-provisioner', 'faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
# (the fresh path: zygote-made sandboxes are the zygote's children, see
# t/provisioner/zygote.t)
my %o = (name => 'p1', grace_ms => 600000, cfg => { zygote => 'off' });
my $p = start_provisioner($redis, %o);
my ($key, $sha) = put_code($p, 'z', 1, make_zip('handler.py' => <<'PY'));
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return "z"
PY

sub provision {
    my ($rid, %f) = @_;
    my ($entry, $err) = provision_wait($r, $p, rid => $rid, code_key => $key,
                                       code_sha256 => $sha, memory_mb => 32, %f);
    return $entry ? ("faas:idle:{$rid}", $entry) : ('err', $err);
}
sub sid { (split /\|/, $_[0])[0] }
sub exists_sbx { -d "$p->{cfg}{run_dir}/sbx/$_[0]" }
sub init_pid { (json_decode(read_file("$p->{cfg}{run_dir}/sbx/$_[0]/meta.json") // '{}') || {})->{pid} }
sub ppid_of {
    my $st = read_file("/proc/$_[0]/stat") // return 0;
    my ($ppid) = $st =~ /\) \S (\d+)/;
    return $ppid // 0;
}

# The first with a keep-alive of 1 s: another revision (a revision's
# keep-alive is part of faas:rev:{rid}, the same for all its sandboxes).
my @e = map { (provision($_ == 1 ? ('z@3', keep_alive_s => 1) : ('z@1', keep_alive_s => 600)))[1] } 1 .. 3;
my @sids = map { sid($_) } @e;
is(scalar(grep { /^s-/ } @sids), 3, 'three sandboxes');
my @pids = map { init_pid($_) } @sids;
is(scalar(grep { $_ && ppid_of($_) == $p->{pid} } @pids), 3,
   'their inits are children of the provisioner (child subreaper)');

# 1: keep-alive (1 s). 2: the agent destroys it at its deadline. 3: behind
# its back. Plus a create that fails.
ok(wait_until(sub { !exists_sbx($sids[0]) }, 20), 'one is reaped after its keep-alive');
sub count { $r->get('faas:count:{z@1}') // 0 }
ok(wait_until(sub { ($r->get('faas:count:{z@3}') // 0) == 0 }, 10), 'its count decremented');
# A stale entry of this host is removed by the next scan: after that, any
# second DECR of the scans before would have shown.
sub one_more_scan {
    my $stale = "s-00000000deadbeef|$p->{cfg}{agent_endpoint}|-";
    $r->rpush('faas:idle:{z@1}', $stale);
    return wait_until(sub { !grep { $_ eq $stale } idle_entries($r, 'z@1') }, 15);
}
ok(wait_until(sub { count() == 2 }, 10), 'count 2');

my $agent = start_agent_for($p);
$r->lrem('faas:idle:{z@1}', 0, $e[1]);    # popped by a gateway
my $resp = invoke_once($agent, sandbox_id => $sids[1], function => 'z', version => 1,
                       event => '{"sleep":30}', deadline_ms => int(time * 1000) + 500,
                       timeout_ms => 500, memory_mb => 32);
is($resp->{status}, 'TIMEOUT', 'the agent kills one at its deadline');
ok(wait_until(sub { !exists_sbx($sids[1]) }, 10), 'and destroys it');
stop_proc($agent);
ok(wait_until(sub { count() == 1 }, 15), 'the provisioner notices: count decremented');
ok(one_more_scan(), 'a later scan ran');
is(count(), 1, 'decremented exactly once');
ok(wait_until(sub { prov_log_count($p, qr/\Q$sids[1]\E \(z\@1\) destroyed: its processes are gone/) }, 10),
   'it left the table');

system(objs_dir() . '/faas-sandbox', '-c', "$p->{config}", 'destroy', $sids[2]);
ok(wait_until(sub { !exists_sbx($sids[2]) }, 10), 'one is destroyed behind its back while listed');
ok(wait_until(sub { !grep { sid($_) eq $sids[2] } idle_entries($r, 'z@1') }, 15),
   'its idle entry is removed');
ok(wait_until(sub { count() == 0 }, 15), 'count decremented');
ok(one_more_scan(), 'a later scan ran');
is(count(), 0, 'decremented exactly once');

my ($k, $reason) = provision('z@2', runtime => 'nodejs', handler => 'app.handler',
                             env => { NODE_OPTIONS => '--no-such-node-flag' });
like($reason, qr/runtime failed to start/, 'a create fails');

ok(wait_until(sub { ($r->get('faas:count:{z@1}') // '') eq '0'
                    && ($r->get('faas:count:{z@3}') // '') eq '0' }, 15),
   'the provisioner noticed all three are gone');
my @z;
ok(wait_until(sub { @z = prov_zombies($p->{pid}); !@z }, 10),
   'no zombie left whose parent is the provisioner') or diag("zombies: @z");
ok(!(grep { kill(0, $_) } @pids), 'the inits are gone (reaped)');

# --- sandboxes outlive the provisioner ---------------------------------------
my (undef, $live) = provision('z@1');
my $lpid = init_pid(sid($live));
is(ppid_of($lpid), $p->{pid}, 'a new sandbox is a child of the provisioner');
my $old = $p->{pid};
kill_proc($p);
ok(kill(0, $lpid) && ppid_of($lpid) != $old, 'after kill -9 of the provisioner the sandbox lives on');
$p = start_provisioner($redis, %o);
ok(wait_until(sub { prov_log_count($p, qr/reconcile: found sandbox \Q@{[sid($live)]}\E/) }, 15),
   'the next run adopts it');
is_deeply([idle_entries($r, 'z@1')], [$live], 'still listed');
my $ans = prov_sbx_invoke($p, sid($live), '{}');
is($ans && $ans->{response} ? $ans->{response}{body} : '', '"z"', 'and it answers');

prov_cleanup($p);
faas_finish();
