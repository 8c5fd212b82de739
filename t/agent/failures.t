# What goes wrong inside sandboxes, seen through faas-agent: a deadline
# (TIMEOUT, sandbox destroyed), a handler that exits or blows its memory
# limit (SANDBOX_CRASHED, destroyed, agent alive), a busy sandbox
# (OVERLOADED), and an agent killed with -9 and restarted while sandboxes
# exist (still invocable).
use lib 't/lib';
use Test::More;
use Faas::Test;
use Faas::Agent;
use Faas::Setup;
use Time::HiRes qw(time);

need_programs();

my $w = work_dir();
my $store = "$w/store";
# spin_us: the first agent polls for lone answers (the crash paths run
# inside that poll too); the restarted one waits on the loop.
my $agent = start_agent(store => "file://$store", cfg => { spin_us => 200 });

my $code = write_handler('fail', 'handler.py' => <<'PY');
import os, time
BOOT = os.urandom(8).hex()   # differs per runtime process
def spin(event, context):
    print("spinning")
    while True:
        pass
def slow(event, context):
    time.sleep(event.get("sleep", 1))
    return {"slept": event.get("sleep", 1)}
def die(event, context):
    os._exit(1)
def bomb(event, context):
    hog = []
    while True:
        hog.append(bytearray(8 * 1024 * 1024))
def ok(event, context):
    return {"boot": BOOT, "n": event.get("n")}
PY

# Dead processes of a sandbox are reparented to the host's pid 1, which may
# leave them as zombies for a while: a zombie is not running.
sub pid_running {
    my ($pid) = @_;
    my $st = read_file("/proc/$pid/stat") // return 0;
    return $st =~ /^\d+ \(.*\) ([A-Z])/ && $1 ne 'Z' && $1 ne 'X';
}

sub gone {
    my ($id) = @_;
    return !-e "$agent->{run_dir}/sbx/$id"
        && !-d "/sys/fs/cgroup/freezer/" . cgroup_root() . "/$id"
        && !-d "/sys/fs/cgroup/pids/" . cgroup_root() . "/$id";
}

# --- timeout ------------------------------------------------------------
my $spin = sandbox_create($agent, function => 'fail', code => $code,
                          handler => 'handler.spin', timeout => 5000);
my @procs = sandbox_procs($spin);
ok(@procs >= 1, 'spinning sandbox has processes');
my $t0 = time;
my $r = invoke_once($agent, sandbox_id => $spin, function => 'fail',
                    deadline_ms => int(time * 1000) + 700, timeout_ms => 700);
my $took = time - $t0;
is($r->{status}, 'TIMEOUT', 'infinite loop: TIMEOUT');
is($r->{http_status}, 0, '... no HTTP status: the gateway maps TIMEOUT');
ok(!$r->{sandbox_alive}, '... sandbox_alive false');
ok($took >= 0.6, '... not before the deadline');
ok(gone($spin), '... sandbox destroyed by the time of the answer');
ok(!(grep { pid_running($_) } @procs), '... none of its processes survives');
ok(wait_until(sub { -f "$store/$r->{log_key}" }, 10), '... a log says why');
like(read_file("$store/$r->{log_key}") // '', qr/timed out/, '... timed out');
$r = invoke_once($agent, sandbox_id => $spin, function => 'fail');
is($r->{status}, 'SANDBOX_GONE', 'a destroyed sandbox is SANDBOX_GONE afterwards');

# Without a deadline in the request, the sandbox's own timeout applies.
my $spin2 = sandbox_create($agent, function => 'fail', code => $code,
                           handler => 'handler.spin', timeout => 500);
$r = invoke_once($agent, sandbox_id => $spin2, function => 'fail');
is($r->{status}, 'TIMEOUT', "no deadline given: the sandbox's timeout_ms applies");
ok(gone($spin2), '... destroyed');

# A deadline already past: nothing runs, the sandbox stays.
my $okbox = sandbox_create($agent, function => 'fail', code => $code,
                           handler => 'handler.ok');
$r = invoke_once($agent, sandbox_id => $okbox, deadline_ms => 1000);
is($r->{status}, 'TIMEOUT', 'deadline in the past: TIMEOUT');
ok($r->{sandbox_alive}, '... without running: sandbox alive');
$r = invoke_once($agent, sandbox_id => $okbox, event => '{"n":1}');
is($r->{status}, 'OK', '... and it still serves');

# --- crash ------------------------------------------------------------------
my $die = sandbox_create($agent, function => 'fail', code => $code,
                         handler => 'handler.die');
@procs = sandbox_procs($die);
$r = invoke_once($agent, sandbox_id => $die);
is($r->{status}, 'SANDBOX_CRASHED', 'os._exit(1): SANDBOX_CRASHED');
is($r->{http_status}, 0, '... no HTTP status: the gateway maps SANDBOX_CRASHED');
ok(!$r->{sandbox_alive}, '... sandbox_alive false');
ok(gone($die), '... sandbox destroyed');
ok(!(grep { pid_running($_) } @procs), '... no process left');

my $bomb = sandbox_create($agent, function => 'fail', code => $code,
                          handler => 'handler.bomb', memory => 64);
$r = invoke_once($agent, sandbox_id => $bomb, timeout_ms => 20000,
                 deadline_ms => int(time * 1000) + 20000);
is($r->{status}, 'SANDBOX_CRASHED', 'memory bomb under 64 MB: SANDBOX_CRASHED');
like($r->{error}, qr/out of memory/, '... reported as out of memory');
ok($r->{memory_bytes} >= 32 * 1024 * 1024, '... peak memory near the limit');
ok(gone($bomb), '... sandbox destroyed');
ok(proc_alive($agent), 'agent alive');
$r = invoke_once($agent, sandbox_id => $okbox, event => '{"n":2}');
is($r->{status}, 'OK', '... and serving');

# --- busy sandbox -------------------------------------------------------------
my $slow = sandbox_create($agent, function => 'fail', code => $code,
                          handler => 'handler.slow');
my $s = agent_connect($agent);
send_request($s, request_id => 'slow1', sandbox_id => $slow,
             event => '{"sleep":1}');
send_request($s, request_id => 'slow2', sandbox_id => $slow,
             event => '{"sleep":1}');
send_request($s, request_id => 'other', sandbox_id => $okbox, event => '{"n":3}');
my @order;
my %by;
for (1 .. 3) {
    my $x = read_response($s, 20) or last;
    push @order, $x->{request_id};
    $by{$x->{request_id}} = $x;
}
is($by{slow2}{status}, 'SANDBOX_BUSY', 'second request for a busy sandbox: SANDBOX_BUSY');
ok(!$by{slow2}{sandbox_alive}, '... sandbox_alive false: its holder returns it, not this caller');
is($by{slow1}{status}, 'OK', 'the first one completes');
is($by{other}{status}, 'OK', 'another sandbox on the same connection is served meanwhile');
is($order[-1], 'slow1', 'answers come back out of order (the slow one last)');
ok(wait_until(sub { (sandbox_state($slow) // '') eq 'FROZEN' }, 10),
   'busy sandbox frozen afterwards');
close $s;

# --- kill -9 and restart ------------------------------------------------------
$r = invoke_once($agent, sandbox_id => $okbox, event => '{"n":4}');
my $boot_before = json_decode($r->{body})->{boot};
kill_proc($agent, 'KILL');
ok(!proc_alive($agent), 'agent killed with -9');
ok(-e $agent->{socket}, '... its socket file is left behind');
ok(wait_until(sub { (sandbox_state($okbox) // '') eq 'FROZEN' }, 10),
   '... the sandbox stays frozen');
my $agent2 = start_agent(store => "file://$store", name => 'agent2',
                         socket => $agent->{socket}, keep_socket => 1,
                         run_dir => $agent->{run_dir});
$r = invoke_once($agent2, sandbox_id => $okbox, event => '{"n":5}');
is($r->{status}, 'OK', 'new agent serves the existing sandbox');
is(json_decode($r->{body})->{boot}, $boot_before, '... the same runtime process');
is(json_decode($r->{body})->{n}, 5, '... with the new event');
$r = invoke_once($agent2, sandbox_id => $slow, event => '{"sleep":0}');
is($r->{status}, 'OK', '... and the other one');

# A sandbox destroyed behind the agent's back (its kept-alive runtime
# connection breaks while idle) is SANDBOX_GONE, not a crash.
ok(sandbox_destroy($agent2, $okbox), 'sandbox destroyed by the tool');
$r = invoke_once($agent2, sandbox_id => $okbox, event => '{"n":6}');
is($r->{status}, 'SANDBOX_GONE', '... then SANDBOX_GONE');

# --- SIGTERM finishes the calls in flight --------------------------------------
$s = agent_connect($agent2);
send_request($s, request_id => 'last', sandbox_id => $slow, event => '{"sleep":1}');
wait_until(sub { (sandbox_state($slow) // '') eq 'THAWED' }, 5);
kill 'TERM', $agent2->{pid};
$r = read_response($s, 20);
is($r && $r->{status}, 'OK', 'SIGTERM during a call: the call still completes');
ok(wait_until(sub { !proc_alive($agent2) }, 15), '... then the agent exits');
is($agent2->{status} >> 8, 0, '... with status 0');
ok(wait_until(sub { (sandbox_state($slow) // '') eq 'FROZEN' }, 10),
   '... leaving the sandbox frozen');

sandbox_destroy($agent2, $slow);
faas_finish();
