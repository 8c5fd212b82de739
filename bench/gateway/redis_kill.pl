# bench/gateway/redis_kill.pl: what a kill -9 of Redis loses with the
# persistence conf/redis.conf ships (appendonly yes, appendfsync everysec).
# wrk calls a function through the gateway; in the middle Redis is killed
# (SIGKILL) and started again on its append-only file; the idle entries the
# gateways dropped meanwhile are listed again (the provisioner's job, done
# here by hand). Prints the calls answered 200 and the execution records in
# faas:records afterwards (distinct, and pushed twice); asserts nothing.
#
#   perl bench/gateway/redis_kill.pl     # DURATION (12 s), KILL_AT (4 s),
#                                        # DOWN (1 s), CONNECTIONS (16),
#                                        # AOF (yes | no)
use strict;
use warnings;
use lib 't/lib';
use Time::HiRes qw(sleep);
use File::Path qw(make_path);
use Faas::Test;
use Faas::Agent;
use Faas::Nginx;

my $DURATION = $ENV{DURATION} // 12;
my $KILL_AT = $ENV{KILL_AT} // 4;
my $DOWN = $ENV{DOWN} // 1;
my $CONNS = $ENV{CONNECTIONS} // 16;
my $AOF = $ENV{AOF} // 'yes';   # no: what the shipped settings were before
my $SANDBOXES = 4;

my $w = work_dir();
my $rport = free_port();
make_path("$w/aof");
sub redis_up {
    my $h = spawn('redis-' . time, ['redis-server', '--port', $rport, '--bind', '127.0.0.1',
                                    '--save', '', '--appendonly', $AOF,
                                    '--appendfsync', 'everysec', '--dir', "$w/aof",
                                    '--daemonize', 'no', '--loglevel', 'warning']);
    wait_port($rport) or die "redis did not start, see $h->{log}";
    $h->{addr} = "127.0.0.1:$rport";
    my $c = redis_client($h);
    wait_until(sub { eval { $c->llen('faas:records'); 1 } }, 30, 0.05)   # LOADING
        or die 'redis did not load its append-only file';
    return $h;
}
my $redis = redis_up();
my $r = redis_client($redis);

my $agent = start_agent(log_level => 'warn', exe => objs_dir() . '/faas-agent');
my $code = write_handler('bench', 'handler.py' => <<'PY');
def handler(event, context):
    return {"statusCode": 200, "body": "ok"}
PY
my @ids = map { sandbox_create($agent, function => 'bench', code => $code) } 1 .. $SANDBOXES;
my @entries = map { "$_|unix:$agent->{socket}|-" } @ids;
$r->hset('faas:fn:bench', rid => 'bench@1', name => 'bench', version => 1,
         owner => 'bench', runtime => 'python3', handler => 'handler.handler',
         memory_mb => 128, timeout_ms => 10000, max_concurrency => 0, public => 1);
$r->rpush('faas:idle:{bench@1}', @entries);

my $ng = start_nginx(workers => 2,
    http_config => "faas_redis $redis->{addr}; access_log off;",
    config => 'location /fn/ { faas_function on; faas_cold_start_timeout 2s; }');
my $port = $ng->{port};

my $out = "$w/wrk.out";
my $wrk = fork() // die "fork: $!";
if ($wrk == 0) {
    exec("wrk -t2 -c$CONNS -d${DURATION}s http://127.0.0.1:$port/fn/bench > $out 2>&1");
    exit 127;
}
sleep $KILL_AT;
kill 'KILL', $redis->{pid};
waitpid($redis->{pid}, 0);
sleep $DOWN;
$redis = redis_up();
$r = redis_client($redis);
my %listed = map { $_ => 1 } @{ $r->lrange('faas:idle:{bench@1}', 0, -1) };
sleep 0.5;   # calls in flight give their sandboxes back
%listed = map { $_ => 1 } @{ $r->lrange('faas:idle:{bench@1}', 0, -1) };
$r->rpush('faas:idle:{bench@1}', $_) for grep { !$listed{$_} } @entries;
waitpid($wrk, 0);
sleep 3;   # kept records are pushed again within a second

my $o = read_file($out) // '';
my ($reqs) = $o =~ /(\d+) requests in/;
my ($non2xx) = $o =~ /Non-2xx or 3xx responses:\s+(\d+)/;
my $ok = ($reqs // 0) - ($non2xx // 0);
my $recs = $r->lrange('faas:records', 0, -1);
my %distinct = map { $_ => 1 } @$recs;
my $n = keys %distinct;
printf "redis kill -9 at %d s, down %.1f s, %d s of calls, %d connections, appendonly %s\n",
    $KILL_AT, $DOWN, $DURATION, $CONNS, $AOF;
printf "answered: %d (200: %d, other: %d); records: %d distinct, %d pushed twice; "
     . "records missing for answered calls: %d\n",
    $reqs // 0, $ok, $non2xx // 0, $n, @$recs - $n, $ok > $n ? $ok - $n : 0;

stop_nginx();
stop_proc($redis);
system(objs_dir() . '/faas-sandbox', '-c', sandbox_config($agent), 'cleanup');
stop_proc($agent);
faas_finish();
