# Two provisioners on one Redis: shards split evenly (within one); a joining
# provisioner gets shards handed over without any queued request being
# dropped; after kill -9 of one, the survivor holds every shard within two
# lease periods and serves what was queued on the dead one's shards, and the
# dead one's idle entries leave the list with their count slots; when it
# comes back the shards rebalance and its sandboxes are listed again.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;
use Time::HiRes qw(time);

need_programs('faas-provisioner');

my $S = 8;
my $LEASE = 2000;
my $redis = start_redis();
my $r = redis_client($redis);
my $w = work_dir();
my %common = (shards => $S, lease_ms => $LEASE);
my $p1 = start_provisioner($redis, name => 'p1', %common);
my ($key, $sha) = put_code($p1, 'hello', 1, make_zip('handler.py' => <<'PY'));
def handler(event, context):
    return "hi"
PY

sub held { scalar prov_held_shards($r, $_[0], $S) }

ok(wait_until(sub { held('p1') == $S }, 15), 'alone, p1 leads every shard');

# Requests on every shard while p2 joins: none may be dropped.
my @ids;
sub push_all {
    for my $shard (0 .. $S - 1) {
        push @ids, push_request($r, $p1, rid => 'hello@1', code_key => $key,
                                code_sha256 => $sha, memory_mb => 32,
                                shard => $shard);
    }
}
push_all();
my $p2 = start_provisioner($redis, name => 'p2', uid_base => 200000, %common);
push_all();
ok(wait_until(sub { held('p1') + held('p2') == $S
                    && abs(held('p1') - held('p2')) <= 1 }, 20),
   'with two provisioners the shards split evenly')
    or diag('p1 ' . held('p1') . ', p2 ' . held('p2'));
push_all();

sub listed_origins {
    my %o;
    for my $e (idle_entries($r, 'hello@1')) {
        my (undef, undef, $origin) = split /\|/, $e;
        $o{$origin} = $e;
    }
    return \%o;
}
ok(wait_until(sub { my $o = listed_origins(); !grep { !$o->{$_} } @ids }, 60),
   scalar(@ids) . ' requests queued around the hand-over all got a sandbox')
    or diag('missing: ' . join(' ', map { "$_ (" . join(',', $r->lrange("faas:err:{hello\@1}:$_", 0, -1)) . ')' }
                                    grep { !listed_origins()->{$_} } @ids)
            . "\n" . join('', grep { / (warn|error) / } split /^/, (read_file($p1->{log}) // '') . (read_file($p2->{log}) // '')));
my %by = (p1 => 0, p2 => 0);
for my $e (values %{ listed_origins() }) {
    $by{p1}++ if index($e, $p1->{cfg}{agent_endpoint}) > 0;
    $by{p2}++ if index($e, $p2->{cfg}{agent_endpoint}) > 0;
}
ok($by{p1} > 0 && $by{p2} > 0, "both served some ($by{p1} / $by{p2})");
is(scalar(my @all = idle_entries($r, 'hello@1')), scalar(@ids), 'one sandbox per request');
for my $shard (0 .. $S - 1) {
    is($r->llen("faas:prov:q:$shard"), 0, "queue $shard drained");
}

# kill -9 p2; requests queued on its shards meanwhile are served by p1.
sub entries_of {
    my ($prov) = @_;
    return grep { index($_, "|$prov->{cfg}{agent_endpoint}|") > 0 } idle_entries($r, 'hello@1');
}
my @p2_entries = entries_of($p2);
is($r->hlen('faas:prov:sbx:p2'), scalar(@p2_entries),
   "faas:prov:sbx:p2 notes p2's sandboxes");
my $count_before = $r->get('faas:count:{hello@1}');
my @p2_shards = prov_held_shards($r, 'p2', $S);
kill_proc($p2);
my $t0 = time;
my @queued;
for my $shard (@p2_shards) {
    push @queued, push_request($r, $p1, rid => 'hello@1', code_key => $key,
                               code_sha256 => $sha, memory_mb => 32,
                               shard => $shard);
}
# Two lease periods, plus generous slack for a loaded CI machine (the time
# it took is printed, not asserted).
ok(wait_until(sub { held('p1') == $S }, 2 * $LEASE / 1000 + 10, 0.05),
   'after kill -9 of p2, p1 leads every shard within two lease periods');
diag(sprintf 'take-over took %.2f s (lease %.1f s)', time - $t0, $LEASE / 1000);
ok(wait_until(sub { my $o = listed_origins(); !grep { !$o->{$_} } @queued }, 30),
   'the requests queued on the dead one\'s shards are served');
like(listed_origins()->{ $queued[0] } // '', qr/\Q$p1->{cfg}{agent_endpoint}\E/,
     'by the survivor');
# The dead host's sandboxes leave the idle lists and give their count slots
# back, once; an entry a gateway returns meanwhile is removed again.
ok(wait_until(sub { !entries_of($p2) }, 10), "p2's entries left the idle list");
is($r->get('faas:count:{hello@1}'), $count_before + @queued - @p2_entries,
   "their count slots were given back");
is_deeply([sort $r->smembers('faas:gone:{hello@1}')],
          [sort map { (split /\|/)[0] } @p2_entries],
          'their ids are in faas:gone:{rid} (gateways drop such entries)');
$r->rpush('faas:idle:{hello@1}', $p2_entries[0]);
ok(wait_until(sub { !entries_of($p2) }, 10), 'an entry of p2 returned later is removed again');
sleep(2 * $LEASE / 1000);
is($r->get('faas:count:{hello@1}'), $count_before + @queued - @p2_entries,
   'and no slot is given back twice');
like(read_file($p1->{log}) // '', qr/host p2 is dead: removed \d+ of its idle entries, gave back ${\ scalar @p2_entries} count slots/,
     'the survivor logs the sweep');

# p2 comes back: the shards rebalance.
$p2 = start_provisioner($redis, name => 'p2', uid_base => 200000, %common);
ok(wait_until(sub { held('p1') + held('p2') == $S
                    && abs(held('p1') - held('p2')) <= 1 }, 20),
   'after the restart the shards rebalance')
    or diag('p1 ' . held('p1') . ', p2 ' . held('p2'));
# its sandboxes outlived it: listed again, their slots taken again
ok(wait_until(sub { entries_of($p2) == @p2_entries }, 20), "p2's sandboxes are re-listed");
is($r->get('faas:count:{hello@1}'), $count_before + @queued, 'with their count slots');
is($r->scard('faas:gone:{hello@1}'), 0, 'and out of faas:gone:{rid}');

# A clean stop hands the leases over at once.
stop_proc($p2);
ok(wait_until(sub { held('p1') == $S }, 10), 'after a clean stop of p2, p1 leads every shard');
ok(!defined $r->zscore('faas:prov:hosts', 'p2'), 'p2 left faas:prov:hosts');

prov_cleanup($p1);
prov_cleanup($p2);
faas_finish();
