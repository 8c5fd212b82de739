# Redis Sentinel: the gateway (faas_redis_sentinel), the provisioner and the
# registry (redis_sentinels) find the master through three sentinels and
# follow a failover under steady load: the master is killed, the sentinels
# promote the replica, calls succeed again within 10 s with no manual step,
# no idle entry is handed out twice, and the registry's mirror and records
# drain write to the new master (docs/DESIGN.md sections 4 and 11).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Provisioner;
use Faas::Setup;
use Faas::Sentinel;
use Faas::MariaDB;
use Faas::Registry qw(start_registry api);

need_programs('faas-provisioner', 'faas-agent');
plan skip_all => 'redis-sentinel is not installed'
    unless grep { -x "$_/redis-sentinel" } split /:/, $ENV{PATH};

my $s = start_sentinels();
my $master0 = current_master($s);
is($master0->{port}, $s->{master}{port}, 'the sentinels name the first master');
my $w = work_dir();
# a sentinel that is down is skipped: the daemons' lists start with one
my $dead = free_port();
my $SENT = { redis_sentinels => "127.0.0.1:$dead $s->{sentinels}", redis_master => 'faas' };
# a provisioner whose only sentinel is down says so once and keeps trying
my $lonely = launch_provisioner($master0, name => 'lonely', shards => 4,
    cfg => { redis_sentinels => "127.0.0.1:$dead", redis_master => 'faas' });
my $db = start_mariadb();
my $reg = start_registry(db => $db, redis => { addr => '127.0.0.1:1' }, cfg => $SENT);
my $x = create_py_function($reg, 'before');
is($x->{status}, 201, 'the registry (its "redis" a dead address) creates a function')
    or diag $x->{body};

my $prov = start_provisioner($master0, shards => 4, lease_ms => 1500,
    cfg => $SENT);
my $agent = start_agent_for($prov);
# the function the load calls, created through the registry (whose mirror
# repair removes any faas:fn the database does not know)
$x = api($reg, 'POST', '/v1/functions', user => 'alice', json => {
    name => 'who', runtime => 'python3', handler => 'app.handler',
    max_concurrency => 4, public => JSON::PP::true,
    code => { file => 'app.py', content => <<'PY' } });
import os, binascii, time
ID = binascii.hexlify(os.urandom(8)).decode()
def handler(e, c):
    time.sleep(0.05)
    return ID
PY
is($x->{status}, 201, 'the function "who"') or diag $x->{body};
my $r = redis_client($master0);
ok(wait_until(sub { $r->exists('faas:fn:before') }, 10),
   '... and mirrors it into the master the sentinels name');
ok(wait_until(sub { $r->exists('faas:fn:who') }, 10), '... mirrored');

my $ng = start_nginx(
    http_config => "faas_redis_sentinel master=faas $s->{sentinels}; faas_shards 4;",
    config => "location /fn/ { faas_function on; faas_cold_start_timeout 20s; }");
my $port = $ng->{port};

my $res = http_request($port, 'GET', '/fn/who');
is($res->{status}, 200, 'a call through the sentinel-found master') or diag $res->{body};
like(error_log_since(0), qr/redis master "faas" is 127\.0\.0\.1:$s->{master}{port}/,
     'the gateway logged the master it found');

# --- steady load, then the master dies --------------------------------------
my $ledger = "$w/load.ledger";
my $loader = fork() // die;
if ($loader == 0) {
    open(my $fh, '>', $ledger) or POSIX::_exit(1);
    $fh->autoflush(1);
    my $end = time + 40;
    until (time > $end || -e "$w/load.stop") {
        my $t = time;
        my $x = http_request($port, 'GET', '/fn/who', timeout => 25);
        printf $fh "%.3f %d %s\n", $t, $x->{status}, ($x->{status} == 200 ? $x->{body} : '-');
        sleep 0.05;
    }
    POSIX::_exit(0);
}
sleep 2;
my $killed = time;
kill_proc($s->{master});
ok(wait_failover($s, 30), 'the sentinels promoted the replica');
my $promoted = time;
my $m1 = current_master($s);
is($m1->{port}, $s->{replica}{port}, '... the replica is the master now');
diag sprintf('promotion %.1f s after the kill', $promoted - $killed);

# the platform follows: a call succeeds within 10 s of the promotion
my $ok_at;
wait_until(sub {
    my $x = http_request($port, 'GET', '/fn/who', timeout => 10);
    $ok_at = time if $x->{status} == 200;
    $ok_at;
}, 10);
ok($ok_at, 'calls succeed again within 10 s of the promotion');
diag sprintf('served again %.1f s after the promotion', ($ok_at // time) - $promoted);
sleep 3;
write_file("$w/load.stop", '');
waitpid($loader, 0);

my @rows = map { [split / /] } split /\n/, read_file($ledger) // '';
my @late = grep { $_->[0] > ($ok_at // time) } @rows;
ok(@late > 0, 'the load ran past the recovery');
is(scalar(grep { $_->[1] != 200 } @late), 0,
   'every call started after the recovery succeeded');
my @bad = grep { $_->[1] != 200 && $_->[1] != 503 && $_->[1] != 502 } @rows;
is(scalar(@bad), 0, 'a failed call during the failover is a 502/503, never something else')
    or diag explain \@bad;
diag sprintf('%d calls, %d failed during the failover', scalar(@rows),
             scalar(grep { $_->[1] != 200 } @rows));

# --- no duplicate hand-outs ---------------------------------------------------
my $r1 = redis_client($m1);
ok(wait_until(sub { defined $r1->zscore('faas:prov:hosts', $prov->{cfg}{host_id}) }, 10),
   'the provisioner heartbeats into the new master');
my @idle = $r1->lrange('faas:idle:{who@1}', 0, -1);
my %seen;
is(scalar(grep { $seen{$_}++ } @idle), 0, 'no idle entry is listed twice on the new master');
my $cnt = $r1->get('faas:count:{who@1}') // 0;
ok($cnt <= 4, "the revision's count stays within max_concurrency ($cnt)");

# the registry follows: a new function is mirrored into the new master, the
# records the gateway wrote there are drained
$x = create_py_function($reg, 'after');
is($x->{status}, 201, 'the registry creates a function after the failover') or diag $x->{body};
ok(wait_until(sub { $r1->exists('faas:fn:after') }, 10),
   '... mirrored into the new master');
ok(wait_until(sub { $r1->llen('faas:records') == 0 }, 10),
   "the registry drains the new master's faas:records");

# concurrent calls now: each sandbox serves one call at a time
my @par = http_parallel($port, map { ['GET', '/fn/who'] } 1 .. 4);
is(scalar(grep { $_->{status} == 200 } @par), 4, 'four concurrent calls after the failover: 200');

my $ll = read_file($lonely->{log}) // '';
my $lost = () = $ll =~ /lost \(127\.0\.0\.1:$dead: Connection refused\)/g;
ok(proc_alive($lonely), 'the provisioner with no sentinel answering runs on');
is($lost, 1, '... and logged the loss once, not per attempt') or diag $ll;
stop_proc($lonely);

stop_nginx();
stop_proc($agent);
prov_cleanup($prov);
stop_proc($reg);
stop_mariadb($db);
faas_finish();
