# W3C trace context through the gateway (docs/DESIGN.md section 5, "Trace
# context"), with a real faas-agent and sandbox: a client's valid
# traceparent is continued (its trace id and flags kept, the gateway's own
# span as parent), a malformed or repeated one is replaced by a new trace,
# none starts one; the function sees it in its event headers and its
# context (trace_id, traceparent), the execution record carries the trace
# id, and $faas_trace_id / $faas_traceparent reach the access log.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Nginx;
use Faas::Agent;
use Faas::Setup;
use Faas::Protobuf;
use JSON::PP;

plan skip_all => 'objs/faas-sandbox, objs/faas-agent or the runtimes are not built'
    unless have_sandboxes() && -x objs_dir() . '/faas-agent';

my $redis = start_redis();
my $r = redis_client($redis);
my $agent = start_agent();
my $code = write_handler('tr', 'handler.py' => <<'PY');
def handler(event, context):
    return {"header": event["headers"].get("traceparent"),
            "trace_id": context.trace_id, "traceparent": context.traceparent}
PY
my ($sid) = warm_sandboxes($agent, $r, 'tr', $code, 1);
fn_mirror($r, 'tr');
my $jscode = write_handler('trjs', 'index.js' => <<'JS');
exports.handler = async (event, context) => ({ header: event.headers.traceparent,
    trace_id: context.traceId, traceparent: context.traceparent });
JS
my $jsid = sandbox_create($agent, function => 'trjs', code => $jscode,
                          runtime => 'nodejs', handler => 'index.handler');
$r->rpush(idle_key('trjs'), idle_entry($agent, $jsid));
fn_mirror($r, 'trjs', runtime => 'nodejs', handler => 'index.handler');

my $dir = Faas::Nginx::nginx_dir();
my $ng = start_nginx(http_config => <<"C", config => "location /fn/ { faas_function on; }\n");
faas_redis $redis->{addr};
log_format trace escape=json '{"request_id":"\$faas_request_id",'
                             '"trace_id":"\$faas_trace_id",'
                             '"traceparent":"\$faas_traceparent"}';
access_log $dir/logs/trace.log trace;
C
my $port = $ng->{port};
my $TP = qr/\A00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\z/;

# One call: its answer, the record's trace id (field 16) and the access
# log line of its request id.
sub call_fn {
    my ($fn, @headers) = @_;
    $r->del('faas:records');
    my $res = http_request($port, 'GET', "/fn/$fn", headers => \@headers);
    is($res->{status}, 200, 'the call succeeds') or diag($res->{body});
    my $j = eval { decode_json($res->{body}) } // {};
    my $rid = $res->{headers}{'x-faas-request-id'} // '';
    wait_until(sub { $r->llen('faas:records') >= 1 }, 5);
    my $rec = pb_decode(($r->lrange('faas:records', 0, -1))[0] // '');
    my $line;
    wait_until(sub {
        ($line) = grep { /"request_id":"$rid"/ }
                  split /\n/, read_file("$dir/logs/trace.log") // '';
        defined $line }, 5);
    return ($j, $rec->{16}[0] // '', $line ? decode_json($line) : {});
}
sub call { call_fn('tr', @_) }

# A function sees one traceparent, the same in its event and its context.
sub seen_alike {
    my ($j, $what) = @_;
    like($j->{header} // '', $TP, "$what: the event header is a traceparent");
    is($j->{traceparent}, $j->{header}, "$what: context.traceparent is the header");
    is($j->{trace_id}, substr($j->{header} // '', 3, 32),
       "$what: context.trace_id is its trace id");
}

my $client = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
my ($j, $rec, $log) = call([traceparent => $client]);
seen_alike($j, 'a valid traceparent');
my ($tid, $parent, $flags) = ($j->{header} // '') =~ $TP;
is($tid, '4bf92f3577b34da6a3ce929d0e0e4736', '... its trace id is kept');
is($flags, '01', '... and its flags');
isnt($parent, '00f067aa0ba902b7', '... the parent is the gateway\'s span');
is($rec, $tid, '... the record carries the trace id');
is($log->{trace_id}, $tid, '... so does $faas_trace_id');
is($log->{traceparent}, $j->{header}, '... and $faas_traceparent');

($j, $rec, $log) = call([traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00']);
is(substr($j->{header} // '', 53), '00', 'an unsampled trace stays unsampled');

($j, $rec, $log) = call();
seen_alike($j, 'no traceparent');
($tid, $parent, $flags) = ($j->{header} // '') =~ $TP;
ok($tid && $tid ne '4bf92f3577b34da6a3ce929d0e0e4736', '... a trace is started');
is($flags, '01', '... sampled');
is($rec, $tid, '... in the record');
is($log->{trace_id}, $tid, '... and the access log');

for my $bad ('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
             '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
             '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
             'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
             '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
             '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7',
             'garbage') {
    ($j, $rec, $log) = call([traceparent => $bad]);
    seen_alike($j, "malformed \"$bad\"");
    ($tid) = ($j->{header} // '') =~ $TP;
    ok($tid && $tid ne '4bf92f3577b34da6a3ce929d0e0e4736', '... replaced by a new trace');
    is($rec, $tid, '... recorded');
}

($j) = call([traceparent => '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future']);
is(substr($j->{header} // '', 0, 36), '00-4bf92f3577b34da6a3ce929d0e0e4736-',
   'a later version with more fields is continued as version 00');

($j) = call([traceparent => $client], [traceparent => $client]);
isnt(substr($j->{header} // '', 3, 32), '4bf92f3577b34da6a3ce929d0e0e4736',
     'two traceparent headers are invalid: a new trace');

($j, $rec) = call_fn('trjs', [traceparent => $client]);
seen_alike($j, 'Node.js');
is(substr($j->{header} // '', 3, 32), '4bf92f3577b34da6a3ce929d0e0e4736',
   '... context.traceId is the client\'s trace id');
is($rec, '4bf92f3577b34da6a3ce929d0e0e4736', '... recorded');

stop_nginx();
sandbox_destroy($agent, $_) for $sid, $jsid;
faas_finish();
