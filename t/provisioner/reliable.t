# Nothing queued is lost by a kill -9. A request leaves its shard queue only
# by landing (BLMOVE, atomic) in the processing list faas:prov:work:<host>,
# and leaves that list only together with its outcome (idle entry or error,
# one Lua script). So:
#   - kill -9 with creates in flight, restart: every request gets exactly
#     one sandbox, none twice, the count matches, nothing leaks;
#   - a sandbox the dead run had built but not listed is listed by the next
#     run instead of a second one;
#   - kill -9 of one of two provisioners: the survivor re-queues what the
#     dead one had taken and serves it, exactly once;
#   - a failure still reaches its request exactly once.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;
use Time::HiRes qw(time);

need_programs('faas-provisioner');

my $S = 4;
my $LEASE = 1500;
my $redis = start_redis();
my $r = redis_client($redis);
my %o1 = (name => 'p1', shards => $S, lease_ms => $LEASE,
          create_concurrency => 1, grace_ms => 600000);
my $p1 = start_provisioner($redis, %o1);
my ($key, $sha) = put_code($p1, 'echo', 1, make_zip('handler.py' => "def handler(e, c):\n    return 'echo'\n"));
my $rid = 'echo@1';
my $idle = "faas:idle:{$rid}";
sub count { $r->get("faas:count:{$rid}") // 0 }
sub sid { (split /\|/, $_[0])[0] }
sub origins {
    my %o;
    for my $e (idle_entries($r, $rid)) {
        push @{ $o{ (split /\|/, $e)[2] } }, $e;
    }
    return \%o;
}
sub all_served {
    my (@ids) = @_;
    my $o = origins();
    return !grep { !$o->{$_} } @ids;
}
sub host_sandboxes { my %s; $s{$_} = 1 for map { prov_sandboxes($_) } @_; return scalar keys %s }

ok(wait_until(sub { scalar(prov_held_shards($r, 'p1', $S)) == $S }, 15), 'p1 leads every shard');

# --- kill -9 with creates in flight, same host restarts --------------------
my @ids = map { push_request($r, $p1, rid => $rid, code_key => $key,
                             code_sha256 => $sha, memory_mb => 32,
                             shard => $_ % $S) } 1 .. 6;
ok(wait_until(sub { $r->llen($idle) >= 1 }, 30), 'the first sandbox is listed');
kill_proc($p1);
my $left = $r->llen('faas:prov:work:p1');
ok($left > 0, "kill -9 while requests are taken but not served ($left in faas:prov:work:p1)");
is($r->llen("faas:prov:q:$_"), 0, "nothing waits in queue $_: BLMOVE took it") for 0 .. $S - 1;

$p1 = start_provisioner($redis, %o1);
ok(wait_until(sub { all_served(@ids) }, 60), 'after the restart every request got a sandbox')
    or diag(explain(origins()));
ok(wait_until(sub { $r->llen('faas:prov:work:p1') == 0 }, 10), 'the processing list is empty');
my $o = origins();
is(scalar(grep { @{ $o->{$_} } != 1 } @ids), 0, 'none got two');
is($r->llen($idle), 6, 'six listed');
ok(wait_until(sub { host_sandboxes($p1) == 6 }, 20), 'six sandboxes on the host (a half-built one is destroyed)')
    or diag(join ' ', prov_sandboxes($p1));
is(count(), 6, 'count 6');

# --- built by the dead run but not listed: listed, not built again ---------
my %f = (rid => $rid, function => 'echo', version => 1, runtime => 'python3',
         handler => 'handler.handler', code_key => $key, code_sha256 => $sha,
         memory_mb => 32, enqueued_ms => int(time * 1000));
my $victim = $r->lpop($idle);
my $vorigin = (split /\|/, $victim)[2];
kill_proc($p1);
# The state a kill between "created" and "listed" leaves: the sandbox exists,
# it is not listed and its request is still in the processing list.
$r->rpush('faas:prov:work:p1', pb_provision_request(%f, origin_request_id => $vorigin));
$p1 = start_provisioner($redis, %o1);
ok(wait_until(sub { (origins()->{$vorigin} // []) ->[0] }, 20), 'its request is served after the restart');
is_deeply(origins()->{$vorigin}, [$victim], 'by the sandbox built before the kill');
ok(prov_log_count($p1, qr/\Q@{[sid($victim)]}\E \(echo\@1\): built before the restart, listing it/),
   'which the log says');
is(host_sandboxes($p1), 6, 'no other sandbox built');
is(count(), 6, 'count unchanged');
is($r->llen('faas:prov:work:p1'), 0, 'the processing list is empty');

# --- killed while building: a sandbox whose create did not finish (no
# state file yet) is destroyed, uncounted; its request is served afresh.
my ($half, $orphan) = map { $r->lpop($idle) } 1, 2;
my ($horigin) = (split /\|/, $half)[2];
kill_proc($p1);
unlink("$p1->{cfg}{run_dir}/prov/" . sid($_) . '.json') for $half, $orphan;
$r->rpush('faas:prov:work:p1', pb_provision_request(%f, origin_request_id => $horigin));
$r->decr("faas:count:{$rid}");   # the orphan's request was served elsewhere
$p1 = start_provisioner($redis, %o1);
ok(wait_until(sub { my $e = origins()->{$horigin}; $e && @$e == 1 && $e->[0] ne $half }, 20),
   'a request whose sandbox was half built gets a new one');
ok(wait_until(sub { !grep { $_ eq sid($half) || $_ eq sid($orphan) } prov_sandboxes($p1) }, 20),
   'the half-built sandboxes are destroyed');
ok(prov_log_count($p1, qr/\Q@{[sid($half)]}\E \(echo\@1\) destroyed: its create did not finish/),
   'the one whose request is left: "did not finish"');
ok(prov_log_count($p1, qr/\Q@{[sid($orphan)]}\E \(echo\@1\) destroyed: its create never finished/),
   'the one whose request is gone: "never finished"');
ok(wait_until(sub { host_sandboxes($p1) == 5 && $r->llen($idle) == 5 }, 20), 'five sandboxes, five listed');
is(count(), 5, 'neither destroy decremented the count');

# --- a failed request whose outcome was lost by the kill ---------------------
kill_proc($p1);
my $bad = new_request_id();
$r->incr('faas:count:{nope@1}');
my %nope = (rid => 'nope@1', handler => 'h.h',
            code_key => 'code/nope/1/' . ('e' x 64) . '.zip', code_sha256 => 'e' x 64);
put_revision($r, %nope);
$r->rpush('faas:prov:work:p1', pb_provision_request(%nope, origin_request_id => $bad));
$p1 = start_provisioner($redis, %o1);
my ($ek, $reason) = @{ $r->blpop("faas:err:{nope\@1}:$bad", 20) || [] };
like($reason // '', qr/code missing/, 'a request left by the dead run fails to its requester');
is($r->get('faas:count:{nope@1}'), 0, 'count decremented once');
is($r->llen("faas:err:{nope\@1}:$bad"), 0, 'one error only');

# --- two provisioners: kill -9 of one, the survivor takes over -------------
my %o2 = (name => 'p2', shards => $S, lease_ms => $LEASE, uid_base => 200000,
          create_concurrency => 1, grace_ms => 600000);
my $p2 = start_provisioner($redis, %o2);
ok(wait_until(sub { my @a = prov_held_shards($r, 'p1', $S); my @b = prov_held_shards($r, 'p2', $S);
                    @a + @b == $S && @b >= 1 }, 20), 'p2 leads some shards');
my @p2s = prov_held_shards($r, 'p2', $S);
my $before = count();
my @ids2 = map { push_request($r, $p2, rid => $rid, code_key => $key,
                              code_sha256 => $sha, memory_mb => 32,
                              shard => $p2s[$_ % @p2s]) } 1 .. 4;
ok(wait_until(sub { grep { index($_, $p2->{cfg}{agent_endpoint}) > 0 } idle_entries($r, $rid) }, 30),
   'p2 lists its first sandbox');
kill_proc($p2);
my $taken = $r->llen('faas:prov:work:p2');
my %p2_served = map { $_ => 1 }
                grep { my $e = origins()->{$_}; $e && index($e->[0], $p2->{cfg}{agent_endpoint}) > 0 } @ids2;
my $by_p2 = keys %p2_served;
my @rest2 = grep { !$p2_served{$_} } @ids2;
ok($taken > 0, "kill -9 of p2 with requests it had taken ($taken)");
ok(wait_until(sub { all_served(@rest2) }, 30 + 2 * $LEASE / 1000),
   'every request p2 had taken is served')
    or diag(explain(origins()));
# p2 is a dead host now: the sandboxes it had listed leave the idle list and
# give their count slots back (docs/DESIGN.md section 4)
ok(wait_until(sub { !grep { origins()->{$_} } keys %p2_served }, 10),
   "the sandboxes p2 had listed ($by_p2) left the idle list");
ok(wait_until(sub { prov_log_count($p1, qr/host p2 is dead: re-queued $taken requests/) }, 10),
   'p1 re-queued what p2 had taken');
is($r->llen('faas:prov:work:p2'), 0, 'p2\'s processing list is empty');
$o = origins();
is(scalar(grep { @{ $o->{$_} // [] } != 1 } @rest2), 0, 'none got two');
my $by_p1 = grep { index($o->{$_}[0], $p1->{cfg}{agent_endpoint}) > 0 } @rest2;
is($by_p1, 4 - $by_p2, "the rest by p1 ($taken re-queued, " . (4 - $by_p2 - $taken) . ' still queued)');
is(count(), $before + 4 - $by_p2, "count up by four, less p2's dead sandboxes");
ok(wait_until(sub { $r->llen('faas:prov:work:p1') == 0 }, 10), 'p1\'s processing list is empty');

# --- connections cut while requests are in flight --------------------------
# A BLMOVE whose reply is lost with its connection may have moved a request:
# the provisioner then serves what its processing list holds and no job
# serves. Every request is still served exactly once.
$before = count();
my @ids3;
for my $round (1 .. 3) {
    push @ids3, map { push_request($r, $p1, rid => $rid, code_key => $key,
                                   code_sha256 => $sha, memory_mb => 32,
                                   shard => $_ % $S) } 1 .. 2;
    $r->client_kill('TYPE', 'normal', 'SKIPME', 'yes');
    $r = redis_client($redis);
}
ok(wait_until(sub { all_served(@ids3) }, 90), 'requests pushed around cut connections are all served')
    or diag('missing: ' . join(' ', grep { !origins()->{$_} } @ids3)
            . '; queues: ' . join(' ', map { $r->llen("faas:prov:q:$_") } 0 .. $S - 1)
            . '; work: ' . $r->llen('faas:prov:work:p1') . "\n"
            . join('', grep { / (warn|error) / } split /^/, read_file($p1->{log}) // ''));
$o = origins();
is(scalar(grep { @{ $o->{$_} || [] } > 1 } @ids3), 0, 'none got two');
ok(wait_until(sub { $r->llen('faas:prov:work:p1') == 0 }, 10), 'the processing list is empty');
is(count(), $before + 6, 'count up by six');

# --- a link that stops answering --------------------------------------------
# CLIENT PAUSE WRITE holds every BLMOVE and heartbeat unanswered (as a
# connection hung by a reset can): the provisioner drops and reconnects
# such links, and serves again once Redis answers.
$r->client_pause(8000, 'WRITE');
ok(wait_until(sub { prov_log_count($p1, qr/redis q\d+: lost \(BLMOVE \(1 s\) unanswered for 5 s\), reconnecting/) }, 20),
   'a BLMOVE unanswered for 5 s: its link is reset');
$r->client_unpause;
my @ids4 = map { push_request($r, $p1, rid => $rid, code_key => $key,
                              code_sha256 => $sha, memory_mb => 32,
                              shard => $_ % $S) } 1 .. 2;
ok(wait_until(sub { all_served(@ids4) }, 60), 'then requests are served again');
$o = origins();
is(scalar(grep { @{ $o->{$_} || [] } > 1 } @ids4), 0, 'once each');

prov_cleanup($p1);
prov_cleanup($p2);
faas_finish();
