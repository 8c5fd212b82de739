# Python and Node.js handlers through faas-agent: the answer mapping
# (body, statusCode, headers, base64), handler exceptions and import errors
# as FUNCTION_ERROR, freezing between calls, logs in a file:// store
# (truncation marker included), faas-invoke's output.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Setup;
use MIME::Base64 qw(encode_base64);

need_programs();

my $w = work_dir();
my $store = "$w/store";
my $agent = start_agent(store => "file://$store");

my $py = write_handler('py', 'handler.py' => <<'PY');
import json, sys
def handler(event, context):
    print("got", event.get("body"))
    return {"statusCode": 200, "headers": {"content-type": "text/plain"},
            "body": event.get("body", "")}
def mapped(event, context):
    return {"statusCode": event["status"], "headers": {"X-A": "one", "X-N": 5},
            "body": "created"}
def plain(event, context):
    return {"echo": event, "fn": context.function_name,
            "rid": context.aws_request_id}
def b64(event, context):
    return {"statusCode": 200, "body": "AAEC/w==", "isBase64Encoded": True}
def badb64(event, context):
    return {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True}
def boom(event, context):
    print("before the boom")
    raise ValueError("bad value: " + str(event.get("n")))
def chatty(event, context):
    sys.stdout.write("x" * 100000 + "\n")
    return "ok"
PY
my $pybad = write_handler('pybad', 'handler.py' => "import no_such_module_here\n"
                                                  . "def handler(e, c):\n    return 1\n");
my $node = write_handler('node', 'app.js' => <<'JS');
exports.handler = async (event) => {
  console.log("node got", event.body);
  return { statusCode: 202, headers: { 'x-node': 'yes' }, body: event.body };
};
exports.cb = (event, context, callback) => callback(null, { cb: true });
exports.boom = async () => { throw new TypeError("node went wrong"); };
JS

sub mk {
    my (%o) = @_;
    return sandbox_create($agent, function => $o{function} // 'echo',
                          code => $o{code}, handler => $o{handler},
                          runtime => $o{runtime} // 'python3');
}

# --- Python ----------------------------------------------------------------
my $p1 = mk(code => $py, handler => 'handler.handler');
is(sandbox_state($p1), 'FROZEN', 'a new sandbox is frozen');

my $rid = 'a' x 32;
my $r = invoke_once($agent, request_id => $rid, sandbox_id => $p1,
                    function => 'echo', version => 1,
                    event => json_encode({ body => 'hello agent' }));
is($r->{status}, 'OK', 'python: OK');
is($r->{request_id}, $rid, '... request id echoed');
is($r->{http_status}, 200, '... statusCode');
is($r->{body}, 'hello agent', '... body echoed');
is($r->{headers}{'content-type'}, 'text/plain', '... headers');
ok($r->{sandbox_alive}, '... sandbox alive');
ok($r->{memory_bytes} > 0, '... peak memory reported');
ok($r->{duration_us} > 0, '... duration reported');
my ($y, $m, $d) = (gmtime)[5, 4, 3];
my $date = sprintf('%04d-%02d-%02d', $y + 1900, $m + 1, $d);
is($r->{log_key}, "logs/echo/$date/$rid.log", '... log key');
ok(wait_until(sub { -f "$store/$r->{log_key}" }, 10), '... log stored');
like(read_file("$store/$r->{log_key}") // '', qr/got hello agent/, '... with the output');
ok(wait_until(sub { (sandbox_state($p1) // '') eq 'FROZEN' }, 10),
   'frozen again after the call (FREEZING settles to FROZEN)');

# Freezing: the sandbox's own freezer cgroup is frozen between calls (not
# only a parent), and it has processes.
my @procs = sandbox_procs($p1);
ok(@procs >= 1, 'sandbox has processes');
is(read_file("/sys/fs/cgroup/freezer/" . cgroup_root() . "/$p1/freezer.self_freezing"),
   "1\n", '... and its own freezer cgroup is set to freeze');

# A 2 MiB event and answer: partial writes both ways.
my $big = join('', map { chr(97 + $_ % 26) } 1 .. 2 * 1024 * 1024);
$r = invoke_once($agent, sandbox_id => $p1, event => json_encode({ body => $big }));
is($r->{status}, 'OK', '2 MiB event: OK');
ok($r->{body} eq $big, '... echoed intact');

# An event that fits the agent's 8 MiB frame but not, with the context
# around it, the runtime's 8 MiB frame: refused, the sandbox untouched.
$r = invoke_once($agent, sandbox_id => $p1,
                 event => '"' . ('e' x (8 * 1024 * 1024 - 200)) . '"');
is($r->{status}, 'BAD_REQUEST', 'event too large for the runtime: BAD_REQUEST');
like($r->{error}, qr/too large/, '... says so');
$r = invoke_once($agent, sandbox_id => $p1, event => '{"body":"still here"}');
is($r->{body}, 'still here', '... and the sandbox still serves');

my $p2 = mk(code => $py, handler => 'handler.mapped');
$r = invoke_once($agent, sandbox_id => $p2, function => 'echo',
                 event => json_encode({ status => 201 }));
is($r->{http_status}, 201, 'statusCode mapped');
is($r->{headers}{'x-a'}, 'one', 'string header');
is($r->{headers}{'x-n'}, '5', 'number header as text');
is($r->{body}, 'created', 'body');
is($r->{log_key}, '', 'no output: no log key');

my $p3 = mk(code => $py, handler => 'handler.plain');
$rid = new_rid();
$r = invoke_once($agent, request_id => $rid, sandbox_id => $p3,
                 function => 'echo', event => '{"k":[1,2,{"z":null}]}');
is($r->{http_status}, 200, 'plain value: 200');
is($r->{headers}{'content-type'}, 'application/json', '... as JSON');
my $body = json_decode($r->{body});
is_deeply($body->{echo}, { k => [1, 2, { z => undef }] }, '... event spliced intact');
is($body->{fn}, 'echo', '... context.function_name');
is($body->{rid}, $rid, '... context.aws_request_id');

$r = invoke_once($agent, sandbox_id => $p3, event => '');
is_deeply(json_decode($r->{body})->{echo}, {}, 'empty event arrives as {}');

my $p4 = mk(code => $py, handler => 'handler.b64');
$r = invoke_once($agent, sandbox_id => $p4);
is($r->{body}, "\x00\x01\x02\xff", 'isBase64Encoded body decoded');

my $p4b = mk(code => $py, handler => 'handler.badb64');
$r = invoke_once($agent, sandbox_id => $p4b);
is($r->{status}, 'FUNCTION_ERROR', 'isBase64Encoded with a non-base64 body: FUNCTION_ERROR');
is(json_decode($r->{body})->{errorType}, 'Runtime.MarshalError', '... Runtime.MarshalError');
is($r->{http_status}, 0, '... no HTTP status: the response was rejected');

my $p5 = mk(code => $py, handler => 'handler.boom');
$r = invoke_once($agent, sandbox_id => $p5, event => '{"n":7}');
is($r->{status}, 'FUNCTION_ERROR', 'exception: FUNCTION_ERROR');
is($r->{http_status}, 0, '... no HTTP status: the gateway maps FUNCTION_ERROR');
is_deeply(json_decode($r->{body}),
          { errorType => 'ValueError', errorMessage => 'bad value: 7' },
          '... body has errorType and errorMessage');
is($r->{headers}{'content-type'}, 'application/json', '... as JSON');
ok($r->{sandbox_alive}, '... sandbox still alive');
ok(wait_until(sub { -f "$store/$r->{log_key}" }, 10), '... log stored');
my $log = read_file("$store/$r->{log_key}") // '';
like($log, qr/before the boom/, '... with the output');
like($log, qr/Traceback/, '... and the trace');
$r = invoke_once($agent, sandbox_id => $p5, event => '{"n":8}');
like($r->{body}, qr/bad value: 8/, 'same sandbox serves the next call');

my $p6 = mk(code => $pybad, handler => 'handler.handler');
$r = invoke_once($agent, sandbox_id => $p6);
is($r->{status}, 'FUNCTION_ERROR', 'import error: FUNCTION_ERROR');
is(json_decode($r->{body})->{errorType}, 'Runtime.ImportModuleError',
   '... Runtime.ImportModuleError');
like(json_decode($r->{body})->{errorMessage}, qr/no_such_module_here/,
     '... naming the module');

my $p7 = mk(code => $py, handler => 'handler.chatty');
$r = invoke_once($agent, sandbox_id => $p7);
is($r->{status}, 'OK', 'big output: OK');
ok(wait_until(sub { -f "$store/$r->{log_key}" }, 10), '... log stored');
$log = read_file("$store/$r->{log_key}") // '';
like($log, qr/\[faas: log truncated, \d+ bytes dropped\]/,
     '... the truncation marker reached the store');
ok(length($log) <= 65536 + 200, '... capped near FAAS_LOG_MAX');

# A sandbox of another function is not served.
$r = invoke_once($agent, sandbox_id => $p1, function => 'other');
is($r->{status}, 'SANDBOX_GONE', 'request for another function: SANDBOX_GONE');

# --- Node.js ---------------------------------------------------------------
my $n1 = mk(code => $node, handler => 'app.handler', runtime => 'nodejs',
            function => 'nd');
$r = invoke_once($agent, sandbox_id => $n1, function => 'nd',
                 event => json_encode({ body => 'from node' }));
is($r->{status}, 'OK', 'node: OK');
is($r->{http_status}, 202, '... statusCode');
is($r->{headers}{'x-node'}, 'yes', '... headers');
is($r->{body}, 'from node', '... body');
ok(wait_until(sub { $r->{log_key} && -f "$store/$r->{log_key}" }, 10), '... log stored');
like(read_file("$store/$r->{log_key}") // '', qr/node got from node/, '... with console.log');
ok(wait_until(sub { (sandbox_state($n1) // '') eq 'FROZEN' }, 10),
   '... frozen after the call');

my $n2 = mk(code => $node, handler => 'app.cb', runtime => 'nodejs', function => 'nd');
$r = invoke_once($agent, sandbox_id => $n2);
is_deeply(json_decode($r->{body}), { cb => JSON::PP::true() }, 'node callback style');

my $n3 = mk(code => $node, handler => 'app.boom', runtime => 'nodejs', function => 'nd');
$r = invoke_once($agent, sandbox_id => $n3);
is($r->{status}, 'FUNCTION_ERROR', 'node exception: FUNCTION_ERROR');
is_deeply(json_decode($r->{body}),
          { errorType => 'TypeError', errorMessage => 'node went wrong' },
          '... errorType and errorMessage');

# --- faas-invoke -------------------------------------------------------------
my ($code, $lines, $err) = faas_invoke($agent,
    ['-s', $p1, '-f', 'echo', '-e', '{"body":"via tool"}', '-r', 'tool-1']);
is($code, 0, 'faas-invoke exits 0') or diag $err;
is($lines->[0]{status}, 'OK', '... prints the status');
is($lines->[0]{body}, 'via tool', '... and the body');
is($lines->[0]{request_id}, 'tool-1', '... and the request id');

($code, $lines, $err) = faas_invoke($agent, ['-s', $p4]);
is($lines->[0]{body_base64}, encode_base64("\x00\x01\x02\xff", ''),
   'faas-invoke prints a binary body as body_base64');

for my $id ($p1, $p2, $p3, $p4, $p4b, $p5, $p6, $p7, $n1, $n2, $n3) {
    sandbox_destroy($agent, $id);
}
faas_finish();
