# The host's memory budget: with the budget full, the least recently used
# idle sandboxes of OTHER functions are evicted (LREM then destroy, count
# decremented); sandboxes in use and idle ones of the same revision are not;
# with nothing evictable the requester gets "host full". A sandbox counts as
# the memory it uses plus memory_margin_pct, at most its limit: a budget
# below the sum of the limits admits as many sandboxes as their use allows,
# and one below their use says "host full". The host's CPUs:
# with max_busy_per_cpu x CPUs sandboxes busy, one more request waits in
# order (not failed) and is served once a busy sandbox is returned.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;

need_programs('faas-provisioner');

my $redis = start_redis();
my $r = redis_client($redis);
# A margin that covers any use: every sandbox counts as its limit.
my $p = start_provisioner($redis, name => 'p1', memory_budget_mb => 96,
                          grace_ms => 600000,
                          cfg => { memory_margin_pct => 100000 });
my %code = %{ put_handlers($p, qw(a b c d e)) };
sub exists_sbx { -d "$p->{cfg}{run_dir}/sbx/$_[0]" }
sub count { $r->get("faas:count:{$_[0]\@1}") // 0 }

# Provisions one sandbox of $fn; returns (key, value) of what came first.
sub ask {
    my ($fn, %f) = @_;
    my $rid = "$fn\@1";
    my %w = (wait => delete $f{wait});
    my $id = push_request($r, $p, rid => $rid, memory_mb => 32, %{ $code{$fn} }, %f);
    my @keys = ("faas:idle:{$rid}", "faas:err:{$rid}:$id");
    shift @keys if ($w{wait} // '') eq 'err';
    my ($k, $v) = @{ $r->blpop(@keys, 30) || [] };
    $r->rpush($k, $v) if ($k // '') eq "faas:idle:{$rid}";   # leave it listed
    return ($k // '', $v // '');
}
sub sid { (split /\|/, $_[1])[0] }

my @a = ask('a');
my @b = ask('b');
my @c = ask('c');
like($_->[0], qr/^faas:idle:/, 'fits in the budget') for \@a, \@b, \@c;
my ($sa, $sb, $sc) = map { (split /\|/, $_->[1])[0] } \@a, \@b, \@c;

# Touch a: popped, invoked and returned by a gateway, so b is now the least
# recently used (the provisioner sees that a ran, however short the pop).
sub used_count { prov_log_count($p, qr/reconcile: \Q$_[0]\E used/) }
my $ea = $r->lpop('faas:idle:{a@1}');
my $ans = prov_sbx_invoke($p, $sa, '{}');
ok($ans && $ans->{ok}, 'a is invoked');
$r->rpush('faas:idle:{a@1}', $ea);
ok(wait_until(sub { used_count($sa) > 0 }, 15), 'the provisioner saw a run');
my @d = ask('d');
is($d[0], 'faas:idle:{d@1}', 'with the budget full, a request still gets a sandbox');
ok(wait_until(sub { !exists_sbx($sb) }, 15), 'by evicting the least recently used idle sandbox');
ok(exists_sbx($sa) && exists_sbx($sc), 'the others stay');
is(scalar(my @l = idle_entries($r, 'b@1')), 0, 'the evicted one is unlisted');
ok(wait_until(sub { count('b') == 0 }, 10), 'and its count decremented');
ok(wait_until(sub { prov_log_count($p, qr/\Q$sb\E \(b\@1\) destroyed: evicted for capacity/) }, 10),
   'eviction logged');

# Everything of other functions in use (popped), d idle: d cannot evict d.
my @held = map { $r->lpop("faas:idle:{$_\@1}") } qw(a c);
ok((grep { defined } @held) == 2, 'a gateway holds a and c');
my ($k, $reason) = ask('d', wait => 'err');
is($reason, 'host full', 'nothing evictable: the request fails with "host full"');
is(count('d'), 1, 'count decremented for the refused request');
ok(exists_sbx($sa) && exists_sbx($sc), 'sandboxes in use are never evicted');
my $sd = (split /\|/, $d[1])[0];
ok(exists_sbx($sd), 'nor an idle one of the same function');

my @e = ask('e');
is($e[0], 'faas:idle:{e@1}', 'another function gets its sandbox');
ok(wait_until(sub { !exists_sbx($sd) }, 15), 'by evicting the idle one of d');
ok(wait_until(sub { count('d') == 0 }, 10), 'whose count is decremented');
($k, $reason) = ask('e', memory_mb => 200, wait => 'err');
is($reason, 'host full', 'a request larger than the whole budget is refused');
is(count('e'), 1, 'count decremented');

# Returned: now evictable again.
sub returned_count { prov_log_count($p, qr/reconcile: \Q$_[0]\E returned/) }
my %ret = map { $_ => returned_count($_) } $sa, $sc;
$r->rpush('faas:idle:{a@1}', $held[0]);
$r->rpush('faas:idle:{c@1}', $held[1]);
ok(wait_until(sub { returned_count($sa) > $ret{$sa} && returned_count($sc) > $ret{$sc} }, 15),
   'a and c seen returned');
my @e2 = ask('e');
is($e2[0], 'faas:idle:{e@1}', 'once returned, they can be evicted for a new request');

prov_cleanup($p);

# --- what sandboxes use, not their limits ---------------------------------
# 6 sandboxes of 128 MB (768 MB of limits) in a budget of 400 MB: each uses
# a few MB (python, its handler), so all fit; the first one, not measured
# yet, counts as its limit.
my $p3 = start_provisioner($redis, name => 'p3', memory_budget_mb => 400,
                           grace_ms => 600000);
$p = $p3;   # for ask()
$code{g} = do {
    my ($k, $s) = put_code($p3, 'g', 1, make_zip('handler.py' => <<'PY'));
held = []
def handler(e, c):
    held.append(b'\x01' * (int(e.get('mb', 0)) << 20))
    return sum(len(h) for h in held)
PY
    { code_key => $k, code_sha256 => $s };
};
my @g;
for my $i (1 .. 6) {
    my @x = ask('g', memory_mb => 128);
    is($x[0], 'faas:idle:{g@1}', "sandbox $i of 6 (128 MB each, budget 400 MB) made");
    push @g, sid(@x);
    $r->lpop('faas:idle:{g@1}');   # held by a gateway: the next is new
    sleep 1;   # measured by the next reconciliations (every 300 ms)
}
ok(!prov_log_count($p3, qr/host full|evicting/), 'none refused, none evicted');

# Each now holds 80 MB more (within its 128 MB limit): 6 x over 80 MB is
# more than the budget, and a seventh sandbox is expected to use as much.
for my $id (@g) {
    my $ans = prov_sbx_invoke($p3, $id, '{"mb": 80}');
    ok($ans && $ans->{ok}, "$id holds 80 MB more");
}
sleep 2;   # measured again
my ($k3, $reason3) = ask('g', memory_mb => 128, wait => 'err');
is($reason3, 'host full', 'the budget below what they use: "host full"');
ok((grep { exists_sbx($_) } @g) == 6, 'the six stay (same function: not evicted)');
prov_cleanup($p3);

# --- the CPUs: max_busy_per_cpu 1 -------------------------------------------
chomp(my $cpus = `nproc`);
my $p2 = start_provisioner($redis, name => 'p2', grace_ms => 600000,
                           cfg => { max_busy_per_cpu => 1 });
ok(prov_log_count($p2, qr/at most \Q$cpus\E sandboxes busy or being created/),
   "max_busy_per_cpu 1: at most $cpus busy at once ($cpus CPUs)");
$p = $p2;   # for ask()
$r->del(map {; "faas:count:{$_\@1}", "faas:idle:{$_\@1}" } qw(a b c d e));
my @busy;
for my $i (1 .. $cpus) {
    my @x = ask('a');
    is($x[0], 'faas:idle:{a@1}', "sandbox $i of $cpus made");
    push @busy, $r->lpop('faas:idle:{a@1}');
}
ok(wait_until(sub { prov_log_count($p2, qr/reconcile: s-\S+ in use/) >= $cpus }, 15),
   "the provisioner sees the $cpus in use");
my $id = push_request($r, $p2, rid => 'b@1', memory_mb => 32, %{ $code{b} });
ok(wait_until(sub { prov_log_count($p2, qr/capacity: \Q$cpus\E sandboxes busy or being created, requests wait/) }, 10),
   'one more request waits for the CPUs');
sleep 1;
is($r->llen('faas:idle:{b@1}') + ($r->llen("faas:err:{b\@1}:$id") // 0), 0,
   '... neither served nor failed meanwhile');
$r->rpush('faas:idle:{a@1}', shift @busy);
my ($k2, $v2) = @{ $r->blpop('faas:idle:{b@1}', "faas:err:{b\@1}:$id", 30) || [] };
is($k2, 'faas:idle:{b@1}', 'once a busy sandbox is returned, the request gets its sandbox');

prov_cleanup($p2);
faas_finish();
