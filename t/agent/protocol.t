# faas-agent's gateway protocol without any sandbox: unknown and invalid
# sandbox ids, malformed and oversized frames, bad fields, the TCP token,
# config errors and a clean SIGTERM.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;

my $agent = start_agent(tcp => 1, token => 'tok-123',
                        cfg => { max_frame_bytes => 65536 });

# --- unknown and invalid sandbox ids --------------------------------------
my $r = invoke_once($agent, sandbox_id => 's-0123456789abcdef', event => '{}');
is($r->{status}, 'SANDBOX_GONE', 'unknown sandbox id: SANDBOX_GONE');
ok(!$r->{sandbox_alive}, '... sandbox_alive false');
like($r->{error}, qr/no such sandbox/, '... with a reason');

for my $bad ('../../etc/passwd', 's-0123', 'S-0123456789ABCDEF',
             's-0123456789abcdeg', '') {
    $r = invoke_once($agent, sandbox_id => $bad, event => '{}');
    is($r->{status}, 'SANDBOX_GONE', "invalid sandbox id '$bad': SANDBOX_GONE");
    like($r->{error}, qr/invalid sandbox id/, '... said to be invalid');
}
ok(!-e "$agent->{run_dir}/sbx/etc", 'nothing created for an invalid id');

# --- bad fields: answered, connection kept --------------------------------
my $s = agent_connect($agent);
send_request($s, request_id => 'evt1', sandbox_id => 's-0123456789abcdef',
             event => '{"a":');
$r = read_response($s);
is($r->{status}, 'BAD_REQUEST', 'event that is not JSON: BAD_REQUEST');
is($r->{request_id}, 'evt1', '... with the request id');
like($r->{error}, qr/event is not JSON/, '... and the reason');
send_request($s, request_id => 'bad/id', sandbox_id => 's-0123456789abcdef');
$r = read_response($s);
is($r->{status}, 'BAD_REQUEST', 'request id with a slash: BAD_REQUEST');
send_request($s, request_id => 'fn1', sandbox_id => 's-0123456789abcdef',
             function => 'Bad_Name');
$r = read_response($s);
is($r->{status}, 'BAD_REQUEST', 'invalid function name: BAD_REQUEST');
send_request($s, request_id => 'after', sandbox_id => 's-0123456789abcdef');
$r = read_response($s);
is($r->{request_id}, 'after', 'connection still serves after field errors');

# --- pipelined requests on one connection ---------------------------------
my %want;
for my $i (1 .. 50) {
    my $id = sprintf('pipe%03d', $i);
    $want{$id} = 1;
    send_request($s, request_id => $id, sandbox_id => sprintf('s-%016x', $i));
}
my %got;
for (1 .. 50) {
    my $x = read_response($s) or last;
    $got{$x->{request_id}} = $x->{status};
}
is_deeply([sort keys %got], [sort keys %want], '50 pipelined requests, 50 answers');
is((grep { $_ ne 'SANDBOX_GONE' } values %got), 0, '... all SANDBOX_GONE');
close $s;

# --- malformed frames ------------------------------------------------------
my $other = agent_connect($agent);
$s = agent_connect($agent);
send_frame($s, "\xff\xff\xff\xff\x0f garbage that is no protobuf");
$r = read_response($s, 10);
is($r && $r->{status}, 'BAD_REQUEST', 'garbage frame: BAD_REQUEST');
ok(is_closed($s), '... and the connection is closed');
send_request($other, request_id => 'other1', sandbox_id => 's-0123456789abcdef');
$r = read_response($other);
is($r && $r->{request_id}, 'other1', 'another connection is still served');

$s = agent_connect($agent);
syswrite($s, pack('N', 1 << 20));
$r = read_response($s, 10);
is($r && $r->{status}, 'BAD_REQUEST', 'oversized frame header: BAD_REQUEST');
like($r && $r->{error}, qr/over limit/, '... says the frame is too big');
ok(is_closed($s), '... and the connection is closed');

$s = agent_connect($agent);
syswrite($s, "\x00\x00");   # half a header, then EOF
shutdown($s, 1);
ok(is_closed($s), 'connection closing mid-header: closed quietly');
$r = invoke_once($agent, sandbox_id => 's-0123456789abcdef');
is($r->{status}, 'SANDBOX_GONE', 'agent still answers afterwards');

# --- TCP and the token ------------------------------------------------------
$s = agent_connect($agent, tcp => 1);
send_request($s, request_id => 'notoken', sandbox_id => 's-0123456789abcdef');
$r = read_response($s, 10);
is($r && $r->{status}, 'UNAUTHORIZED', 'TCP without a hello: UNAUTHORIZED');
ok(is_closed($s), '... and closed');

$s = agent_connect($agent, tcp => 1, token => 'tok-124');
send_request($s, request_id => 'wrong', sandbox_id => 's-0123456789abcdef');
$r = read_response($s, 10);
is($r && $r->{status}, 'UNAUTHORIZED', 'TCP with a wrong token: UNAUTHORIZED');
ok(is_closed($s), '... and closed');

$s = agent_connect($agent, tcp => 1, token => 'tok-1234');
$r = read_response($s, 10);
is($r && $r->{status}, 'UNAUTHORIZED', 'TCP with a longer token: UNAUTHORIZED');

$s = agent_connect($agent, tcp => 1, token => '');
$r = read_response($s, 10);
is($r && $r->{status}, 'UNAUTHORIZED', 'TCP with an empty hello: UNAUTHORIZED');

$s = agent_connect($agent, tcp => 1, token => 'tok-123');
send_request($s, request_id => 'good', sandbox_id => 's-0123456789abcdef');
$r = read_response($s, 10);
is($r && $r->{request_id}, 'good', 'TCP with the right token: answered');
is($r && $r->{status}, 'SANDBOX_GONE', '... SANDBOX_GONE for an unknown id');
send_request($s, request_id => 'good2', sandbox_id => 's-0123456789abcdee');
$r = read_response($s, 10);
is($r && $r->{request_id}, 'good2', '... and the connection is kept alive');
close $s;

my ($code, $lines, $err) = faas_invoke($agent,
    ['-t', 'tok-123', '-s', 's-0123456789abcdef', '-r', 'tool1'],
    endpoint => "tcp:127.0.0.1:$agent->{tcp_port}");
is($code, 0, 'faas-invoke over TCP with the token') or diag $err;
is($lines->[0]{status}, 'SANDBOX_GONE', '... prints the answer as JSON');
is($lines->[0]{request_id}, 'tool1', '... with the request id');

# --- configuration errors ---------------------------------------------------
my $w = work_dir();
for my $case (
    [ { run_dir => "$w/run", cgroup_root => cgroup_root() }, qr/socket is required/ ],
    [ { run_dir => "$w/run", cgroup_root => cgroup_root(), socket => "$w/x.sock",
        tcp_listen => '127.0.0.1:1' }, qr/token is required/ ],
    [ { run_dir => "$w/run", cgroup_root => cgroup_root(), socket => "$w/x.sock",
        freezer => 'v3' }, qr/freezer/ ],
    [ { run_dir => "$w/run", cgroup_root => cgroup_root(), socket => "$w/x.sock",
        max_frame_bytes => 'big' }, qr/max_frame_bytes/ ],
) {
    write_json("$w/bad.json", $case->[0]);
    my $out = `objs/faas-agent -c $w/bad.json 2>&1`;
    isnt($? >> 8, 0, "bad config refused: $case->[1]");
    like($out, $case->[1], '... with the reason');
}

# --- SIGTERM ----------------------------------------------------------------
kill 'TERM', $agent->{pid};
ok(wait_until(sub { !proc_alive($agent) }, 15), 'SIGTERM: the agent exits');
is($agent->{status} >> 8, 0, '... with status 0');
ok(!-e $agent->{socket}, '... and removes its socket');

faas_finish();
