# Many calls at once through faas-invoke: 8 sandboxes, 200 calls at
# concurrency 16 over kept-alive connections; every call answered OK, every
# sandbox used, all frozen afterwards. Plus many connections in parallel
# from this process, each with its own sandbox, interleaved on the loop.
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Setup;

need_programs();

my $agent = start_agent();
my $code = write_handler('conc', 'handler.py' => <<'PY');
import os, time
BOOT = os.urandom(8).hex()
def handler(event, context):
    return {"boot": BOOT, "i": event.get("i")}
def slow(event, context):
    time.sleep(0.5)
    return "slept"
PY

my @ids = map { sandbox_create($agent, function => 'conc', code => $code) } 1 .. 8;
is(scalar @ids, 8, '8 sandboxes');

my ($rc, $lines, $err) = faas_invoke($agent,
    ['-s', join(',', @ids), '-f', 'conc', '-e', '{"i":1}',
     '-n', 200, '-c', 16, '-k', 4]);
is($rc, 0, 'faas-invoke -n 200 -c 16 exits 0') or diag $err;
my $summary = pop @$lines;
is($summary->{invocations}, 200, 'summary: 200 invocations');
is_deeply($summary->{statuses}, { OK => 200 }, '... all OK');
ok(defined $summary->{p50_us} && defined $summary->{p99_us}
   && defined $summary->{per_second}, '... with rate and percentiles');
is(scalar @$lines, 200, 'one JSON line per answer');
my %rids = map { $_->{request_id} => 1 } @$lines;
is(scalar keys %rids, 200, '... 200 distinct request ids');
my %boots = map { json_decode($_->{body})->{boot} => 1 } @$lines;
is(scalar keys %boots, 8, '... served by all 8 sandboxes');
ok(wait_until(sub { !grep { (sandbox_state($_) // '') ne 'FROZEN' } @ids }, 10),
   'all frozen afterwards');

# 8 connections from here, one request each in flight at the same time.
my @socks = map { agent_connect($agent) } 0 .. 7;
for my $round (1 .. 5) {
    for my $i (0 .. 7) {
        send_request($socks[$i], request_id => "c$i-r$round",
                     sandbox_id => $ids[$i], event => "{\"i\":$i}");
    }
    my $good = 0;
    for my $i (0 .. 7) {
        my $r = read_response($socks[$i], 20);
        $good++ if $r && $r->{status} eq 'OK' && $r->{request_id} eq "c$i-r$round"
                   && json_decode($r->{body})->{i} == $i;
    }
    is($good, 8, "round $round: 8 parallel connections answered");
}
close $_ for @socks;

# Without free sandboxes to wait for, a second concurrent request collides:
# faas-invoke with one sandbox and concurrency 4 still gets 50 OKs because it
# waits for the sandbox like a gateway waits on its idle list.
($rc, $lines, $err) = faas_invoke($agent,
    ['-s', $ids[0], '-f', 'conc', '-n', 50, '-c', 4, '-q']);
is($rc, 0, 'one sandbox, concurrency 4') or diag $err;
is_deeply($lines->[-1]{statuses}, { OK => 50 }, '... 50 OK, none overlapped');

sandbox_destroy($agent, $_) for @ids;

# Agent-wide limit: max_inflight 1, a slow call in one sandbox, a call to
# another sandbox meanwhile -> OVERLOADED (agent saturated).
stop_proc($agent);
my $small = start_agent(name => 'small', cfg => { max_inflight => 1 },
                        run_dir => $agent->{run_dir});
my @two = map { sandbox_create($small, function => 'conc', code => $code,
                               handler => 'handler.slow') } 1 .. 2;
my $s = agent_connect($small);
send_request($s, request_id => 'first', sandbox_id => $two[0]);
send_request($s, request_id => 'second', sandbox_id => $two[1]);
my %by;
for (1 .. 2) { my $x = read_response($s, 20) or last; $by{$x->{request_id}} = $x }
is($by{second}{status}, 'OVERLOADED', 'max_inflight reached: OVERLOADED');
like($by{second}{error}, qr/saturated/, '... agent saturated');
is($by{first}{status}, 'OK', '... the call in flight completes');
send_request($s, request_id => 'third', sandbox_id => $two[1]);
is(read_response($s, 20)->{status}, 'OK', '... and then there is room again');
close $s;
sandbox_destroy($small, $_) for @two;
faas_finish();
