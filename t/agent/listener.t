# faas-agent's TCP listener before the hello: frames over 1 KiB close the
# connection at once, a connection without a hello is closed after
# hello_timeout_ms, and max_connections caps the TCP connections.
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Agent;

my $agent = start_agent(tcp => 1, token => 'tok-123',
                        cfg => { max_frame_bytes => 65536,
                                 hello_timeout_ms => 60000,
                                 max_connections => 3 });

# --- frames before the hello: 1 KiB at most ---------------------------------
my $s = agent_connect($agent, tcp => 1);
syswrite($s, pack('N', 1025));
ok(is_closed($s, 3), 'frame header over 1 KiB before the hello: closed at once');

$s = agent_connect($agent, tcp => 1);
syswrite($s, pack('N', 1025) . ('x' x 1025));
ok(is_closed($s, 3), '... also with its whole payload sent');

$s = agent_connect($agent, tcp => 1);
send_frame($s, "\x0a\x07tok-123" . ("\x12\x00" x 400));   # hello, 807 bytes
send_request($s, request_id => 'big', sandbox_id => 's-0123456789abcdef',
             event => '{"pad":"' . ('p' x 4000) . '"}');
my $r = read_response($s, 10);
is($r && $r->{request_id}, 'big',
   'a hello under 1 KiB, then a 4 KiB request right behind it: answered');
is($r && $r->{status}, 'SANDBOX_GONE', '... SANDBOX_GONE for an unknown id');
close $s;

# --- the connection cap -----------------------------------------------------
my @open = map { agent_connect($agent, tcp => 1, token => 'tok-123') } 1 .. 2;
push @open, agent_connect($agent, tcp => 1);   # no hello yet: counts too
my $over = agent_connect($agent, tcp => 1, token => 'tok-123');
ok(is_closed($over, 3), 'a 4th TCP connection over max_connections 3: closed');
like(read_file($agent->{log}) // '', qr/max_connections.*refused/,
     '... and logged');

send_request($open[0], request_id => 'kept', sandbox_id => 's-0123456789abcdef');
$r = read_response($open[0], 10);
is($r && $r->{request_id}, 'kept', 'the connections under the cap are served');

$r = invoke_once($agent, sandbox_id => 's-0123456789abcdef');
is($r->{status}, 'SANDBOX_GONE', 'Unix connections are not capped');

close $open[2];
my $again;
ok(wait_until(sub {
    my $c = agent_connect($agent, tcp => 1, token => 'tok-123');
    send_request($c, request_id => 'again', sandbox_id => 's-0123456789abcdef');
    my $x = read_response($c, 2);
    $again = $c if $x && $x->{request_id} eq 'again';
    return !!$again;
}, 10), 'once one closes, a new TCP connection is served');
close $_ for @open, $again;

kill 'TERM', $agent->{pid};
ok(wait_until(sub { !proc_alive($agent) }, 15), 'SIGTERM: the agent exits');
is($agent->{status} >> 8, 0, '... with status 0 (no leak)');

# --- the hello deadline -----------------------------------------------------
$agent = start_agent(tcp => 1, token => 'tok-123', name => 'agent2',
                     cfg => { hello_timeout_ms => 500 });
my $t0 = time;
$s = agent_connect($agent, tcp => 1);
ok(is_closed($s, 10), 'no hello within hello_timeout_ms: closed');
cmp_ok(time - $t0, '>=', 0.4, '... not before the deadline');

$s = agent_connect($agent, tcp => 1);
syswrite($s, "\x00\x00\x00\x09\x0a\x07tok");   # a hello that never ends
ok(is_closed($s, 10), 'a hello left half-sent: closed');

$s = agent_connect($agent, tcp => 1, token => 'tok-123');
sleep 1;
send_request($s, request_id => 'late', sandbox_id => 's-0123456789abcdef');
$r = read_response($s, 10);
is($r && $r->{request_id}, 'late', 'after a good hello the deadline is off');
close $s;

for my $case ([ { hello_timeout_ms => 0 }, qr/hello_timeout_ms/ ],
              [ { max_connections => 0 }, qr/max_connections/ ]) {
    my $w = work_dir();
    write_json("$w/bad.json", { run_dir => "$w/run", cgroup_root => cgroup_root(),
                                socket => "$w/x.sock", %{ $case->[0] } });
    my $out = `objs/faas-agent -c $w/bad.json 2>&1`;
    isnt($? >> 8, 0, "bad config refused: $case->[1]");
    like($out, $case->[1], '... with the reason');
}

faas_finish();
