# freeze_after_idle_ms: a sandbox stays thawed for that long after its call
# (the next call needs no thaw), then it is frozen; a thread the handler left
# running stops within that period; 0 freezes at once; an agent killed with
# -9 while a sandbox is kept thawed leaves it frozen all the same (the freeze
# guard); bad values are refused.
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Faas::Test;
use Faas::Agent;
use Faas::Setup;

need_programs();

my $w = work_dir();
my $code = write_handler('bg', 'handler.py' => <<'PY');
import threading, time
ticks = []
state = {}
def spin():
    while True:
        ticks.append(time.time())
        time.sleep(0.001)
def handler(event, context):
    now = time.time()
    if 'thread' not in state:
        state['thread'] = threading.Thread(target=spin, daemon=True)
        state['thread'].start()
    since = event.get('since', 0)
    seen = [t for t in ticks if t > since]
    del ticks[:]
    return {"start": now, "ticks": seen, "end": time.time()}
PY

sub call {
    my ($agent, $id, $ev) = @_;
    my $r = invoke_once($agent, sandbox_id => $id, event => json_encode($ev // {}));
    return $r && $r->{status} eq 'OK' ? json_decode($r->{body}) : undef;
}

# --- kept thawed, then frozen --------------------------------------------------
my $agent = start_agent(cfg => { freeze_after_idle_ms => 1000 });
my $id = sandbox_create($agent, function => 'bg', code => $code);
ok(call($agent, $id), 'a call with freeze_after_idle_ms 1000: OK');
is(sandbox_state($id), 'THAWED', '... the sandbox is kept thawed right after it');
ok(call($agent, $id), '... the next call on the thawed sandbox: OK');
ok(wait_until(sub { (sandbox_state($id) // '') eq 'FROZEN' }, 10),
   '... frozen once idle for the period');
ok(call($agent, $id), '... and thawed again for the next call');

# --- a thread left behind stops within the period ------------------------------
# The thread appends a timestamp every millisecond. Between two calls 2 s
# apart it may run for the 100 ms period after the first call, never up to
# the next one.
stop_proc($agent);
$agent = start_agent(name => 'agent100', cfg => { freeze_after_idle_ms => 100 });
my $a1 = call($agent, $id);
ok($a1, 'freeze_after_idle_ms 100: a call');
sleep(2);
my $a2 = call($agent, $id, { since => $a1->{end} });
ok($a2, '... and another 2 s later');
my @idle = grep { $_ > $a1->{end} + 0.1 + 0.5 && $_ < $a2->{start} - 0.05 }
           @{ $a2->{ticks} };
is(scalar @idle, 0, '... the background thread did not run while idle beyond '
                    . 'the period (slack 0.5 s)')
    or diag("ticks while idle: " . scalar(@idle));
ok(scalar(@{ $a2->{ticks} }) > 0, '... though it is alive (it ran in the period)');

# --- kill -9 while kept thawed: the guard freezes it --------------------------
stop_proc($agent);
$agent = start_agent(name => 'agent-k', cfg => { freeze_after_idle_ms => 1000 });
ok(call($agent, $id), 'freeze_after_idle_ms 1000: a call');
is(sandbox_state($id), 'THAWED', '... kept thawed');
kill_proc($agent, 'KILL');
ok(wait_until(sub { (sandbox_state($id) // '') eq 'FROZEN' }, 10),
   'agent killed with -9: the sandbox is frozen by its guard all the same');

# --- 0: frozen at once ----------------------------------------------------------
$agent = start_agent(name => 'agent0', cfg => { freeze_after_idle_ms => 0 });
ok(call($agent, $id), 'freeze_after_idle_ms 0: a call');
isnt(sandbox_state($id), 'THAWED', '... the sandbox is freezing as the answer comes');
is(read_file("/sys/fs/cgroup/freezer/" . cgroup_root() . "/$id/freezer.self_freezing"),
   "1\n", '... its own freezer cgroup is set to freeze');
stop_proc($agent);

# --- a clean stop freezes what it kept thawed -----------------------------------
$agent = start_agent(name => 'agent-t', cfg => { freeze_after_idle_ms => 1000 });
ok(call($agent, $id), 'a call, then SIGTERM within the period');
kill 'TERM', $agent->{pid};
ok(wait_until(sub { !proc_alive($agent) }, 15), '... the agent exits');
is($agent->{status} >> 8, 0, '... with status 0');
ok(wait_until(sub { (sandbox_state($id) // '') eq 'FROZEN' }, 5),
   '... having frozen the sandbox first');

# --- bad values -----------------------------------------------------------------
for my $v (-1, 1001, '"soon"') {
    write_json("$w/bad.json", { run_dir => "$w/run", cgroup_root => cgroup_root(),
                                socket => "$w/x.sock" });
    my $raw = read_file("$w/bad.json");
    $raw =~ s/\}\s*$/, "freeze_after_idle_ms": $v}/;
    write_file("$w/bad.json", $raw);
    my $out = `objs/faas-agent -c $w/bad.json 2>&1`;
    isnt($? >> 8, 0, "freeze_after_idle_ms $v refused");
    like($out, qr/freeze_after_idle_ms/, '... with the reason');
}

sandbox_destroy($agent, $id);
faas_finish();
