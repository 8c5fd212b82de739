# Faults: Redis stopped and started again, clients that go away while
# waiting for a sandbox or during the agent call, an agent killed mid-call,
# `nginx -s reload` with calls in flight.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Setup;
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

need_programs('faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent();
fn_mirror($r, 'slow', timeout_ms => 10000);
my ($sid) = warm_sandboxes($agent, $r, 'slow', write_slow_handler('slow'), 1);
my $idle = idle_key('slow');
my $entry = idle_entry($agent, $sid);

my $ng = start_nginx(
    http_config => "faas_redis $redis->{addr}; faas_redis_timeout 1s;",
    config => 'location /fn/ { faas_function on; faas_cold_start_timeout 5s; }');
my $port = $ng->{port};

my $res = http_request($port, 'GET', '/fn/slow');
is($res->{status}, 200, 'a call works');

# --- client abort while waiting for a sandbox (BLPOP) ----------------------
$r->lpop($idle);
http_request($port, 'GET', '/fn/slow', abort_after => 0.5);
sleep 0.3;
$r->rpush($idle, $entry);
ok(wait_until(sub { $r->llen($idle) == 1 }, 10),
   'client gone during BLPOP: the sandbox it was handed is pushed back');
sleep 0.5;
is($r->llen($idle), 1, '... and stays listed once');
$res = http_request($port, 'GET', '/fn/slow');
is($res->{status}, 200, '... and serves the next call');

# --- client abort during the agent call ------------------------------------
# Records are flushed once per event-loop iteration: let the previous call's
# record land before counting.
my $nrec;
wait_until(sub {
    my $n = $r->llen('faas:records');
    my $same = defined $nrec && $n == $nrec;
    $nrec = $n;
    return $same;
}, 5, 0.3);
http_request($port, 'GET', '/fn/slow?s=1', abort_after => 0.4);
is($r->llen($idle), 0, 'client gone during the call: the sandbox is busy');
ok(wait_until(sub { $r->llen($idle) == 1 }, 10), '... and back once the call ends');
ok(wait_until(sub { $r->llen('faas:records') == $nrec + 1 }, 5), '... with its record');
$res = http_request($port, 'GET', '/fn/slow');
is($res->{status}, 200, '... and serves the next call');

# --- nginx -s reload with a call in flight ----------------------------------
# (not under valgrind, where nginx runs as a single process without workers)
SKIP: {
skip 'reload needs worker processes (valgrind run)', 7 if $ENV{FAAS_NGINX_VALGRIND};
my $inflight = http_start($port, 'GET', '/fn/slow?s=1.5');
ok(wait_until(sub { $r->llen($idle) == 0 }, 5), 'a long call is in flight');
my $log_off = error_log_size();
reload_nginx();
ok(wait_until(sub { error_log_since($log_off) =~ /reconfiguring/ }, 10), 'nginx reloads');
my $ires = http_collect($inflight);
is($ires->{status}, 200, 'the call in flight completes across the reload');
is($ires->{body}, 'slept 1.5', '... with its answer');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... and returns its sandbox');
$res = http_request($port, 'GET', '/fn/slow');
is($res->{status}, 200, 'new calls work after the reload');

}

# --- Redis stopped, then started again on the same port ----------------------
# A call in flight when Redis goes away is answered; its execution record
# waits in the worker and reaches the new Redis once it is back.
my $rport = $redis->{port};
my $log_off = error_log_size();
my $inflight = http_start($port, 'GET', '/fn/slow?s=1');
ok(wait_until(sub { $r->llen($idle) == 0 }, 5), 'a call is in flight');
stop_proc($redis);
my $t0 = time;
$res = http_request($port, 'GET', '/fn/slow', timeout => 10);
is($res->{status}, 503, 'Redis down: 503');
ok(time - $t0 < 1, '... at once (well within faas_redis_timeout)');
is($res->{headers}{'retry-after'}, '1', '... with Retry-After');
like($res->{body}, qr/^\{"error":"Redis is unavailable","request_id":"[0-9a-f]+"\}/,
     '... and a JSON error');
$res = http_request($port, 'GET', '/fn/slow', timeout => 10);
is($res->{status}, 503, 'still 503 while it is down');
my $ires = http_collect($inflight);
is($ires->{status}, 200, 'the call in flight is answered');
sleep 2.5;   # several reconnection attempts fail meanwhile
my $rdir = work_dir() . "/redis-$rport-again";
make_path($rdir);
my $redis2 = spawn("redis-again", ['redis-server', '--port', $rport, '--bind', '127.0.0.1',
                                   '--save', '', '--appendonly', 'no', '--dir', $rdir,
                                   '--daemonize', 'no', '--loglevel', 'warning']);
wait_port($rport) or die 'redis did not restart';
my $tback = time;
$redis2->{addr} = "127.0.0.1:$rport";
$r = redis_client($redis2);
$r->hset('faas:fn:slow', rid => 'slow@1', name => 'slow', version => 1,
         owner => 'alice', runtime => 'python3', handler => 'handler.handler',
         timeout_ms => 10000, max_concurrency => 0, public => 1);
$r->rpush($idle, $entry);
my $ok = wait_until(sub {
    my $x = http_request($port, 'GET', '/fn/slow', timeout => 10);
    return $x->{status} == 200;
}, 20, 0.2);
ok($ok, 'Redis back: calls succeed again without restarting nginx');
ok(time - $tback < 5, '... within 5 s') or diag(sprintf '%.1f s', time - $tback);
ok(wait_until(sub { grep { /slow/ } @{ $r->lrange('faas:records', 0, -1) } }, 5),
   'the record of the call answered while Redis was down arrives');
my $since = error_log_since($log_off);
like($since, qr/command connection lost/, 'the lost connection was logged');
my (%lost, %back);
$lost{$1}++ while $since =~ /(\d+)#\d+: faas: redis "[^"]*": (?:command connection lost|connect failed|AUTH failed)/g;
$back{$1}++ while $since =~ /(\d+)#\d+: faas: redis "[^"]*": reconnected/g;
is_deeply([grep { $lost{$_} != 1 } keys %lost], [], 'the outage logged once per worker')
    or diag(explain(\%lost));
is_deeply(\%back, \%lost, '... and its end once per worker');

# --- the agent killed during a call ------------------------------------------
my $call = http_start($port, 'GET', '/fn/slow?s=3');
ok(wait_until(sub { $r->llen($idle) == 0 }, 5), 'a call is running');
sleep 0.5;
kill_proc($agent);
$res = http_collect($call);
is($res->{status}, 502, 'agent killed mid-call: 502');
like($res->{body}, qr/agent connection lost/, '... with a clear body');
sleep 0.3;
is($r->llen($idle), 0, '... and the entry is dropped, not returned');

stop_nginx();
system(objs_dir() . '/faas-sandbox', '-c', sandbox_config($agent), 'cleanup');
faas_finish();
