# Driven by bench/cluster/run.sh. Uses the test harness's cluster
# (Faas::Cluster); prints figures, asserts nothing.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Nginx qw(http_request);
use Faas::MariaDB;
use Faas::Sentinel;
use Faas::Registry qw(api);
use Faas::Cluster;

my $DUR = $ENV{SECONDS_PER_PHASE} // 20;
my $CONC = $ENV{CONCURRENCY} // 8;
my $LEASE = 1500;
my $c = start_cluster(hosts => 3, start_hosts => 1, gateways => 2, shards => 8,
                      lease_ms => $LEASE);
my @gw = map { $_->{port} } @{ $c->{gateways} };
my $w = work_dir();
my $dbh = mariadb_dbh($c->{db}, 'faas');

sub create_fn {
    my ($name) = @_;
    my $x = api($c->{reg}, 'POST', '/v1/functions', user => 'alice', json => {
        name => $name, runtime => 'python3', handler => 'app.handler',
        max_concurrency => 4, public => JSON::PP::true,
        code => { file => 'app.py', content => "def handler(e, c):\n    return 'ok'\n" } });
    die "create $name: $x->{body}" unless $x->{status} == 201;
}

# $CONC clients for $secs over @$fns through @$ports; each call's
# "start end port function status request-id" goes to <tag>.ledger.
sub load {
    my ($tag, $secs, $fns, $ports, $stop) = @_;
    my @pids;
    for my $k (1 .. $CONC) {
        my $pid = fork() // die;
        if ($pid == 0) {
            open(my $fh, '>', "$w/$tag.$k") or POSIX::_exit(1);
            $fh->autoflush(1);
            my $n = $k;
            my $end = time + $secs;
            while (time < $end && !($stop && -e $stop)) {
                my $port = $ports->[$n % @$ports];
                my $f = $fns->[$n++ % @$fns];
                my $t = time;
                my $x = http_request($port, 'GET', "/fn/$f", timeout => 30);
                printf $fh "%.3f %.3f %d %s %d %s\n", $t, time, $port, $f, $x->{status},
                       $x->{headers}{'x-faas-request-id'} // '-';
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    return sub {
        waitpid($_, 0) for @pids;
        return map { [split / /] } map { split /\n/, read_file("$w/$tag.$_") // '' } 1 .. $CONC;
    };
}

sub records_missing {
    my (@rows) = @_;
    my @ids = map { $_->[5] } grep { $_->[4] == 200 } @rows;
    sleep 3;   # the registry drains every 100 ms
    my %have;
    while (my @batch = splice(@ids, 0, 500)) {
        my $q = join ',', ('?') x @batch;
        $have{$_->[0]} = 1 for @{ $dbh->selectall_arrayref(
            "SELECT request_id FROM executions WHERE request_id IN ($q)", undef, @batch) };
        $have{$_} //= 0 for @batch;
    }
    return scalar grep { !$have{$_} } keys %have;
}

sub per_host {
    my ($fns) = @_;
    my %sbx;
    for my $f (@$fns) {
        my $r = redis_client(current_master($c->{sentinel}));
        for my $e ($r->lrange("faas:idle:{$f\@1}", 0, -1)) {
            my $h = host_of_endpoint($c, $e);
            $sbx{ $h ? "w$h->{i}" : '?' }++;
        }
    }
    my $q = join ',', ('?') x @$fns;
    my %calls = map { @$_ } @{ $dbh->selectall_arrayref(
        "SELECT agent_host, COUNT(*) FROM executions WHERE function IN ($q)"
        . " GROUP BY agent_host", undef, @$fns) };
    return (\%sbx, \%calls);
}

print "== throughput with 1, 2, 3 worker hosts ($CONC clients, $DUR s each, ",
      "2 gateways, 6 functions of max concurrency 4)\n";
for my $n (1 .. 3) {
    start_worker_host($c, $c->{hosts}[$n - 1]) if $n > 1;
    sleep 3 * $LEASE / 1000;   # the shards spread over the hosts
    my @fns = map { "t${n}x$_" } 1 .. 6;
    create_fn($_) for @fns;
    load("warm$n", 3, \@fns, \@gw)->();   # the cold starts, not counted
    my @rows = load("tp$n", $DUR, \@fns, \@gw)->();
    my $ok = grep { $_->[4] == 200 } @rows;
    my $missing = records_missing(@rows);
    my ($sbx, $calls) = per_host(\@fns);   # calls: warm-up included
    printf "%d host(s): %d calls, %d failed, %.1f calls/s, records missing %d\n",
           $n, scalar(@rows), @rows - $ok, $ok / $DUR, $missing;
    printf "    sandboxes per host: %s\n", join(', ', map { "$_ $sbx->{$_}" } sort keys %$sbx);
    printf "    calls per agent:    %s\n", join(', ', map { "$_ $calls->{$_}" } sort keys %$calls);
}

sub ledger {
    my ($what, $at, @rows) = @_;
    my @bad = grep { $_->[4] != 200 } @rows;
    my ($last) = sort { $b <=> $a } map { $_->[1] } @bad;
    printf "%-14s requests %d, failed %d, seconds to recover %.1f, records missing %d\n",
           $what, scalar(@rows), scalar(@bad), $last ? $last - $at : 0, records_missing(@rows);
}

print "== faults under load ($CONC clients)\n";
my @fns = map { "t3x$_" } 1 .. 6;
my $done = load('host', 6 + 3 * $LEASE / 1000, \@fns, \@gw);
sleep 2;
my $at = time;
kill_host($c->{hosts}[0]);
ledger('worker host', $at, $done->());

$done = load('gateway', 6, \@fns, [$gw[1]]);
sleep 2;
$at = time;
kill_gateway($c->{gateways}[0]);
ledger('gateway', $at, $done->());

$done = load('master', 15, \@fns, [$gw[1]]);
sleep 2;
$at = time;
kill_proc($c->{sentinel}{master});
ledger('redis master', $at, $done->());

stop_cluster($c);
faas_finish();
