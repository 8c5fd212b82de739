# bench/chaos/chaos.pl (through bench/chaos/run.sh): the platform as
# `./build.sh run` starts it, CLIENTS closed-loop HTTPS clients calling two
# functions (t/lib/Faas/Chaos.pm), and each fault of t/platform/chaos.t in
# turn, PHASE seconds of load before and after it. Per fault, one ledger
# line: requests, failed by status (in flight at the fault; 502 not in
# flight), seconds the component was down, seconds until calls succeed
# again after it is back, records missing (answered 200, no row in MariaDB
# after the drain), sandboxes leaked (with no call in flight: sandbox
# directories minus idle entries; faas:count beside) and runs of one
# sandbox overlapping in time (handed out twice). Asserts nothing.
use strict;
use warnings;
use lib 't/lib';
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Platform;
use Faas::Chaos;

$| = 1;

my $PHASE = $ENV{PHASE} // 20;
my $CLIENTS = $ENV{CLIENTS} // 6;

my $p = start_platform(examples => 0);
die "the platform did not start: $p->{run}{err}" if $p->{run}{rc};
faasctl_env(FAAS_URL => $p->{url}, FAAS_CACERT => $p->{cacert},
            FAAS_JWT_SECRET_FILE => $p->{secret}, FAAS_SUBJECT => 'chaos',
            FAAS_TOKEN => undef, FAAS_KEY => undef, FAAS_UNIX_SOCKET => undef);
chaos_functions($p);
https($p, 'GET', "/fn/$_") for @FNS;
chomp(my $load = `uptime`);
printf "bench/chaos: %d s of load before and after each fault, %d HTTPS clients (%s), %s\n",
    $PHASE, $CLIENTS, join(' ', @FNS), $load =~ s/^\s+//r;

load_start($p, $CLIENTS);
my @ledgers;
for my $name (@FAULTS) {
    my $from = time;
    sleep $PHASE;
    my $f = fault($p, $name);
    sleep $PHASE;
    my $l = ledger($f, load_lines(), $from, time);
    $l->{from} = $from;
    $l->{to} = time;
    load_pause();
    sleep 2;   # returned sandboxes listed again
    $l->{census} = sandbox_census($p);
    load_resume();
    push @ledgers, $l;
}
my $lines = load_stop();
my %have;
wait_until(sub { !@{ records_missing($p, $lines) } }, 30, 1);
my %missing = map { $_->[3] => 1 } @{ records_missing($p, $lines) };
my $twice = handed_twice($p);
for my $l (@ledgers) {
    my $m = grep { $missing{ $_->[3] } } @{ $l->{lines} };
    my $c = $l->{census};
    my $t = grep { $_ / 1000 >= $l->{from} && $_ / 1000 <= $l->{to} } @$twice;
    printf "%s  sandboxes leaked %d (%d live, %d listed, faas:count %d)  handed out twice %d\n",
        ledger_line($l, $m), $c->{dirs} - $c->{listed}, $c->{dirs}, $c->{listed}, $c->{count}, $t;
}
printf "total: %d requests, %d answered 200, %d records missing, %d runs overlapping\n",
    scalar @$lines, scalar(grep { $_->[2] == 200 } @$lines), scalar keys %missing, scalar @$twice;
stop_platform($p);
