# The cluster on one machine (Faas::Cluster): three worker hosts in their
# own network namespaces, two gateways, Redis with Sentinel, the registry.
# Calls spread over the hosts; then, under steady load: a whole worker host
# dies, a gateway dies, the Redis master dies (docs/DESIGN.md section 11).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Nginx qw(http_request http_parallel);
use Faas::Setup;
use Faas::Sentinel;
use Faas::Registry qw(api);
use Faas::Cluster;

need_programs('faas-provisioner', 'faas-agent', 'faas-registry');
for my $p (qw(redis-sentinel nsenter ip)) {
    plan skip_all => "$p is not installed" unless grep { -x "$_/$p" } split /:/, $ENV{PATH};
}

my $LEASE = 1500;
my $c = start_cluster(hosts => 3, start_hosts => 2, gateways => 2, shards => 8,
                      lease_ms => $LEASE);
my ($g1, $g2) = @{ $c->{gateways} };
my $w = work_dir();
my $r = redis_client(current_master($c->{sentinel}));

# --- adding a worker host (README, "Adding a worker host") -------------------
# an agent listening on TCP with the token and a provisioner with the same
# shards and sentinels, nothing else: it takes its share of the shards
my $w3 = start_worker_host($c, $c->{hosts}[2]);
ok(wait_until(sub {
    my %by = map { ($r->get("faas:prov:lease:$_") // '') => 1 } 0 .. 7;
    $by{w1} && $by{w2} && $by{w3};
}, 30), 'the added host holds shards beside the first two');

my @FNS = map { "f$_" } 1 .. 6;
sub create_fn {
    my ($name) = @_;
    return api($c->{reg}, 'POST', '/v1/functions', user => 'alice', json => {
        name => $name, runtime => 'python3', handler => 'app.handler',
        max_concurrency => 3, public => JSON::PP::true,
        code => { file => 'app.py', content => <<'PY' } });
import os, binascii, time
ID = binascii.hexlify(os.urandom(8)).decode()
def handler(e, c):
    time.sleep(0.05)
    return ID
PY
}
for my $f (@FNS) {
    my $x = create_fn($f);
    is($x->{status}, 201, "function $f") or diag $x->{body};
}
ok(wait_until(sub { !grep { !$r->exists("faas:fn:$_") } @FNS }, 30), 'all mirrored');

# --- spreading ---------------------------------------------------------------
my @warm = http_parallel($g1->{port}, map { my $f = $_; map { ['GET', "/fn/$f", timeout => 90] } 1 .. 2 } @FNS);
is(scalar(grep { $_->{status} == 200 } @warm), scalar(@warm), 'first calls, cold: all 200')
    or diag explain [map { "$_->{status} $_->{body}" } grep { $_->{status} != 200 } @warm];
my %per_host;
for my $f (@FNS) {
    for my $e ($r->lrange("faas:idle:{$f\@1}", 0, -1)) {
        my $h = host_of_endpoint($c, $e);
        $per_host{$h ? "w$h->{i}" : 'unknown'}++;
    }
}
diag 'idle sandboxes per host: ' . join(', ', map { "$_ $per_host{$_}" } sort keys %per_host);
ok(keys(%per_host) >= 2 && !$per_host{unknown}, 'the sandboxes are spread over several hosts');

# --- steady load through both gateways, into a ledger ------------------------
sub loader {
    my ($tag, $fns, @ports) = @_;
    my $pid = fork() // die;
    return $pid if $pid;
    open(my $fh, '>', "$w/$tag.ledger") or POSIX::_exit(1);
    $fh->autoflush(1);
    my $n = 0;
    until (-e "$w/$tag.stop") {
        my $port = $ports[$n % @ports];
        my $f = $fns->[$n++ % @$fns];
        my $t = time;
        my $x = http_request($port, 'GET', "/fn/$f", timeout => 90);
        printf $fh "%.3f %.3f %d %s %s\n", $t, time, $port, $f, $x->{status};
        sleep 0.02;
    }
    POSIX::_exit(0);
}
# Stops loader $tag; its rows: [start, end, port, function, status].
sub stop_loader {
    my ($tag, $pid) = @_;
    write_file("$w/$tag.stop", '');
    waitpid($pid, 0);
    return map { [split / /] } split /\n/, read_file("$w/$tag.ledger") // '';
}
sub ledger_line {
    my ($what, $rows, $recover) = @_;
    my @failed = grep { $_->[4] != 200 } @$rows;
    my %codes;
    $codes{$_->[4]}++ for @failed;
    diag sprintf('%s: %d calls, %d failed (%s), %s s to recover', $what,
                 scalar(@$rows), scalar(@failed),
                 join(' ', map { "$_ x$codes{$_}" } sort keys %codes) || '-',
                 defined $recover ? sprintf('%.1f', $recover) : '?');
}

# --- a worker host dies --------------------------------------------------------
# The victim has sandboxes, and some functions have none on it: their calls
# must not fail. Calls of the others may fail while the host is not yet
# known to be dead; then a survivor removes its entries from the idle lists
# and gives their count slots back (docs/DESIGN.md section 4), so calls
# started two lease periods after the kill succeed.
my %fn_hosts;
for my $f (@FNS) {
    $fn_hosts{$f}{ host_of_endpoint($c, $_)->{i} }++ for $r->lrange("faas:idle:{$f\@1}", 0, -1);
}
my ($victim) = grep { my $i = $_->{i}; grep { !$fn_hosts{$_}{$i} } @FNS }
               sort { ($per_host{"w$b->{i}"} // 0) <=> ($per_host{"w$a->{i}"} // 0) }
               grep { $per_host{"w$_->{i}"} } @{ $c->{hosts} };
my @spared = grep { !$fn_hosts{$_}{ $victim->{i} } } @FNS;
my @hit = grep { $fn_hosts{$_}{ $victim->{i} } } @FNS;
diag "victim w$victim->{i}; its functions: @hit; spared: @spared";
my $lpid = loader('host', \@spared, $g1->{port}, $g2->{port});
my $hpid = @hit ? loader('hit', \@hit, $g1->{port}, $g2->{port}) : undef;
sleep 2;
my $killed = time;
kill_host($victim);
ok(!netns_pids($victim), "worker host w$victim->{i} is dead (every process of its namespace)");
# its shards' leases expire and move: new functions (their requests queue on
# any shard) are cold-started by the survivors
my @new = map { "n$_" } 1 .. 4;
is(create_fn($_)->{status}, 201, "function $_ after the host died") for @new;
wait_until(sub { !grep { !$r->exists("faas:fn:$_") } @new }, 30);
my @cold = http_parallel($g2->{port}, map { ['GET', "/fn/$_", timeout => 90] } @new);
my $served = time;
is(scalar(grep { $_->{status} == 200 } @cold), 4,
   "new functions are cold-started by the survivors");
diag sprintf('... %.1f s after the kill', $served - $killed);
my @held = grep { ($r->get("faas:prov:lease:$_") // '') eq "w$victim->{i}" } 0 .. 7;
is(scalar(@held), 0, 'no shard lease names the dead host any more');
sleep 2;
my @rows = stop_loader('host', $lpid);
my @hit_rows = $hpid ? stop_loader('hit', $hpid) : ();
ok(scalar(grep { $_->[0] > $killed } @rows) > 10, 'the load ran on after the host died');
is(scalar(grep { $_->[4] != 200 } @rows), 0,
   "no call of a function without a sandbox on the dead host failed");
ledger_line('host kill, spared functions', \@rows, 0);
my ($last_bad) = sort { $b <=> $a } map { $_->[1] } grep { $_->[4] != 200 } @hit_rows;
ledger_line("host kill, the dead host's functions", \@hit_rows,
            $last_bad ? $last_bad - $killed : 0);
ok(scalar(grep { $_->[0] > $killed + 2 * $LEASE / 1000 } @hit_rows) > 5,
   "the dead host's functions were called on after two lease periods");
is(scalar(grep { $_->[4] != 200 && $_->[0] > $killed + 2 * $LEASE / 1000 } @hit_rows), 0,
   "calls of the dead host's functions started two lease periods later succeed")
    or diag explain [grep { $_->[4] != 200 } @hit_rows];
sub dead_entries {
    grep { (host_of_endpoint($c, $_) // {}) == $victim }
    map { $r->lrange("faas:idle:{$_\@1}", 0, -1) } @FNS;
}
ok(wait_until(sub { !dead_entries() }, 2 * $LEASE / 1000 + 5),
   "the dead host's entries left the idle lists")
    or diag explain [dead_entries()];
# (until the host is forgotten, 20 lease periods after its last heartbeat)
my %dead_sbx = $r->hgetall("faas:prov:sbx:w$victim->{i}");
ok(!defined $r->zscore('faas:prov:hosts', "w$victim->{i}")
   || (keys(%dead_sbx) && !grep { !/^~/ } values %dead_sbx),
   "every sandbox of the dead host gave its count slot back")
    or diag explain \%dead_sbx;

# --- a gateway dies --------------------------------------------------------------
$lpid = loader('gw', \@new, $g1->{port}, $g2->{port});
sleep 1;
my $gk = time;
kill_gateway($g1);
sleep 3;
@rows = stop_loader('gw', $lpid);
my @via2 = grep { $_->[2] == $g2->{port} } @rows;
ok(@via2 > 10, 'calls through the other gateway ran on');
is(scalar(grep { $_->[4] != 200 } @via2), 0, 'the other gateway keeps serving: all 200');
is(scalar(grep { $_->[4] != 200 && $_->[1] < $gk } @rows), 0,
   'no call failed before the gateway died');
ledger_line('gateway kill', \@rows, 0);

# --- the Redis master dies ---------------------------------------------------------
$lpid = loader('redis', \@new, $g2->{port});
sleep 1;
my $mk = time;
kill_proc($c->{sentinel}{master});
ok(wait_failover($c->{sentinel}, 30), 'the sentinels promote the replica');
my $promoted = time;
my $ok_at;
wait_until(sub {
    my $x = http_request($g2->{port}, 'GET', '/fn/n1', timeout => 10);
    $ok_at = time if $x->{status} == 200;
    $ok_at;
}, 10);
ok($ok_at, 'the platform follows within 10 s of the promotion');
sleep 2;
@rows = stop_loader('redis', $lpid);
is(scalar(grep { $_->[4] != 200 && $_->[0] > $ok_at } @rows), 0,
   'every call started after the recovery succeeded') if $ok_at;
ledger_line('master kill', \@rows, $ok_at ? $ok_at - $mk : undef);
diag sprintf('promoted %.1f s after the kill', $promoted - $mk);
my $r1 = redis_client(current_master($c->{sentinel}));
my %seen;
my @dups = grep { $seen{$_}++ } map { $r1->lrange("faas:idle:{$_\@1}", 0, -1) } @FNS, @new;
is(scalar(@dups), 0, 'no idle entry listed twice after the failover');

stop_cluster($c);
faas_finish();
