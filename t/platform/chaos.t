# The platform as `./build.sh run` starts it, under steady load over HTTPS
# (three closed-loop clients calling two functions), each fault in turn:
# kill -9 of the registry, the provisioner, the agent; kill -9 of Redis
# started again on its append-only file, then started EMPTY; SIGKILL of
# an nginx worker; nginx reloaded; more concurrent calls of a 4 GB
# function than the host holds. After each: calls succeed again within
# 5 s of the component being back; no answer 502 but for the calls in
# flight when a process serving them died; while Redis is down, 503 only;
# nothing failed on reload and overload. At the end every call answered
# 200 has its execution record in MariaDB and no sandbox ran two calls at
# once (docs/DESIGN.md section 11).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Platform;
use Faas::Chaos;

for my $b (qw(faas-registry faas-provisioner faas-agent faasctl ngx_http_faas_module.so)) {
    plan skip_all => "objs/$b is not built" unless -e objs_dir() . "/$b";
}
plan skip_all => 'needs root (sandboxes)' unless $> == 0;

my $p = start_platform(examples => 0);
is($p->{run}{rc}, 0, 'run: exit 0') or diag $p->{run}{err};
BAIL_OUT('the platform did not start') if $p->{run}{rc};
faasctl_env(FAAS_URL => $p->{url}, FAAS_CACERT => $p->{cacert},
            FAAS_JWT_SECRET_FILE => $p->{secret}, FAAS_SUBJECT => 'chaos',
            FAAS_TOKEN => undef, FAAS_KEY => undef, FAAS_UNIX_SOCKET => undef);
chaos_functions($p);
is(https($p, 'GET', "/fn/$_")->{status}, 200, "$_ answers") for @FNS;

my $started = time;
load_start($p, 3);
ok(wait_answers(10, $started), 'the load runs');

my $empty_at = 0;
for my $name (@FAULTS) {
    my $from = time;
    wait_answers(6, $from);
    my $f = fault($p, $name);
    $empty_at = $f->{t_killed} if $name eq 'redis-empty';
    wait_until(sub {
        my %ok = map { $_->[4] => 1 } grep { $_->[2] == 200 && $_->[0] >= $f->{t_back} } @{ load_lines() };
        return !grep { !$ok{$_} } @FNS;
    }, 20, 0.1);
    wait_answers(6, time);
    my $l = ledger($f, load_lines(), $from, time);
    diag(ledger_line($l, 0) . sprintf(' (fault at %.3f, back at %.3f)', $f->{t_fault}, $f->{t_back}));
    my %why;
    $why{"$_->[2] " . (($_->[5] // '') =~ s/"request_id":"\w+"//r)}++ for grep { $_->[2] != 200 } @{ $l->{lines} };
    diag("  $why{$_} x $_") for sort keys %why;
    ok(defined $l->{recovery_all} && $l->{recovery_all} <= 5,
       sprintf("$name: calls of every function succeed again within 5 s (%s)",
               defined $l->{recovery_all} ? sprintf('%.1f s', $l->{recovery_all}) : 'never'));
    is($l->{bad502}, 0, "$name: no 502 but for calls in flight");
    my @bad;
    if ($name =~ /^redis/) {
        # while Redis is down, and until calls succeed again, a call may
        # fail (503 at once); never with a 502 (checked above)
        my $ok_again = $f->{t_back} + ($l->{recovery_all} // 0);
        @bad = grep { $_->[2] != 200 && $_->[0] > $ok_again } @{ $l->{lines} };
    } elsif ($f->{kills}) {
        @bad = grep { $_->[2] != 200 && !($_->[0] <= $f->{t_fault} && $_->[1] >= $f->{t_fault}) }
               @{ $l->{lines} };
    } else {
        @bad = grep { $_->[2] != 200 } @{ $l->{lines} };
    }
    is(scalar @bad, 0, "$name: nothing else failed")
        or diag join("\n", map { "@$_" } @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
}

my $lines = load_stop();
my @ok = grep { $_->[2] == 200 } @$lines;
ok(@ok > 100, scalar(@ok) . ' calls answered 200 in ' . sprintf('%.0f s', time - $started));
# Records Redis acknowledged but the registry had not drained yet are
# lost when Redis restarts EMPTY (records_interval_ms is 1 s by default;
# until Redis is gone, it may still take some): counted apart, as a known
# gap.
my ($missing, @lost_empty, @other);
wait_until(sub { $missing = records_missing($p, $lines); !@$missing }, 30, 0.5);
for my $m (@$missing) {
    if ($m->[1] <= $empty_at && $m->[1] > $empty_at - 3) { push @lost_empty, $m } else { push @other, $m }
}
is(scalar @other, 0, 'every call answered 200 has its execution record')
    or diag(scalar(@other) . " missing:\n" . join("\n", map { "@$_" } @other[0 .. ($#other < 9 ? $#other : 9)]));
# a Redis whose data is gone takes its undrained records with it (accepted:
# docs/DESIGN.md section 11); counted, not asserted
note(scalar(@lost_empty) . ' records lost with the empty Redis');
is(scalar @{ handed_twice($p) }, 0, 'no sandbox ran two calls at once');

my $st = stop_platform($p);
is($st->{rc}, 0, 'stop: exit 0') or diag $st->{err};
faas_finish();
