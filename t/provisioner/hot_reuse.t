# A hot sandbox: one gateway keeps it out of the idle list and calls it back
# to back, far longer than the function's timeout plus the grace period. The
# reconciliation sees it unlisted and thawed at almost every scan, yet each
# call is a new one: it must not be destroyed as "in use beyond its timeout"
# (every call answers OK). A sandbox left thawed in one call (its agent died
# mid-call) still is, which t/provisioner/restart.t checks.
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner', 'faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
my $p = start_provisioner($redis, name => 'p1', grace_ms => 500, reconcile_ms => 200);
my ($key, $sha) = put_code($p, 'hot', 1, make_zip('handler.py' =>
    "import time\ndef handler(e, c):\n    time.sleep(0.1)\n    return {'statusCode': 200, 'body': 'hot'}\n"));
my $rid = 'hot@1';
my ($entry, $err) = provision_wait($r, $p, rid => $rid, code_key => $key,
                                   code_sha256 => $sha, memory_mb => 32,
                                   timeout_ms => 1000);
ok($entry, 'a sandbox is listed') or diag($err);
my ($sid) = split /\|/, $entry;
is($r->lrem("faas:idle:{$rid}", 0, $entry), 1, 'a gateway takes it');

my $agent = start_agent_for($p);
my ($calls, %bad) = (0);
my $until = time + 8;   # timeout 1 s + grace 0.5 s, five times over
while (time < $until) {
    my $resp = invoke_once($agent, sandbox_id => $sid, function => 'hot',
                           version => 1, event => '{}',
                           deadline_ms => int(time * 1000) + 5000,
                           timeout_ms => 1000, memory_mb => 32);
    $calls++;
    $bad{$resp->{status} // 'none'}++ if ($resp->{status} // '') ne 'OK';
}
diag("$calls calls back to back in 8 s");
ok($calls > 20, 'many calls in a row');
is_deeply(\%bad, {}, 'every call answered OK');
ok(-d "$p->{cfg}{run_dir}/sbx/$sid", 'the sandbox still exists');
is(prov_log_count($p, qr/destroyed: in use beyond its timeout/), 0,
   'nothing destroyed as in use beyond its timeout');
$r->rpush("faas:idle:{$rid}", $entry);
stop_proc($agent);

prov_cleanup($p);
faas_finish();
