# Calls at a function's max concurrency wait in the worker's local queue
# (one BLPOP per worker and revision) and get a sandbox handed over by the
# call that is done with it: every call is served, in order, by the one
# sandbox allowed; a waiter that runs out of time gets 429 (back-pressure:
# the function is at its own limit) with Retry-After; a waiter whose
# client goes away gives nothing up (the sandbox ends on the idle list); the
# records of every call reach faas:records.
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Setup;

need_programs('faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent();

my $code = write_handler('one', 'handler.py' => <<'PY');
import time
def handler(event, context):
    if event["rawPath"] == "/sleep":
        time.sleep(float((event.get("queryStringParameters") or {}).get("s", "1")))
    return {"statusCode": 200, "body": event["rawPath"]}
PY
fn_mirror($r, 'one', max_concurrency => 1);
my $idle = idle_key('one');
$r->set('faas:count:{one@1}', 1);      # the one sandbox allowed exists
my ($sbx) = warm_sandboxes($agent, $r, 'one', $code, 1);
my $ep = agent_ep($agent);

# one worker, so that every call of the test shares one wait queue
my $ng = start_nginx(workers => 1, http_config => "faas_redis $redis->{addr};",
                     config => <<'C');
location /fn/ { faas_function on; faas_cold_start_timeout 20s; }
location /short/ { faas_function on; faas_cold_start_timeout 300ms; }
C
my $port = $ng->{port};

# 1. a call holds the sandbox; five more wait for it and are all served
my $long = http_start($port, 'GET', '/fn/one/sleep?s=1');
ok(wait_until(sub { $r->llen($idle) == 0 }, 10), 'the first call took the sandbox');
my @w;
for my $i (1 .. 5) {
    push @w, http_start($port, 'GET', "/fn/one/w$i");
    sleep 0.05;
}

# 2. meanwhile: a waiter with a short timeout gets 429
my $res = http_request($port, 'GET', '/short/one/late');
is($res->{status}, 429, 'waiting longer than faas_cold_start_timeout at max concurrency: 429');
like($res->{body}, qr/"error":"function at its concurrency limit \(1\): no sandbox within 300 ms"/,
     '... with a clear JSON body');
is($res->{headers}{'retry-after'}, '1', '... and Retry-After');

# 3. a waiter whose client goes away
my $gone = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 5)
    or die "connect: $!";
print $gone "GET /fn/one/gone HTTP/1.1\r\nHost: x\r\n\r\n";
close $gone;

my $lres = http_collect($long);
is($lres->{status}, 200, 'the long call: 200');
my @wres = map { http_collect($_) } @w;
is_deeply([map { $_->{status} } @wres], [(200) x 5], 'every waiting call served');
is_deeply([map { $_->{body} } @wres], [map { "/w$_" } 1 .. 5], '... each with its own answer');
is_deeply([map { $_->{headers}{'x-faas-start'} } @wres], [('stolen') x 5],
          '... on a sandbox given back by another call (stolen)');

ok(wait_until(sub { $r->llen($idle) == 1 }, 10), 'the sandbox is back on the idle list, once');
is($r->lindex($idle, 0), "$sbx|$ep|-", '... as an origin-less entry');
is($r->get('faas:count:{one@1}'), 1, 'count unchanged: no INCR left behind');
ok(wait_until(sub { $r->llen('faas:records') == 6 }, 10),
   'one execution record per call that ran (6)');

# 4. the queue is gone with its waiters: the next call is a plain warm one
$res = http_request($port, 'GET', '/fn/one/after');
is($res->{status}, 200, 'a later call: 200');
is($res->{headers}{'x-faas-start'}, 'warm', '... warm (LPOP)');
ok(wait_until(sub { $r->llen($idle) == 1 }, 10), '... and the sandbox back');

stop_nginx();
stop_proc($agent);
sandbox_destroy($agent, $sbx);
faas_finish();
