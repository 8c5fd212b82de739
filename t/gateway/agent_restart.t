# An agent that restarts (stopped, then started again on the same socket):
# a call that cannot reach it before anything was sent returns its idle
# entry, takes the next one and calls the agent again after a backoff,
# until faas_cold_start_timeout since the request began (then 503 "agent
# unavailable", the entries listed); healthy sandboxes are not dropped from
# the idle list, nor listed twice; a client
# that goes away meanwhile gives its entry back; a call to an agent that is
# shutting down (answered on a kept-alive connection) waits the same way.
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
fn_mirror($r, 'slow', timeout_ms => 10000);
my @sids = warm_sandboxes($agent, $r, 'slow', write_slow_handler('slow'), 2);
my $idle = idle_key('slow');
my @entries = map { idle_entry($agent, $_) } @sids;

my $ng = start_nginx(
    http_config => "faas_redis $redis->{addr};",
    config => 'location /fn/ { faas_function on; faas_cold_start_timeout 10s; }
               location /short/ { faas_function on; faas_cold_start_timeout 1s; }');
my $port = $ng->{port};

# the idle list holds each sandbox exactly once
sub listed_once {
    my @l = sort $r->lrange($idle, 0, -1);
    return join(' ', @l) eq join(' ', sort @entries);
}

my $res = http_request($port, 'GET', '/fn/slow');
is($res->{status}, 200, 'a call works');
ok(wait_until(\&listed_once, 5), 'both sandboxes listed');

sub restart_agent { $agent = start_agent() }

# --- the agent restarts while a call waits for it ------------------------
stop_proc($agent);
ok(!-e $agent->{socket}, 'agent stopped (SIGTERM): its socket is gone');
my $off = error_log_size();
my $call = http_start($port, 'GET', '/fn/slow?s=0.1', timeout => 20);
ok(wait_until(sub { error_log_since($off) =~ /agent unreachable .*calling again/ }, 10),
   'a call finds the agent unreachable and waits for it');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... holding an entry between tries');
sleep 0.5;   # the agent stays down a while (part of the scenario)
restart_agent();
$res = http_collect($call);
is($res->{status}, 200, 'the agent is back: the call succeeds') or diag explain $res;
is($res->{body}, 'slept 0.1', '... with the function\'s answer');
is($res->{headers}{'x-faas-start'}, 'warm', '... warm');
ok(wait_until(sub { $r->llen($idle) == 2 }, 5), 'the entry is back on the idle list');
ok(listed_once(), '... no entry lost, none duplicated');
unlike(error_log_since($off), qr/entry dropped/, 'no entry was dropped');

# --- the agent down longer than the cold start timeout --------------------
stop_proc($agent);
$off = error_log_size();
$res = http_request($port, 'GET', '/short/slow', timeout => 20);
is($res->{status}, 503, 'agent down past faas_cold_start_timeout: 503');
like($res->{body}, qr/"error":"agent unavailable"/, '... with a clear error');
like($res->{body}, qr/"request_id":"[0-9a-f]{32}"/, '... and the request id');
like(error_log_since($off), qr/still unavailable after \d+ ms, entry returned/,
     '... logged');
ok(wait_until(\&listed_once, 5), 'the entry is still listed, exactly once');
sleep 0.3;
ok(listed_once(), '... and stays so');

# --- a client that goes away while the call waits for the agent ------------
$off = error_log_size();
$call = http_start($port, 'GET', '/fn/slow', abort_after => 1, timeout => 20);
ok(wait_until(sub { error_log_since($off) =~ /calling again/ }, 10),
   'a call waits for the stopped agent');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... holding an entry between tries');
http_collect($call);
ok(wait_until(\&listed_once, 5), 'client gone: the entry is listed again, exactly once');
sleep 0.5;
ok(listed_once(), '... and stays so (no second return)');

# --- an agent that is shutting down answers on a kept-alive connection ----
restart_agent();
# two calls at once leave two kept-alive connections in the worker's pool
my @two = http_parallel($port, ['GET', '/fn/slow?s=0.3'], ['GET', '/fn/slow?s=0.3']);
is_deeply([map { $_->{status} } @two], [200, 200], 'two calls at once');
ok(wait_until(\&listed_once, 5), '... both sandboxes back');
my $long = http_start($port, 'GET', '/fn/slow?s=2', timeout => 20);
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), 'a long call is running');
$off = error_log_size();
kill('TERM', $agent->{pid});
ok(wait_until(sub { !-e $agent->{socket} }, 5), 'SIGTERM: the agent stops listening');
$call = http_start($port, 'GET', '/fn/slow?s=0.1', timeout => 20);
ok(wait_until(sub { error_log_since($off) =~ /calling again/ }, 10),
   'a new call meanwhile waits for the agent');
like(error_log_since($off), qr/agent is shutting down for sandbox/,
     '... having been told on a kept-alive connection that it shuts down');
my $lres = http_collect($long);
is($lres->{status}, 200, 'the call in flight completes');
ok(wait_until(sub { !proc_alive($agent) }, 10), 'the old agent exits');
restart_agent();
$res = http_collect($call);
is($res->{status}, 200, 'the new agent serves the waiting call') or diag explain $res;
ok(wait_until(\&listed_once, 5), 'both sandboxes listed exactly once');

stop_nginx();
stop_proc($agent);
system(objs_dir() . '/faas-sandbox', '-c', sandbox_config($agent), 'cleanup');
faas_finish();
