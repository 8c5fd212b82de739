# Execution records while Redis cannot take them: each worker keeps up to
# faas_records_buffer of them (the oldest; newer ones are dropped, counted in
# the error log) and pushes them once Redis is back.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Setup;
use Time::HiRes qw(sleep time);

need_programs('faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent();
fn_mirror($r, 'slow', timeout_ms => 10000, max_concurrency => 0);
my @sids = warm_sandboxes($agent, $r, 'slow', write_slow_handler('slow'), 3);
my $idle = idle_key('slow');

my $ng = start_nginx(
    http_config => "faas_redis $redis->{addr}; faas_redis_timeout 1s; faas_records_buffer 2;",
    config => 'location /fn/ { faas_function on; faas_cold_start_timeout 5s; }');
my $port = $ng->{port};

# Three calls in flight, then Redis goes away: they are answered, two
# records are kept, the third is dropped.
my @calls = map { http_start($port, 'GET', "/fn/slow?s=1&n=$_") } 1 .. 3;
ok(wait_until(sub { $r->llen($idle) == 0 }, 5), 'three calls in flight');
my $off = error_log_size();
my $port_r = $redis->{port};
stop_proc($redis);
is(http_collect($_)->{status}, 200, 'a call in flight is answered') for @calls;
ok(wait_until(sub { error_log_since($off) =~ /execution record buffer is full \(faas_records_buffer 2\)/ }, 5),
   'the full buffer is logged');

my $redis2 = spawn('redis-again', ['redis-server', '--port', $port_r, '--bind', '127.0.0.1',
                                   '--save', '', '--appendonly', 'no', '--dir', work_dir(),
                                   '--daemonize', 'no', '--loglevel', 'warning']);
wait_port($port_r) or die 'redis did not restart';
$redis2->{addr} = "127.0.0.1:$port_r";
$r = redis_client($redis2);
ok(wait_until(sub { $r->llen('faas:records') == 2 }, 5), 'the two kept records reach Redis once it is back');
ok(wait_until(sub { error_log_since($off) =~ /Redis takes execution records again; 1 were dropped/ }, 5),
   '... and the number dropped is logged');
sleep 1;
is($r->llen('faas:records'), 2, 'each once');

stop_nginx();
system(objs_dir() . '/faas-sandbox', '-c', sandbox_config($agent), 'cleanup');
faas_finish();
