# The warm path with a real faas-agent and sandboxes made by faas-sandbox:
# an idle entry put by the test is taken by LPOP, the function answers
# through the agent, the entry goes back and an ExecutionRecord is written.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Setup;

need_programs('faas-agent');

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent(store => "file://" . work_dir() . "/store", tcp => 1,
                        token => 'tok-123');

my $code = write_handler('hello', 'handler.py' => <<'PY');
import json
def handler(event, context):
    print("called", event["rawPath"])
    if event.get("rawPath") == "/fail":
        raise ValueError("boom")
    if event.get("rawPath") == "/len":
        return {"statusCode": 200, "body": str(len(event["body"] or ""))}
    if event.get("rawPath") == "/created":
        return {"statusCode": 201, "headers": {"X-Mine": "yes", "Content-Type": "text/x-test"},
                "body": "made"}
    return {"rid": event["requestContext"]["requestId"]}
PY
my ($s1) = warm_sandboxes($agent, $r, 'hello', $code, 1);
my $s2 = sandbox_create($agent, function => 'hello', code => $code);
my $ep = agent_ep($agent);
fn_mirror($r, 'hello');
my $idle = idle_key('hello');

my $ng = start_nginx(http_config => "faas_redis $redis->{addr}; faas_agent_token tok-123;",
                     config => 'location /fn/ { faas_function on; }');
my $port = $ng->{port};

# 1. a warm call (t/gateway/event.t: the event the function sees)
my $res = http_request($port, 'POST', '/fn/hello/items/7?a=1', body => '{"k":1}');
is($res->{status}, 200, 'warm call: 200') or diag explain $res;
is($res->{headers}{'x-faas-start'}, 'warm', 'X-Faas-Start: warm');
my $rid = $res->{headers}{'x-faas-request-id'} // '';
like($rid, qr/^[0-9a-f]{32}$/, 'X-Faas-Request-Id');
my $ev = eval { json_decode($res->{body}) } // {};
is($ev->{rid}, $rid, 'the event carries the request id');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), 'the entry is back on the idle list');
is(($r->lrange($idle, 0, -1))[0], "$s1|$ep|-", '... unchanged');
ok(wait_until(sub { $r->llen('faas:records') == 1 }, 5), 'one execution record');

my ($rec) = exec_records($r);
is($rec->{1}[0], $rid, 'record: request id');
is($rec->{2}[0], 'hello', 'record: function');
is($rec->{3}[0], 1, 'record: version');
is($rec->{5}[0], 2, 'record: start type WARM');
ok(!defined $rec->{6}[0], 'record: status OK');
is($rec->{7}[0], 200, 'record: http status');
ok(($rec->{8}[0] // 0) > 0, 'record: agent duration');
ok(($rec->{9}[0] // 0) >= ($rec->{8}[0] // 0), 'record: total >= duration');
ok(!defined $rec->{10}[0], 'record: no cold start time');
is($rec->{13}[0], $ep, 'record: agent endpoint');
ok(abs(($rec->{14}[0] // 0) / 1000 - time) < 60, 'record: timestamp');
is($rec->{15}[0], $s1, 'record: sandbox id');
like($rec->{12}[0] // '', qr{^logs/hello/\d{4}-\d\d-\d\d/$rid\.log$}, 'record: log key');

# 2. a status and headers from the function
$res = http_request($port, 'GET', '/fn/hello/created');
is($res->{status}, 201, 'function status passed');
is($res->{headers}{'x-mine'}, 'yes', 'function header passed');
is($res->{headers}{'content-type'}, 'text/x-test', 'function content type');
is($res->{body}, 'made', 'function body');

# 3. a handler exception: 502 with errorType, sandbox kept
$res = http_request($port, 'GET', '/fn/hello/fail');
is($res->{status}, 502, 'handler exception: 502');
like($res->{body}, qr/"errorType"\s*:\s*"ValueError"/, '... errorType');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... the sandbox is returned');

# 4. kept-alive agent connections: several calls in a row, all warm
my $warm = 0;
for (1 .. 5) {
    $res = http_request($port, 'GET', '/fn/hello/x');
    $warm++ if $res->{status} == 200 && $res->{headers}{'x-faas-start'} eq 'warm';
}
is($warm, 5, '5 warm calls in a row');

# 5. SANDBOX_GONE: an entry for a sandbox the agent does not know is dropped
# and the call is retried on the next entry
$r->del($idle);
$r->rpush($idle, "s-00000000deadbeef|$ep|-", "$s2|$ep|-");
$res = http_request($port, 'GET', '/fn/hello/x');
is($res->{status}, 200, 'SANDBOX_GONE: retried on another sandbox');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... one entry left');
is(($r->lrange($idle, 0, -1))[0], "$s2|$ep|-", '... the gone one was dropped');

# 6. an unreachable agent (down, maybe restarting): the entry goes back (its
# sandbox may be fine) and the call takes the next one, at once when that
# one is on another agent (t/gateway/agent_restart.t: the same agent)
$r->del($idle);
$r->rpush($idle, "s-00000000deadbee0|unix:/nonexistent/agent.sock|-", "$s1|$ep|-");
$res = http_request($port, 'GET', '/fn/hello/x');
is($res->{status}, 200, 'unreachable agent: retried on another sandbox');
ok(wait_until(sub { $r->llen($idle) == 2 }, 5), '... both entries listed');
is_deeply([sort $r->lrange($idle, 0, -1)],
          [sort("s-00000000deadbee0|unix:/nonexistent/agent.sock|-", "$s1|$ep|-")],
          '... the unreachable one kept (its agent may come back), once each');

# 7. a malformed entry is dropped and logged
$r->del($idle);
$r->rpush($idle, "garbage", "$s1|$ep|-");
my $off = error_log_size();
$res = http_request($port, 'GET', '/fn/hello/x');
is($res->{status}, 200, 'malformed entry skipped');
like(error_log_since($off), qr/dropped a bad entry of faas:idle:\{hello\@1\}/,
     '... and logged');

# 8. a body larger than client_body_buffer_size (read from nginx's temp file)
$res = http_request($port, 'POST', '/fn/hello/len', body => 'y' x 300000);
is($res->{status}, 200, 'large body: 200');
is($res->{body}, '300000', '... the function got all of it');

# 9. HEAD: headers only
$res = http_request($port, 'HEAD', '/fn/hello/x');
is($res->{status}, 200, 'HEAD: 200');
is($res->{body}, '', '... without a body');
is($res->{headers}{'x-faas-start'}, 'warm', '... with the faas headers');

# 10. an agent over TCP, with the token
my $tep = "tcp:127.0.0.1:$agent->{tcp_port}";
$r->del($idle);
$r->rpush($idle, "$s1|$tep|-");
$res = http_request($port, 'GET', '/fn/hello/tcp');
is($res->{status}, 200, 'TCP agent endpoint with the token: 200');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... the entry is returned');
$res = http_request($port, 'GET', '/fn/hello/tcp');
is($res->{status}, 200, '... again over the kept-alive connection');

# a gateway with the wrong token: refused, nothing ran, the entry is kept
my $ng2 = start_nginx(http_config => "faas_redis $redis->{addr}; faas_agent_token wrong;",
                      config => 'location /fn/ { faas_function on; }');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), 'entry listed');
$off = error_log_size();
$res = http_request($ng2->{port}, 'GET', '/fn/hello/tcp');
is($res->{status}, 502, 'wrong agent token: 502');
ok(wait_until(sub { $r->llen($idle) == 1 }, 5), '... the entry stays listed');
like(error_log_since($off), qr/refused the call/, '... and the refusal is logged');
$port = $ng2->{port};

# 11. access log variables
stop_nginx();
my $alog = read_file(work_dir() . '/nginx/logs/access.log') // '';
like($alog, qr/"GET \/fn\/hello\/created HTTP\/1.1" 201 [0-9a-f]{32} hello warm OK/,
     'access log: $faas_request_id $faas_function $faas_start $faas_status');
like($alog, qr/"GET \/fn\/hello\/fail HTTP\/1.1" 502 [0-9a-f]{32} hello warm FUNCTION_ERROR/,
     'access log: FUNCTION_ERROR');

sandbox_destroy($agent, $_) for $s1, $s2;
faas_finish();
