# The registry reconnects to Redis by itself, forever, with capped backoff:
# started while Redis is down, it mirrors its functions and drains records
# once Redis is up; after a kill -9 of Redis and an empty restart the mirror
# is rebuilt at once (not at the next repair interval); a connection broken
# in the middle of a drain duplicates and loses no record. Each outage is
# logged once as lost and once as reconnected per connection (mirror,
# records), however many attempts fail.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::MariaDB;
use Faas::Registry;
use Faas::Provisioner;
use Faas::Setup;

my $db = start_mariadb();
my $redis = redis_handle_at(free_port());
my $reg = start_registry(db => $db, redis => $redis,
                         cfg => { mirror_repair_interval_ms => 600000,
                                  records_batch => 40, records_interval_ms => 1,
                                  records_lock_ms => 5000 });
my $dbh = mariadb_dbh($db, 'faas');
sub lines { my ($re) = @_; scalar(() = (read_file($reg->{log}) // '') =~ /$re/g) }
sub outages {
    my ($what) = @_;
    return (lines(qr/redis \Q$what\E: lost \(/), lines(qr/redis \Q$what\E: reconnected after/));
}

my $T0 = 1_700_000_000_000;
sub rid { sprintf('%032x', $_[0]) }
sub rec {
    my ($i) = @_;
    my $day = strftime('%Y-%m-%d', gmtime(($T0 + $i) / 1000));
    return exec_record(
        request_id => rid($i), function => 'rec', version => 1, user => 'alice',
        start_type => 1, status => 0, http_status => 200, duration_us => 1000,
        total_us => 2000, cold_start_us => 0, memory_bytes => 1 << 20,
        log_key => "logs/rec/$day/" . rid($i) . '.log', agent_host => 'host1',
        timestamp_ms => $T0 + $i, sandbox_id => 's-0123456789abcdef');
}
sub count { $dbh->selectrow_array('SELECT COUNT(*) FROM executions') }
sub distinct { $dbh->selectrow_array('SELECT COUNT(DISTINCT request_id) FROM executions') }

# --- started while Redis was down ------------------------------------------
my $res = create_py_function($reg, 'early');
is($res->{status}, 201, 'a function created while Redis is down: 201');
# the records below are of function "rec", version 1: records of a name
# with no such incarnation are dropped by the drain
is(create_py_function($reg, 'rec')->{status}, 201, 'and the records\' function');
sleep 1.5;   # several attempts fail meanwhile
$redis = redis_start_at($redis);
my $r = redis_client($redis);
my $t0 = time;
ok(wait_until(sub { $r->exists('faas:fn:early') }, 5),
   'Redis started after the registry: the mirror is written within 5 s')
    or diag(read_file($reg->{log}));
diag(sprintf 'mirrored %.1f s after Redis came up', time - $t0);
$r->rpush('faas:records', rec($_)) for 1 .. 5;
ok(wait_until(sub { count() == 5 }, 5), 'and records are drained');
ok(wait_until(sub { (outages('records'))[1] == 1 }, 5), 'records: reconnected');
is_deeply([ outages('mirror') ], [ 1, 1 ], 'mirror: the outage logged once lost, once reconnected');
is_deeply([ outages('records') ], [ 1, 1 ], 'records: the same');

# --- connections broken in the middle of a drain -----------------------------
my $N = 2000;
$r->rpush('faas:records', map { rec(100 + $_) } 1 .. $N);
ok(wait_until(sub { count() > 5 + 200 }, 30, 0.005), 'draining');
$r->client_kill('TYPE', 'normal');
ok(wait_until(sub { $r->llen('faas:records') == 0 }, 30), 'the drain goes on after the break')
    or diag(read_file($reg->{log}));
is(count(), 5 + $N, 'every record stored');
is(distinct(), 5 + $N, 'none twice');
ok(wait_until(sub { (outages('records'))[1] == 2 }, 5), 'records: one more outage, reconnected');
is((outages('records'))[0], 2, '... and lost once');

# --- kill -9, restarted empty ------------------------------------------------
$res = create_py_function($reg, 'second');
is($res->{status}, 201, 'second function created');
ok($r->exists('faas:fn:second'), 'and mirrored at once');
my @mirror = outages('mirror');
kill_proc($redis);
sleep 2;   # attempts fail, backing off
$redis = redis_start_at($redis);
$r = redis_client($redis);
$t0 = time;
ok(wait_until(sub { $r->exists('faas:fn:early') && $r->exists('faas:fn:second') }, 5),
   'Redis back empty: every function re-mirrored within 5 s (repair interval: 10 min)')
    or diag(read_file($reg->{log}));
diag(sprintf 're-mirrored %.1f s after Redis came back', time - $t0);
ok(wait_until(sub { (outages('mirror'))[1] == $mirror[1] + 1 }, 5), 'mirror: reconnected');
is((outages('mirror'))[0], $mirror[0] + 1, 'mirror: the loss logged once');
$r->rpush('faas:records', rec(5000));
ok(wait_until(sub { count() == 5 + $N + 1 }, 5), 'records drained again');
$res = create_py_function($reg, 'third');
is($res->{status}, 201, 'the API works');
ok($r->exists('faas:fn:third'), 'and mirrors at once');

stop_proc($reg);
is($reg->{status} >> 8, 0, 'registry: clean exit');
faas_finish();
